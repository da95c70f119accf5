//! A stage pod's status endpoint (`/healthz`, `/readyz`, `/metrics`,
//! `/status`) as a deployment serves it: `streetscope aggregate` on a real
//! Kafka-protocol broker (tansu on 127.0.0.1), its `[status]` section from the
//! cluster configuration file. Over TLS (certificate and key from PEM files,
//! as the chart's `statusTls` mounts them, named relative to the configuration
//! file and found from another working directory): a client with the CA is served, one
//! without it refuses the server, plain HTTP to the TLS port is closed without
//! an answer and does not hold the server, nor does a handshake that never
//! ends. Over plain HTTP: the limits of every Streetscope server (body 413,
//! header timeout, a body sent slowly, connections beyond the bound 429), while
//! a well-behaved client keeps being served — the clients of the registry's
//! and the dashboard's abuse tests (`streetscope_hostile::abuse`).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use streetscope_hostile::abuse::{self, read_until_closed, WellBehaved};
use streetscope_testbroker::TestBroker;

const BIN: &str = env!("CARGO_BIN_EXE_streetscope");

const MAX_BODY: usize = 4096;
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(2000);
const MAX_CONNECTIONS: u32 = 8;

/// A pod, killed when dropped; its output in a log file.
struct Pod {
    child: Child,
    log: PathBuf,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pod {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The status endpoint's address, once the pod logged it (`status: SCHEME://ADDR/status`).
    fn status_addr(&mut self, scheme: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log_text();
            if let Some(rest) = log.split(&format!("status: {scheme}://")).nth(1) {
                return rest.split('/').next().unwrap().parse().unwrap();
            }
            assert!(self.child.try_wait().unwrap().is_none(), "the pod ended:\n{log}");
            assert!(Instant::now() < deadline, "no status address logged:\n{log}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A broker with Streetscope's topics, and an aggregator pod whose cluster
/// configuration has `status` (a `[status]` section's body) added. The pod
/// runs in `/`, away from its configuration's folder: relative paths in the
/// configuration are taken from that folder, not from the working directory.
fn aggregator(dir: &Path, status: &str) -> (TestBroker, Pod) {
    let broker = TestBroker::start(&dir.join("broker"));
    let cfg_text =
        format!("[kafka]\nbrokers = \"{}\"\nsession_timeout_ms = 6000\n\n[status]\n{status}", broker.brokers());
    let cfg_path = dir.join("cluster.toml");
    std::fs::write(&cfg_path, &cfg_text).unwrap();
    let cfg = streetscope_contracts::cluster::ClusterConfig::from_toml_str(&cfg_text, "cluster.toml", Some(dir))
        .expect("the test's configuration");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(streetscope_transport::kafka::ensure_topics(&cfg.kafka)).unwrap();
    let log = dir.join("aggregate.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(BIN)
        .args(["aggregate", "--cluster", cfg_path.to_str().unwrap(), "--status-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .current_dir("/")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    (broker, Pod { child, log })
}

fn limits(header_timeout: Duration) -> String {
    format!(
        "max_body_bytes = {MAX_BODY}\nheader_timeout_s = {}\nrequest_timeout_s = {}\nmax_connections = {MAX_CONNECTIONS}\n",
        header_timeout.as_secs_f64(),
        REQUEST_TIMEOUT.as_secs_f64()
    )
}

/// An HTTPS client that trusts the test's CA (and nothing else).
fn trusting(dir: &Path) -> ureq::Agent {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let ca = ureq::tls::Certificate::from_pem(&ca).unwrap().to_owned();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .tls_config(
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca]))).build(),
        )
        .build()
        .into()
}

/// GET `url`: the status, the content type and the body.
fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, String, String), ureq::Error> {
    let mut r = agent.get(url).call()?;
    let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default();
    Ok((r.status().as_u16(), kind, r.body_mut().read_to_string()?))
}

#[test]
fn a_pods_status_endpoint_serves_https_from_its_config_and_only_to_clients_with_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    abuse::certificates(dir.path());
    // Connections held at the TLS handshake last this long: long enough to
    // tell "closed at once" (over the bound) from "closed at the timeout".
    let header_timeout = Duration::from_secs(3);
    // Relative to the configuration's folder (the pod runs in `/`).
    let status =
        format!("{}\n[status.tls]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n", limits(header_timeout));
    let (_broker, mut pod) = aggregator(dir.path(), &status);
    let addr = pod.status_addr("https");
    let base = format!("https://{addr}");
    let agent = trusting(dir.path());

    let (code, _, body) = get(&agent, &format!("{base}/healthz")).expect("/healthz over TLS");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // /readyz: 503 naming what is pending, then ready once the registry is
    // read and the group gave the pod its partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _, body) = get(&agent, &format!("{base}/readyz")).unwrap();
        if code == 200 {
            assert_eq!(body, "ready\n");
            break;
        }
        assert_eq!(code, 503, "{body}");
        assert!(body.starts_with("not ready: "), "{body}");
        assert!(Instant::now() < deadline, "not ready within 60 s: {body}\n{}", pod.log_text());
        thread::sleep(Duration::from_millis(200));
    }
    let (code, kind, body) = get(&agent, &format!("{base}/metrics")).unwrap();
    assert_eq!(code, 200);
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(body.contains("streetscope_stage_items_total{stage=\"aggregate\"}"), "{body}");
    let (code, _, body) = get(&agent, &format!("{base}/status")).unwrap();
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["stages"][0]["stage"], "aggregate", "{status}");

    // Without the CA: refused by the client; plain HTTP to the TLS port: no
    // answer, closed; the client with the CA is served before and after.
    abuse::tls_serves_only_clients_with_the_ca(dir.path(), &format!("{base}/healthz"), "Bearer unused", addr);
    // A TLS client that never finishes its handshake, and a plain client that
    // sends nothing: both closed at the header timeout, not held.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let mut silent = TcpStream::connect(addr).unwrap();
    for (what, s) in [("a stalled handshake", &mut stalled), ("a silent connection", &mut silent)] {
        let (_, closed) = read_until_closed(s, header_timeout + Duration::from_secs(3));
        assert!(closed.is_some(), "{what} holds its connection");
    }
    // A body over the limit, over TLS: 413 before it is read.
    let refused = agent.post(format!("{base}/metrics")).send(&vec![b'x'; MAX_BODY + 1][..]).unwrap();
    assert_eq!(refused.status().as_u16(), 413);
    // Connections beyond the bound, over TLS: closed at once without an
    // answer (a refusal would cost the handshake the bound is there to
    // spare). Every slot is held by a connection that says nothing (a plain
    // request would fail its handshake at once and free the slot).
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| TcpStream::connect(addr).unwrap()).collect();
    thread::sleep(Duration::from_millis(300));
    let mut over = TcpStream::connect(addr).unwrap();
    let (answer, closed) = read_until_closed(&mut over, header_timeout + Duration::from_secs(2));
    let closed = closed.expect("a connection over the bound is closed");
    assert!(answer.is_empty() && closed < header_timeout / 2, "{answer:?} closed after {closed:?}");
    drop(held);
    // Served again once the held connections are gone.
    let deadline = Instant::now() + header_timeout + Duration::from_secs(5);
    loop {
        match get(&agent, &format!("{base}/healthz")) {
            Ok((200, _, _)) => break,
            other => assert!(Instant::now() < deadline, "not served again: {other:?}"),
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(pod.child.try_wait().unwrap().is_none(), "the pod ended:\n{}", pod.log_text());
    let log = pod.log_text();
    assert!(log.contains("TLS handshake failed"), "failed handshakes are logged with the peer:\n{log}");
}

#[test]
fn a_pods_status_endpoint_holds_its_limits_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, mut pod) = aggregator(dir.path(), &limits(HEADER_TIMEOUT));
    let addr = pod.status_addr("http");
    let good = WellBehaved::start(addr, "GET /healthz HTTP/1.1\r\nhost: status\r\n\r\n");

    // Bodies over the limit: declared (10 GiB, never sent): 413 in JSON on
    // the length alone; chunked (no length, a byte over): the endpoint reads
    // no body, so it answers 405 (GET only) without reading it. Both closed.
    let [(declared, closed), (chunked, chunked_closed)] =
        abuse::oversized_bodies(addr, "POST /metrics HTTP/1.1\r\nhost: x\r\n", MAX_BODY);
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    assert!(declared.contains("\"error\":\"too_large\""), "{declared}");
    assert!(closed, "the connection is closed after a 413");
    assert!(chunked.starts_with("HTTP/1.1 405"), "{chunked}");
    assert!(chunked_closed, "the connection is closed after a body left unread");

    // A head at a byte a second: closed at the header timeout.
    let slow_head = thread::spawn(move || abuse::slow_head(addr, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
    // A body at a byte a second: the endpoint reads no body, so it answers at
    // once and closes rather than wait for the rest.
    let slow_body = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n").unwrap();
        let mut answer = String::new();
        for _ in 0..100 {
            if s.write_all(b" ").is_err() {
                break;
            }
            let (got, closed) = read_until_closed(&mut s, Duration::from_secs(1));
            answer += &got;
            if closed.is_some() {
                return (answer, Some(start.elapsed()));
            }
        }
        (answer, None)
    });
    let head_cut = slow_head.join().unwrap();
    assert!(head_cut >= HEADER_TIMEOUT - Duration::from_millis(200), "closed early: {head_cut:?}");
    assert!(head_cut < HEADER_TIMEOUT + Duration::from_millis(1500), "closed late: {head_cut:?}");
    let (answer, closed) = slow_body.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let closed = closed.expect("a body sent a byte a second held its connection for 100 s");
    assert!(closed < REQUEST_TIMEOUT + Duration::from_millis(1500), "closed late: {closed:?}");

    // A burst beyond the bound while every other slot is held: 429 at once, closed.
    let held = abuse::hold_slots(addr, MAX_CONNECTIONS - 1);
    for (answer, closed) in abuse::burst(addr, 40) {
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
        assert!(closed);
    }
    drop(held);
    let deadline = Instant::now() + HEADER_TIMEOUT + Duration::from_secs(5);
    loop {
        let [(answer, _)] = abuse::burst(addr, 1).try_into().unwrap();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "not served again: {answer}");
        thread::sleep(Duration::from_millis(100));
    }
    let (ok, bad) = good.finish();
    assert!(ok > 5 && bad == 0, "well-behaved client (connected before the abuse): {ok} answered, {bad} failed");
    let log = pod.log_text();
    for refusal in ["request refused: too_large", "connection refused: at the connection limit"] {
        assert!(log.contains(refusal), "not logged: {refusal}\n{log}");
    }
}
