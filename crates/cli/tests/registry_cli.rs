//! `streetscope registry --in-memory` and the `cameras` / `intersections`
//! clients, as real processes on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_streetscope");
const WRITE: &str = "cli-test-write-token-0123456789";
const READ: &str = "cli-test-read-token-0123456789";
const PASSWORD: &str = "cli-Pa55-never-shown";

struct Server {
    child: Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(tokens_file: &std::path::Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["registry", "--in-memory", "--listen", "127.0.0.1:0", "--tokens-file"])
        .arg(tokens_file)
        .env_remove("STREETSCOPE_REGISTRY_TOKENS")
        .env_remove("STREETSCOPE_CLUSTER_CONFIG")
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("registry API on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let url = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the registry prints its address");
    Server { child, url, log }
}

fn cli(server: &Server, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("STREETSCOPE_REGISTRY_URL", &server.url).env_remove("STREETSCOPE_TOKEN");
    if let Some(t) = token {
        cmd.env("STREETSCOPE_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn cameras_and_intersections_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# test\n{WRITE} write\n{READ} read\n")).unwrap();
    let server = start_registry(&tokens);

    let ok = |o: Output| {
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    ok(cli(
        &server,
        Some(WRITE),
        &["intersections", "add", "x-1", "--name", "Main & 5th", "--lat", "40.7", "--lon", "-73.9"],
    ));
    let source = format!("rtsp://admin:{PASSWORD}@10.0.0.5:554/s1");
    let out = ok(cli(
        &server,
        Some(WRITE),
        &[
            "cameras",
            "add",
            "cam-1",
            "--intersection",
            "x-1",
            "--source",
            &source,
            "--sample-fps",
            "5",
            "--line",
            "north=0.1,0.5,0.9,0.5:in/out",
        ],
    ));
    assert!(out.contains("camera cam-1 registered"), "{out}");
    let spec = dir.path().join("cam-2.toml");
    std::fs::write(
        &spec,
        "id = \"cam-2\"\nintersection = \"x-1\"\nsource = \"rtsp://10.0.0.6/s\"\n[[lines]]\nname = \"s\"\nstart = [0.1, 0.8]\nend = [0.9, 0.8]\n",
    )
    .unwrap();
    ok(cli(&server, Some(WRITE), &["cameras", "add", "--file", spec.to_str().unwrap()]));
    ok(cli(&server, Some(WRITE), &["cameras", "update", "cam-1", "--sample-fps", "2", "--disable"]));

    let list = ok(cli(&server, Some(READ), &["cameras", "list"]));
    assert!(
        list.contains("cam-1") && list.contains("cam-2") && list.contains("rtsp://admin:***@10.0.0.5:554/s1"),
        "{list}"
    );
    let got: serde_json::Value =
        serde_json::from_str(&ok(cli(&server, Some(READ), &["cameras", "get", "cam-1"]))).unwrap();
    assert_eq!((got["sample_fps"].as_f64(), got["enabled"].as_bool()), (Some(2.0), Some(false)));
    let listed = ok(cli(&server, Some(READ), &["intersections", "list"]));
    assert!(listed.contains("x-1") && listed.contains("Main & 5th"), "{listed}");

    // Refusals exit non-zero and print one line per field.
    let bad = cli(&server, Some(WRITE), &["cameras", "update", "cam-1", "--sample-fps", "0", "--line", "n=0,0,2,2"]);
    assert!(!bad.status.success());
    let t = text(&bad);
    assert!(t.contains("invalid (400)"), "{t}");
    assert!(t.contains("  - sample_fps = 0: must be in (0, 120]"), "{t}");
    assert!(t.contains("  - lines[0].end = [2.0, 2.0]: coordinates are normalised"), "{t}");
    let t = text(&cli(&server, Some(WRITE), &["intersections", "rm", "x-1"]));
    assert!(t.contains("conflict (409)") && t.contains("cam-1"), "{t}");
    let t = text(&cli(&server, Some(READ), &["cameras", "rm", "cam-2"]));
    assert!(t.contains("forbidden (403)"), "{t}");
    let t = text(&cli(&server, None, &["cameras", "list"]));
    assert!(t.contains("unauthorized (401)"), "{t}");
    let t = text(&cli(&server, Some(WRITE), &["cameras", "get", "nope"]));
    assert!(t.contains("not_found (404)"), "{t}");

    ok(cli(&server, Some(WRITE), &["cameras", "rm", "cam-1"]));
    ok(cli(&server, Some(WRITE), &["cameras", "rm", "cam-2"]));
    ok(cli(&server, Some(WRITE), &["intersections", "rm", "x-1"]));
    assert!(ok(cli(&server, Some(READ), &["cameras", "list", "--json"])).trim() == "[]");

    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("camera created"), "{log}");
    for secret in [PASSWORD, WRITE, READ] {
        assert!(!log.contains(secret), "{secret} in the registry's log:\n{log}");
    }
}
