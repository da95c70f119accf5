//! Clients that abuse an HTTP server on 127.0.0.1, and one that behaves, for
//! the abuse tests of every Streetscope server (the registry, the dashboard,
//! the status endpoints): each server runs on `streetscope-http`, so each is
//! held to the same answers. Plain sockets throughout, so that what is
//! asserted is what the server did, not what a client library chose to do.
//!
//! - [`WellBehaved`]: one kept-alive connection made before the abuse, asking
//!   every 50 ms; the server closing it or answering slowly is a failure.
//! - [`oversized_bodies`]: a body declared 10 GiB (413 before it is read) and
//!   a chunked one a byte over the limit (413).
//! - [`slow_head`], [`slow_body`]: a byte a second, in the head (closed at the
//!   header timeout) and in the body (408 at the request timeout).
//! - [`hold_slots`], [`burst`]: every connection slot but one held, then
//!   connections beyond the bound (429 at once, closed).
//! - [`certificates`]: a CA and a server certificate for 127.0.0.1 (openssl);
//!   [`tls_serves_only_clients_with_the_ca`]: what a server with them must do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A client that sends one request every 50 ms over one kept-alive connection
/// until stopped, and counts answers that were not 200 or took over two seconds.
#[derive(Debug)]
pub struct WellBehaved {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl WellBehaved {
    /// Opens one kept-alive connection to `addr` before the abuse starts (its
    /// first answer must be 200), then sends `request` (a whole request:
    /// `GET … HTTP/1.1\r\n…\r\n\r\n`, no `connection: close`) every 50 ms. The
    /// connection is only ever this one: a new connection made while the
    /// bound is full would rightly be refused, so the server closing this one
    /// is a failure.
    pub fn start(addr: SocketAddr, request: &str) -> Self {
        let (stop, ok, bad) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, o, b) = (stop.clone(), ok.clone(), bad.clone());
        let mut conn = TcpStream::connect(addr).expect("connecting the well-behaved client");
        conn.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
        let mut pending = Vec::new();
        let request = request.to_owned();
        let first = ask(&mut conn, &mut pending, &request).map(|(status, _)| status);
        assert_eq!(first, Ok(200), "the well-behaved client's first request");
        let born = Instant::now();
        let thread = thread::spawn(move || {
            let mut served = 0u64;
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                match ask(&mut conn, &mut pending, &request) {
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
    pub fn finish(mut self) -> (u64, u64) {
        let (before, start) = (self.ok.load(Ordering::Relaxed), Instant::now());
        while self.ok.load(Ordering::Relaxed) == before
            && self.bad.load(Ordering::Relaxed) == 0
            && start.elapsed() < Duration::from_secs(5)
        {
            thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the well-behaved client's thread");
        }
        (self.ok.load(Ordering::Relaxed), self.bad.load(Ordering::Relaxed))
    }
}

/// Sends `request` on a kept-alive connection and reads its answer (which
/// must have a `content-length`): the status and the body. `pending` holds
/// bytes read past the previous answer. An answer that closes the connection
/// is an error.
pub fn ask(conn: &mut TcpStream, pending: &mut Vec<u8>, request: &str) -> Result<(u16, Vec<u8>), String> {
    conn.write_all(request.as_bytes()).map_err(|e| format!("writing the request: {e}"))?;
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
pub fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout");
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

/// Two oversized bodies sent with `head` (a request line and headers, each
/// ending in `\r\n`, without the blank line and without a length): one
/// declared 10 GiB and never sent, one chunked with no length given and a
/// byte over `max_body`. Returns the two answers, each read until the server
/// closed the connection (or 3 s passed), and whether it closed.
pub fn oversized_bodies(addr: SocketAddr, head: &str, max_body: usize) -> [(String, bool); 2] {
    let mut s = TcpStream::connect(addr).expect("connecting");
    write!(s, "{head}content-length: 10737418240\r\n\r\n").expect("writing the head");
    let (declared, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    let declared = (declared, closed.is_some());
    let mut s = TcpStream::connect(addr).expect("connecting");
    write!(s, "{head}transfer-encoding: chunked\r\n\r\n").expect("writing the head");
    // One byte over the limit, in 16 KiB chunks, then the end of the body;
    // the server may answer and close before it has all of it.
    let mut left = max_body + 1;
    while left > 0 {
        let n = left.min(16 * 1024);
        let chunk = [format!("{n:x}\r\n").into_bytes(), vec![b' '; n], b"\r\n".to_vec()].concat();
        if s.write_all(&chunk).is_err() {
            break;
        }
        left -= n;
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let (chunked, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    [declared, (chunked, closed.is_some())]
}

/// Sends `request` a byte a second; returns how long the server took to
/// close the connection. Panics when the whole request was sent.
pub fn slow_head(addr: SocketAddr, request: &str) -> Duration {
    let mut s = TcpStream::connect(addr).expect("connecting");
    let start = Instant::now();
    for b in request.as_bytes() {
        if s.write_all(&[*b]).is_err() {
            return start.elapsed();
        }
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(1));
        if closed.is_some() {
            return start.elapsed();
        }
    }
    panic!("the slow client sent its whole request head over {:?}", start.elapsed());
}

/// Sends `head` (ending in `\r\n`, without the blank line) with a
/// `content-length: 100`, then the body a byte a second; returns the answer
/// (read until closed, or 2 s more) and when it began. Panics when the whole
/// body was sent.
pub fn slow_body(addr: SocketAddr, head: &str) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).expect("connecting");
    let start = Instant::now();
    write!(s, "{head}content-length: 100\r\n\r\n").expect("writing the head");
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
}

/// Opens `n` connections that each send half a request head, holding their
/// slots until the server's header timeout (or until dropped).
pub fn hold_slots(addr: SocketAddr, n: u32) -> Vec<TcpStream> {
    let held = (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connecting");
            s.write_all(b"GET /healthz HTTP/1.1\r\n").expect("writing half a head");
            s
        })
        .collect();
    // The server accepts them before the burst that follows.
    thread::sleep(Duration::from_millis(200));
    held
}

/// `n` connections one after the other, each asking `GET /healthz`; returns
/// each one's answer, read until the server closed it (or 2 s passed), and
/// whether it closed.
pub fn burst(addr: SocketAddr, n: usize) -> Vec<(String, bool)> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connecting");
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
            let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(2));
            (answer, closed.is_some())
        })
        .collect()
}

/// Writes a CA (`ca.pem`, `ca.key`) and a certificate for 127.0.0.1 and
/// `localhost` signed by it (`server.pem`, `server.key`) into `dir`, made
/// with `openssl`.
pub fn certificates(dir: &std::path::Path) {
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
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("writing san.ext");
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

/// Checks a TLS server made with [`certificates`] in `dir`: a client trusting
/// the CA gets 200 from `GET url` (with `authorization`), a client without the
/// CA refuses the server's certificate, plain HTTP to `addr` gets no answer and
/// is closed, and the trusting client is still served afterwards.
pub fn tls_serves_only_clients_with_the_ca(dir: &std::path::Path, url: &str, authorization: &str, addr: SocketAddr) {
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = std::fs::read(dir.join("ca.pem")).expect("the CA made by certificates()");
    let ca = ureq::tls::Certificate::from_pem(&ca).expect("a PEM certificate");
    let trusting: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .tls_config(
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca]))).build(),
        )
        .build()
        .into();
    let get = |agent: &ureq::Agent| agent.get(url).header("Authorization", authorization).call();
    assert_eq!(get(&trusting).expect("served over TLS").status(), 200);
    // Without the CA: the client refuses the server's certificate.
    let stranger: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    let e = get(&stranger).expect_err("a client without the CA must refuse").to_string();
    assert!(e.to_lowercase().contains("certificate") || e.to_lowercase().contains("issuer"), "{e}");
    // Plain HTTP to the TLS port gets no answer.
    let mut s = TcpStream::connect(addr).expect("connecting");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").expect("writing");
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(!answer.contains("200 OK") && closed.is_some(), "{answer}");
    assert_eq!(get(&trusting).expect("still served").status(), 200);
}
