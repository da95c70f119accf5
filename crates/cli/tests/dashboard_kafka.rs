//! `streetscope dashboard` on a real Kafka-protocol broker (tansu on
//! 127.0.0.1): the records already on the result topics and the registry's
//! cameras show when it starts (the day so far), records produced afterwards
//! show live, a replayed crossing counts once, a camera's tombstone removes it,
//! and with tokens nothing is served without one.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
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
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(&dir.path().join("broker"));
    let cfg_path = dir.path().join("cluster.toml");
    std::fs::write(&cfg_path, format!("[kafka]\nbrokers = \"{}\"\n", broker.brokers())).unwrap();
    let cluster = streetscope_contracts::cluster::ClusterConfig::from_toml_str(
        &std::fs::read_to_string(&cfg_path).unwrap(),
        "t",
        None,
    )
    .unwrap();
    let kafka = cluster.kafka.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let producer = Producer::new(&kafka, Role::RecordProducer).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let camera = serde_json::json!({
        "id": "cam-ne", "intersection": "main-and-5th", "source": "rtsp://cam.invalid/ne", "sample_fps": 10,
        "lines": [{ "name": "stop", "start": [0.1, 0.5], "end": [0.9, 0.5], "forward": "northbound", "backward": "southbound" }],
        "enabled": true
    });
    let gone =
        serde_json::json!({ "id": "cam-gone", "intersection": "main-and-5th", "source": "rtsp://cam.invalid/x" });
    rt.block_on(async {
        ensure_topics(&kafka).await.unwrap();
        let t = &kafka.topics;
        producer
            .send_durable(&t.cameras.name, "cam-ne", Some(&serde_json::to_vec(&camera).unwrap()), &[])
            .await
            .unwrap();
        producer
            .send_durable(&t.cameras.name, "cam-gone", Some(&serde_json::to_vec(&gone).unwrap()), &[])
            .await
            .unwrap();
        producer.send_durable(&t.cameras.name, "cam-gone", None, &[]).await.unwrap();
        // Before the dashboard starts: three crossings, one of them delivered twice.
        for (track, dir) in
            [(1, Direction::Forward), (2, Direction::Forward), (3, Direction::Backward), (1, Direction::Forward)]
        {
            producer
                .send_durable(&t.events.name, "main-and-5th", Some(&crossing(track, dir, now - 60_000)), &[])
                .await
                .unwrap();
        }
        producer.send_durable(&t.events.name, "main-and-5th", Some(b"{not a record"), &[]).await.unwrap();
    });

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN} read\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streetscope"))
        .args(["dashboard", "--cluster"])
        .arg(&cfg_path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--tokens-file"])
        .arg(&tokens)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _proc = Proc(child);
    let lines = BufReader::new(stderr).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let _ = rx.recv_timeout(Duration::from_secs(30)).expect("the dashboard starts");

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
    let o = page("page=overview").unwrap();
    assert_eq!(o["replayed"], 1, "{o}");
    let cams: Vec<&str> =
        o["intersections"][0]["cameras"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(cams, ["cam-ne"], "the tombstoned camera is gone");
    assert_eq!(page("page=camera&id=cam-ne").unwrap()["camera"]["lines"][0], "stop");

    // Live: a crossing produced now shows within a few seconds.
    let sent = Instant::now();
    rt.block_on(async {
        producer
            .send_durable(&kafka.topics.events.name, "main-and-5th", Some(&crossing(4, Direction::Backward, now)), &[])
            .await
            .unwrap();
    });
    until("the live crossing", Duration::from_secs(10), || {
        page("page=intersection&id=main-and-5th").filter(|v| v["total"] == 4)
    });
    eprintln!("a crossing produced to Kafka showed on the dashboard's page after {:?}", sent.elapsed());
    assert!(sent.elapsed() < Duration::from_secs(5));
}
