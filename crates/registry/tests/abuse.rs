//! The registry API under abuse, against a real server on 127.0.0.1 with short
//! limits: an oversized body (413), a client that sends a byte a second (its
//! connection closed, or 408 when it is the body that crawls), a burst of
//! connections beyond the bound (429), a TLS client without the CA (refused).
//! Meanwhile a well-behaved client keeps being served.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Harness, READ, WRITE};
use streetscope_contracts::http::{HttpServerConfig, TlsFiles};
use streetscope_hostile::abuse::{self, read_until_closed, WellBehaved};

const MAX_BODY: u64 = 64 * 1024;
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

fn addr(h: &Harness) -> SocketAddr {
    h.server.as_ref().unwrap().addr()
}

/// A client asking for the camera list every 50 ms on one kept-alive connection.
fn well_behaved(h: &Harness) -> WellBehaved {
    WellBehaved::start(
        addr(h),
        &format!("GET /v1/cameras HTTP/1.1\r\nhost: registry\r\nauthorization: Bearer {READ}\r\n\r\n"),
    )
}

#[test]
fn an_oversized_body_is_answered_413_before_it_is_read() {
    let h = Harness::with_http(limits());
    let good = well_behaved(&h);
    // Declared too large: refused on the Content-Length alone, the body never
    // sent; chunked, with no length given: refused once the limit is passed.
    let head = format!(
        "POST /v1/cameras HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {WRITE}\r\ncontent-type: application/json\r\n"
    );
    let [(declared, closed), (chunked, _)] = abuse::oversized_bodies(addr(&h), &head, MAX_BODY as usize);
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    assert!(declared.contains("\"error\":\"too_large\""), "{declared}");
    assert!(closed, "the connection is closed after a 413");
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    // Within the limit, a bad body is still an ordinary 400.
    assert_eq!(h.call("POST", "/v1/cameras", Some(WRITE), Some("{\"id\":")).status, 400);
    let (ok, bad) = good.finish();
    assert!(ok > 0 && bad == 0, "well-behaved client: {ok} answered, {bad} failed");
}

#[test]
fn a_client_sending_a_byte_a_second_is_cut_off() {
    let h = Harness::with_http(limits());
    let good = well_behaved(&h);
    let a = addr(&h);
    // Headers at a byte a second: the connection is closed at the header timeout.
    let slow_head = thread::spawn(move || abuse::slow_head(a, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
    // A body at a byte a second: answered 408 at the request timeout, then closed.
    let slow_body = thread::spawn(move || {
        abuse::slow_body(
            a,
            &format!(
                "POST /v1/intersections HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {WRITE}\r\n\
                 content-type: application/json\r\n"
            ),
        )
    });
    let head_cut = slow_head.join().unwrap();
    let (answer, body_cut) = slow_body.join().unwrap();
    assert!(head_cut >= HEADER_TIMEOUT - Duration::from_millis(200), "closed early: {head_cut:?}");
    assert!(head_cut < HEADER_TIMEOUT + Duration::from_millis(1500), "closed late: {head_cut:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
    assert!(body_cut < REQUEST_TIMEOUT + Duration::from_millis(1500), "408 late: {body_cut:?}");
    let (ok, bad) = good.finish();
    assert!(ok > 5 && bad == 0, "well-behaved client: {ok} answered, {bad} failed");
}

#[test]
fn a_burst_beyond_the_connection_bound_is_answered_429_and_the_server_recovers() {
    // Slots are held until the header timeout: long enough here for the burst
    // to be over on a loaded machine.
    let header_timeout = Duration::from_secs(5);
    let h = Harness::with_http(HttpServerConfig { header_timeout_s: header_timeout.as_secs_f64(), ..limits() });
    let good = well_behaved(&h);
    // Hold every other slot with connections that send half a request head.
    let held = abuse::hold_slots(addr(&h), MAX_CONNECTIONS - 1);
    // The burst: each one is refused at once with 429 and closed.
    for (answer, closed) in abuse::burst(addr(&h), 40) {
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
        assert!(closed);
    }
    // The held connections time out; then a new client is served again.
    let start = Instant::now();
    loop {
        let a = h.call("GET", "/healthz", None, None);
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 429);
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

#[test]
fn tls_from_config_serves_clients_with_the_ca_and_refuses_the_others() {
    let dir = tempfile::tempdir().unwrap();
    abuse::certificates(dir.path());
    let tls = TlsFiles { cert_file: dir.path().join("server.pem"), key_file: dir.path().join("server.key") };
    let h = Harness::with_http(HttpServerConfig { tls: Some(tls), ..limits() });
    let url = format!("{}/v1/cameras", h.url());
    abuse::tls_serves_only_clients_with_the_ca(dir.path(), &url, &format!("Bearer {READ}"), addr(&h));
    // A TLS client that never finishes its handshake is closed at the header timeout.
    let mut s = TcpStream::connect(addr(&h)).unwrap();
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let (_, closed) = read_until_closed(&mut s, HEADER_TIMEOUT + Duration::from_secs(2));
    assert!(closed.is_some(), "a stalled handshake holds its connection");
    // Well-behaved TLS clients are still served.
    abuse::tls_serves_only_clients_with_the_ca(dir.path(), &url, &format!("Bearer {READ}"), addr(&h));
}

#[test]
fn bad_tls_files_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (cert, key, expect) in
        [("missing.pem", "missing.key", "missing.pem"), ("empty.pem", "empty.pem", "no CERTIFICATE")]
    {
        let cfg = HttpServerConfig {
            tls: Some(TlsFiles { cert_file: dir.path().join(cert), key_file: dir.path().join(key) }),
            ..limits()
        };
        let e = rt
            .block_on(async {
                let registry = streetscope_registry::Registry::open(
                    streetscope_transport::MemoryTable::new("c"),
                    streetscope_transport::MemoryTable::new("i"),
                )
                .await
                .unwrap();
                streetscope_registry::RegistryServer::start_with(
                    "127.0.0.1:0".parse().unwrap(),
                    Arc::new(registry),
                    common::tokens(),
                    &cfg,
                )
                .await
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{e}");
    }
}
