//! Local time of the site: bins written as ISO 8601 with the UTC offset in
//! force at their start, and peak periods in local clock time.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::ReportError;

/// The time zone of IANA name `name`, from the tz database compiled into the
/// binary (the same answer on every machine, whatever it has installed).
pub fn zone(name: &str) -> Result<TimeZone, ReportError> {
    TimeZone::get(name).map_err(|e| ReportError::Config {
        field: "time_zone".into(),
        value: format!("{name:?}"),
        reason: format!("not a time zone of the tz database ({e}); use an IANA name such as \"Europe/London\""),
    })
}

/// `"HH:MM"` as minutes after midnight (`"24:00"` is 1440).
pub fn hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// `ms` since the Unix epoch as local ISO 8601 with offset, e.g.
/// `2026-01-01T07:00:00-05:00`.
pub fn iso(ms: i64, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        Err(_) => format!("{ms}ms"),
    }
}

/// The local date (`YYYY-MM-DD`) and minute of the day of `ms`.
pub fn local_day_minute(ms: i64, tz: &TimeZone) -> (String, u32) {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => {
            let z = t.to_zoned(tz.clone());
            (z.strftime("%Y-%m-%d").to_string(), z.hour() as u32 * 60 + z.minute() as u32)
        }
        Err(_) => (String::new(), 0),
    }
}

/// Parses a time given on the command line: ISO 8601 with an offset
/// (`2026-01-01T07:00:00-05:00`, `…Z`), or a local date-time in `tz`
/// (`2026-01-01T07:00`). Milliseconds since the Unix epoch.
pub fn parse(s: &str, tz: &TimeZone) -> Result<i64, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let dt: DateTime = s.parse().map_err(|e| format!("{s:?} is not an ISO 8601 date-time: {e}"))?;
    let z = dt.to_zoned(tz.clone()).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(z.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_written_with_the_local_offset() {
        let ny = zone("America/New_York").unwrap();
        // 2026-01-01T12:00Z is 07:00 EST; 2026-07-01T11:00Z is 07:00 EDT.
        assert_eq!(iso(1_767_268_800_000, &ny), "2026-01-01T07:00:00-05:00");
        assert_eq!(iso(1_782_903_600_000, &ny), "2026-07-01T07:00:00-04:00");
        assert_eq!(iso(0, &zone("UTC").unwrap()), "1970-01-01T00:00:00+00:00");
        assert_eq!(local_day_minute(1_767_268_800_000, &ny), ("2026-01-01".into(), 420));
        assert_eq!(parse("2026-01-01T07:00", &ny).unwrap(), 1_767_268_800_000);
        assert_eq!(parse("2026-01-01T12:00:00Z", &ny).unwrap(), 1_767_268_800_000);
        assert!(parse("yesterday", &ny).is_err());
    }

    #[test]
    fn an_unknown_zone_is_an_error_that_names_it() {
        let e = zone("Mars/Olympus_Mons").unwrap_err().to_string();
        assert!(e.contains("time_zone = \"Mars/Olympus_Mons\""), "{e}");
        assert!(e.contains("IANA"), "{e}");
    }

    #[test]
    fn clock_times() {
        assert_eq!(hhmm("06:30"), Some(390));
        assert_eq!(hhmm("24:00"), Some(1440));
        for bad in ["24:01", "6:30", "06:60", "0630", "ab:cd"] {
            assert_eq!(hhmm(bad), None, "{bad}");
        }
    }
}
