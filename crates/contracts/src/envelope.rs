//! The frame envelope on the wire (`streetscope.frames`): a versioned binary
//! layout, big-endian, that the detector decodes without trusting it. Every
//! decoding error says what was wrong and at which byte.
//!
//! ```text
//! offset size field
//!      0    4 magic "SSFR"
//!      4    1 version (1)
//!      5    1 encoding: 0 RGB8, 1 JPEG
//!      6    1 clock: 0 camera NTP, 1 arrival, 2 file start
//!      7    1 reserved, 0
//!      8    8 sequence number (u64)
//!     16    8 stream position, ns (u64)
//!     24    8 capture time, ms since the Unix epoch (i64)
//!     32   32 letterbox: src_w, src_h, dst_w, dst_h, scaled_w, scaled_h, pad_x, pad_y (u32 each)
//!     64    2 camera id length n (u16), then n bytes of UTF-8
//!      …    2 intersection id length m (u16), then m bytes of UTF-8
//!      …    4 payload length p (u32), then p bytes; nothing after it
//! ```
//!
//! The payload: RGB8, `dst_w * dst_h * 3` bytes; or a JPEG of the whole
//! letterbox (`dst_w` x `dst_h`) or of its picture alone (`scaled_w` x
//! `scaled_h`, what ingest's built-in templates write), which the detector
//! puts at `pad_x`, `pad_y` between black bars.

use std::sync::Arc;

use crate::frame::{CaptureClock, Frame, FrameEncoding};
use crate::geometry::Letterbox;

/// The envelope's magic bytes.
pub const MAGIC: &[u8; 4] = b"SSFR";
/// The version this build writes and reads.
pub const VERSION: u8 = 1;

/// Why bytes are not a frame envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame envelope, byte {at}: {what}")]
pub struct EnvelopeError {
    /// Offset of the offending field.
    pub at: usize,
    pub what: String,
}

impl Frame {
    /// The frame as an envelope.
    pub fn to_envelope(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(76 + self.camera_id.len() + self.intersection_id.len() + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match self.encoding {
            FrameEncoding::Rgb8 => 0,
            FrameEncoding::Jpeg => 1,
        });
        out.push(match self.clock {
            CaptureClock::CameraNtp => 0,
            CaptureClock::Arrival => 1,
            CaptureClock::FileStart => 2,
        });
        out.push(0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.pts_ns.to_be_bytes());
        out.extend_from_slice(&self.capture_time_ms.to_be_bytes());
        let l = &self.letterbox;
        for v in [l.src_w, l.src_h, l.dst_w, l.dst_h, l.scaled_w, l.scaled_h, l.pad_x, l.pad_y] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for id in [&self.camera_id, &self.intersection_id] {
            let len = u16::try_from(id.len()).expect("ids are validated to 64 characters");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(id.as_bytes());
        }
        let len = u32::try_from(self.payload.len()).expect("a frame payload is under 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes an envelope; any malformed input is an error, never a panic.
    pub fn from_envelope(bytes: &[u8]) -> Result<Frame, EnvelopeError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(EnvelopeError { at: 0, what: "not a frame envelope (bad magic)".into() });
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(EnvelopeError { at: 4, what: format!("version {version}; this build reads {VERSION}") });
        }
        let encoding = match r.u8("encoding")? {
            0 => FrameEncoding::Rgb8,
            1 => FrameEncoding::Jpeg,
            e => return Err(EnvelopeError { at: 5, what: format!("unknown encoding {e}") }),
        };
        let clock = match r.u8("clock")? {
            0 => CaptureClock::CameraNtp,
            1 => CaptureClock::Arrival,
            2 => CaptureClock::FileStart,
            c => return Err(EnvelopeError { at: 6, what: format!("unknown clock {c}") }),
        };
        // Refused unless 0: a later version that uses it must not be misread by this one.
        let reserved = r.u8("reserved")?;
        if reserved != 0 {
            return Err(EnvelopeError { at: 7, what: format!("reserved byte is {reserved}; version {VERSION} has 0") });
        }
        let seq = u64::from_be_bytes(r.array("sequence number")?);
        let pts_ns = u64::from_be_bytes(r.array("stream position")?);
        let capture_time_ms = i64::from_be_bytes(r.array("capture time")?);
        let mut lb = [0u32; 8];
        for v in &mut lb {
            *v = u32::from_be_bytes(r.array("letterbox")?);
        }
        let [src_w, src_h, dst_w, dst_h, scaled_w, scaled_h, pad_x, pad_y] = lb;
        if u64::from(scaled_w) + u64::from(pad_x) > u64::from(dst_w)
            || u64::from(scaled_h) + u64::from(pad_y) > u64::from(dst_h)
            || src_w == 0
            || src_h == 0
        {
            return Err(EnvelopeError { at: 32, what: format!("inconsistent letterbox {lb:?}") });
        }
        let camera_id = r.string("camera id")?;
        let intersection_id = r.string("intersection id")?;
        let at = r.at;
        let len = u32::from_be_bytes(r.array("payload length")?) as usize;
        let payload = r.take(len, "payload")?;
        if r.at != bytes.len() {
            return Err(EnvelopeError { at: r.at, what: format!("{} bytes after the payload", bytes.len() - r.at) });
        }
        if encoding == FrameEncoding::Rgb8 && len != dst_w as usize * dst_h as usize * 3 {
            return Err(EnvelopeError { at, what: format!("RGB payload of {len} bytes for a {dst_w}x{dst_h} frame") });
        }
        Ok(Frame {
            camera_id: Arc::from(camera_id),
            intersection_id: Arc::from(intersection_id),
            seq,
            pts_ns,
            capture_time_ms,
            clock,
            letterbox: Letterbox { src_w, src_h, dst_w, dst_h, scaled_w, scaled_h, pad_x, pad_y },
            encoding,
            payload: Arc::from(payload),
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], EnvelopeError> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(EnvelopeError {
                at: self.at,
                what: format!("truncated: {field} needs {n} bytes, {left} left"),
            });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], EnvelopeError> {
        Ok(self.take(N, field)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self, field: &str) -> Result<u8, EnvelopeError> {
        Ok(self.take(1, field)?[0])
    }

    fn string(&mut self, field: &str) -> Result<&'a str, EnvelopeError> {
        let len = u16::from_be_bytes(self.array(field)?) as usize;
        let at = self.at;
        let s = self.take(len, field)?;
        std::str::from_utf8(s).map_err(|_| EnvelopeError { at, what: format!("{field} is not UTF-8") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(encoding: FrameEncoding, payload: Vec<u8>) -> Frame {
        Frame {
            camera_id: Arc::from("cam-5th-main-ne"),
            intersection_id: Arc::from("5th-and-main"),
            seq: 123_456_789,
            pts_ns: 42_000_000_000,
            capture_time_ms: 1_795_893_140_044,
            clock: CaptureClock::CameraNtp,
            letterbox: Letterbox::fit(1920, 1080, 64, 64),
            encoding,
            payload: Arc::from(payload),
        }
    }

    fn same(a: &Frame, b: &Frame) {
        assert_eq!(
            (&a.camera_id, &a.intersection_id, a.seq, a.pts_ns, a.capture_time_ms, a.clock, a.letterbox, a.encoding),
            (&b.camera_id, &b.intersection_id, b.seq, b.pts_ns, b.capture_time_ms, b.clock, b.letterbox, b.encoding)
        );
        assert_eq!(a.payload, b.payload);
    }

    #[test]
    fn round_trips() {
        for f in [frame(FrameEncoding::Rgb8, vec![7; 64 * 64 * 3]), frame(FrameEncoding::Jpeg, vec![0xff, 0xd8, 1, 2])]
        {
            let bytes = f.to_envelope();
            assert_eq!(&bytes[..4], MAGIC);
            same(&Frame::from_envelope(&bytes).unwrap(), &f);
        }
    }

    #[test]
    fn every_truncation_is_an_error_naming_where() {
        let bytes = frame(FrameEncoding::Jpeg, vec![1, 2, 3, 4, 5]).to_envelope();
        for n in 0..bytes.len() {
            let e = Frame::from_envelope(&bytes[..n]).unwrap_err();
            assert!(e.at <= n && e.to_string().starts_with("frame envelope, byte "), "{n}: {e}");
        }
        let e = Frame::from_envelope(&bytes[..10]).unwrap_err();
        assert_eq!(e.to_string(), "frame envelope, byte 8: truncated: sequence number needs 8 bytes, 2 left");
    }

    #[test]
    fn wrong_magic_version_and_trailing_bytes_are_refused() {
        let mut bytes = frame(FrameEncoding::Jpeg, vec![1]).to_envelope();
        bytes[4] = 9;
        assert_eq!(Frame::from_envelope(&bytes).unwrap_err().what, "version 9; this build reads 1");
        bytes[4] = VERSION;
        bytes.push(0);
        assert!(Frame::from_envelope(&bytes).unwrap_err().what.contains("1 bytes after the payload"));
        assert!(Frame::from_envelope(b"GIF89a....").unwrap_err().what.contains("bad magic"));
        let mut rgb = frame(FrameEncoding::Rgb8, vec![0; 10]).to_envelope();
        assert!(Frame::from_envelope(&rgb).unwrap_err().what.contains("RGB payload of 10 bytes for a 64x64 frame"));
        rgb[70] = 0xff; // inside the camera id: invalid UTF-8
        assert!(Frame::from_envelope(&rgb).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let good = frame(FrameEncoding::Jpeg, vec![9; 32]).to_envelope();
        for i in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..(i % 7 + 1) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pos = (x as usize) % bytes.len();
                bytes[pos] = (x >> 32) as u8;
            }
            let _ = Frame::from_envelope(&bytes);
        }
    }
}
