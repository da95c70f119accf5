//! End to end: the real binary, the real model, real GStreamer, generated clips.
//!
//! Needs what `scripts/setup.sh` fetches and generates (the model, bus.jpg, the
//! clips in `test-videos/out/`); a missing piece fails with a message that says so.

mod common;
use common::{repo, rtsp_server_bin, streetscope};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use streetscope_testclips::{builtin_clips, GroundTruth};

const BIN: &str = env!("CARGO_BIN_EXE_streetscope");

fn cache() -> PathBuf {
    std::env::var_os("STREETSCOPE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/streetscope"))
}

fn need(path: &Path) -> &Path {
    assert!(path.exists(), "{} is missing: run scripts/setup.sh first", path.display());
    path
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn detect_finds_the_bus_on_bus_jpg() {
    let bus = cache().join("assets/bus.jpg");
    let out_dir = tempfile::tempdir().unwrap();
    let saved = out_dir.path().join("bus-annotated.jpg");
    let out = streetscope(
        &["detect", need(&bus).to_str().unwrap(), "--json", "--save", saved.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let dets = line["detections"].as_array().unwrap();
    let bus_det = dets.iter().find(|d| d["class_name"] == "bus").expect("a bus is found");
    let b = &bus_det["bbox"];
    let found =
        [b["x1"].as_f64().unwrap(), b["y1"].as_f64().unwrap(), b["x2"].as_f64().unwrap(), b["y2"].as_f64().unwrap()];
    // Measured by hand on bus.jpg (810x1080): the bus from its left edge to the
    // right side of the picture, from the roof to the bottom of the wheels.
    let by_hand = [10.0, 228.0, 805.0, 735.0];
    assert!(iou(found, by_hand) > 0.5, "box {found:?} vs {by_hand:?}: IoU {}", iou(found, by_hand));
    assert!(bus_det["score"].as_f64().unwrap() > 0.3);
    let img = image::open(&saved).expect("the annotated image is written");
    assert_eq!((img.width(), img.height()), (810, 1080));

    // The text form prints class, score, box and the count.
    let out = streetscope(&["detect", bus.to_str().unwrap()], Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 object") && text.contains("bus"), "{text}");
}

/// `detect --config`: a pool's `[detector]` (model, providers, thresholds) as
/// its detector pods run it, flags over it. The TensorRT warm-up Job builds its
/// engine this way.
#[test]
fn detect_takes_the_detector_settings_of_a_cluster_configuration() {
    let bus = cache().join("assets/bus.jpg");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cluster.toml");
    let model = cache().join("models/yolo11n_det_u8_batch.onnx");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n\n[detector]\nmodel = \"{}\"\nproviders = [\"cpu\"]\nconfidence = 0.99\n",
            need(&model).display()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["detect", "--config", cfg.to_str().unwrap(), need(&bus).to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = streetscope(&args, Duration::from_secs(60));
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        (stdout.into_owned(), stderr.into_owned())
    };
    let (stdout, stderr) = run(&[]);
    assert!(stderr.contains("yolo11n_det_u8_batch.onnx") && stderr.contains("model loaded on cpu"), "{stderr}");
    assert!(stdout.contains("0 objects"), "confidence 0.99 from the file: {stdout}");
    let (stdout, _) = run(&["--conf", "0.25"]);
    assert!(stdout.contains("1 object") && stdout.contains("bus"), "--conf over the file: {stdout}");
}

/// `bench detect`, the detector's benchmark, on a few frames: it runs, every
/// frame comes out of the stage, and its table says where the stage's cycle
/// goes (a benchmark nobody runs rots; its numbers are not checked here).
#[test]
fn bench_detect_measures_the_stage_against_the_bare_run() {
    for extra in [&[][..], &["--raw"][..]] {
        let mut args = vec!["bench", "detect", "--frames", "4", "--repeat", "1", "--no-python"];
        args.extend_from_slice(extra);
        let out = streetscope(&args, Duration::from_secs(180));
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "bench detect {extra:?} failed:\n{stderr}");
        for row in [
            "bare ONNX Runtime run",
            "ratio stage / best bare run",
            "stage: model running + output decoding (ms/frame)",
            "stage: no run of the model running (ms/frame)",
            "latency p50",
        ] {
            let line = stdout.lines().find(|l| l.contains(row)).unwrap_or_else(|| panic!("no {row:?} row:\n{stdout}"));
            let value: f64 = line
                .split('┆')
                .nth(1)
                .and_then(|v| v.trim_matches(|c: char| c == '│' || c.is_whitespace()).parse().ok())
                .unwrap_or_else(|| panic!("no number in {line:?}"));
            assert!(value.is_finite() && value >= 0.0, "{row}: {value}");
        }
        let input = if extra.is_empty() { "JPEG in" } else { "RGB in" };
        assert!(stdout.contains(input), "the table names its input ({input}):\n{stdout}");
    }
}

#[test]
fn detect_runs_on_a_video_frame_by_frame() {
    let clip = repo().join("test-videos/out/one_bus.mp4");
    let out = streetscope(&["detect", need(&clip).to_str().unwrap(), "--fps", "2", "--json"], Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 12, "6 s sampled at 2 frames/s");
    assert_eq!(lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect::<Vec<_>>(), (0..12).collect::<Vec<_>>());
    // The bus is wholly in view from about 1.9 s to 3.4 s (ground truth): found there.
    for l in lines.iter().filter(|l| (2.0..=3.0).contains(&l["time_s"].as_f64().unwrap())) {
        let found = l["detections"].as_array().unwrap().iter().any(|d| d["class_name"] == "bus");
        assert!(found, "no bus at {}", l["time_s"]);
    }
    assert_eq!(lines[0]["width"], 960);
}

/// Runs the pipeline on a clip with its ground-truth lines; returns the records.
fn run_clip(truth: &GroundTruth, config: Option<&Path>) -> Vec<Value> {
    run_clip_at(truth, config, 10.0)
}

/// [`run_clip`] with the camera sampled at `fps` frames/s.
fn run_clip_at(truth: &GroundTruth, config: Option<&Path>, fps: f64) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.jsonl");
    let cfg_path = dir.path().join("clip.toml");
    let cfg_path = match config {
        Some(p) => p.to_path_buf(),
        None => {
            let clip = need(&repo().join(format!("test-videos/out/{}.mp4", truth.clip))).to_path_buf();
            let mut cfg = format!(
                "[[cameras]]\nid = \"cam-{0}\"\nintersection = \"x-{0}\"\nsource = {1:?}\nsample_fps = {2:?}\n",
                truth.clip,
                clip.display().to_string(),
                fps
            );
            for l in &truth.lines {
                cfg += &format!(
                    "[[cameras.lines]]\nname = {:?}\nstart = {:?}\nend = {:?}\nforward = {:?}\nbackward = {:?}\n",
                    l.name, l.start, l.end, l.forward, l.backward
                );
            }
            std::fs::write(&cfg_path, cfg).unwrap();
            cfg_path
        }
    };
    let res = streetscope(
        &["run", "--config", cfg_path.to_str().unwrap(), "--output", out.to_str().unwrap()],
        Duration::from_secs(300),
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "run failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(stdout.contains("Counts") && stdout.contains("Frames/s"), "the summary table is printed:\n{stdout}");
    std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn check_against_truth(truth: &GroundTruth, records: &[Value]) {
    check_against_truth_at(truth, records, 10.0)
}

/// [`check_against_truth`] for a camera sampled at `fps` frames/s; besides,
/// every record of one track carries one class.
fn check_against_truth_at(truth: &GroundTruth, records: &[Value], fps: f64) {
    let mut classes: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for r in records.iter().filter(|r| r["record"] == "crossing" || r["record"] == "turning_movement") {
        classes.entry(r["track_id"].as_u64().unwrap()).or_default().push(r["class_name"].as_str().unwrap());
    }
    for (track, cs) in &classes {
        assert!(cs.iter().all(|c| c == &cs[0]), "clip {}: track {track} has classes {cs:?}", truth.clip);
    }
    let summary: Vec<&Value> = records.iter().filter(|r| r["record"] == "summary").collect();
    let crossings: Vec<&Value> = records.iter().filter(|r| r["record"] == "crossing").collect();
    assert_eq!(summary.len(), 1, "one summary, last");
    assert_eq!(records.last().unwrap()["record"], "summary");
    let key = |line: &str, dir: &str, class: &str| (line.to_owned(), dir.to_owned(), class.to_owned());
    let expected: BTreeMap<_, u64> = truth
        .counts
        .iter()
        .map(|c| {
            let dir = serde_json::to_value(c.direction).unwrap();
            (key(&c.line, dir.as_str().unwrap(), &c.class_name), u64::from(c.count))
        })
        .collect();
    let counted: BTreeMap<_, u64> = summary[0]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_owned();
            (key(&s("line"), &s("direction"), &s("class_name")), c["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(counted, expected, "clip {}: counts differ from the ground truth", truth.clip);
    assert_eq!(crossings.len(), truth.crossings.len());

    // Each reported crossing matches a true one of the same line and direction,
    // within the sampling interval and half an interval of the dead band.
    for c in &truth.crossings {
        let dir = serde_json::to_value(c.direction).unwrap();
        let near = crossings.iter().any(|r| {
            r["line"] == c.line.as_str()
                && r["direction"] == dir
                && (r["stream_time_s"].as_f64().unwrap() - c.time_s).abs() <= 1.5 / fps + 1e-9
        });
        assert!(near, "clip {}: no reported crossing near {c:?}", truth.clip);
    }
}

fn truth_of(name: &str) -> GroundTruth {
    let path = repo().join(format!("test-videos/{name}.truth.json"));
    GroundTruth::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_clip_counts_exactly_its_ground_truth() {
    for spec in builtin_clips() {
        let truth = truth_of(&spec.name);
        let records = run_clip(&truth, None);
        check_against_truth(&truth, &records);
    }
}

#[test]
fn the_demo_config_counts_the_two_way_clip_exactly() {
    let truth = truth_of("two_way");
    let records = run_clip(&truth, Some(&repo().join("pipelines/demo.toml")));
    check_against_truth(&truth, &records);
    let summary = records.last().unwrap();
    assert_eq!(summary["frames"], 210, "21 s sampled at 10 fps");
    assert_eq!(summary["frames_dropped"], 0, "a file source is never dropped from");
    let stages: Vec<&str> =
        summary["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["ingest", "detect", "aggregate"]);
    // Turning movements by the demo's approaches: 3 buses west -> east, 2 east -> west.
    let turns: BTreeMap<(String, String), u64> = summary["turning_movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (t["from"].as_str().unwrap().to_owned(), t["to"].as_str().unwrap().to_owned()),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(turns, BTreeMap::from([(("east".into(), "west".into()), 2), (("west".into(), "east".into()), 3)]));
    assert_eq!(records.iter().filter(|r| r["record"] == "turning_movement").count(), 5);
    // Every crossing lands in exactly one window of each length.
    for len in [60, 300] {
        let in_windows: u64 = records
            .iter()
            .filter(|r| r["record"] == "window" && r["length_s"] == len)
            .flat_map(|w| w["counts"].as_array().unwrap().iter().map(|c| c["count"].as_u64().unwrap()))
            .sum();
        assert_eq!(in_windows, 10, "windows of {len} s");
    }
}

/// The design's usual camera rate and below: a vehicle moves two to four times
/// as far between frames as at 10 frames/s, and a track lost at the image edge
/// is still held when the next vehicle enters there.
#[test]
fn every_clip_counts_exactly_its_ground_truth_at_5_fps_and_lower() {
    for fps in [5.0, 2.5] {
        for spec in builtin_clips() {
            let truth = truth_of(&spec.name);
            let records = run_clip_at(&truth, None, fps);
            check_against_truth_at(&truth, &records, fps);
        }
    }
}

/// The demo's configuration with its camera at 5 and 2.5 frames/s: the turning
/// movements are the truth's (at 5 frames/s a lost track once took over the bus
/// entering where it had left, giving east -> west 1 and west -> east 3).
#[test]
fn the_demo_config_at_5_fps_and_lower_gives_the_true_turning_movements() {
    let truth = truth_of("two_way");
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.toml")).unwrap();
    let clip = need(&repo().join("test-videos/out/two_way.mp4")).display().to_string();
    for fps in [5.0, 2.5] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = demo
            .replace("sample_fps = 10", &format!("sample_fps = {fps:?}"))
            .replace("\"../test-videos/out/two_way.mp4\"", &format!("{clip:?}"));
        assert!(cfg.contains(&format!("sample_fps = {fps:?}")) && cfg.contains(&clip), "the demo config changed shape");
        let path = dir.path().join("demo.toml");
        std::fs::write(&path, cfg).unwrap();
        let records = run_clip_at(&truth, Some(&path), fps);
        check_against_truth_at(&truth, &records, fps);
        let turns: BTreeMap<(String, String), u64> = records.last().unwrap()["turning_movements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap().to_owned();
                ((s("from"), s("to")), t["count"].as_u64().unwrap())
            })
            .collect();
        let want = BTreeMap::from([(("east".into(), "west".into()), 2), (("west".into(), "east".into()), 3)]);
        assert_eq!(turns, want, "at {fps} fps");
    }
}

#[test]
fn a_corrupt_input_file_is_a_clear_error_and_a_failed_exit() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("corrupt.mp4");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&bad, bytes).unwrap();
    let out_file = dir.path().join("out.jsonl");
    let res = streetscope(
        &["run", bad.to_str().unwrap(), "--line", "a=0.5,0,0.5,1", "-o", out_file.to_str().unwrap()],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("camera camera-1: source") && stderr.contains("corrupt.mp4"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The run still ends with its summary record.
    let last = std::fs::read_to_string(&out_file).unwrap();
    assert!(last.lines().last().unwrap().contains("\"record\":\"summary\""));
}

#[test]
fn a_bad_config_names_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[cameras]]\nid = \"c\"\nintersection = \"i\"\nsource = \"x.mp4\"\nsample_fps = -3\n\
         [[cameras.lines]]\nname = \"l\"\nstart = [0.1, 1.5]\nend = [0.2, 0.2]\n",
    )
    .unwrap();
    let res = streetscope(&["run", "--config", cfg.to_str().unwrap()], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(stderr.contains("cameras[0].sample_fps = -3"), "{stderr}");
    assert!(stderr.contains("cameras[0].lines[0].start = [0.1, 1.5]"), "{stderr}");

    let res = streetscope(&["run", "clip.mp4", "--line", "oops=1,2"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success() && stderr.contains("--line \"oops=1,2\""), "{stderr}");
}

/// A pipeline config's relative paths (the clip, the model, the results file)
/// are taken from the config's folder, whatever the working directory: the
/// run is started in `/` (crates/contracts/src/paths.rs).
#[test]
fn a_configs_relative_paths_are_taken_from_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("out")).unwrap();
    let clip = repo().join("test-videos/out/one_bus.mp4");
    std::os::unix::fs::symlink(need(&clip), site.join("clip.mp4")).unwrap();
    let model = cache().join("models/yolo11n_det_u8.onnx");
    std::os::unix::fs::symlink(need(&model), site.join("model.onnx")).unwrap();
    let cfg = site.join("city.toml");
    std::fs::write(
        &cfg,
        "[[cameras]]\nid = \"cam\"\nintersection = \"x\"\nsource = \"clip.mp4\"\nsample_fps = 5\n\
         [detector]\nmodel = \"model.onnx\"\n[output]\npath = \"out/results.jsonl\"\n",
    )
    .unwrap();
    let res = Command::new("timeout")
        .args(["120", BIN, "run", "--config", cfg.to_str().unwrap()])
        .current_dir("/")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("model {}", site.join("model.onnx").display())), "{stderr}");
    let results = std::fs::read_to_string(site.join("out/results.jsonl")).expect("results beside the config");
    assert!(results.lines().last().unwrap().contains("\"record\":\"summary\""), "{results}");
}

#[test]
fn a_missing_onnx_runtime_names_the_path_and_the_variable() {
    let bus = cache().join("assets/bus.jpg");
    let out = Command::new(BIN)
        .args(["detect", need(&bus).to_str().unwrap()])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent/libonnxruntime.so") && stderr.contains("ORT_DYLIB_PATH"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A plain HTTP/1.0 GET on loopback; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

#[test]
fn a_live_camera_faster_than_the_detector_drops_its_oldest_frames_and_stops_cleanly() {
    use std::io::BufRead;
    // 100 frames/s, all sampled: about three times what the default detector
    // (OpenVINO, then det_fp16) runs on this machine's two cores when nothing else
    // does (33 frames/s). At 25 the premise failed on a quiet machine: no frame
    // had to be dropped.
    let mut server = Command::new(rtsp_server_bin())
        .args(["--port", "0", "--codec", "h264", "--size", "640x360", "--fps", "100"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.jsonl");
    let mut run = Command::new(BIN)
        .args(["run", url.trim(), "--line", "a=0.5,0,0.5,1", "--sample-fps", "100", "-o", out.to_str().unwrap()])
        .args(["--status-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The status endpoint's address is on stderr; keep draining stderr after it.
    let stderr = run.stderr.take().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stderr_text = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("status: http://") {
                let _ = addr_tx.send(rest.split('/').next().unwrap().to_owned());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("the status endpoint's address");
    std::thread::sleep(Duration::from_secs(6));
    let status: Value = serde_json::from_str(&http_get(&addr, "/status")).unwrap();
    assert_eq!(status["cameras"][0]["camera_id"], "camera-1");
    assert_eq!(status["cameras"][0]["state"], "streaming", "{status}");
    assert!(status["cameras"][0]["frames"].as_u64().unwrap() > 0);
    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.contains("streetscope_camera_state{camera=\"camera-1\",state=\"streaming\"} 1"), "{metrics}");
    assert!(metrics.contains("streetscope_frames_dropped_total{camera=\"camera-1\",reason=\"backpressure\"}"));
    assert_eq!(http_get(&addr, "/healthz"), "ok\n");
    // Ctrl-C: finish the frames in flight, write the summary, exit 0.
    assert!(Command::new("kill").args(["-INT", &run.id().to_string()]).status().unwrap().success());
    let start = Instant::now();
    while run.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "streetscope run did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    }
    let res = run.wait_with_output().unwrap();
    let stderr = stderr_text.join().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "{stdout}\n{stderr}");
    let last = std::fs::read_to_string(&out).unwrap().lines().last().unwrap().to_owned();
    let summary: Value = serde_json::from_str(&last).unwrap();
    assert!(summary["frames"].as_u64().unwrap() > 10, "{summary}");
    assert!(summary["frames_dropped"].as_u64().unwrap() > 0, "100 frames/s is more than the detector takes: {summary}");
    assert!(stdout.contains("camera camera-1:") && stdout.contains("dropped (oldest first)"), "{stdout}");
}

#[test]
fn simulate_writes_detections_and_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (out, truth) = (dir.path().join("d.jsonl"), dir.path().join("t.json"));
    let res = streetscope(
        &[
            "simulate",
            "--minutes",
            "1",
            "--noise",
            "none",
            "--out",
            out.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let frames: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.len(), 600, "1 minute at 10 frames/s");
    assert_eq!(frames[599]["seq"], 599);
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert!(!truth["crossings"].as_array().unwrap().is_empty());
}

#[test]
fn schemas_in_docs_match_the_code() {
    let res = streetscope(&["schema", "--check"], Duration::from_secs(30));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
}

/// Frames of `clip` through ingest's own path (a template of the operator's
/// if `template`), at 5 frames/s, letterboxed to 640x640: raw RGB, or JPEG of
/// `quality`.
fn ingest_frames(clip: &Path, quality: Option<u8>, template: Option<PathBuf>) -> Vec<streetscope_contracts::Frame> {
    let cam = streetscope_ingest::CameraSource {
        camera_id: "cam".into(),
        intersection_id: "x".into(),
        source: clip.display().to_string(),
        sample_fps: 5.0,
        width: 640,
        height: 640,
        stall_timeout: Duration::from_secs(30),
        keyframes_only: false,
        jpeg_quality: quality,
        rtsp_transport: Default::default(),
        template,
    };
    let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let frames = frames.clone();
        move |f| {
            frames.lock().unwrap().push(f);
            true
        }
    };
    streetscope_ingest::run_camera(&cam, sink, &streetscope_ingest::StopHandle::default()).unwrap();
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    frames
}

/// Of two frames' detections, the IoUs of those that pair up (IoU ≥ 0.5, the
/// same class).
fn pair_up(a: &[streetscope_contracts::Detection], b: &[streetscope_contracts::Detection]) -> Vec<f32> {
    let mut taken = vec![false; b.len()];
    let mut ious = Vec::new();
    for d in a {
        let best = b
            .iter()
            .enumerate()
            .filter(|(j, e)| !taken[*j] && e.class_id == d.class_id)
            .map(|(j, e)| (j, d.bbox.iou(&e.bbox)))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((j, v)) = best.filter(|(_, v)| *v >= 0.5) {
            taken[j] = true;
            ious.push(v);
        }
    }
    ious
}

/// The ingest pods' JPEG frames (the letterbox's picture alone, in JPEG's
/// colours) show the detector what `streetscope run`'s raw RGB frames show
/// it: the same detections, up to JPEG's loss. Before the picture was put in
/// JPEG's colours, the camera's limited range was read as full range (black
/// at 16, white at 235): an operator's template that letterboxes with
/// `videoconvertscale` and calls `jpegenc` itself still does that, and is
/// measured here beside it.
#[test]
fn jpeg_frames_show_the_detector_what_rgb_frames_show_it() {
    use streetscope_detect::{Detector, DetectorOptions};
    let clip = repo().join("test-videos/out/two_way.mp4");
    let model = cache().join("models/yolo11n_det_u8.onnx");
    let mut det = Detector::load(need(&model), DetectorOptions::default()).unwrap();
    let rgb = ingest_frames(need(&clip), None, None);
    let dir = tempfile::tempdir().unwrap();
    let limited = dir.path().join("limited-range.pipeline");
    std::fs::write(
        &limited,
        "uridecodebin uri=\"{uri}\" caps=video/x-raw\n\
         ! videoconvertscale name=letterbox add-borders=true method=bilinear dither=none chroma-mode=none\n\
         ! video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1 ! jpegenc quality=85\n\
         ! appsink name=sink sync=false max-buffers=2\n",
    )
    .unwrap();
    let mut agreement = BTreeMap::new();
    for (name, template) in [("jpeg", None), ("limited-range jpeg", Some(limited))] {
        let frames = ingest_frames(&clip, Some(85), template);
        assert_eq!(frames.len(), rgb.len(), "{name}");
        let (mut total, mut ious) = (0, Vec::new());
        for (r, j) in rgb.iter().zip(&frames) {
            assert_eq!((r.seq, r.letterbox), (j.seq, j.letterbox));
            let a = det.detect_frame(r).unwrap().detections;
            let b = det.detect_frame(j).unwrap().detections;
            ious.extend(pair_up(&a, &b));
            total += a.len().max(b.len());
        }
        let paired = ious.len();
        let share = paired as f64 / total.max(1) as f64;
        let mean_iou = ious.iter().map(|&v| f64::from(v)).sum::<f64>() / ious.len().max(1) as f64;
        let kb = frames.iter().map(|f| f.payload.len()).sum::<usize>() as f64 / frames.len() as f64 / 1000.0;
        eprintln!(
            "{name} ({kb:.1} kB a frame): {paired} of {total} detections paired with RGB's ({share:.3}), \
             mean IoU {mean_iou:.3}"
        );
        agreement.insert(name, share);
    }
    // Here (2026-12-06, OpenVINO, det_u8, two_way): 96 of 101 (0.950) against
    // limited range's 95 of 109 (0.872).
    assert!(agreement["jpeg"] >= 0.92 && agreement["jpeg"] > agreement["limited-range jpeg"], "{agreement:?}");
}
