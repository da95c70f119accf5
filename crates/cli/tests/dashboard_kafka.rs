//! `streetscope dashboard` on a real Kafka-protocol broker (tansu on
//! 127.0.0.1): the records already on the result topics and the registry's
//! cameras show when it starts (the day so far), records produced afterwards
//! show live, a replayed crossing counts once, a camera's tombstone removes it,
//! and with tokens nothing is served without one.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use streetscope_contracts::kafka::KafkaConfig;
use streetscope_contracts::records::{CrossingEvent, ResultRecord, SCHEMA_VERSION};
use streetscope_contracts::Direction;
use streetscope_testbroker::TestBroker;
use streetscope_transport::kafka::{ensure_topics, Producer, Role};

const TOKEN: &str = "dashboard-test-token-0123456789";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test broker with Streetscope's topics, the cluster configuration
/// file that names it, and a producer of the records the dashboard reads.
/// Fields drop in this order: the producer before its runtime, the broker
/// before its folder.
struct Topics {
    producer: Producer,
    rt: tokio::runtime::Runtime,
    kafka: KafkaConfig,
    /// The test's start, Unix milliseconds: the records' capture times.
    now: i64,
    cfg_path: PathBuf,
    _broker: TestBroker,
    dir: tempfile::TempDir,
}

impl Topics {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = TestBroker::start(&dir.path().join("broker"));
        let cfg_path = dir.path().join("cluster.toml");
        std::fs::write(&cfg_path, format!("[kafka]\nbrokers = \"{}\"\n", broker.brokers())).unwrap();
        let kafka = streetscope_contracts::cluster::ClusterConfig::from_toml_str(
            &std::fs::read_to_string(&cfg_path).unwrap(),
            "t",
            None,
        )
        .unwrap()
        .kafka;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let producer = Producer::new(&kafka, Role::RecordProducer).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        rt.block_on(ensure_topics(&kafka)).unwrap();
        Self { producer, rt, kafka, now, cfg_path, _broker: broker, dir }
    }

    /// Produces `value` (None: a tombstone) and waits until it is durable.
    fn send(&self, topic: &str, key: &str, value: Option<&[u8]>) {
        self.rt.block_on(self.producer.send_durable(topic, key, value, &[])).unwrap();
    }

    /// `streetscope dashboard` on these topics, with a read token: the
    /// process, its address once it has logged its first line, and the lines
    /// it logs.
    fn dashboard(&self) -> (Proc, String, Receiver<String>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let tokens = self.dir.path().join("tokens");
        std::fs::write(&tokens, format!("{TOKEN} read\n")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_streetscope"))
            .args(["dashboard", "--cluster"])
            .arg(&self.cfg_path)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--tokens-file"])
            .arg(&tokens)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let dashboard = Proc(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let _ = rx.recv_timeout(Duration::from_secs(30)).expect("the dashboard starts");
        (dashboard, format!("http://127.0.0.1:{port}"), rx)
    }
}

/// The registry's camera `cam-ne` with its counting line `stop`.
fn camera_ne() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "cam-ne", "intersection": "main-and-5th", "source": "rtsp://cam.invalid/ne", "sample_fps": 10,
        "lines": [{ "name": "stop", "start": [0.1, 0.5], "end": [0.9, 0.5], "forward": "northbound", "backward": "southbound" }],
        "enabled": true
    }))
    .unwrap()
}

fn crossing(track: u64, dir: Direction, t: i64) -> Vec<u8> {
    serde_json::to_vec(&ResultRecord::Crossing(CrossingEvent {
        schema_version: SCHEMA_VERSION,
        intersection_id: "main-and-5th".into(),
        camera_id: "cam-ne".into(),
        line: "stop".into(),
        direction: dir,
        direction_label: if dir == Direction::Forward { "northbound" } else { "southbound" }.into(),
        class_name: "car".into(),
        track_id: track,
        frame_seq: track * 10,
        stream_time_s: 0.0,
        capture_time_ms: t,
        speed_kmh: None,
    }))
    .unwrap()
}

fn get(url: &str, token: Option<&str>) -> Result<Value, u16> {
    let agent = ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build());
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().map_err(|_| 0u16)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    Ok(serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap())
}

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> Option<Value>) -> Value {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_dashboard_reads_the_day_so_far_then_follows_live() {
    let topics = Topics::start();
    let (t, now) = (&topics.kafka.topics, topics.now);
    let gone =
        serde_json::json!({ "id": "cam-gone", "intersection": "main-and-5th", "source": "rtsp://cam.invalid/x" });
    topics.send(&t.cameras.name, "cam-ne", Some(&camera_ne()));
    topics.send(&t.cameras.name, "cam-gone", Some(&serde_json::to_vec(&gone).unwrap()));
    topics.send(&t.cameras.name, "cam-gone", None);
    // Before the dashboard starts: three crossings, one of them delivered twice.
    for (track, dir) in
        [(1, Direction::Forward), (2, Direction::Forward), (3, Direction::Backward), (1, Direction::Forward)]
    {
        topics.send(&t.events.name, "main-and-5th", Some(&crossing(track, dir, now - 60_000)));
    }
    topics.send(&t.events.name, "main-and-5th", Some(b"{not a record"));

    let (_proc, base, _log) = topics.dashboard();

    // Tokens: none, or a wrong one, is refused; health is open.
    assert_eq!(get(&format!("{base}/api/page"), None).unwrap_err(), 401);
    assert_eq!(get(&format!("{base}/api/page"), Some("wrong-token-0123456789")).unwrap_err(), 401);
    let page = |p: &str| get(&format!("{base}/api/page?{p}"), Some(TOKEN)).ok();

    let v = until("the day so far", Duration::from_secs(30), || {
        page("page=intersection&id=main-and-5th").filter(|v| v["total"] == 3)
    });
    let counts: Vec<(String, u64)> = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["direction_label"].as_str().unwrap().to_owned(), c["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [("northbound".to_owned(), 2), ("southbound".to_owned(), 1)]);
    // The cameras topic is read beside the events (its partitions in any order):
    // wait for its end state, in which the tombstoned camera must be gone (with
    // tombstones ignored, it stays listed and this times out).
    let cams = |o: &serde_json::Value| -> Vec<String> {
        o["intersections"][0]["cameras"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let o = until("the tombstoned camera gone, cam-ne listed", Duration::from_secs(30), || {
        page("page=overview").filter(|o| cams(o) == ["cam-ne"])
    });
    assert_eq!(o["replayed"], 1, "{o}");
    assert_eq!(page("page=camera&id=cam-ne").unwrap()["camera"]["lines"][0], "stop");

    // Live: a crossing produced now shows within a few seconds.
    let sent = Instant::now();
    topics.send(&t.events.name, "main-and-5th", Some(&crossing(4, Direction::Backward, now)));
    until("the live crossing", Duration::from_secs(10), || {
        page("page=intersection&id=main-and-5th").filter(|v| v["total"] == 4)
    });
    eprintln!("a crossing produced to Kafka showed on the dashboard's page after {:?}", sent.elapsed());
    assert!(sent.elapsed() < Duration::from_secs(5));
}

/// The camera snapshot a detector writes and its overlay from the aggregator:
/// a 1280x720 picture letterboxed into 640x640, two cars, the first on track 2.
fn snapshot_messages(seq: u64, t: i64) -> (Vec<u8>, Vec<u8>) {
    use streetscope_contracts::snapshots::{
        encode_message, encode_overlay, SnapshotMeta, SnapshotObject, SnapshotOverlay,
    };
    use streetscope_contracts::{BBox, Letterbox};
    let lb = Letterbox::fit(1280, 720, 640, 640);
    let mut img = image::RgbImage::new(640, 640);
    for y in lb.pad_y..lb.pad_y + lb.scaled_h {
        for x in 0..640 {
            img.put_pixel(x, y, image::Rgb([60, 70, 80]));
        }
    }
    let jpeg = streetscope_dashboard::snapshot::encode(&img).unwrap();
    let car = |x: f32, track: Option<u64>| SnapshotObject {
        bbox: BBox::new(x, 400.0, x + 200.0, 600.0),
        class_name: "car".into(),
        score: 0.8,
        track_id: track,
    };
    let meta = SnapshotMeta {
        schema_version: SCHEMA_VERSION,
        camera_id: "cam-ne".into(),
        intersection_id: "main-and-5th".into(),
        frame_seq: seq,
        capture_time_ms: t,
        width: 1280,
        height: 720,
        letterbox: Some(lb),
        objects: vec![car(100.0, None), car(900.0, None)],
    };
    let overlay = SnapshotOverlay {
        schema_version: SCHEMA_VERSION,
        camera_id: "cam-ne".into(),
        frame_seq: seq,
        capture_time_ms: t,
        objects: vec![car(100.0, Some(2)), car(900.0, None)],
    };
    (encode_message(&meta, &jpeg), encode_overlay(&overlay))
}

/// `streetscope dashboard` on the test broker in a real browser (Debian's
/// chromium, playwright-core; tests/dashboard/kafka.test.mjs): the records,
/// camera and snapshot on the topics show on the pages, a crossing produced
/// while a page is open shows within 5 s, the snapshot has the line and the
/// aggregator's track ids. Installs the browser once if missing
/// (scripts/install-browser-test.sh, as scripts/test-dashboard.sh).
#[test]
fn the_kafka_dashboard_in_a_browser() {
    let started = Instant::now();
    // At run time, as the test runner gives it (the build cache is shared between checkouts).
    let repo =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
            .join("../..");
    let install = Command::new("bash").arg("scripts/install-browser-test.sh").current_dir(&repo).output().unwrap();
    assert!(install.status.success(), "installing the browser: {}", String::from_utf8_lossy(&install.stderr));
    let node_path = String::from_utf8(install.stdout).unwrap().lines().last().unwrap().to_owned();

    let topics = Topics::start();
    let (t, now) = (&topics.kafka.topics, topics.now);
    let line = serde_json::json!({ "x1": 0.1, "y1": 0.5, "x2": 0.9, "y2": 0.5 });
    let (picture, overlay) = snapshot_messages(500, now - 1_000);
    topics.send(&t.cameras.name, "cam-ne", Some(&camera_ne()));
    for (track, dir) in [(1, Direction::Forward), (2, Direction::Forward), (3, Direction::Backward)] {
        topics.send(&t.events.name, "main-and-5th", Some(&crossing(track, dir, now - 60_000)));
    }
    // The overlay before its picture: the dashboard joins them either way.
    topics.send(&t.camera_snapshots.name, "cam-ne", Some(&overlay));
    topics.send(&t.camera_snapshots.name, "cam-ne", Some(&picture));
    let expected = serde_json::json!({
        "intersection": "main-and-5th",
        "camera": "cam-ne",
        "total": 3,
        "counts": { "cam-ne|stop|northbound|car": 2, "cam-ne|stop|southbound|car": 1 },
        "snapshot_seq": 500,
        "snapshot_size": [640, 360],
        "track_ids": [2],
        "line": line,
    });
    let expected_path = topics.dir.path().join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).unwrap();

    let (_dashboard, base, rx) = topics.dashboard();

    let mut node = Command::new("timeout")
        .args(["60", "node", "tests/dashboard/kafka.test.mjs", &base, TOKEN])
        .arg(&expected_path)
        .args(std::env::var("SCREENSHOTS_DIR").ok())
        .current_dir(&repo)
        .env("NODE_PATH", &node_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = node.stdout.take().unwrap();
    let err = node.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let mut node = Proc(node);
    let mut ready = false;
    for l in BufReader::new(out).lines().map_while(Result::ok) {
        if l.trim() == "READY" && !ready {
            ready = true;
            topics.send(&t.events.name, "main-and-5th", Some(&crossing(4, Direction::Backward, now)));
        }
    }
    let status = node.0.wait().unwrap();
    let err = err.join().unwrap();
    let dashboard_log: Vec<String> = rx.try_iter().collect();
    assert!(
        status.success() && ready,
        "the browser test failed ({status}):\n{err}\ndashboard log:\n{}",
        dashboard_log.join("\n")
    );
    eprintln!(
        "{err}the Kafka dashboard in a browser: passed in {:.1} s (browser install check included)",
        started.elapsed().as_secs_f64()
    );
}
