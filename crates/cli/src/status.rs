//! The HTTP status endpoint of `streetscope run --status-addr`: `/healthz`
//! (liveness), `/readyz` (readiness: the stage can work now, see [`Readiness`]),
//! `/status` (JSON: each camera's state, counters and last error — never a
//! password — and each stage's throughput) and `/metrics` (Prometheus, defined
//! in `streetscope-telemetry`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use streetscope_contracts::http::HttpServerConfig;
use streetscope_ingest::reconcile::CameraStatuses;
use streetscope_ingest::CameraState;
use streetscope_telemetry::metrics::{render_with, CameraSample, DeliveryBoard};
use streetscope_telemetry::StageMeter;

/// What the endpoint reads from the running pipeline. The camera set changes
/// while it runs: each request reads the cameras in the set at that moment.
#[derive(Debug)]
pub struct StatusSources {
    pub cameras: CameraStatuses,
    /// Frames dropped under back-pressure, per camera.
    pub drops: DropCounters,
    pub stages: Vec<StageMeter>,
    /// What reached the aggregator per camera (aggregating stages).
    pub delivery: DeliveryBoard,
}

pub use streetscope_pipeline::cameras::DropCounters;

/// Whether a stage can do its work now: `/readyz` answers 200 only when every
/// condition the stage declared is met (e.g. `model` warmed, `group` joined
/// with partitions assigned, `state` restored), else 503 naming the pending
/// ones. Kubernetes' readiness probe reads it, so a rolling update waits until
/// a new detector really consumes before it stops the next old one. Clones
/// share the state. A stage that declares no condition is ready as soon as its
/// status endpoint serves (it is started after the stage's set-up).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<std::sync::Mutex<BTreeMap<&'static str, bool>>>);

// The distributed stages declare and set their conditions through `serve_with`
// (model warmed in `detect`, group joined in each consumer, state restored in
// `aggregate`): until they do, only the tests use these.
#[allow(dead_code)]
impl Readiness {
    /// Readiness with these conditions, none met yet.
    pub fn pending(conditions: &[&'static str]) -> Self {
        Self(Arc::new(std::sync::Mutex::new(conditions.iter().map(|c| (*c, false)).collect())))
    }

    /// Marks `condition` met or not (a detector that loses its group is not
    /// ready again until it rejoins). An undeclared condition is added.
    pub fn set(&self, condition: &'static str, met: bool) {
        self.lock().insert(condition, met);
    }

    /// The conditions not met, in name order; empty when ready.
    pub fn unmet(&self) -> Vec<&'static str> {
        self.lock().iter().filter(|(_, met)| !**met).map(|(c, _)| *c).collect()
    }

    pub fn is_ready(&self) -> bool {
        self.unmet().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, bool>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `/readyz`: 200 `ready`, or 503 with the unmet conditions.
fn readyz(ready: &Readiness) -> (StatusCode, String) {
    match ready.unmet() {
        unmet if unmet.is_empty() => (StatusCode::OK, "ready\n".to_owned()),
        unmet => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", unmet.join(", "))),
    }
}

#[derive(Debug, Serialize)]
struct CameraJson {
    camera_id: String,
    source: String,
    state: &'static str,
    /// Seconds until the next attempt, when backing off.
    retry_in_s: Option<f64>,
    since_unix_ms: u64,
    frames: u64,
    reconnects: u64,
    frames_dropped: u64,
    last_error: Option<String>,
    last_frame_unix_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct StageJson {
    stage: String,
    items: u64,
    errors: u64,
    busy_s: f64,
}

#[derive(Debug, Serialize)]
struct StatusJson {
    cameras: Vec<CameraJson>,
    stages: Vec<StageJson>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl StatusSources {
    /// The sources of a stage without cameras (a detector, an aggregator).
    pub fn of_stage(meter: &StageMeter) -> Self {
        Self {
            cameras: CameraStatuses::default(),
            drops: DropCounters::default(),
            stages: vec![meter.clone()],
            delivery: DeliveryBoard::default(),
        }
    }

    fn dropped(&self, camera: &str) -> u64 {
        self.drops.of(camera)
    }

    fn status(&self) -> StatusJson {
        let cameras = self
            .cameras
            .handles()
            .iter()
            .map(|h| {
                let s = h.snapshot();
                CameraJson {
                    frames_dropped: self.dropped(&s.camera_id),
                    retry_in_s: match &s.state {
                        CameraState::BackingOff { retry_in, .. } => Some(retry_in.as_secs_f64()),
                        _ => None,
                    },
                    state: s.state.name(),
                    camera_id: s.camera_id,
                    source: s.source,
                    since_unix_ms: unix_ms(s.since),
                    frames: s.frames,
                    reconnects: s.reconnects,
                    last_error: s.last_error,
                    last_frame_unix_ms: s.last_frame_at.map(unix_ms),
                }
            })
            .collect();
        let stages = self
            .stages
            .iter()
            .map(|m| {
                let s = m.stats();
                StageJson { stage: s.name, items: s.items, errors: s.errors, busy_s: s.busy_s }
            })
            .collect();
        StatusJson { cameras, stages }
    }

    fn metrics(&self) -> String {
        let cameras: Vec<CameraSample> = self
            .cameras
            .handles()
            .iter()
            .map(|h| {
                let s = h.snapshot();
                CameraSample {
                    dropped_backpressure: self.dropped(&s.camera_id),
                    state: s.state.name(),
                    camera: s.camera_id,
                    frames: s.frames,
                    reconnects: s.reconnects,
                }
            })
            .collect();
        let stages: Vec<_> = self.stages.iter().map(StageMeter::stats).collect();
        render_with(&cameras, &stages, &self.delivery.samples())
    }
}

/// Binds `addr` and serves, with the limits and TLS of `http` (the `[status]`
/// section), until the runtime ends; returns where it listens.
/// `/readyz` is ready as soon as it serves (no conditions): see [`serve_with`].
pub async fn serve(
    addr: SocketAddr,
    sources: Arc<StatusSources>,
    http: &HttpServerConfig,
) -> anyhow::Result<streetscope_http::Bound> {
    serve_with(addr, sources, Readiness::default(), http).await
}

/// [`serve`], with `/readyz` following `ready`.
pub async fn serve_with(
    addr: SocketAddr,
    sources: Arc<StatusSources>,
    ready: Readiness,
    http: &HttpServerConfig,
) -> anyhow::Result<streetscope_http::Bound> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(move || async move { readyz(&ready) }))
        .route("/status", get(|State(s): State<Arc<StatusSources>>| async move { Json(s.status()) }))
        .route(
            "/metrics",
            get(|State(s): State<Arc<StatusSources>>| async move {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics())
                    .into_response()
            }),
        )
        .with_state(sources);
    // The limits of every Streetscope HTTP server (body, timeouts, connections), and TLS.
    let (bound, task) = streetscope_http::start("status endpoint", addr, app, http, std::future::pending())
        .await
        .with_context(|| format!("serving the status endpoint on {addr}"))?;
    tokio::spawn(async move {
        if let Ok(Err(e)) = task.await {
            tracing::error!("status endpoint stopped: {e}");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod readiness_tests {
    use super::*;

    /// `/readyz` is 503 naming what is pending until the stage marks it met,
    /// and 503 again when it is lost; `/healthz` stays 200 throughout.
    #[test]
    fn readyz_follows_the_conditions() {
        // A multi-threaded runtime serves from its workers while the test asks.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let ready = Readiness::pending(&["group", "model"]);
        let sources = Arc::new(StatusSources::of_stage(&StageMeter::new("detect")));
        let bound = rt
            .block_on(serve_with("127.0.0.1:0".parse().unwrap(), sources, ready.clone(), &Default::default()))
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let get = |path: &str| {
            let mut r = agent.get(&format!("{bound}{path}")).call().unwrap();
            (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
        };
        assert_eq!(get("/readyz"), (503, "not ready: group, model\n".to_owned()));
        ready.set("model", true);
        assert_eq!(get("/readyz"), (503, "not ready: group\n".to_owned()));
        ready.set("group", true);
        assert_eq!(get("/readyz"), (200, "ready\n".to_owned()));
        assert!(ready.is_ready());
        ready.set("group", false);
        assert_eq!(get("/readyz").0, 503);
        assert_eq!(get("/healthz").0, 200);
    }

    /// The `[status]` section limits the endpoint: its connection bound (429
    /// beyond it) and its body limit (413 before anything is read). The
    /// limits themselves are tested at length on the dashboard and the
    /// registry, which serve the same way.
    #[test]
    fn the_status_section_limits_the_endpoint() {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        use std::time::{Duration, Instant};
        let answer = |s: &mut TcpStream| {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => {
                        got.extend_from_slice(format!("<{e}>").as_bytes());
                        break;
                    }
                }
            }
            String::from_utf8_lossy(&got).into_owned()
        };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let http = HttpServerConfig { max_connections: 1, max_body_bytes: 4096, ..Default::default() };
        let sources = Arc::new(StatusSources::of_stage(&StageMeter::new("detect")));
        let bound = rt.block_on(serve("127.0.0.1:0".parse().unwrap(), sources, &http)).unwrap();
        // Half a request head holds the only connection slot.
        let mut held = TcpStream::connect(bound.addr).unwrap();
        held.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut s = TcpStream::connect(bound.addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let refused = answer(&mut s);
        assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
        drop((s, held));
        // The slot comes free; then a body declared over the limit is refused unread.
        let start = Instant::now();
        loop {
            let mut s = TcpStream::connect(bound.addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 4097\r\n\r\n").unwrap();
            let text = answer(&mut s);
            if text.starts_with("HTTP/1.1 413") {
                break;
            }
            // Until the server has seen the held connection close: refused,
            // with a 429 while a refusal's answer is free, else closed unanswered
            // — reset if the request had reached the server, an empty answer if
            // the server closed first.
            assert!(text.starts_with("HTTP/1.1 429") || text.contains("reset") || text.is_empty(), "{text:?}");
            assert!(start.elapsed() < Duration::from_secs(5), "the held slot never came free");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
