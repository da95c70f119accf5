//! Passwords and tokens never reach the logs: every log line of the process,
//! at TRACE for every crate (axum, hyper, the registry), is captured while a
//! camera with a password is created, read, updated and refused, and grepped.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{camera, intersection, Harness, READ, WRITE};
use serde_json::json;

const PASSWORD: &str = "Zq9-log-secret-Zq9";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn passwords_and_tokens_appear_in_no_log_line() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut h = Harness::new();
    let source = format!("rtsp://admin:{PASSWORD}@10.0.0.9:554/live?key={PASSWORD}");
    assert_eq!(h.post("/v1/intersections", &intersection("x-1")).status, 201);
    let a = h.post("/v1/cameras", &camera("cam-1", "x-1", &source));
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(h.get("/v1/cameras/cam-1").status, 200);
    assert_eq!(h.call("PATCH", "/v1/cameras/cam-1", Some(WRITE), Some(r#"{"sample_fps": 3}"#)).status, 200);
    let bad = json!({ "id": "cam-2", "intersection": "x-1", "source": format!("rtsp://admin:{PASSWORD}@h:0/x") });
    assert_eq!(h.post("/v1/cameras", &bad).status, 400);
    assert_eq!(h.call("GET", "/v1/cameras", Some(&format!("{PASSWORD}-as-a-token")), None).status, 401);
    assert_eq!(h.call("DELETE", "/v1/cameras/cam-1", Some(READ), None).status, 403);
    // A record on the table that does not parse is skipped with a log line
    // that must not quote it either.
    h.rt.block_on(async {
        use streetscope_transport::TableLog;
        let broken = format!(r#"{{"id": "cam-3", "intersection": "x-1", "source": "rtsp://u:{PASSWORD}@h/x", "sample_fps": "rtsp://u:{PASSWORD}@h/x"}}"#);
        h.cameras.write("cam-3", Some(broken.into_bytes())).await.unwrap();
    });
    h.stop();
    h.start();
    assert_eq!(h.get("/v1/cameras").json()["cameras"].as_array().unwrap().len(), 1);
    h.stop();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("camera created"), "the registry logged nothing?\n{text}");
    assert!(text.contains("rtsp://admin:***@10.0.0.9:554/live?key=***"), "the redacted source is logged\n{text}");
    assert!(text.contains("skipping a record"), "{text}");
    for secret in [PASSWORD, WRITE, READ] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
        assert!(lines.is_empty(), "{secret:?} logged:\n{}", lines.join("\n"));
    }
}
