//! The registry API under abuse, against a real server on 127.0.0.1 with short
//! limits: an oversized body (413), a client that sends a byte a second (its
//! connection closed, or 408 when it is the body that crawls), a burst of
//! connections beyond the bound (429), a TLS client without the CA (refused).
//! Meanwhile a well-behaved client keeps being served.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Harness, READ, WRITE};
use streetscope_contracts::http::{HttpServerConfig, TlsFiles};

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

/// A client that asks `GET /v1/cameras` every 50 ms over one kept-alive
/// connection until stopped, and counts answers that were not 200 or took over
/// two seconds.
struct WellBehaved {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl WellBehaved {
    /// Opens one kept-alive connection before the abuse starts, then asks for
    /// the camera list on it every 50 ms. Written over a plain socket rather
    /// than an HTTP client library so that the assertion is about the server:
    /// a client library may open a new connection for reasons of its own (its
    /// pool's idea of a stale connection), and a new connection made while the
    /// bound is full is rightly refused. Here the connection is only ever the
    /// one made before the burst; the server closing it is a failure.
    fn start(addr: SocketAddr) -> Self {
        let (stop, ok, bad) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, o, b) = (stop.clone(), ok.clone(), bad.clone());
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut pending = Vec::new();
        assert_eq!(get_cameras(&mut conn, &mut pending).map(|(status, _)| status), Ok(200));
        let born = Instant::now();
        let thread = thread::spawn(move || {
            let mut served = 0u64;
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                match get_cameras(&mut conn, &mut pending) {
                    Ok((200, _)) if t.elapsed() < Duration::from_secs(2) => {
                        served += 1;
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, _)) => {
                        eprintln!("well-behaved client: {status} after {:?} (request {})", t.elapsed(), served + 1);
                        b.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!(
                            "well-behaved client: {e} after {served} answers, {:?} after it connected",
                            born.elapsed()
                        );
                        b.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        Self { stop, ok, bad, thread: Some(thread) }
    }

    /// Waits for one more answer (the client is still served after the
    /// abuse; on a loaded machine its thread may not have run during a short
    /// test), then stops it; returns (answered, failed or slow).
    fn finish(mut self) -> (u64, u64) {
        let (before, start) = (self.ok.load(Ordering::Relaxed), Instant::now());
        while self.ok.load(Ordering::Relaxed) == before
            && self.bad.load(Ordering::Relaxed) == 0
            && start.elapsed() < Duration::from_secs(5)
        {
            thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (self.ok.load(Ordering::Relaxed), self.bad.load(Ordering::Relaxed))
    }
}

/// One `GET /v1/cameras` on a kept-alive connection: the answer's status and
/// body. `pending` holds bytes read past the previous answer.
fn get_cameras(conn: &mut TcpStream, pending: &mut Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    write!(conn, "GET /v1/cameras HTTP/1.1\r\nhost: registry\r\nauthorization: Bearer {READ}\r\n\r\n")
        .map_err(|e| format!("writing the request: {e}"))?;
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("not an answer: {head}"))?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no content-length: {head}"))?;
    while pending.len() < head_end + length {
        match conn.read(&mut buf) {
            Ok(0) => return Err("the server closed the connection inside an answer".into()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the body: {e}")),
        }
    }
    let body = pending[head_end..head_end + length].to_vec();
    pending.drain(..head_end + length);
    if head.contains("connection: close") {
        return Err(format!("the server answered {status} and closed the connection"));
    }
    Ok((status, body))
}

/// Reads what the server sends until it closes (or `limit` passes); returns the
/// text and when it closed.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), Some(start.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), Some(start.elapsed())),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), None)
}

#[test]
fn an_oversized_body_is_answered_413_before_it_is_read() {
    let h = Harness::with_http(limits());
    let good = WellBehaved::start(addr(&h));
    // Declared too large: refused on the Content-Length alone, the body never sent.
    let mut s = TcpStream::connect(addr(&h)).unwrap();
    write!(
        s,
        "POST /v1/cameras HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {WRITE}\r\ncontent-type: application/json\r\n\
         content-length: 10737418240\r\n\r\n"
    )
    .unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"too_large\""), "{answer}");
    assert!(closed.is_some(), "the connection is closed after a 413");
    // Chunked, with no length given: refused once the limit is passed.
    let mut s = TcpStream::connect(addr(&h)).unwrap();
    write!(
        s,
        "POST /v1/cameras HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {WRITE}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n"
    )
    .unwrap();
    // One byte over the limit, in 16 KiB chunks, then the end of the body.
    let mut left = MAX_BODY as usize + 1;
    while left > 0 {
        let n = left.min(16 * 1024);
        write!(s, "{n:x}\r\n").unwrap();
        s.write_all(&vec![b' '; n]).unwrap();
        s.write_all(b"\r\n").unwrap();
        left -= n;
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Within the limit, a bad body is still an ordinary 400.
    assert_eq!(h.call("POST", "/v1/cameras", Some(WRITE), Some("{\"id\":")).status, 400);
    let (ok, bad) = good.finish();
    assert!(ok > 0 && bad == 0, "well-behaved client: {ok} answered, {bad} failed");
}

#[test]
fn a_client_sending_a_byte_a_second_is_cut_off() {
    let h = Harness::with_http(limits());
    let good = WellBehaved::start(addr(&h));
    let a = addr(&h);
    // Headers at a byte a second: the connection is closed at the header timeout.
    let slow_head = thread::spawn(move || {
        let mut s = TcpStream::connect(a).unwrap();
        let start = Instant::now();
        for b in b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            let (_, closed) = read_until_closed(&mut s, Duration::from_secs(1));
            if closed.is_some() {
                return start.elapsed();
            }
        }
        panic!("the slow client sent its whole request head over {:?}", start.elapsed());
    });
    // A body at a byte a second: answered 408 at the request timeout, then closed.
    let slow_body = thread::spawn(move || {
        let mut s = TcpStream::connect(a).unwrap();
        let start = Instant::now();
        write!(
            s,
            "POST /v1/intersections HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {WRITE}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n"
        )
        .unwrap();
        for _ in 0..100 {
            if s.write_all(b" ").is_err() {
                break;
            }
            let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(1));
            if !answer.is_empty() || closed.is_some() {
                let (rest, _) = read_until_closed(&mut s, Duration::from_secs(2));
                return (answer + &rest, start.elapsed());
            }
        }
        panic!("the slow body was never cut off");
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
    let good = WellBehaved::start(addr(&h));
    // Hold every other slot with connections that send half a request head.
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS - 1 {
        let mut s = TcpStream::connect(addr(&h)).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        held.push(s);
    }
    thread::sleep(Duration::from_millis(200));
    // The burst: each one is refused at once with 429 and closed.
    let mut refused = 0;
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr(&h)).unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(2));
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
        assert!(closed.is_some());
        refused += 1;
    }
    assert_eq!(refused, 40);
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

/// A CA and a certificate for 127.0.0.1 signed by it, made with `openssl`.
fn certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().expect("running openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[
        &["req", "-x509", "-days", "2", "-subj", "/CN=streetscope test CA"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
    ]
    .concat());
    run(&[&["req", "-subj", "/CN=127.0.0.1"][..], &ec, &["-keyout", "server.key", "-out", "server.csr"]].concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}

#[test]
fn tls_from_config_serves_clients_with_the_ca_and_refuses_the_others() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let tls = TlsFiles { cert_file: dir.path().join("server.pem"), key_file: dir.path().join("server.key") };
    let h = Harness::with_http(HttpServerConfig { tls: Some(tls), ..limits() });
    let url = h.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let ca = ureq::tls::Certificate::from_pem(&ca).unwrap();
    let trusting: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .tls_config(
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca]))).build(),
        )
        .build()
        .into();
    let get = |agent: &ureq::Agent| {
        agent.get(format!("{url}/v1/cameras")).header("Authorization", format!("Bearer {READ}")).call()
    };
    assert_eq!(get(&trusting).unwrap().status(), 200);
    // Without the CA: the client refuses the server's certificate; the server
    // logs the failed handshake and goes on.
    let stranger: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    let e = get(&stranger).unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate") || e.to_lowercase().contains("issuer"), "{e}");
    // Plain HTTP to the TLS port gets no answer.
    let mut s = TcpStream::connect(addr(&h)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(!answer.contains("200 OK") && closed.is_some(), "{answer}");
    // A TLS client that never finishes its handshake is closed at the header timeout.
    let mut s = TcpStream::connect(addr(&h)).unwrap();
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let (_, closed) = read_until_closed(&mut s, HEADER_TIMEOUT + Duration::from_secs(2));
    assert!(closed.is_some(), "a stalled handshake holds its connection");
    for _ in 0..3 {
        assert_eq!(get(&trusting).unwrap().status(), 200);
    }
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
