//! The dashboard under abuse, against a real server on 127.0.0.1 with short
//! limits and tokens, as the registry's API is (`crates/registry/tests/abuse.rs`;
//! both use the clients of `streetscope_hostile::abuse`): an oversized body
//! (413, though no route reads one), a client that sends a byte a second (its
//! connection closed), a burst of connections beyond the bound (429), a TLS
//! client without the CA (refused). Meanwhile a well-behaved client keeps
//! being served. A live page's event stream, one long request, is not cut by
//! the request timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use streetscope_contracts::http::{HttpServerConfig, TlsFiles};
use streetscope_contracts::snapshots::SnapshotPolicy;
use streetscope_dashboard::{DashboardHandle, ServeOptions};
use streetscope_hostile::abuse::{self, read_until_closed, WellBehaved};
use streetscope_http::Bound;
use streetscope_registry::auth::{Role, Tokens};

const TOKEN: &str = "read-token-0123456789abcdef";
const MAX_BODY: u64 = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(2000);
const MAX_CONNECTIONS: u32 = 8;

fn limits() -> HttpServerConfig {
    HttpServerConfig {
        max_body_bytes: MAX_BODY,
        header_timeout_s: HEADER_TIMEOUT.as_secs_f64(),
        request_timeout_s: REQUEST_TIMEOUT.as_secs_f64(),
        max_connections: MAX_CONNECTIONS,
        tls: None,
    }
}

/// A dashboard (no cameras yet) served with `http` and one read token.
struct Dashboard {
    rt: tokio::runtime::Runtime,
    handle: DashboardHandle,
    bound: Bound,
}

impl Dashboard {
    fn start(http: HttpServerConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let handle = DashboardHandle::new(&[], SnapshotPolicy::default());
        let opts = ServeOptions { tokens: Some(Tokens::default().with(TOKEN, Role::Read)), http };
        let bound =
            rt.block_on(streetscope_dashboard::serve("127.0.0.1:0".parse().unwrap(), handle.clone(), opts)).unwrap();
        Self { rt, handle, bound }
    }

    /// A client asking for the overview's figures every 50 ms on one kept-alive connection.
    fn well_behaved(&self) -> WellBehaved {
        WellBehaved::start(
            self.bound.addr,
            &format!("GET /api/page HTTP/1.1\r\nhost: dashboard\r\nauthorization: Bearer {TOKEN}\r\n\r\n"),
        )
    }
}

#[test]
fn an_oversized_body_is_answered_413_before_it_is_read() {
    let d = Dashboard::start(limits());
    let good = d.well_behaved();
    let head = format!("POST /api/page HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n");
    let [(declared, closed), (chunked, chunked_closed)] =
        abuse::oversized_bodies(d.bound.addr, &head, MAX_BODY as usize);
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    assert!(declared.contains("\"error\":\"too_large\""), "{declared}");
    assert!(closed, "the connection is closed after a 413");
    // No route of the dashboard reads a body: a chunked one is refused by
    // its method, unread, and the connection closed.
    assert!(chunked.starts_with("HTTP/1.1 405"), "{chunked}");
    assert!(chunked_closed, "{chunked}");
    // The same on a GET, and without a token: the limit comes first.
    let mut s = TcpStream::connect(d.bound.addr).unwrap();
    s.write_all(b"GET /api/page HTTP/1.1\r\nhost: x\r\ncontent-length: 10737418240\r\n\r\n").unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let (ok, bad) = good.finish();
    assert!(ok > 0 && bad == 0, "well-behaved client: {ok} answered, {bad} failed");
}

#[test]
fn a_client_sending_a_byte_a_second_is_cut_off() {
    let d = Dashboard::start(limits());
    let good = d.well_behaved();
    let a = d.bound.addr;
    // Headers at a byte a second: the connection is closed at the header timeout.
    let slow_head = thread::spawn(move || abuse::slow_head(a, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
    // A body at a byte a second: never waited for (no route reads one).
    let slow_body = thread::spawn(move || {
        abuse::slow_body(a, &format!("POST /api/page HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n"))
    });
    let head_cut = slow_head.join().unwrap();
    let (answer, body_cut) = slow_body.join().unwrap();
    assert!(head_cut >= HEADER_TIMEOUT - Duration::from_millis(200), "closed early: {head_cut:?}");
    assert!(head_cut < HEADER_TIMEOUT + Duration::from_millis(1500), "closed late: {head_cut:?}");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(body_cut < REQUEST_TIMEOUT, "answered late: {body_cut:?}");
    let (ok, bad) = good.finish();
    assert!(ok > 5 && bad == 0, "well-behaved client: {ok} answered, {bad} failed");
}

#[test]
fn a_burst_beyond_the_connection_bound_is_answered_429_and_the_server_recovers() {
    // Slots are held until the header timeout: long enough here for the burst
    // to be over on a loaded machine.
    let header_timeout = Duration::from_secs(5);
    let d = Dashboard::start(HttpServerConfig { header_timeout_s: header_timeout.as_secs_f64(), ..limits() });
    let good = d.well_behaved();
    let held = abuse::hold_slots(d.bound.addr, MAX_CONNECTIONS - 1);
    for (answer, closed) in abuse::burst(d.bound.addr, 40) {
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
        assert!(closed);
    }
    // The held connections time out; then a new client is served again.
    let start = Instant::now();
    loop {
        let [(answer, _)] = abuse::burst(d.bound.addr, 1).try_into().unwrap();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            start.elapsed() < header_timeout + Duration::from_secs(2),
            "not served again after {:?}",
            start.elapsed()
        );
        thread::sleep(Duration::from_millis(100));
    }
    drop(held);
    let (ok, bad) = good.finish();
    assert!(ok > 3 && bad == 0, "well-behaved client (connected before the burst): {ok} answered, {bad} failed");
}

/// Reads a server-sent event stream for `how_long` into `got`; returns the
/// `state` events read so far. The stream closing is a failure.
fn read_events(s: &mut TcpStream, got: &mut Vec<u8>, how_long: Duration) -> usize {
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    while start.elapsed() < how_long {
        match s.read(&mut buf) {
            Ok(0) => panic!("the stream was closed: {}", String::from_utf8_lossy(got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(got).matches("event: state").count()
}

/// A live page's event stream is one request that lasts as long as the page:
/// the request timeout bounds the time to its answer's head, not the stream.
#[test]
fn an_event_stream_outlives_the_request_timeout() {
    let d = Dashboard::start(limits());
    let mut s = TcpStream::connect(d.bound.addr).unwrap();
    write!(s, "GET /api/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    while read_events(&mut s, &mut got, Duration::from_millis(100)) < 1 {
        assert!(start.elapsed() < Duration::from_secs(5), "no first state: {}", String::from_utf8_lossy(&got));
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    read_events(&mut s, &mut got, REQUEST_TIMEOUT + Duration::from_millis(500));
    // A change after the request timeout still reaches the page.
    d.handle.upsert_camera(
        serde_json::from_value(serde_json::json!({"id": "cam-1", "intersection": "i-1", "source": "file:///a.mp4"}))
            .unwrap(),
    );
    let start = Instant::now();
    while read_events(&mut s, &mut got, Duration::from_millis(100)) < 2 {
        assert!(start.elapsed() < Duration::from_secs(5), "no update: {}", String::from_utf8_lossy(&got));
    }
    assert!(String::from_utf8_lossy(&got).contains("cam-1"));
    drop(d.rt);
}

#[test]
fn tls_from_config_serves_clients_with_the_ca_and_refuses_the_others() {
    let dir = tempfile::tempdir().unwrap();
    abuse::certificates(dir.path());
    let tls = TlsFiles { cert_file: dir.path().join("server.pem"), key_file: dir.path().join("server.key") };
    let d = Dashboard::start(HttpServerConfig { tls: Some(tls), ..limits() });
    let url = format!("{}/api/page", d.bound);
    abuse::tls_serves_only_clients_with_the_ca(dir.path(), &url, &format!("Bearer {TOKEN}"), d.bound.addr);
}

#[test]
fn bad_tls_files_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = HttpServerConfig {
        tls: Some(TlsFiles { cert_file: dir.path().join("missing.pem"), key_file: dir.path().join("missing.key") }),
        ..limits()
    };
    let opts = ServeOptions { tokens: None, http };
    let handle = DashboardHandle::new(&[], SnapshotPolicy::default());
    let e = rt.block_on(streetscope_dashboard::serve("127.0.0.1:0".parse().unwrap(), handle, opts)).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
}
