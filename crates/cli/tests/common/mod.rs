//! Helpers shared by the binary's integration tests.

use std::path::PathBuf;
use std::process::Command;

/// The ingest crate's `rtsp_server` example (built by `cargo test`, or here).
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
