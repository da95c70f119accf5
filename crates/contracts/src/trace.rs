//! W3C Trace Context (`traceparent`), carried in Kafka headers from ingest to
//! the result records, so one frame's journey can be followed across stages.
//! Format: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`
//! (<https://www.w3.org/TR/trace-context/>).

use std::fmt;

/// Name of the Kafka header.
pub const TRACEPARENT: &str = "traceparent";

/// A trace id and the id of the span that sent the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, never all zero.
    pub span_id: [u8; 8],
    /// Bit 0: sampled.
    pub flags: u8,
}

impl TraceContext {
    /// A new root trace from 24 random bytes (the caller supplies them: this
    /// crate does no IO).
    pub fn root(random: [u8; 24]) -> Self {
        let mut trace_id = [0; 16];
        let mut span_id = [0; 8];
        trace_id.copy_from_slice(&random[..16]);
        span_id.copy_from_slice(&random[16..]);
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        Self { trace_id, span_id, flags: 1 }
    }

    /// The same trace, continued by a new span.
    pub fn child(&self, span_id: [u8; 8]) -> Self {
        let span_id = if span_id == [0; 8] { [0, 0, 0, 0, 0, 0, 0, 1] } else { span_id };
        Self { trace_id: self.trace_id, span_id, flags: self.flags }
    }

    /// Parses a `traceparent` header value; None when it is not a valid version-00 one.
    pub fn parse(value: &str) -> Option<Self> {
        let parts: Vec<&str> = value.trim().split('-').collect();
        if parts.len() < 4 || parts[0].len() != 2 || parts[0] == "ff" {
            return None;
        }
        // Future versions may append fields; version 00 has exactly four.
        if parts[0] == "00" && parts.len() != 4 {
            return None;
        }
        let mut trace_id = [0; 16];
        let mut span_id = [0; 8];
        let mut flags = [0; 1];
        hex_into(parts[1], &mut trace_id)?;
        hex_into(parts[2], &mut span_id)?;
        hex_into(parts[3], &mut flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self { trace_id, span_id, flags: flags[0] })
    }

    /// The trace id as 32 lower-case hex digits (for logs).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", hex(&self.trace_id), hex(&self.span_id), self.flags)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_values() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse(v).unwrap();
        assert_eq!(t.to_string(), v);
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let c = t.child([9; 8]);
        assert_eq!(c.trace_id, t.trace_id);
        assert_ne!(c.span_id, t.span_id);
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
        let r = TraceContext::root([0; 24]);
        assert!(TraceContext::parse(&r.to_string()).is_some());
    }
}
