//! `streetscope run` stopped as `docker stop`, systemd or `timeout` stop it:
//! SIGTERM in the middle of a live camera. Every crossing printed is in the
//! results file, the summary is written, and the process exits 0 in time.

mod common;
use common::rtsp_server_bin;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_streetscope");

fn clip(name: &str) -> PathBuf {
    let p = common::manifest_dir().join(format!("../../test-videos/out/{name}.mp4"));
    assert!(p.exists(), "{} is missing: scripts/setup.sh generates the clips", p.display());
    p
}

#[test]
fn sigterm_mid_run_keeps_every_record_and_writes_the_summary() {
    sigterm_mid_run(&[]);
}

/// With the dashboard on, SIGTERM still ends the process once the summary is
/// written: the page stays up after a run only when the run ended by itself.
#[test]
fn sigterm_mid_run_with_the_dashboard_exits_once_the_summary_is_written() {
    sigterm_mid_run(&["--ui", "127.0.0.1:0"]);
}

fn sigterm_mid_run(extra: &[&str]) {
    // The one_bus clip served as a live camera: each connection plays it again.
    let mut server = Command::new(rtsp_server_bin())
        .args(["--port", "0", "--file", clip("one_bus").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.jsonl");
    let mut run = Command::new(BIN)
        .args(["run", url.trim(), "--sample-fps", "5", "-o", out.to_str().unwrap()])
        .args(["--line", "left_line=0.35,0.98,0.35,0.15:eastbound/westbound"])
        .args(["--line", "right_line=0.65,0.98,0.65,0.15:eastbound/westbound"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Crossings as printed, while the run goes on.
    let stdout = run.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let printed = |line: &str| line.contains(" track ") && !line.trim_start().starts_with("turn");
    let started = Instant::now();
    let mut crossings = 0;
    while crossings < 3 {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("crossings of the live camera");
        crossings += usize::from(printed(&line));
    }
    // Half a play further: a vehicle may be between the lines when the stop comes.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap().success());
    let asked = Instant::now();
    while run.try_wait().unwrap().is_none() {
        assert!(asked.elapsed() < Duration::from_secs(30), "streetscope run did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = run.wait().unwrap();
    let lines = reader.join().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(status.success(), "exit status {status:?} after SIGTERM:\n{}", lines.join("\n"));
    eprintln!(
        "stopped {:.1} s after SIGTERM, {:.1} s into the run",
        asked.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let records: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let in_file = records.iter().filter(|r| r["record"] == "crossing").count();
    let on_console = lines.iter().filter(|l| printed(l)).count();
    assert_eq!(in_file, on_console, "every crossing printed is in the file");
    let summary = records.last().expect("records");
    assert_eq!(summary["record"], "summary", "the summary is the last record");
    let counted: u64 = summary["counts"].as_array().unwrap().iter().map(|c| c["count"].as_u64().unwrap()).sum();
    assert_eq!(counted as usize, in_file, "the summary counts what was published: {summary}");
    assert!(summary["frames"].as_u64().unwrap() > 0);
}
