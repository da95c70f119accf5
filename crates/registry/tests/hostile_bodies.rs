//! Hostile request bodies against the registry API's routes, in process (the
//! real router, its checks and an in-memory table; no sockets, so millions of
//! inputs fit): random bytes and mutations of valid camera and intersection
//! specs and patches. Every answer is a JSON error naming what was wrong, or a
//! success; never a 500, a panic, or an unbounded allocation; and whatever was
//! accepted reads back from the tables.
//!
//! Seeded: `STREETSCOPE_FUZZ_SEED` and `STREETSCOPE_FUZZ_CASES` (scripts/fuzz.sh).

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use streetscope_hostile::{check_bounded, hostile_json, measure, Fuzz, Verdict};
use streetscope_registry::{router, Registry};
use streetscope_transport::{MemoryTable, TableLog};
use tower::ServiceExt;

#[global_allocator]
static ALLOC: streetscope_hostile::Meter = streetscope_hostile::Meter;

const CAMERA: &str = r#"{"id":"cam-1","intersection":"x-1","source":"rtsp://user:pw@10.0.0.5:554/s1","sample_fps":5,
"lines":[{"name":"north","start":[0.1,0.4],"end":[0.9,0.4],"forward":"in","backward":"out"}],
"zones":[{"name":"box","polygon":[[0.1,0.1],[0.9,0.1],[0.9,0.9],[0.1,0.9]],"kind":"queue","lane":"left"}]}"#;
const INTERSECTION: &str = r#"{"id":"x-1","name":"Main & 5th","location":{"lat":52.5,"lon":13.4},
"approaches":[{"name":"north","camera":"cam-1","line":"north"},{"name":"box","camera":"cam-1","zone":"box"}]}"#;
const PATCH: &str = r#"{"sample_fps":7,"enabled":false,"lines":[{"name":"north","start":[0.2,0.4],"end":[0.8,0.4]}]}"#;

/// The registry's router as it is served (with the body limit and the
/// refusals' answers of streetscope-http: a 10 MB body got axum's bare 413
/// without them) over in-memory tables, called on this thread, so that
/// `measure` sees what a request allocates.
struct InProcess {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    cameras: MemoryTable,
    intersections: MemoryTable,
}

impl InProcess {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (cameras, intersections) = (MemoryTable::new("c"), MemoryTable::new("i"));
        let registry = rt.block_on(Registry::open(cameras.clone(), intersections.clone())).unwrap();
        let app = streetscope_http::harden(
            router(Arc::new(registry), common::tokens()),
            &streetscope_http::Limits::default(),
        );
        Self { rt, app, cameras, intersections }
    }

    /// A request with the write token: its status and its answer.
    fn call(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, axum::body::Bytes) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", common::WRITE))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            (status, axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap())
        })
    }
}

#[test]
fn request_bodies() {
    let h = InProcess::new();
    let (rt, cameras, intersections) = (&h.rt, &h.cameras, &h.intersections);
    let call = |method: Method, path: &str, body: Vec<u8>| h.call(method, path, body);
    // The specs the mutations start from are valid.
    assert_eq!(call(Method::POST, "/v1/intersections", b"{\"id\":\"x-1\"}".to_vec()).0, StatusCode::CREATED);
    assert_eq!(call(Method::POST, "/v1/cameras", CAMERA.as_bytes().to_vec()).0, StatusCode::CREATED);
    assert_eq!(call(Method::PUT, "/v1/intersections/x-1", INTERSECTION.as_bytes().to_vec()).0, StatusCode::OK);
    assert_eq!(call(Method::PATCH, "/v1/cameras/cam-1", PATCH.as_bytes().to_vec()).0, StatusCode::OK);

    let routes = [
        (Method::POST, "/v1/cameras"),
        (Method::PUT, "/v1/cameras/cam-1"),
        (Method::PATCH, "/v1/cameras/cam-1"),
        (Method::POST, "/v1/intersections"),
        (Method::PUT, "/v1/intersections/x-1"),
    ];
    let seeds = vec![CAMERA.as_bytes().to_vec(), INTERSECTION.as_bytes().to_vec(), PATCH.as_bytes().to_vec()];
    let strategy = (0..routes.len(), hostile_json(seeds, 256));
    // A PATCH or PUT reads the stored record too: its allocations are bounded
    // by the largest body accepted so far, not by its own.
    let largest_accepted = std::cell::Cell::new(CAMERA.len());
    Fuzz::new("registry_request_body", 4_000).run(strategy, |(route, body)| {
        let (method, path) = routes[route].clone();
        let len = body.len();
        let ((status, answer), usage) = measure(|| call(method, path, body.0));
        check_bounded(len.max(largest_accepted.get()), usage)?;
        if status.is_success() {
            largest_accepted.set(largest_accepted.get().max(len));
        }
        prop_assert!(!status.is_server_error(), "{status}: {}", String::from_utf8_lossy(&answer));
        if status.is_success() {
            return Ok(Verdict::Accepted);
        }
        let v: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        prop_assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        if status == StatusCode::BAD_REQUEST {
            let fields = v["errors"].as_array().cloned().unwrap_or_default();
            prop_assert!(!fields.is_empty(), "a 400 names its fields: {v}");
            prop_assert!(fields.iter().all(|f| f["field"].as_str().is_some_and(|f| !f.is_empty())), "{v}");
            // Never a password back: the seed's password must not be echoed.
            prop_assert!(!String::from_utf8_lossy(&answer).contains("user:pw@"), "{v}");
        }
        Ok(Verdict::Refused)
    });
    // What was accepted reads back: a registry opened over the same tables.
    let reopened = rt.block_on(Registry::open(cameras.clone(), intersections.clone())).unwrap();
    let counts = rt.block_on(reopened.counts());
    assert_eq!(counts.skipped_records, 0, "every stored record reads back");
    let stored = rt.block_on(cameras.read_all()).unwrap();
    assert!(stored.contains_key("cam-1"));
}

/// An intersection whose `approaches` were 5,000 integers (10 KB) took
/// 520 KB at once: the body was read into a JSON value, and serde reserved
/// room for every element of a value's array before checking the first
/// (found at volume, seed 0x5747524545545346; the body is read as text now).
#[test]
fn an_array_of_thousands_is_not_reserved_before_it_is_read() {
    let h = InProcess::new();
    let approach = r#"{"name":"box","zone":"box"}"#;
    let body = format!(r#"{{"approaches":[2,{approach},{}]}}"#, vec!["2"; 5_000].join(","));
    let ((status, answer), usage) = measure(|| h.call(Method::POST, "/v1/intersections", body.clone().into_bytes()));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("invalid type: integer `2`"), "{answer:?}");
    assert!(usage.largest <= 32 * body.len() + (64 << 10), "{usage:?} for {} bytes", body.len());
}

/// Inputs the property test found, kept as they were found.
#[test]
fn regressions() {
    // A PUT whose id held a URL with a password was refused with the id
    // shown as sent, password and all.
    let h = common::Harness::new();
    assert_eq!(h.call("POST", "/v1/intersections", Some(common::WRITE), Some(r#"{"id":"x-1"}"#)).status, 201);
    let camera = r#"{"id":"cam-1","intersection":"x-1","source":"file:///a.mp4"}"#;
    assert_eq!(h.call("POST", "/v1/cameras", Some(common::WRITE), Some(camera)).status, 201);
    let body = r#"{"id":"cartsp://user:pw@10.0.0.5:554/s1","intersection":"x-1","source":"file:///a.mp4"}"#;
    let a = h.call("PUT", "/v1/cameras/cam-1", Some(common::WRITE), Some(body));
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.fields().contains(&"id".to_owned()), "{}", a.text);
    assert!(!a.text.contains("user:pw@"), "{}", a.text);
    // A PATCH of 5,000 copies of a line with an end at u64::MAX (340 KB) was
    // answered with every refused field of every copy: over 1 MiB, three
    // times the body. The answer lists the first 100 and counts them all.
    let line = r#"{"end":[18446744073709551615,0.4],"name":"north","start":[0.2,0.4]}"#;
    let body = format!(r#"{{"enabled":false,"lines":[{}]}}"#, vec![line; 5_000].join(","));
    let a = h.call("PATCH", "/v1/cameras/cam-1", Some(common::WRITE), Some(&body));
    assert_eq!(a.status, 400, "{}", &a.text[..a.text.len().min(500)]);
    assert_eq!(a.fields().len(), streetscope_registry::api::MAX_LISTED_ERRORS);
    assert!(a.text.len() < 64 << 10, "{} bytes answered to {} sent", a.text.len(), body.len());
    let message = a.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("field(s) refused") && message.contains("(the first 100 are listed)"), "{message}");
    // A URL's scheme cut off into another field: the intersection
    // "//user:pw@10.0.0.5:554/s1" was shown as sent, password and all.
    let body = r#"{"id":"cam-1","intersection":"//user:pw@10.0.0.5:554/s1","source":"rtsp:cam-1"}"#;
    let a = h.call("PUT", "/v1/cameras/cam-1", Some(common::WRITE), Some(body));
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.fields().contains(&"intersection".to_owned()) && !a.text.contains("user:pw@"), "{}", a.text);
    // A URL with an empty authority and the user info after it.
    let body = r#"{"id":"cam-1","intersection":"x-1","source":"rtsp:///user:pw@10.0.0.5:554/s1"}"#;
    let a = h.call("PUT", "/v1/cameras/cam-1", Some(common::WRITE), Some(body));
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.fields().contains(&"source".to_owned()) && !a.text.contains("user:pw@"), "{}", a.text);
    // An unknown key that is the empty string was answered with field "".
    let a = h.call("PATCH", "/v1/cameras/cam-1", Some(common::WRITE), Some(r#"{"":7,"enabled":false}"#));
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.fields(), ["\"\""], "{}", a.text);
    // A value is shown cut, with how much was left out.
    let long = format!(r#"{{"id":"{}","intersection":"x-1","source":"file:///a.mp4"}}"#, "c".repeat(10_000));
    let a = h.call("PUT", "/v1/cameras/cam-1", Some(common::WRITE), Some(&long));
    assert_eq!(a.status, 400, "{}", &a.text[..a.text.len().min(500)]);
    assert!(a.text.len() < 4 << 10 && a.text.contains("bytes more)"), "{}", a.text);
}
