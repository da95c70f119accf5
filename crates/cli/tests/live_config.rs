//! End to end: `streetscope run` follows its config file while it runs — cameras
//! added, removed and refused (an invalid edit) — with the real model, real
//! GStreamer, a real RTSP server on 127.0.0.1 and the generated clips.
//!
//! Needs what `scripts/setup.sh` fetches and generates (the model, the clips in
//! `test-videos/out/`); a missing piece fails with a message that says so.

mod common;
use common::rtsp_server_bin;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use streetscope_testclips::GroundTruth;

const BIN: &str = env!("CARGO_BIN_EXE_streetscope");

fn repo() -> PathBuf {
    common::manifest_dir().join("../..").canonicalize().unwrap()
}

fn need(path: &Path) -> &Path {
    assert!(path.exists(), "{} is missing: run scripts/setup.sh first", path.display());
    path
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.0 GET on loopback; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// Cameras in `/status`: id → (state, frames, reconnects).
fn cameras(addr: &str) -> BTreeMap<String, (String, u64, u64)> {
    let status: Value = serde_json::from_str(&http_get(addr, "/status")).unwrap();
    status["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["camera_id"].as_str().unwrap().to_owned(),
                (
                    c["state"].as_str().unwrap().to_owned(),
                    c["frames"].as_u64().unwrap(),
                    c["reconnects"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Polls `cond` every 200 ms for up to `limit`; panics with `what` if it never holds.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cond(), "timed out after {limit:?} waiting for: {what}");
}

fn truth_of(name: &str) -> GroundTruth {
    let path = repo().join(format!("test-videos/{name}.truth.json"));
    GroundTruth::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A `[[cameras]]` entry for a clip with its ground-truth lines.
fn clip_camera(id: &str, truth: &GroundTruth) -> String {
    let clip = need(&repo().join(format!("test-videos/out/{}.mp4", truth.clip))).display().to_string();
    let mut s = format!("[[cameras]]\nid = {id:?}\nintersection = \"x-clips\"\nsource = {clip:?}\nsample_fps = 10\n");
    for l in &truth.lines {
        s += &format!(
            "[[cameras.lines]]\nname = {:?}\nstart = {:?}\nend = {:?}\nforward = {:?}\nbackward = {:?}\n",
            l.name, l.start, l.end, l.forward, l.backward
        );
    }
    s
}

/// Writes the config as an editor does: a new file renamed over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn cameras_are_added_removed_and_bad_edits_refused_while_streetscope_runs() {
    let t0 = Instant::now();
    let mut server = Command::new(rtsp_server_bin())
        .args(["--port", "0", "--codec", "h264", "--size", "320x240", "--fps", "15"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let _server = Killed(server);
    let live = format!(
        "[[cameras]]\nid = \"live-1\"\nintersection = \"x-live\"\nsource = {:?}\nsample_fps = 1\n\
         [[cameras.lines]]\nname = \"gate\"\nstart = [0.5, 1.0]\nend = [0.5, 0.0]\n",
        url.trim()
    );
    let one_bus = truth_of("one_bus");
    let two_way = truth_of("two_way");
    let detector = "[detector]\nclass_names = [\"bike\", \"bus\", \"car\", \"lorry\", \"tuktuk\", \"van\"]\n";

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cameras.toml");
    let out = dir.path().join("results.jsonl");
    save(&cfg, &format!("{live}{detector}"));
    let mut run = Command::new(BIN)
        .args(["run", "--config", cfg.to_str().unwrap(), "--output", out.to_str().unwrap()])
        .args(["--status-addr", "127.0.0.1:0"])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = {
        let pipe = run.stdout.take().unwrap();
        std::thread::spawn(move || std::io::read_to_string(pipe).unwrap())
    };
    let stderr = Arc::new(Mutex::new(String::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    {
        let (pipe, stderr) = (run.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("status: http://") {
                    let _ = addr_tx.send(rest.split('/').next().unwrap().to_owned());
                }
                let mut all = stderr.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
    }
    let mut run = Killed(run);
    let log = || stderr.lock().unwrap().clone();
    let addr =
        addr_rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| panic!("no status address:\n{}", log()));
    wait_for("live-1 streams", Duration::from_secs(60), || {
        cameras(&addr).get("live-1").is_some_and(|c| c.0 == "streaming" && c.1 > 0)
    });

    // Add a camera: a clip with its ground-truth lines.
    save(&cfg, &format!("{live}{}{detector}", clip_camera("bus-a", &one_bus)));
    wait_for("bus-a appears and delivers frames", Duration::from_secs(30), || {
        cameras(&addr).get("bus-a").is_some_and(|c| c.1 > 0)
    });

    // Add another, then remove it while it plays.
    save(&cfg, &format!("{live}{}{}{detector}", clip_camera("bus-a", &one_bus), clip_camera("bus-b", &two_way)));
    wait_for("bus-b appears and delivers frames", Duration::from_secs(30), || {
        cameras(&addr).get("bus-b").is_some_and(|c| c.1 > 0)
    });
    save(&cfg, &format!("{live}{}{detector}", clip_camera("bus-a", &one_bus)));
    wait_for("bus-b is gone", Duration::from_secs(15), || !cameras(&addr).contains_key("bus-b"));

    // An invalid edit: logged with the field and the value; the set runs on.
    save(
        &cfg,
        &format!("{}{}{detector}", live.replace("sample_fps = 1", "sample_fps = -2"), clip_camera("bus-a", &one_bus)),
    );
    wait_for("the invalid edit is reported", Duration::from_secs(15), || log().contains("cameras[0].sample_fps = -2"));
    assert!(log().contains("ignoring the edit"), "{}", log());
    let before = cameras(&addr);
    std::thread::sleep(Duration::from_secs(2));
    let after = cameras(&addr);
    assert_eq!(after.keys().collect::<Vec<_>>(), ["bus-a", "live-1"], "the last good set runs on");
    assert!(after["live-1"].1 > before["live-1"].1, "live-1 still streams: {after:?}");

    // bus-a plays to its end; then live-1 leaves and, with every camera done, the run ends.
    // The detector sets the pace (a file waits for it): on a busy CPU, several minutes.
    wait_for("bus-a plays to its end", Duration::from_secs(480), || cameras(&addr)["bus-a"].0 == "stopped");
    let live_status = cameras(&addr)["live-1"].clone();
    assert_eq!((live_status.0.as_str(), live_status.2), ("streaming", 0), "live-1 never restarted: {live_status:?}");
    save(&cfg, &format!("{}{detector}", clip_camera("bus-a", &one_bus)));
    let ended = Instant::now();
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(ended.elapsed() < Duration::from_secs(60), "the run did not end:\n{}", log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = stdout.join().unwrap();
    assert!(status.success(), "{stdout}\n{}", log());

    let records: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary = records.last().unwrap();
    assert_eq!(summary["record"], "summary");
    // bus-a, added while the run went on, counts exactly its ground truth.
    let counted: BTreeMap<(String, String, String), u64> = summary["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["camera_id"] == "bus-a")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_owned();
            ((s("line"), s("direction"), s("class_name")), c["count"].as_u64().unwrap())
        })
        .collect();
    let expected: BTreeMap<(String, String, String), u64> = one_bus
        .counts
        .iter()
        .map(|c| {
            let dir = serde_json::to_value(c.direction).unwrap().as_str().unwrap().to_owned();
            ((c.line.clone(), dir, c.class_name.clone()), u64::from(c.count))
        })
        .collect();
    assert_eq!(counted, expected, "bus-a against its ground truth");
    let crossings_a = records.iter().filter(|r| r["record"] == "crossing" && r["camera_id"] == "bus-a").count();
    assert_eq!(crossings_a, one_bus.crossings.len());
    eprintln!(
        "live config: {} records, bus-a {crossings_a} crossings, live-1 {} frames, {:.1} s",
        records.len(),
        live_status.1,
        t0.elapsed().as_secs_f64()
    );
}
