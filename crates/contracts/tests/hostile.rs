//! Hostile input against every decoder of outside input in the contracts: the
//! frame envelope, detections and result records (JSON from Kafka), camera
//! specs and source URLs (from the registry API), TOML configuration (edited by
//! hand). Random bytes and mutations of valid encodings; none may panic,
//! allocate more than a small multiple of its input, or take long, and every
//! refusal says what was wrong.
//!
//! Seeded: `STREETSCOPE_FUZZ_SEED` and `STREETSCOPE_FUZZ_CASES` change the seed
//! and the count (scripts/fuzz.sh runs ten million per decoder).

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::config::PipelineConfig;
use streetscope_contracts::records::ResultRecord;
use streetscope_contracts::registry::{check_source_url, CameraSpec, IntersectionSpec};
use streetscope_contracts::zones::{polygon_contains, polygon_self_intersection, polygons_overlap};
use streetscope_contracts::{CaptureClock, Frame, FrameDetections, FrameEncoding, Letterbox, NormPoint};
use streetscope_hostile::{check_bounded, check_bounded_by, hostile, hostile_json, measure, Dictionary, Fuzz, Verdict};

#[global_allocator]
static ALLOC: streetscope_hostile::Meter = streetscope_hostile::Meter;

/// No single input may take this long: a hang detector, with room for a loaded CI machine.
const SLOW: Duration = Duration::from_secs(10);

fn frame(encoding: FrameEncoding, camera: &str, payload: Vec<u8>, lb: Letterbox) -> Frame {
    Frame {
        camera_id: Arc::from(camera),
        intersection_id: Arc::from("5th-and-main"),
        seq: 123_456_789,
        pts_ns: 42_000_000_000,
        capture_time_ms: 1_795_893_140_044,
        clock: CaptureClock::CameraNtp,
        letterbox: lb,
        encoding,
        payload: Arc::from(payload),
    }
}

fn envelopes() -> Vec<Vec<u8>> {
    vec![
        frame(
            FrameEncoding::Jpeg,
            "cam-5th-main-ne",
            vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3],
            Letterbox::fit(1920, 1080, 64, 64),
        )
        .to_envelope(),
        frame(FrameEncoding::Rgb8, "c", vec![7; 8 * 8 * 3], Letterbox::fit(1280, 720, 8, 8)).to_envelope(),
        frame(FrameEncoding::Jpeg, &"x".repeat(64), Vec::new(), Letterbox::fit(3, 2, 640, 640)).to_envelope(),
    ]
}

#[test]
fn frame_envelopes() {
    let seeds = envelopes();
    Fuzz::new("frame_envelope", 100_000).run(hostile(seeds, Dictionary::binary(), 128), |bytes| {
        let (decoded, usage) = measure(|| Frame::from_envelope(&bytes));
        check_bounded(bytes.len(), usage)?;
        match decoded {
            Ok(f) => {
                // Whatever decodes is exactly what it encodes back to.
                prop_assert_eq!(f.to_envelope(), bytes.0);
                let _ = f.check();
                Ok(Verdict::Accepted)
            }
            Err(e) => {
                prop_assert!(e.at <= bytes.len() && !e.what.is_empty(), "{e}");
                Ok(Verdict::Refused)
            }
        }
    });
}

#[test]
fn an_envelope_claiming_four_gigabytes_is_refused_before_allocating() {
    let mut bytes = envelopes().swap_remove(0);
    let at = bytes.len() - 7 - 4;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let (e, usage) = measure(|| Frame::from_envelope(&bytes).unwrap_err());
    assert_eq!(
        e.to_string(),
        format!("frame envelope, byte {}: truncated: payload needs 4294967295 bytes, 7 left", at + 4)
    );
    assert!(usage.largest < 1024, "{usage:?}");
    // An id length of 65535 over a short input, the same.
    let mut bytes = envelopes().swap_remove(0);
    bytes[64..66].copy_from_slice(&u16::MAX.to_be_bytes());
    let (e, usage) = measure(|| Frame::from_envelope(&bytes).unwrap_err());
    assert!(e.what.starts_with("truncated: camera id needs 65535 bytes"), "{e}");
    assert!(usage.largest < 1024, "{usage:?}");
}

fn golden(name: &str) -> &'static str {
    match name {
        "detections" => include_str!("../../aggregate/tests/golden/four_way_typical/detections.jsonl"),
        "windows" => include_str!("../../aggregate/tests/golden/four_way_typical/windows.jsonl"),
        _ => unreachable!(),
    }
}

/// A serde_json error names what was wrong and, but for the errors of an
/// internally tagged enum (which serde buffers), where.
fn json_error_names_where(e: &serde_json::Error, tagged: bool) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(text.len() > 10, "{text}");
    prop_assert!(tagged || (e.line() >= 1 && text.contains(" at line ")), "{text}");
    Ok(())
}

#[test]
fn detections() {
    let seeds: Vec<Vec<u8>> = golden("detections").lines().take(6).map(|l| l.as_bytes().to_vec()).collect();
    for s in &seeds {
        serde_json::from_slice::<FrameDetections>(s).unwrap().check().unwrap();
    }
    Fuzz::new("detections_json", 20_000).run(hostile_json(seeds, 256), |bytes| {
        let start = Instant::now();
        let (decoded, usage) = measure(|| serde_json::from_slice::<FrameDetections>(&bytes));
        check_bounded(bytes.len(), usage)?;
        prop_assert!(start.elapsed() < SLOW);
        match decoded {
            Ok(d) => Ok(match d.check() {
                Ok(()) => Verdict::Accepted,
                Err(reason) => {
                    prop_assert!(!reason.to_string().is_empty());
                    Verdict::Refused
                }
            }),
            Err(e) => {
                json_error_names_where(&e, false)?;
                Ok(Verdict::Refused)
            }
        }
    });
}

#[test]
fn result_records() {
    let mut seeds: Vec<Vec<u8>> = golden("windows")
        .lines()
        .take(2)
        .map(|l| format!("{{\"record\":\"window\",{}", &l[1..]).into_bytes())
        .collect();
    seeds.push(
        br#"{"record":"crossing","schema_version":1,"intersection_id":"x-1","camera_id":"cam-1","line":"north","direction":"forward","direction_label":"in","class_name":"car","track_id":17,"frame_seq":420,"stream_time_s":42.0,"capture_time_ms":1767225642000,"speed_kmh":31.5}"#
            .to_vec(),
    );
    seeds.push(
        br#"{"record":"counts","schema_version":1,"intersection_id":"x-1","as_of_capture_time_ms":1767225642000,"frames":420,"duplicates":3,"counts":[{"intersection_id":"x-1","camera_id":"cam-1","line":"north","direction":"backward","direction_label":"out","class_name":"bus","count":2}],"turning_movements":[{"intersection_id":"x-1","camera_id":"cam-1","from":"n","to":"s","class_name":"car","count":1}],"complete":false}"#
            .to_vec(),
    );
    for s in &seeds {
        serde_json::from_slice::<ResultRecord>(s).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(s)));
    }
    Fuzz::new("result_records_json", 20_000).run(hostile_json(seeds, 256), |bytes| {
        let start = Instant::now();
        let (decoded, usage) = measure(|| serde_json::from_slice::<ResultRecord>(&bytes));
        // An internally tagged enum is buffered whole before it is read: about
        // 66 bytes per byte of `[2,2,2,…]` (found at volume, seed 0x1000).
        check_bounded_by(bytes.len(), usage, 128)?;
        prop_assert!(start.elapsed() < SLOW);
        match decoded {
            Ok(_) => Ok(Verdict::Accepted),
            Err(e) => {
                json_error_names_where(&e, true)?;
                Ok(Verdict::Refused)
            }
        }
    });
}

const CAMERA: &str = r#"{"id":"cam-1","intersection":"x-1","source":"rtsp://user:pw@10.0.0.5:554/s1?token=abc","sample_fps":5,
"lines":[{"name":"north","start":[0.1,0.4],"end":[0.9,0.4],"forward":"in","backward":"out"}],
"zones":[{"name":"box","polygon":[[0.1,0.1],[0.9,0.1],[0.9,0.9],[0.1,0.9]],"kind":"queue","lane":"left"}],
"enabled":false}"#;

#[test]
fn camera_specs() {
    let mut seeds =
        vec![CAMERA.as_bytes().to_vec(), br#"{"id":"c","intersection":"x","source":"file:///v.mp4"}"#.to_vec()];
    for s in &seeds {
        let spec: CameraSpec = serde_json::from_slice(s).unwrap();
        assert!(spec.validate().is_empty(), "{:?}", spec.validate());
    }
    // A camera with an operator's template: decodes, and the registry refuses the field.
    seeds.push(
        br#"{"id":"c","intersection":"x","source":"file:///v.mp4","template":"/etc/streetscope/templates/c.pipeline"}"#
            .to_vec(),
    );
    Fuzz::new("camera_spec_json", 20_000).run(hostile_json(seeds, 256), |bytes| {
        let start = Instant::now();
        let (outcome, usage) = measure(|| {
            serde_json::from_slice::<CameraSpec>(&bytes).map(|s| (s.camera.template.is_some(), s.validate()))
        });
        check_bounded(bytes.len(), usage)?;
        prop_assert!(start.elapsed() < SLOW);
        let outcome = match outcome {
            Ok((template, errors)) => {
                // No path to a file on the ingest pods gets through the registry.
                prop_assert!(!template || errors.iter().any(|e| e.field == "template"), "{errors:?}");
                Ok(errors)
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(errors) if errors.is_empty() => Ok(Verdict::Accepted),
            Ok(errors) => {
                for e in &errors {
                    prop_assert!(!e.field.is_empty() && !e.reason.is_empty(), "{e:?}");
                }
                Ok(Verdict::Refused)
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                Ok(Verdict::Refused)
            }
        }
    });
}

#[test]
fn intersection_specs() {
    let seeds = vec![br#"{"id":"x-1","name":"Main & 5th","description":"four ways","location":{"lat":52.5,"lon":13.4},
"approaches":[{"name":"north","camera":"cam-1","line":"north"},{"name":"box","camera":"cam-1","zone":"box"}]}"#
        .to_vec()];
    let camera: CameraSpec = serde_json::from_str(CAMERA).unwrap();
    let find = |id: &str| (id == "cam-1").then_some(&camera.camera);
    Fuzz::new("intersection_spec_json", 20_000).run(hostile_json(seeds, 256), |bytes| {
        let (outcome, usage) = measure(|| serde_json::from_slice::<IntersectionSpec>(&bytes).map(|s| s.validate(find)));
        check_bounded(bytes.len(), usage)?;
        Ok(match outcome {
            Ok(errors) if errors.is_empty() => Verdict::Accepted,
            Ok(errors) => {
                prop_assert!(errors.iter().all(|e| !e.field.is_empty() && !e.reason.is_empty()), "{errors:?}");
                Verdict::Refused
            }
            Err(_) => Verdict::Refused,
        })
    });
}

#[test]
fn source_urls() {
    let seeds: Vec<Vec<u8>> = [
        "rtsp://user:p%40ss@10.0.0.5:554/Streaming/Channels/101?transport=tcp",
        "rtsps://[fe80::1]:322/live",
        "https://cam.example.org/mjpeg",
        "file:///srv/clips/a.mp4",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let dict = Dictionary(
        ["\"", "\\", "!", " ", "\t", "\n", "://", "@", ":", "[", "]", "%", "?", "#", "/", ":0", ":65536", "\u{0}", "é"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
    );
    Fuzz::new("source_url", 100_000).run(hostile(seeds, dict, 64), |bytes| {
        let Ok(url) = std::str::from_utf8(&bytes) else { return Ok(Verdict::Refused) };
        match check_source_url(url) {
            Ok(()) => {
                // The ingest templates quote the URL: nothing accepted may close the quote or escape it.
                prop_assert!(!url.contains(['"', '\\']) && !url.chars().any(|c| c.is_whitespace() || c.is_control()));
                Ok(Verdict::Accepted)
            }
            Err(reason) => {
                prop_assert!(!reason.is_empty());
                Ok(Verdict::Refused)
            }
        }
    });
}

const PIPELINE: &str = include_str!("../../../pipelines/demo.toml");

const PIPELINE_MORE: &str = r#"
[[cameras]]
id = "cam-2"
intersection = "x-2"
source = "rtsp://10.0.0.9/live"
sample_fps = 5
template = "templates/cam-2.pipeline"
[[cameras.lines]]
name = "stop"
start = [0.1, 0.5]
end = [0.9, 0.5]
[[cameras.zones]]
name = "queue"
kind = "queue"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
[cameras.calibration]
image = [[0.1, 0.9], [0.9, 0.9], [0.8, 0.3], [0.2, 0.3]]
world = [[0.0, 0.0], [10.0, 0.0], [10.0, 30.0], [0.0, 30.0]]
"#;

/// The TOML parser keeps about 50 bytes per level of nesting (`[[[[…`): linear, but more than JSON.
const TOML_FACTOR: usize = 64;

/// A TOML document: what `read_to_string` refuses (not UTF-8) is refused here too.
fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

#[test]
fn pipeline_configs() {
    let more = format!("{PIPELINE}\n{PIPELINE_MORE}");
    PipelineConfig::from_toml_str(&more, "seed.toml", None).unwrap();
    let seeds = vec![PIPELINE.as_bytes().to_vec(), more.into_bytes()];
    Fuzz::new("pipeline_config_toml", 10_000).run(hostile(seeds, Dictionary::toml(), 256), |bytes| {
        let Some(text) = utf8(&bytes) else { return Ok(Verdict::Refused) };
        let start = Instant::now();
        let (parsed, usage) = measure(|| PipelineConfig::from_toml_str(text, "fuzz.toml", None));
        check_bounded_by(bytes.len(), usage, TOML_FACTOR)?;
        prop_assert!(start.elapsed() < SLOW, "{:?} for {} bytes", start.elapsed(), bytes.len());
        match parsed {
            Ok(_) => Ok(Verdict::Accepted),
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.contains("fuzz.toml") && text.len() > "fuzz.toml".len() + 2, "{text}");
                Ok(Verdict::Refused)
            }
        }
    });
}

const CLUSTER: &str = r#"
[kafka]
brokers = "kafka-0.kafka:9092,kafka-1.kafka:9092"
client_id = "streetscope"
[kafka.topics.frames]
name = "city.frames"
partitions = 12
[detector]
confidence = 0.3
[aggregate]
snapshot_interval_s = 5
[registry]
max_body_bytes = 262144
header_timeout_s = 5
max_connections = 64
[registry.tls]
cert_file = "/etc/streetscope/tls/tls.crt"
key_file = "/etc/streetscope/tls/tls.key"
"#;

#[test]
fn cluster_configs() {
    ClusterConfig::from_toml_str(CLUSTER, "seed.toml", None).unwrap();
    Fuzz::new("cluster_config_toml", 10_000).run(
        hostile(vec![CLUSTER.as_bytes().to_vec()], Dictionary::toml(), 256),
        |bytes| {
            let Some(text) = utf8(&bytes) else { return Ok(Verdict::Refused) };
            let start = Instant::now();
            let (parsed, usage) = measure(|| ClusterConfig::from_toml_str(text, "fuzz.toml", None));
            check_bounded_by(bytes.len(), usage, TOML_FACTOR)?;
            prop_assert!(start.elapsed() < SLOW);
            match parsed {
                Ok(_) => Ok(Verdict::Accepted),
                Err(e) => {
                    prop_assert!(e.to_string().contains("fuzz.toml"));
                    Ok(Verdict::Refused)
                }
            }
        },
    );
}

#[test]
fn deep_nesting_is_refused_with_a_message_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        let json = "[".repeat(depth);
        let e = serde_json::from_str::<FrameDetections>(&json).unwrap_err();
        assert!(e.to_string().contains("recursion limit exceeded") || e.to_string().contains("invalid type"), "{e}");
        let toml = format!("a = {}", "[".repeat(depth));
        let e = PipelineConfig::from_toml_str(&toml, "deep.toml", None).unwrap_err();
        assert!(e.to_string().contains("deep.toml"), "{e}");
        let toml = format!("a = {}", "{b=".repeat(depth));
        assert!(PipelineConfig::from_toml_str(&toml, "deep.toml", None).is_err());
    }
}

/// Coordinates anywhere in f64: NaN, infinities, huge, subnormal.
fn coordinate() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..=1.0f64,
        1 => any::<f64>(),
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, 1.0, -0.0, f64::MIN_POSITIVE, 1e300]),
    ]
}

#[test]
fn polygon_geometry() {
    let polygon = || prop::collection::vec([coordinate(), coordinate()], 0..80);
    let strategy = (polygon(), polygon(), [coordinate(), coordinate()]);
    Fuzz::new("zone_polygons", 10_000).run(strategy, |(a, b, [x, y])| {
        let start = Instant::now();
        let p = NormPoint::new(x, y);
        let inside = polygon_contains(&a, p);
        let _ = polygons_overlap(&a, &b);
        if let Some((i, j)) = polygon_self_intersection(&a) {
            prop_assert!(i < a.len() && j < a.len());
        }
        prop_assert!(start.elapsed() < SLOW);
        Ok(if inside { Verdict::Accepted } else { Verdict::Refused })
    });
}

/// Inputs the property tests found, kept as they were found.
#[test]
fn regressions() {
    // A quote in a registered source URL closed the quoting of the ingest
    // pipeline templates (the registry accepted it; ingest refused the camera).
    for url in ["file:///\"srv/clips/a.mp4", "rtsp://h/a\"!fakesink", "http://h/a\\\"b"] {
        assert!(check_source_url(url).unwrap_err().contains("double quotes"), "{url}");
    }
    // Line and zone names and labels had no length limit: a camera with a
    // 100,000-character direction label was accepted (then stored, published
    // in every crossing, and used as a metric label).
    let mut spec: CameraSpec = serde_json::from_str(CAMERA).unwrap();
    spec.camera.lines[0].forward = "x".repeat(100_000);
    spec.camera.zones[0].lane = Some("y".repeat(65));
    let errors = spec.validate();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["lines[0].forward", "zones[0].lane"], "{errors:?}");
    assert_eq!(errors[0].value, "100000 characters");
    // A camera spec's lines given as 5,001 integers: decoded through a JSON
    // value, serde reserved room for 5,001 lines (520,104 bytes) before it
    // refused the first, 52 bytes per byte of input (seed 0x5747524545545343).
    let lines = vec!["2"; 5001].join(",");
    let body = format!("{{\"enabled\":false,\"id\":\"cam-1\",\"intersection\":\"x-1\",\"lines\":[{lines}]}}");
    let (decoded, usage) = measure(|| serde_json::from_str::<CameraSpec>(&body));
    let e = decoded.unwrap_err().to_string();
    assert!(e.starts_with("invalid type: integer `2`, expected struct CountingLine"), "{e}");
    assert!(usage.largest < 32 * body.len() + (64 << 10), "{usage:?} for {} bytes", body.len());
    // The registry accepted a camera's `template`, a path on the ingest pods
    // that they then read whole: `/dev/zero` until the pod's memory ran out,
    // any other file with its `{names}` shown in the camera's error.
    let spec: CameraSpec =
        serde_json::from_str(r#"{"id":"c","intersection":"x","source":"file:///v.mp4","template":"/dev/zero"}"#)
            .unwrap();
    let errors = spec.validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].field.as_str(), errors[0].value.as_str()), ("template", "\"/dev/zero\""));
    assert!(errors[0].reason.starts_with("not accepted by the registry"), "{errors:?}");
    // A reserved byte that is not 0 decoded, and re-encoded as 0.
    let mut bytes = envelopes().swap_remove(0);
    bytes[7] = 1;
    assert_eq!(
        Frame::from_envelope(&bytes).unwrap_err().to_string(),
        "frame envelope, byte 7: reserved byte is 1; version 1 has 0"
    );
}

/// The dashboard's camera snapshots (`streetscope.camera-snapshots`): pictures
/// written by detectors and overlays (track ids) by aggregators, read by every
/// `streetscope dashboard` through one decoder.
#[test]
fn camera_snapshot_messages() {
    use streetscope_contracts::snapshots::{
        decode_any, encode_message, encode_overlay, SnapshotMessage, SnapshotMeta, SnapshotObject, SnapshotOverlay,
    };
    let meta = |objects: usize| SnapshotMeta {
        schema_version: 1,
        camera_id: "cam-1".into(),
        intersection_id: "x-1".into(),
        frame_seq: 50,
        capture_time_ms: 1_700_000_000_000,
        width: 1280,
        height: 720,
        letterbox: Some(Letterbox::fit(1280, 720, 640, 640)),
        objects: (0..objects)
            .map(|i| SnapshotObject {
                bbox: streetscope_contracts::BBox::new(i as f32, 2.0, 30.0 + i as f32, 40.0),
                class_name: "bus".into(),
                score: 0.5,
                track_id: (i % 2 == 0).then_some(i as u64),
            })
            .collect(),
    };
    let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0xFF, 0xD9];
    let overlay = |objects: usize| SnapshotOverlay {
        schema_version: 1,
        camera_id: "cam-1".into(),
        frame_seq: 50,
        capture_time_ms: 1_700_000_000_000,
        objects: meta(objects).objects,
    };
    let seeds = vec![
        encode_message(&meta(0), &jpeg),
        encode_message(&meta(3), &jpeg),
        encode_overlay(&overlay(0)),
        encode_overlay(&overlay(3)),
    ];
    Fuzz::new("camera_snapshot", 20_000).run(hostile(seeds, Dictionary::binary(), 128), |bytes| {
        let (decoded, usage) = measure(|| {
            decode_any(&bytes).map(|m| match m {
                SnapshotMessage::Picture(m, pic) => (Some(m), pic.len()),
                SnapshotMessage::Overlay(o) => (None, o.objects.len()),
            })
        });
        check_bounded(bytes.len(), usage)?;
        match decoded {
            Ok((Some(_), pic)) => {
                // The picture is the rest of the value, and starts as a JPEG does.
                prop_assert!(pic >= 2 && pic <= bytes.len() - 8);
                prop_assert_eq!(&bytes[bytes.len() - pic..][..2], &[0xFF, 0xD8][..]);
                Ok(Verdict::Accepted)
            }
            Ok((None, _)) => {
                prop_assert!(bytes.starts_with(b"SSO1"));
                Ok(Verdict::Accepted)
            }
            Err(e) => {
                prop_assert!(!e.is_empty());
                Ok(Verdict::Refused)
            }
        }
    });
}
