//! The registry API against a real server on 127.0.0.1:0 over in-memory tables.

mod common;

use common::{camera, intersection, Harness, READ, WRITE};
use serde_json::{json, Value};
use streetscope_registry::client::{format_api_error, parse_spec, Client, ClientError};

const PASSWORD: &str = "Pa55w0rd-never-shown";

/// Sets up intersection `x-1` with camera `cam-1`.
fn seeded() -> Harness {
    let h = Harness::new();
    assert_eq!(h.post("/v1/intersections", &intersection("x-1")).status, 201);
    assert_eq!(h.post("/v1/intersections", &intersection("x-2")).status, 201);
    let a = h.post("/v1/cameras", &camera("cam-1", "x-1", "rtsp://10.0.0.5:554/s1"));
    assert_eq!(a.status, 201, "{}", a.text);
    h
}

/// `v` with the value at `pointer` set (added when the last key is new).
fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
    } else {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let obj = v.pointer_mut(parent).and_then(Value::as_object_mut).unwrap_or_else(|| panic!("{pointer}"));
        obj.insert(key.to_owned(), new);
    }
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn bad_cameras_get_400_with_one_error_per_field_and_write_nothing() {
    let h = seeded();
    let good = camera("cam-2", "x-1", "rtsp://10.0.0.6/s1");
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("ftp scheme", with(good.clone(), "/source", json!("ftp://h/x")), &["source"]),
        ("bare path", with(good.clone(), "/source", json!("clips/a.mp4")), &["source"]),
        ("bad port", with(good.clone(), "/source", json!("rtsp://h:70000/x")), &["source"]),
        ("no host", with(good.clone(), "/source", json!("rtsp:///x")), &["source"]),
        ("space in URL", with(good.clone(), "/source", json!("rtsp://h/a b")), &["source"]),
        ("x above 1", with(good.clone(), "/lines/0/start", json!([1.2, 0.4])), &["lines[0].start"]),
        ("y below 0", with(good.clone(), "/lines/1/end", json!([0.9, -0.1])), &["lines[1].end"]),
        ("zero-length line", with(good.clone(), "/lines/0/end", json!([0.1, 0.4])), &["lines[0].end"]),
        ("duplicate line", with(good.clone(), "/lines/1/name", json!("north")), &["lines[1].name"]),
        ("fps 0", with(good.clone(), "/sample_fps", json!(0)), &["sample_fps"]),
        ("fps 500", with(good.clone(), "/sample_fps", json!(500)), &["sample_fps"]),
        ("jpeg 0", with(good.clone(), "/jpeg_quality", json!(0)), &["jpeg_quality"]),
        ("bad id", with(good.clone(), "/id", json!("cam 2!")), &["id"]),
        ("unknown intersection", with(good.clone(), "/intersection", json!("nowhere")), &["intersection"]),
        ("unknown field", with(good.clone(), "/sample_fsp", json!(3)), &["sample_fsp"]),
        ("missing source", without(good.clone(), "source"), &["source"]),
        ("placeholder password", with(good.clone(), "/source", json!("rtsp://u:***@h/x")), &["source"]),
        (
            "bow-tie zone",
            with(
                good.clone(),
                "/zones",
                json!([{ "name": "z", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]] }]),
            ),
            &["zones[0].polygon"],
        ),
        (
            "zone out of image",
            with(good.clone(), "/zones", json!([{ "name": "z", "polygon": [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]] }])),
            &["zones[0].polygon[1]"],
        ),
        (
            "several at once",
            with(with(good.clone(), "/sample_fps", json!(-1)), "/lines/0/start", json!([2, 2])),
            &["sample_fps", "lines[0].start"],
        ),
    ];
    let before = h.tables();
    for (what, body, fields) in cases {
        let a = h.post("/v1/cameras", &body);
        assert_eq!(a.status, 400, "{what}: {}", a.text);
        assert_eq!(a.json()["error"], "invalid", "{what}");
        assert_eq!(a.fields(), fields, "{what}: {}", a.text);
        for e in a.json()["errors"].as_array().unwrap() {
            assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{what}: {e}");
        }
        assert_eq!(h.tables(), before, "{what} wrote something");
    }
    // Not JSON at all.
    let a = h.call("POST", "/v1/cameras", Some(WRITE), Some("{not json"));
    assert_eq!((a.status, a.fields()), (400, vec!["(body)".to_owned()]), "{}", a.text);
    // Updates are checked the same way, and the id must match the path.
    let cam1 = camera("cam-1", "x-1", "rtsp://10.0.0.5:554/s1");
    let a =
        h.call("PUT", "/v1/cameras/cam-1", Some(WRITE), Some(&with(cam1.clone(), "/sample_fps", json!(0)).to_string()));
    assert_eq!((a.status, a.fields()), (400, vec!["sample_fps".to_owned()]), "{}", a.text);
    let a = h.call("PUT", "/v1/cameras/cam-1", Some(WRITE), Some(&with(cam1, "/id", json!("cam-9")).to_string()));
    assert_eq!((a.status, a.fields()), (400, vec!["id".to_owned()]), "{}", a.text);
    let a = h.call(
        "PATCH",
        "/v1/cameras/cam-1",
        Some(WRITE),
        Some(r#"{"lines": [{"name": "n", "start": [0, 0], "end": [0, 2]}]}"#),
    );
    assert_eq!((a.status, a.fields()), (400, vec!["lines[0].end".to_owned()]), "{}", a.text);
    assert_eq!(h.tables(), before, "an update wrote something");
}

#[test]
fn bad_intersections_get_400_and_write_nothing() {
    let h = seeded();
    let good = json!({ "id": "x-3", "name": "Third", "location": { "lat": 51.5, "lon": -0.12 } });
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("bad id", with(good.clone(), "/id", json!("")), &["id"]),
        ("lat", with(good.clone(), "/location/lat", json!(95.0)), &["location.lat"]),
        ("lon", with(good.clone(), "/location/lon", json!(-181.0)), &["location.lon"]),
        ("empty name", with(good.clone(), "/name", json!("  ")), &["name"]),
        ("unknown field", with(good.clone(), "/nmae", json!("x")), &["nmae"]),
        (
            "approach to unknown camera",
            with(good.clone(), "/approaches", json!([{ "camera": "cam-9", "name": "n", "line": "north" }])),
            &["approaches[0].camera"],
        ),
        (
            "approach to another intersection's camera",
            with(good.clone(), "/approaches", json!([{ "camera": "cam-1", "name": "n", "line": "north" }])),
            &["approaches[0].camera"],
        ),
    ];
    let before = h.tables();
    for (what, body, fields) in cases {
        let a = h.post("/v1/intersections", &body);
        assert_eq!(a.status, 400, "{what}: {}", a.text);
        assert_eq!(a.fields(), fields, "{what}: {}", a.text);
        assert_eq!(h.tables(), before, "{what} wrote something");
    }
    // Approaches on x-1's own camera: the line must exist and serve one approach.
    let body = json!({ "id": "x-1", "approaches": [
        { "camera": "cam-1", "name": "n", "line": "north" },
        { "camera": "cam-1", "name": "s", "line": "north" },
        { "camera": "cam-1", "name": "e", "line": "east" }
    ]});
    let a = h.call("PUT", "/v1/intersections/x-1", Some(WRITE), Some(&body.to_string()));
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.fields(), ["approaches[1].line", "approaches[2].line"]);
    assert_eq!(h.tables(), before);
}

#[test]
fn conflicts_get_409_and_unknown_ids_404() {
    let h = seeded();
    let before = h.tables();
    let a = h.post("/v1/cameras", &camera("cam-1", "x-1", "rtsp://other/s"));
    assert_eq!((a.status, a.json()["error"].clone()), (409, json!("conflict")), "{}", a.text);
    assert_eq!(h.post("/v1/intersections", &intersection("x-1")).status, 409);
    // An intersection with cameras cannot go.
    let a = h.call("DELETE", "/v1/intersections/x-1", Some(WRITE), None);
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(a.json()["message"].as_str().unwrap().contains("cam-1"), "{}", a.text);
    assert_eq!(h.tables(), before);
    for (m, p) in [
        ("GET", "/v1/cameras/nope"),
        ("DELETE", "/v1/cameras/nope"),
        ("GET", "/v1/intersections/nope"),
        ("DELETE", "/v1/intersections/nope"),
    ] {
        assert_eq!(h.call(m, p, Some(WRITE), None).status, 404, "{m} {p}");
    }
    let a = h.call("PUT", "/v1/cameras/nope", Some(WRITE), Some(&camera("nope", "x-1", "rtsp://h/s").to_string()));
    assert_eq!(a.status, 404);
    // A camera serving an approach cannot go, move away, or lose the approach's line.
    let approaches = json!({ "id": "x-1", "approaches": [{ "camera": "cam-1", "name": "n", "line": "north" }] });
    let a = h.call("PUT", "/v1/intersections/x-1", Some(WRITE), Some(&approaches.to_string()));
    assert_eq!(a.status, 200, "{}", a.text);
    let before = h.tables();
    assert_eq!(h.call("DELETE", "/v1/cameras/cam-1", Some(WRITE), None).status, 409);
    let a = h.call("PATCH", "/v1/cameras/cam-1", Some(WRITE), Some(r#"{"intersection": "x-2"}"#));
    assert_eq!((a.status, a.fields()), (409, vec!["intersection".to_owned()]), "{}", a.text);
    let a = h.call("PATCH", "/v1/cameras/cam-1", Some(WRITE), Some(r#"{"lines": []}"#));
    assert_eq!((a.status, a.fields()), (409, vec!["lines".to_owned()]), "{}", a.text);
    assert_eq!(h.tables(), before);
    // Nor the zone of an approach by zone.
    let zone = r#"{"zones": [{"name": "east_arm", "polygon": [[0.7, 0.4], [1.0, 0.4], [1.0, 0.6]]}]}"#;
    assert_eq!(h.call("PATCH", "/v1/cameras/cam-1", Some(WRITE), Some(zone)).status, 200);
    let by_zone = json!({ "id": "x-1", "approaches": [
        { "camera": "cam-1", "name": "n", "line": "north" },
        { "camera": "cam-1", "name": "e", "zone": "east_arm" }
    ] });
    let a = h.call("PUT", "/v1/intersections/x-1", Some(WRITE), Some(&by_zone.to_string()));
    assert_eq!(a.status, 200, "{}", a.text);
    let before = h.tables();
    let a = h.call("PATCH", "/v1/cameras/cam-1", Some(WRITE), Some(r#"{"zones": []}"#));
    assert_eq!((a.status, a.fields()), (409, vec!["zones".to_owned()]), "{}", a.text);
    assert_eq!(h.tables(), before);
    // Once the approach is gone, the camera and then the intersection can go.
    let a = h.call("PUT", "/v1/intersections/x-1", Some(WRITE), Some(&intersection("x-1").to_string()));
    assert_eq!(a.status, 200);
    assert_eq!(h.call("DELETE", "/v1/cameras/cam-1", Some(WRITE), None).status, 204);
    assert_eq!(h.call("DELETE", "/v1/intersections/x-1", Some(WRITE), None).status, 204);
    let (cams, inters) = h.tables();
    assert!(cams.is_empty());
    assert_eq!(inters.keys().collect::<Vec<_>>(), ["x-2"]);
}

#[test]
fn tokens_are_required_and_read_tokens_cannot_write() {
    let h = seeded();
    let before = h.tables();
    for token in [None, Some("not-a-token-at-all-but-long"), Some("")] {
        for (m, p) in [
            ("GET", "/v1/cameras"),
            ("GET", "/v1/cameras/cam-1"),
            ("POST", "/v1/cameras"),
            ("DELETE", "/v1/cameras/cam-1"),
            ("GET", "/v1/intersections"),
        ] {
            let a = h.call(m, p, token, Some("{}"));
            assert_eq!(a.status, 401, "{m} {p} {token:?}");
            assert_eq!(a.json()["error"], "unauthorized");
            assert!(a.www_authenticate.as_deref().is_some_and(|w| w.starts_with("Bearer")), "{m} {p}");
        }
    }
    // Case and prefix matter: a prefix of a token is not the token.
    assert_eq!(h.call("GET", "/v1/cameras", Some(&READ[..READ.len() - 1]), None).status, 401);
    assert_eq!(h.call("GET", "/v1/cameras", Some(&READ.to_uppercase()), None).status, 401);
    // Read tokens read, and get 403 on every write.
    assert_eq!(h.call("GET", "/v1/cameras", Some(READ), None).status, 200);
    assert_eq!(h.call("GET", "/v1/intersections/x-1", Some(READ), None).status, 200);
    let cam = camera("cam-2", "x-1", "rtsp://h/s").to_string();
    for (m, p, body) in [
        ("POST", "/v1/cameras", cam.as_str()),
        ("PUT", "/v1/cameras/cam-1", cam.as_str()),
        ("PATCH", "/v1/cameras/cam-1", r#"{"enabled": false}"#),
        ("DELETE", "/v1/cameras/cam-1", ""),
        ("POST", "/v1/intersections", r#"{"id": "x-9"}"#),
        ("DELETE", "/v1/intersections/x-2", ""),
    ] {
        let a = h.call(m, p, Some(READ), Some(body));
        assert_eq!((a.status, a.json()["error"].clone()), (403, json!("forbidden")), "{m} {p}");
    }
    assert_eq!(h.tables(), before);
    // Health, metrics and the OpenAPI document are open.
    assert_eq!(h.call("GET", "/healthz", None, None).status, 200);
    assert_eq!(h.call("GET", "/metrics", None, None).status, 200);
    let doc = h.call("GET", "/openapi.json", None, None);
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json()["openapi"], "3.1.0");
    // Unknown endpoints and methods answer JSON too.
    let a = h.call("GET", "/v2/cameras", Some(READ), None);
    assert_eq!((a.status, a.json()["error"].clone()), (404, json!("not_found")), "{}", a.text);
    let a = h.call("PATCH", "/v1/intersections/x-1", Some(WRITE), Some("{}"));
    assert_eq!((a.status, a.json()["error"].clone()), (405, json!("method_not_allowed")), "{}", a.text);
}

#[test]
fn passwords_are_stored_but_never_returned() {
    let h = seeded();
    let source = format!("rtsp://admin:{PASSWORD}@10.0.0.7:554/stream1?token=also-{PASSWORD}");
    let shown = "rtsp://admin:***@10.0.0.7:554/stream1?token=***";
    let mut answers = Vec::new();
    let a = h.post("/v1/cameras", &camera("cam-p", "x-1", &source));
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["source"], shown);
    answers.push(a);
    // Stored as given: the ingest pods need it.
    let stored: Value = serde_json::from_slice(&h.tables().0["cam-p"]).unwrap();
    assert_eq!(stored["source"], source.as_str());
    let a = h.get("/v1/cameras/cam-p");
    assert_eq!(a.json()["source"], shown);
    answers.push(a);
    answers.push(h.get("/v1/cameras"));
    answers.push(h.get("/v1/cameras?intersection=x-1"));
    // Sent back as read, the stored password is kept.
    let read_back = h.get("/v1/cameras/cam-p").json();
    let a =
        h.call("PUT", "/v1/cameras/cam-p", Some(WRITE), Some(&with(read_back, "/sample_fps", json!(2)).to_string()));
    assert_eq!(a.status, 200, "{}", a.text);
    answers.push(a);
    let a = h.call("PATCH", "/v1/cameras/cam-p", Some(WRITE), Some(r#"{"enabled": false}"#));
    assert_eq!(a.status, 200, "{}", a.text);
    answers.push(a);
    let stored: Value = serde_json::from_slice(&h.tables().0["cam-p"]).unwrap();
    assert_eq!(
        (stored["source"].as_str(), stored["sample_fps"].as_f64(), stored["enabled"].as_bool()),
        (Some(source.as_str()), Some(2.0), Some(false))
    );
    // Errors about a URL with a password do not quote it.
    for bad in [
        format!("rtsp://admin:{PASSWORD}@h:99999/x"),
        format!("ftp://admin:{PASSWORD}@h/x"),
        format!("rtsp://admin:{PASSWORD}@/x"),
        format!("http://h/x?pwd={PASSWORD} y"),
    ] {
        let a = h.post("/v1/cameras", &camera("cam-q", "x-1", &bad));
        assert_eq!((a.status, a.fields()), (400, vec!["source".to_owned()]), "{}", a.text);
        answers.push(a);
    }
    let a = h.call("POST", "/v1/cameras", Some(WRITE), Some(&format!(r#"{{"id": "q", "intersection": "x-1", "source": "rtsp://a:{PASSWORD}@h/x", "sample_fps": "rtsp://a:{PASSWORD}@h/x"}}"#)));
    assert_eq!(a.status, 400, "{}", a.text);
    answers.push(a);
    let a = h.call(
        "PUT",
        "/v1/cameras/cam-p",
        Some(WRITE),
        Some(&with(camera("cam-p", "x-9", &source), "/lines/0/start", json!([3, 3])).to_string()),
    );
    assert_eq!(a.status, 400);
    answers.push(a);
    answers.push(h.call("GET", "/metrics", None, None));
    for a in &answers {
        assert!(!a.text.contains(PASSWORD), "password in an answer: {}", a.text);
    }
}

#[test]
fn a_restarted_registry_rebuilds_the_same_view_from_its_tables() {
    let mut h = seeded();
    assert_eq!(h.post("/v1/cameras", &camera("cam-2", "x-2", "rtsp://h/2")).status, 201);
    assert_eq!(h.post("/v1/cameras", &camera("cam-3", "x-2", "rtsp://h/3")).status, 201);
    assert_eq!(h.call("DELETE", "/v1/cameras/cam-3", Some(WRITE), None).status, 204);
    let approaches = json!({ "id": "x-2", "approaches": [{ "camera": "cam-2", "name": "n", "line": "north" }] });
    assert_eq!(h.call("PUT", "/v1/intersections/x-2", Some(WRITE), Some(&approaches.to_string())).status, 200);
    let cams = h.get("/v1/cameras").json();
    let inters = h.get("/v1/intersections").json();
    let old_url = h.url();
    h.stop();
    h.start();
    assert_ne!(h.url(), old_url, "a new server");
    assert_eq!(h.get("/v1/cameras").json(), cams);
    assert_eq!(h.get("/v1/intersections").json(), inters);
    assert_eq!(cams["cameras"].as_array().unwrap().len(), 2);
    // The rebuilt view enforces the same references.
    assert_eq!(h.call("DELETE", "/v1/cameras/cam-2", Some(WRITE), None).status, 409);
    assert_eq!(h.post("/v1/cameras", &camera("cam-2", "x-2", "rtsp://h/2")).status, 409);
    assert_eq!(h.get("/v1/cameras/cam-3").status, 404);
}

#[test]
fn metrics_count_records_and_requests() {
    let h = seeded();
    let _ = h.get("/v1/cameras/nope");
    let m = h.call("GET", "/metrics", None, None).text;
    for line in [
        "streetscope_registry_cameras 1",
        "streetscope_registry_intersections 2",
        "streetscope_registry_requests_total{method=\"GET\",route=\"/v1/cameras/{id}\",status=\"404\"} 1",
        "streetscope_registry_requests_total{method=\"POST\",route=\"/v1/cameras\",status=\"201\"} 1",
    ] {
        assert!(m.contains(line), "missing {line:?} in\n{m}");
    }
}

#[test]
fn the_client_drives_the_api_and_prints_field_errors() {
    let h = seeded();
    let client = Client::new(&h.url(), Some(WRITE.into()));
    let spec = parse_spec(
        r#"
            id = "cam-t"
            intersection = "x-2"
            source = "rtsp://viewer:Pa55w0rd-never-shown@10.1.1.1/s"
            sample_fps = 4
            enabled = false
            [[lines]]
            name = "stop"
            start = [0.2, 0.6]
            end = [0.8, 0.6]
        "#,
        false,
    )
    .unwrap();
    let created = client.create_camera(&spec).unwrap();
    assert_eq!(created.camera.source, "rtsp://viewer:***@10.1.1.1/s");
    assert!(!created.enabled);
    let mut got = client.get_camera("cam-t").unwrap();
    assert_eq!(got, created);
    got.camera.sample_fps = 8.0;
    client.replace_camera(&got).unwrap();
    client.patch_camera("cam-t", &json!({ "enabled": true })).unwrap();
    let stored: Value = serde_json::from_slice(&h.tables().0["cam-t"]).unwrap();
    assert_eq!(stored["source"], "rtsp://viewer:Pa55w0rd-never-shown@10.1.1.1/s");
    assert_eq!((stored["sample_fps"].as_f64(), stored["enabled"].as_bool()), (Some(8.0), Some(true)));
    let ids: Vec<String> = client.list_cameras(Some("x-2")).unwrap().into_iter().map(|c| c.camera.id).collect();
    assert_eq!(ids, ["cam-t"]);
    assert_eq!(client.list_cameras(None).unwrap().len(), 2);
    assert_eq!(client.list_intersections().unwrap().len(), 2);
    // Field errors come back one per line.
    let mut bad = got.clone();
    bad.camera.sample_fps = 0.0;
    bad.camera.lines[0].start = [1.5, 0.6];
    let err = client.replace_camera(&bad).unwrap_err();
    let ClientError::Api { status: 400, body } = &err else { panic!("{err}") };
    let text = format_api_error(400, body);
    assert!(text.contains("\n  - sample_fps = 0: must be in (0, 120]"), "{text}");
    assert!(text.contains("\n  - lines[0].start = [1.5, 0.6]: coordinates are normalised"), "{text}");
    assert_eq!(err.to_string(), text);
    // Deletes, and what a read-only or missing token gets.
    let reader = Client::new(&h.url(), Some(READ.into()));
    assert!(matches!(reader.delete_camera("cam-t"), Err(ClientError::Api { status: 403, .. })));
    assert!(matches!(Client::new(&h.url(), None).list_cameras(None), Err(ClientError::Api { status: 401, .. })));
    client.delete_camera("cam-t").unwrap();
    assert!(matches!(client.get_camera("cam-t"), Err(ClientError::Api { status: 404, .. })));
    let inter = client.get_intersection("x-2").unwrap();
    client.replace_intersection(&inter).unwrap();
    client.delete_intersection("x-2").unwrap();
    // An unreachable registry is a transport error naming the URL.
    let err = Client::new("http://127.0.0.1:1", Some(WRITE.into())).list_cameras(None).unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
}

#[test]
fn the_openapi_document_is_committed_and_current() {
    let path = manifest_dir().join("../..").join(streetscope_registry::openapi::DOC_PATH);
    let text = streetscope_registry::openapi::document_text();
    if std::env::var_os("STREETSCOPE_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == text, "{} is stale: run STREETSCOPE_BLESS=1 cargo test -p streetscope-registry --test api openapi (or `streetscope schema`)", path.display());
    let doc: Value = serde_json::from_str(&text).unwrap();
    for p in ["/v1/cameras", "/v1/cameras/{id}", "/v1/intersections", "/v1/intersections/{id}"] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
    for s in ["CameraSpec", "IntersectionSpec", "ApiError", "CountingLine", "ApproachConfig"] {
        assert!(doc["components"]["schemas"][s].is_object(), "{s}");
    }
    assert!(doc["components"]["schemas"]["CameraSpec"]["properties"]["enabled"].is_object());
    // Every reference resolves.
    let refs: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"$ref\": \"#/components/schemas/"))
        .map(|r| r.trim_end_matches(['"', ',']).to_owned())
        .collect();
    assert!(!refs.is_empty());
    for r in refs {
        assert!(doc["components"]["schemas"][&r].is_object(), "dangling $ref {r}");
    }
}

/// This package's folder as the test runner gives it at run time: a test binary built from another checkout (the build cache is shared) reads this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()).into()
}
