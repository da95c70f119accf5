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
        if line.trim().is_empty() {
            continue;
        }
        out.read_record(origin, i + 1, line)?;
    }
    Ok(out)
}

impl Results {
    /// Reads one record (a line of a results file, or the value of a message
    /// of a result topic) as strictly as [`read_results`]; `origin` and `line`
    /// name it in errors (for a message: `topic[partition]` and its offset).
    pub fn read_record(&mut self, origin: &str, line: usize, text: &str) -> Result<(), ReportError> {
        let err = |field: &str, reason: String| ReportError::Input {
            path: origin.to_owned(),
            line,
            field: field.to_owned(),
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| err("-", format!("not a JSON record: {e}")))?;
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
            "turning_movement" => self.turning.push(strict(obj, &kind, err)?),
            "window" => self.windows.push(strict(obj, &kind, err)?),
            "crossing" => self.crossings.push(strict(obj, &kind, err)?),
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
        self.tally(&kind);
        Ok(())
    }
}

/// One message of a result topic, as `streetscope report --brokers` read it.
#[derive(Debug, Clone, Copy)]
pub struct TopicMessage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The intersection id (the result topics' key).
    pub key: &'a str,
    /// None: a tombstone (never written to result topics; skipped).
    pub value: Option<&'a [u8]>,
}

/// Reads the messages of the result topics (`events`, `counts`) as strictly as
/// a results file: each value is one record, and an error names
/// `topic[partition]:offset` and the field. Only the records of `intersection`
/// (when given: the messages keyed with it). A message whose value repeats one
/// already read under the same key is a replay (the topics are at-least-once:
/// an aggregator that restarts republishes what it had not committed) and is
/// read once.
pub fn read_topic_messages<'a>(
    messages: impl IntoIterator<Item = TopicMessage<'a>>,
    intersection: Option<&str>,
) -> Result<Results, ReportError> {
    let mut out = Results::default();
    let mut seen = std::collections::HashSet::new();
    for m in messages {
        let Some(value) = m.value else { continue };
        if intersection.is_some_and(|i| i != m.key) || !seen.insert((m.key, value)) {
            continue;
        }
        let origin = format!("{}[{}]", m.topic, m.partition);
        let line = usize::try_from(m.offset).unwrap_or(usize::MAX);
        let text = std::str::from_utf8(value).map_err(|e| ReportError::Input {
            path: origin.clone(),
            line,
            field: "-".into(),
            reason: format!("not UTF-8 text: {e}"),
        })?;
        out.read_record(&origin, line, text)?;
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
    fn topic_messages_are_read_once_per_intersection_and_name_their_offset() {
        let other = TURN.replace(r#""intersection_id":"i""#, r#""intersection_id":"j""#);
        let msg = |offset, key, value: &'static str| TopicMessage {
            topic: "streetscope.events",
            partition: 2,
            offset,
            key,
            value: Some(value.as_bytes()),
        };
        let other: &'static str = Box::leak(other.into_boxed_str());
        let r = read_topic_messages([msg(7, "i", TURN), msg(8, "j", other), msg(9, "i", TURN)], Some("i")).unwrap();
        assert_eq!(r.turning.len(), 1, "the replay at offset 9 is read once, j's record not at all");
        let r = read_topic_messages([msg(7, "i", TURN), msg(8, "j", other)], None).unwrap();
        assert_eq!(r.turning.len(), 2);
        let bad: &'static str = Box::leak(TURN.replace(r#""track_id":1,"#, "").into_boxed_str());
        let e = read_topic_messages([msg(7, "i", TURN), msg(41, "i", bad)], Some("i")).unwrap_err().to_string();
        assert!(e.starts_with("streetscope.events[2]:41: track_id: missing field"), "{e}");
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
