//! Helpers shared by the binary's integration tests.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The ingest crate's `rtsp_server` example (built by `cargo test`, or here).
#[allow(dead_code)]
pub fn rtsp_server_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let bin = profile_dir.join("examples/rtsp_server");
    if !bin.exists() {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "streetscope-ingest", "--example", "rtsp_server"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building the rtsp_server example");
    }
    bin
}

/// The repository's root.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn repo() -> PathBuf {
    manifest_dir().join("../..").canonicalize().unwrap()
}

/// Runs the binary in the repository's root with `args`, failing the test if
/// it takes longer than `limit`.
#[allow(dead_code)]
pub fn streetscope(args: &[&str], limit: Duration) -> Output {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streetscope"))
        .args(args)
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("streetscope {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// This package's folder as the test runner gives it at run time (cargo and
/// nextest set `CARGO_MANIFEST_DIR` for each test): a test binary built from
/// another checkout of the same commit (the build cache is shared) reads this
/// checkout's files, not the other's.
#[allow(dead_code)]
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()).into()
}
