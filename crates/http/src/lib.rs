//! Serving HTTP to clients that may be hostile, for every Streetscope server
//! (the registry API, the status endpoints, the dashboard).
//!
//! [`serve`] runs an axum [`Router`] on a listener with the limits of an
//! [`HttpServerConfig`]:
//!
//! - **connections**: at most `max_connections` are served at once (a
//!   semaphore before each connection, as in mini-redis); one beyond is answered
//!   429 with `Retry-After: 1` and closed at once, so a burst cannot starve the
//!   clients already connected. Over TLS it is closed without an answer (an
//!   answer would need a handshake, the work the bound is there to refuse).
//! - **headers**: a client has `header_timeout_s` to send a request's headers
//!   (hyper's header read timeout, which also ends idle kept-alive connections);
//!   then the connection is closed. The TLS handshake has the same time.
//!   Headers are at most 64 KiB (431 beyond).
//! - **body and handling** ([`harden`]): a body over `max_body_bytes` is
//!   answered 413 before it is read (by its `Content-Length`, or when a chunked
//!   body passes the limit); a request not answered within `request_timeout_s`,
//!   a body sent slowly included, is answered 408 and its connection closed.
//! - **TLS** ([`tls_acceptor`]): rustls, certificate chain and key from PEM files.
//!
//! [`start`] does it all from an [`HttpServerConfig`]: binds, reads the TLS
//! files, and serves in a task of its own.
//!
//! Refusals (408, 413, 429, failed handshakes) are logged with the peer's
//! address; the answers are JSON in the registry's error shape
//! (`{"error", "message", "errors"}`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use streetscope_contracts::http::HttpServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: reading {path}: {message}")]
    TlsFile { path: String, message: String },
    #[error("TLS: {0}")]
    Tls(String),
}

/// The limits of one server, from its [`HttpServerConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The limits of a validated config.
    pub fn of(cfg: &HttpServerConfig) -> Self {
        Self {
            max_body_bytes: usize::try_from(cfg.max_body_bytes).unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs_f64(cfg.header_timeout_s),
            request_timeout: Duration::from_secs_f64(cfg.request_timeout_s),
            max_connections: cfg.max_connections as usize,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::of(&HttpServerConfig::default())
    }
}

/// The TLS acceptor of a certificate chain and key in PEM files.
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, HttpError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_err = |path: &Path, e: &dyn std::fmt::Display| HttpError::TlsFile {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_err(cert_file, &e))?;
    if certs.is_empty() {
        return Err(file_err(cert_file, &"no CERTIFICATE in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| file_err(key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| HttpError::Tls(format!("the certificate and key do not make a server identity: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Where a server started by [`start`] listens; shown as its base URL
/// (`http://ADDR`, `https://ADDR` with TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }
}

/// Binds `addr` (port 0 picks a free port), reads the TLS files of `cfg`
/// (validated) when it names them, and [`serve`]s `router` with its limits in
/// a task of its own until `shutdown` resolves. `name` names the server in the
/// log. Returns where it listens and the task (it ends after `shutdown`).
pub async fn start(
    name: &str,
    addr: SocketAddr,
    router: Router,
    cfg: &HttpServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Bound, tokio::task::JoinHandle<std::io::Result<()>>), HttpError> {
    let tls = match &cfg.tls {
        Some(files) => Some(tls_acceptor(&files.cert_file, &files.key_file)?),
        None => None,
    };
    let listener = TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| HttpError::Bind { addr, source })?;
    let bound = Bound { addr, tls: tls.is_some() };
    let limits = Limits::of(cfg);
    tracing::info!(
        max_body_bytes = limits.max_body_bytes,
        max_connections = limits.max_connections,
        header_timeout_s = cfg.header_timeout_s,
        request_timeout_s = cfg.request_timeout_s,
        "{name} listening on {bound}"
    );
    let task = tokio::spawn(serve(listener, router, limits, tls, shutdown));
    Ok((bound, task))
}

/// `router` with the per-request limits: the body size limit (413) and the
/// request timeout (408, connection closed). [`serve`] applies it; a server
/// driven some other way (tests with `oneshot`) can apply it itself.
pub fn harden(router: Router, limits: &Limits) -> Router {
    router
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(middleware::from_fn(refusals))
}

/// A refusal's answer: JSON in the registry's error shape.
pub fn refusal(status: StatusCode, error: &str, message: &str) -> Response {
    let body = format!("{{\"error\":{},\"message\":{},\"errors\":[]}}", json_string(error), json_string(message));
    let mut resp =
        (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body may be half read: the connection cannot carry another request.
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Turns the bare 408 and 413 of the layers below into JSON answers, and logs them.
async fn refusals(req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let (error, message) = match status {
        StatusCode::REQUEST_TIMEOUT => {
            ("request_timeout", "the request was not complete in time; the connection is closed")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the request body is over this server's limit"),
        _ => return resp,
    };
    let peer = peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
    tracing::warn!(%peer, %method, path, status = status.as_u16(), "request refused: {error}");
    if is_json {
        return resp;
    }
    refusal(status, error, message)
}

/// Serves `router` (hardened with [`harden`]) on `listener` under `limits`,
/// over TLS when `tls` is given, until `shutdown` resolves; then stops
/// accepting and gives the requests in flight up to `request_timeout` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = harden(router, &limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Answering a refused connection takes a task too: those are bounded as well.
    let refusing = Arc::new(Semaphore::new(limits.max_connections.clamp(1, 1024)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(MAX_HEAD_BYTES);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections = limits.max_connections, "connection refused: at the connection limit");
            if tls.is_none() {
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(refuse(stream, permit));
                }
            }
            continue;
        };
        let service = router.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let service = TowerToHyperService::new(service);
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let done = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                Some(tls) => match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "TLS handshake not done within the header timeout; closed");
                        return;
                    }
                },
            };
            if let Err(e) = done {
                if e.is_timeout() {
                    tracing::debug!(%peer, "connection closed: no complete request head within the header timeout");
                } else {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {:?}; closing them", limits.request_timeout);
    }
    Ok(())
}

/// Answers a connection over the bound with 429 and closes it, reading what
/// the client sent meanwhile (at most a second of it) so that it gets the
/// answer rather than a reset.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    const BODY: &str = "{\"error\":\"too_many_connections\",\"message\":\"the server is at its connection limit; \
                        retry in a second\",\"errors\":[]}";
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
