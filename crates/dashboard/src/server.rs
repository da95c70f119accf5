//! The web server: pages, their JSON, live updates as server-sent events, and
//! the snapshots. Read-only: every route is a GET. Assets are compiled into
//! the binary (`include_str!`): nothing is fetched from the internet, ever.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use streetscope_contracts::config::CameraConfig;
use streetscope_contracts::http::HttpServerConfig;
use streetscope_contracts::records::ResultRecord;
use streetscope_contracts::snapshots::{SnapshotMeta, SnapshotOverlay, SnapshotPolicy};
use streetscope_contracts::{Frame, FrameDetections};
use streetscope_http::{Bound, HttpError};
use streetscope_registry::auth::Tokens;
use tokio::sync::watch;

use crate::snapshot::SnapshotStore;
use crate::view::Dashboard;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// Updates to one browser at most this often: a burst of records is one update.
const COALESCE: Duration = Duration::from_millis(200);

/// The cookie that holds a browser's token (`EventSource` cannot send headers).
const TOKEN_COOKIE: &str = "streetscope_token";

#[derive(Debug)]
struct Shared {
    state: Mutex<Dashboard>,
    snapshots: Mutex<SnapshotStore>,
    changed: watch::Sender<u64>,
}

/// The dashboard's state, shared by whoever feeds it (the run's results, a
/// Kafka reader) and the server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DashboardHandle(Arc<Shared>);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DashboardHandle {
    pub fn new(cameras: &[CameraConfig], policy: SnapshotPolicy) -> Self {
        Self(Arc::new(Shared {
            state: Mutex::new(Dashboard::new(cameras)),
            snapshots: Mutex::new(SnapshotStore::new(policy)),
            changed: watch::channel(0).0,
        }))
    }

    fn notify(&self, version: u64) {
        self.0.changed.send_replace(version);
    }

    fn bump(&self) {
        self.0.changed.send_modify(|v| *v += 1);
    }

    /// Reads or changes the state (the caller's change is pushed to the browsers).
    pub fn with<R>(&self, f: impl FnOnce(&mut Dashboard) -> R) -> R {
        let (r, v) = {
            let mut s = lock(&self.0.state);
            let before = s.version();
            let r = f(&mut s);
            (r, (s.version() != before).then(|| s.version()))
        };
        if v.is_some() {
            self.bump();
        }
        r
    }

    /// A result record, received now.
    pub fn apply(&self, rec: &ResultRecord) {
        let v = {
            let mut s = lock(&self.0.state);
            s.apply(rec, now_ms());
            s.version()
        };
        self.notify(v);
    }

    pub fn upsert_camera(&self, spec: CameraConfig) {
        self.with(|d| d.upsert_camera(spec));
    }

    pub fn remove_camera(&self, id: &str) {
        self.with(|d| d.remove_camera(id));
    }

    pub fn set_camera_state(&self, id: &str, state: &str) {
        self.with(|d| d.set_camera_state(id, state));
    }

    /// A frame of `streetscope run` (kept only if it is a due snapshot).
    pub fn offer_frame(&self, f: &Frame) {
        let fps = lock(&self.0.state).camera_spec(&f.camera_id).map(|c| c.sample_fps);
        if let Some(fps) = fps {
            lock(&self.0.snapshots).offer_frame(f, fps);
        }
    }

    /// The detections of a frame of `streetscope run`.
    pub fn offer_detections(&self, fd: &FrameDetections) {
        if lock(&self.0.snapshots).offer_detections(fd) {
            self.bump();
        }
    }

    /// A snapshot from `streetscope.camera-snapshots` (picture and objects).
    pub fn snapshot(&self, meta: SnapshotMeta, jpeg: Arc<[u8]>) {
        if lock(&self.0.snapshots).snapshot(meta, jpeg) {
            self.bump();
        }
    }

    /// The aggregator's overlay of a snapshot's frame (track ids per box), from
    /// `streetscope.camera-snapshots` or `streetscope run`'s aggregate stage.
    pub fn overlay(&self, overlay: SnapshotOverlay) {
        if lock(&self.0.snapshots).overlay(overlay) {
            self.bump();
        }
    }

    /// Whether `camera`'s latest snapshot is of frame `seq`: in `streetscope
    /// run` the aggregate stage asks this of every frame, to send the
    /// overlay of the few that are.
    pub fn shows(&self, camera: &str, seq: u64) -> bool {
        lock(&self.0.snapshots).latest(camera).is_some_and(|s| s.meta.frame_seq == seq)
    }

    /// The JSON a page shows.
    pub fn page(&self, page: &PageQuery) -> serde_json::Value {
        let snap = page.id.as_deref().and_then(|id| {
            lock(&self.0.snapshots).latest(id).map(|s| {
                let ids: Vec<u64> = s.meta.objects.iter().filter_map(|o| o.track_id).collect();
                (s.meta.frame_seq, s.meta.capture_time_ms, s.meta.objects.len(), ids)
            })
        });
        let s = lock(&self.0.state);
        let v = match (page.page.as_str(), page.id.as_deref()) {
            ("intersection", Some(id)) => s.intersection_view(id).map(serde_json::to_value),
            ("camera", Some(id)) => s.camera_view(id).map(|v| {
                serde_json::to_value(v).map(|mut v| {
                    v["snapshot"] = match snap {
                        Some((seq, t, n, ids)) => {
                            serde_json::json!({ "frame_seq": seq, "capture_time_ms": t, "objects": n, "track_ids": ids })
                        }
                        None => serde_json::Value::Null,
                    };
                    v
                })
            }),
            _ => Some(serde_json::to_value(s.overview())),
        };
        match v {
            Some(Ok(v)) => v,
            Some(Err(e)) => serde_json::json!({ "error": e.to_string() }),
            None => serde_json::json!({ "missing": page.id }),
        }
    }
}

/// Which page's figures: `overview`, `intersection` or `camera` (with `id`).
#[derive(Debug, Clone, Deserialize)]
pub struct PageQuery {
    #[serde(default = "overview")]
    pub page: String,
    pub id: Option<String>,
}

fn overview() -> String {
    "overview".into()
}

/// How the server is reached.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Bearer tokens (the registry's format); none: open (bind to loopback).
    pub tokens: Option<Tokens>,
    /// Request limits, connection bound and TLS (the `[dashboard]` section).
    pub http: HttpServerConfig,
}

/// Binds `addr` and serves the dashboard on `streetscope-http` (the limits
/// and TLS of `opts.http`) until the runtime ends; returns where it listens.
/// A live page's event stream is one long request: it holds one of the
/// connections of `max_connections` while the page is open.
pub async fn serve(addr: SocketAddr, handle: DashboardHandle, opts: ServeOptions) -> Result<Bound, HttpError> {
    let http = opts.http.clone();
    let (bound, task) =
        streetscope_http::start("dashboard", addr, router(handle, opts), &http, std::future::pending()).await?;
    tokio::spawn(async move {
        if let Ok(Err(e)) = task.await {
            tracing::error!("dashboard server stopped: {e}");
        }
    });
    Ok(bound)
}

/// The routes (public for tests that serve it themselves).
pub fn router(handle: DashboardHandle, opts: ServeOptions) -> Router {
    let page = || get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML) });
    let app = Router::new()
        .route("/", page())
        .route("/intersection/{id}", page())
        .route("/camera/{id}", page())
        .route("/assets/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/assets/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route(
            "/api/page",
            get(|State(h): State<DashboardHandle>, Query(q): Query<PageQuery>| async move { Json(h.page(&q)) }),
        )
        .route("/api/events", get(events))
        .route("/snapshot/{camera}", get(snapshot))
        .with_state(handle);
    let app = match opts.tokens {
        Some(tokens) => app.layer(middleware::from_fn_with_state(Arc::new(tokens), authorise)),
        None => app,
    };
    app.route("/healthz", get(|| async { "ok\n" }))
}

/// Live figures of one page: the state now, then again after each change
/// (coalesced), as `state` events.
async fn events(
    State(h): State<DashboardHandle>,
    Query(q): Query<PageQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = h.0.changed.subscribe();
    let s = stream::unfold((h, q, rx, true), |(h, q, mut rx, first)| async move {
        if !first {
            rx.changed().await.ok()?;
            tokio::time::sleep(COALESCE).await;
        }
        rx.borrow_and_update();
        let data = h.page(&q).to_string();
        Some((Ok(Event::default().event("state").data(data)), (h, q, rx, false)))
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}

async fn snapshot(State(h): State<DashboardHandle>, Path(camera): Path<String>) -> Response {
    let drawn = tokio::task::spawn_blocking(move || {
        let spec = lock(&h.0.state).camera_spec(&camera).cloned();
        let mut store = lock(&h.0.snapshots);
        let drawn = store.drawn(&camera, spec.as_ref());
        // The track ids drawn, box order: for tests and tools (the picture has them too).
        let ids = store.latest(&camera).map_or_else(String::new, |s| {
            s.meta.objects.iter().filter_map(|o| o.track_id).map(|id| id.to_string()).collect::<Vec<_>>().join(",")
        });
        drawn.map(|d| d.map(|(seq, jpeg)| (seq, jpeg, ids)))
    })
    .await;
    match drawn {
        Ok(Some(Ok((seq, jpeg, ids)))) => (
            [
                (header::CONTENT_TYPE, "image/jpeg".to_owned()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (header::HeaderName::from_static("x-frame-seq"), seq.to_string()),
                (header::HeaderName::from_static("x-track-ids"), ids),
            ],
            jpeg.to_vec(),
        )
            .into_response(),
        Ok(Some(Err(e))) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no snapshot of this camera yet\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A token from `Authorization: Bearer`, the cookie, or `?token=` (which
/// sets the cookie and redirects to the same page without it, so that it
/// leaves the address bar and the history).
async fn authorise(State(tokens): State<Arc<Tokens>>, req: Request, next: Next) -> Response {
    let from_query =
        req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))).map(percent_decode);
    if let Some(t) = from_query {
        if tokens.role_of(&t).is_none() {
            return unauthorised();
        }
        let path = req.uri().path().to_owned();
        let mut r = Redirect::to(&path).into_response();
        let cookie = format!("{TOKEN_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = cookie.parse() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    match presented(req.headers()) {
        Some(t) if tokens.role_of(&t).is_some() => next.run(req).await,
        _ => unauthorised(),
    }
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a token is needed: Authorization: Bearer TOKEN, or open the page once with ?token=TOKEN\n",
    )
        .into_response()
}

fn presented(h: &HeaderMap) -> Option<String> {
    if let Some(t) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(t.trim().to_owned());
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(TOKEN_COOKIE).and_then(|r| r.strip_prefix('=')).map(str::to_owned))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
