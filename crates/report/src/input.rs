//! Reading the results of `streetscope run` (JSON Lines) strictly: every line
//! must be a known record kind of schema version 1 with every required field
//! and no field the schema does not know, or the report stops with the line and
//! the field. A study that silently skipped what it did not understand could
//! not be signed.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use streetscope_contracts::records::{
    AlertEvent, CountsRecord, CrossingEvent, RunSummary, TurningMovementEvent, WindowRecord, SCHEMA_VERSION,
};

use crate::ReportError;

/// What a report uses of the results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// Every turning movement, in file order.
    pub turning: Vec<TurningMovementEvent>,
    /// Every closed window, in file order.
    pub windows: Vec<WindowRecord>,
    /// Every line crossing, in file order.
    pub crossings: Vec<CrossingEvent>,
    /// Records read, by kind: (kind, count).
    pub records: Vec<(String, u64)>,
}

impl Results {
    fn tally(&mut self, kind: &str) {
        match self.records.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => self.records.push((kind.to_owned(), 1)),
        }
    }
}

/// Reads the text of a results file; `origin` names it in errors.
pub fn read_results(origin: &str, text: &str) -> Result<Results, ReportError> {
    let mut out = Results::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |field: &str, reason: String| ReportError::Input {
            path: origin.to_owned(),
            line: n,
            field: field.to_owned(),
            reason,
        };
        let value: Value = serde_json::from_str(line).map_err(|e| err("-", format!("not a JSON record: {e}")))?;
        let Value::Object(mut obj) = value else {
            return Err(err("-", "not a JSON object: each line holds one record".into()));
        };
        let kind = match obj.remove("record") {
            Some(Value::String(k)) => k,
            Some(other) => return Err(err("record", format!("{other} is not a record kind"))),
            None => return Err(err("record", "missing: every record names its kind".into())),
        };
        match obj.get("schema_version") {
            Some(v) if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
            Some(v) => {
                return Err(err(
                    "schema_version",
                    format!("{v}: this report reads version {SCHEMA_VERSION}; use a streetscope of that version"),
                ))
            }
            None => return Err(err("schema_version", "missing".into())),
        }
        match kind.as_str() {
            "turning_movement" => out.turning.push(strict(obj, &kind, err)?),
            "window" => out.windows.push(strict(obj, &kind, err)?),
            "crossing" => out.crossings.push(strict(obj, &kind, err)?),
            "alert" => drop(strict::<AlertEvent>(obj, &kind, err)?),
            "counts" => drop(strict::<CountsRecord>(obj, &kind, err)?),
            "summary" => drop(strict::<RunSummary>(obj, &kind, err)?),
            other => {
                return Err(err(
                    "record",
                    format!(
                        "{other:?} is not a record kind of schema version {SCHEMA_VERSION} (crossing, \
                         turning_movement, window, alert, counts, summary)"
                    ),
                ))
            }
        }
        out.tally(&kind);
    }
    Ok(out)
}

/// Deserialises one record's fields, refusing unknown ones.
fn strict<T: DeserializeOwned>(
    obj: Map<String, Value>,
    kind: &str,
    err: impl Fn(&str, String) -> ReportError,
) -> Result<T, ReportError> {
    let mut unknown = Vec::new();
    let parsed: Result<T, serde_json::Error> =
        serde_ignored::deserialize(Value::Object(obj), |path| unknown.push(path.to_string()));
    match parsed {
        Err(e) => {
            let msg = e.to_string();
            // serde names the field between backticks: "missing field `line`".
            let field = msg.split('`').nth(1).unwrap_or("-").to_owned();
            Err(err(&field, format!("{msg} (in a `{kind}` record)")))
        }
        Ok(_) if !unknown.is_empty() => Err(err(
            &unknown[0],
            format!(
                "unknown field in a `{kind}` record of schema version {SCHEMA_VERSION}: a typo, or written by a \
                 newer streetscope"
            ),
        )),
        Ok(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TURN: &str = r#"{"record":"turning_movement","schema_version":1,"intersection_id":"i","camera_id":"c","track_id":1,"from":"south","to":"north","class_name":"car","entry_frame_seq":1,"entry_capture_time_ms":1000,"exit_frame_seq":2,"exit_capture_time_ms":2000,"capture_time_ms":2000}"#;

    #[test]
    fn reads_known_records() {
        let text = format!("{TURN}\n\n{TURN}\n");
        let r = read_results("r.jsonl", &text).unwrap();
        assert_eq!(r.turning.len(), 2);
        assert_eq!(r.records, vec![("turning_movement".to_owned(), 2)]);
    }

    #[test]
    fn a_missing_or_unknown_field_names_the_line_and_the_field() {
        let missing = TURN.replace(r#""class_name":"car","#, "");
        let e = read_results("r.jsonl", &format!("{TURN}\n{missing}\n")).unwrap_err().to_string();
        assert!(e.starts_with("r.jsonl:2: class_name: missing field `class_name`"), "{e}");
        let unknown = TURN.replace(r#""class_name":"car","#, r#""class_name":"car","colour":"red","#);
        let e = read_results("r.jsonl", &unknown).unwrap_err().to_string();
        assert!(e.starts_with("r.jsonl:1: colour: unknown field"), "{e}");
        let e = read_results("r.jsonl", r#"{"record":"crossing"}"#).unwrap_err().to_string();
        assert!(e.starts_with("r.jsonl:1: schema_version: missing"), "{e}");
        let e = read_results("r.jsonl", r#"{"record":"frobnicate","schema_version":1}"#).unwrap_err().to_string();
        assert!(e.starts_with("r.jsonl:1: record: \"frobnicate\" is not a record kind"), "{e}");
        let e = read_results("r.jsonl", "{\"record\":").unwrap_err().to_string();
        assert!(e.starts_with("r.jsonl:1: -: not a JSON record"), "{e}");
        let e =
            read_results("r.jsonl", &TURN.replace(r#""track_id":1"#, r#""track_id":"one""#)).unwrap_err().to_string();
        assert!(e.starts_with("r.jsonl:1: "), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn an_unknown_field_deep_inside_a_window_is_found() {
        let w = r#"{"record":"window","schema_version":1,"intersection_id":"i","window_start_ms":0,"window_end_ms":900000,"length_s":900,"counts":[],"turning_movements":[],"cameras":[{"camera_id":"c","frames_expected":9000,"frames_received":9000,"frames_dropped":0,"gaps":[{"first_seq":1,"last_seq":2,"extra":true}],"stale":false}],"late":{"crossings":0,"turning_movements":0,"frames":0},"complete":true}"#;
        let e = read_results("w.jsonl", w).unwrap_err().to_string();
        assert!(e.starts_with("w.jsonl:1: cameras.0.gaps.0.extra: unknown field"), "{e}");
        let ok = w.replace(r#","extra":true"#, "");
        assert_eq!(read_results("w.jsonl", &ok).unwrap().windows.len(), 1);
    }
}
