//! The traffic dashboard (`streetscope-dashboard`) wired to its sources:
//! `streetscope run --ui ADDR` feeds it the run's own results, frames and
//! detections in-process (this module's [`RunUi`] and [`Tap`]);
//! `streetscope dashboard` reads the result topics and the registry's cameras
//! from Kafka ([`dashboard`]), and the camera snapshots the detector pods write
//! ([`SnapshotWriter`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use streetscope_contracts::config::CameraConfig;
use streetscope_contracts::http::HttpServerConfig;
use streetscope_contracts::records::ResultRecord;
use streetscope_contracts::snapshots::SnapshotPolicy;
use streetscope_contracts::{Frame, FrameDetections};
use streetscope_dashboard::{DashboardHandle, ServeOptions};
use streetscope_ingest::reconcile::CameraStatuses;
use streetscope_transport::Subscribe;

/// The dashboard of `streetscope run --ui`.
#[derive(Debug, Clone)]
pub struct RunUi {
    handle: DashboardHandle,
}

impl RunUi {
    /// Serves the dashboard on `addr` for `cameras` with the limits and TLS of
    /// `http` (the `[dashboard]` section), their states read from ingest's
    /// `statuses` every second. Prints where it is.
    pub async fn start(
        addr: SocketAddr,
        cameras: &[CameraConfig],
        statuses: CameraStatuses,
        http: &HttpServerConfig,
    ) -> anyhow::Result<Self> {
        let handle = DashboardHandle::new(cameras, SnapshotPolicy::default());
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "the dashboard of `run --ui` has no tokens: it is open to anyone who reaches {addr} (use 127.0.0.1, \
                 or `streetscope dashboard --tokens-file` for an exposed one)"
            );
        }
        let opts = ServeOptions { tokens: None, http: http.clone() };
        let bound = streetscope_dashboard::serve(addr, handle.clone(), opts)
            .await
            .with_context(|| format!("serving the dashboard on {addr}"))?;
        eprintln!("dashboard: {bound}/");
        let h = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                for s in statuses.handles().iter().map(|h| h.snapshot()) {
                    h.set_camera_state(&s.camera_id, s.state.name());
                }
            }
        });
        Ok(Self { handle })
    }

    /// The aggregate stage's hook ([`AggregateStage::on_frame`]): the track
    /// ids of the frame the camera's latest snapshot shows, as its overlay. A
    /// lock and a comparison per frame; the overlay is built for the snapshots
    /// only (one frame per camera every 5 s).
    ///
    /// [`AggregateStage::on_frame`]: streetscope_aggregate::stage::AggregateStage::on_frame
    pub fn frame_hook(&self) -> streetscope_aggregate::stage::FrameHookFn {
        let handle = self.handle.clone();
        Box::new(move |fd: &FrameDetections, tracks: &[Option<u64>]| {
            if handle.shows(&fd.camera_id, fd.seq) {
                handle.overlay(streetscope_contracts::snapshots::SnapshotOverlay::of_detections(fd, tracks));
            }
        })
    }

    /// A result record of the run.
    pub fn record(&self, rec: &ResultRecord) {
        self.handle.apply(rec);
    }

    /// After the run: serves the final figures until Ctrl-C or SIGTERM.
    pub async fn linger(&self) {
        eprintln!("dashboard: the run is over; still serving its figures (Ctrl-C to stop)");
        Self::wait_for_signal().await;
    }

    /// Ctrl-C or SIGTERM.
    async fn wait_for_signal() {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    }
}

/// A stream of frames or detections that shows due snapshots to the dashboard
/// on the way (the frame's buffer is shared, not copied; without a dashboard
/// it is the stream itself).
#[derive(Debug)]
pub struct Tap<S> {
    inner: S,
    ui: Option<DashboardHandle>,
}

impl<S> Tap<S> {
    pub fn new(inner: S, ui: &Option<RunUi>) -> Self {
        Self { inner, ui: ui.as_ref().map(|u| u.handle.clone()) }
    }
}

impl<S: Subscribe<Frame>> Subscribe<Frame> for Tap<S> {
    async fn next(&mut self) -> Option<Frame> {
        let f = self.inner.next().await?;
        if let Some(ui) = &self.ui {
            ui.offer_frame(&f);
        }
        Some(f)
    }
}

impl<S: Subscribe<FrameDetections>> Subscribe<FrameDetections> for Tap<S> {
    async fn next(&mut self) -> Option<FrameDetections> {
        let fd = self.inner.next().await?;
        if let Some(ui) = &self.ui {
            ui.offer_detections(&fd);
        }
        Some(fd)
    }
}

/// The camera snapshots a detector pod writes for `streetscope dashboard`:
/// one frame per camera every [`SnapshotPolicy::interval_s`] of its capture
/// time, with what the detector saw in it, as one message on
/// `streetscope.camera-snapshots` (`snapshots::encode_message`).
///
/// Why the detector: it is the one stage that holds both the frame's JPEG (as
/// ingest encoded it; no second encoding) and its detections, so a snapshot is
/// whole when written — no second read of the frames topic, nothing more on it.
/// Track ids are the aggregator's: the detections of a snapshot's frame carry
/// the `streetscope.snapshot` header ([`SnapshotWriter::marks`]), and the
/// aggregator answers with the frame's overlay on the same topic, which the
/// dashboard joins to the picture.
///
/// A due frame's buffer is kept (shared, not copied) until its detections come
/// out of the stage; a frame shed or failed on the way costs one snapshot.
/// Writes are fire-and-forget: a lost snapshot is not a lost count, and the
/// stage never waits for one.
pub struct SnapshotWriter {
    producer: streetscope_transport::kafka::Producer,
    topic: String,
    interval_ms: i64,
    cameras: std::sync::Mutex<std::collections::HashMap<std::sync::Arc<str>, CameraSnapshot>>,
}

#[derive(Default)]
struct CameraSnapshot {
    /// Capture time of the last frame taken for a snapshot.
    last_ms: Option<i64>,
    /// That frame, until its detections come.
    pending: Option<Frame>,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter").field("topic", &self.topic).field("interval_ms", &self.interval_ms).finish()
    }
}

impl SnapshotWriter {
    pub fn new(producer: streetscope_transport::kafka::Producer, topic: &str, policy: SnapshotPolicy) -> Self {
        let interval_ms = (policy.interval_s * 1e3).round();
        let interval_ms = if interval_ms.is_finite() && interval_ms >= 1.0 { interval_ms as i64 } else { 1 };
        Self { producer, topic: topic.to_owned(), interval_ms, cameras: Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::sync::Arc<str>, CameraSnapshot>> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A frame the detector took: kept when it is due (its capture time at
    /// least the interval after the camera's last snapshot, or before it: a
    /// new run of the camera). Cheap: most frames are not due.
    pub fn offer_frame(&self, f: &Frame) {
        let mut cams = self.lock();
        let c = cams.entry(f.camera_id.clone()).or_default();
        let due = c.last_ms.is_none_or(|last| f.capture_time_ms >= last + self.interval_ms || f.capture_time_ms < last);
        if due {
            c.last_ms = Some(f.capture_time_ms);
            c.pending = Some(f.clone());
        }
    }

    /// Whether `fd` are the detections of a frame kept for a snapshot: their
    /// message then carries the `streetscope.snapshot` header, for the
    /// aggregator to answer with the frame's track ids.
    pub fn marks(&self, fd: &FrameDetections) -> bool {
        self.lock().get(&fd.camera_id).and_then(|c| c.pending.as_ref()).is_some_and(|f| f.seq == fd.seq)
    }

    /// The detections of a frame: when they are a kept frame's, its snapshot
    /// message (camera id, value). Never fails: a snapshot that cannot be
    /// made is logged.
    fn take(&self, fd: &FrameDetections) -> Option<(String, Vec<u8>)> {
        let frame = {
            let mut cams = self.lock();
            let c = cams.get_mut(&fd.camera_id)?;
            if c.pending.as_ref().is_none_or(|f| f.seq != fd.seq) {
                return None;
            }
            c.pending.take()?
        };
        match snapshot_message(&frame, fd) {
            Ok(v) => Some((fd.camera_id.to_string(), v)),
            Err(e) => {
                tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "camera snapshot not written: {e}");
                None
            }
        }
    }

    /// The detections of a frame, handed to the producer: when they are a kept
    /// frame's, its snapshot is written, on a task of its own and not awaited
    /// (a snapshot may be lost, never a count; the stage never waits for one).
    pub fn detections(&self, fd: &FrameDetections) {
        let Some((camera, value)) = self.take(fd) else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(camera, "camera snapshot not written: no runtime");
            return;
        };
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        rt.spawn(async move {
            if let Err(e) = producer.send(&topic, &camera, Some(&value), &[]).await {
                tracing::warn!(camera, "camera snapshot not written: {e}");
            }
        });
    }
}

/// The message of a frame's snapshot: its JPEG (RGB frames are encoded here,
/// once per snapshot) and its detections.
fn snapshot_message(f: &Frame, fd: &FrameDetections) -> anyhow::Result<Vec<u8>> {
    use streetscope_contracts::snapshots::{encode_message, SnapshotMeta, SnapshotObject};
    let jpeg: std::borrow::Cow<'_, [u8]> = match f.encoding {
        streetscope_contracts::FrameEncoding::Jpeg => std::borrow::Cow::Borrowed(&f.payload[..]),
        streetscope_contracts::FrameEncoding::Rgb8 => {
            let (w, h) = (f.letterbox.dst_w, f.letterbox.dst_h);
            let img = image::RgbImage::from_raw(w, h, f.payload.to_vec())
                .with_context(|| format!("an RGB frame of {} bytes is not {w}x{h}", f.payload.len()))?;
            std::borrow::Cow::Owned(streetscope_dashboard::snapshot::encode(&img)?)
        }
    };
    let meta = SnapshotMeta::of_frame(f, fd.detections.iter().map(SnapshotObject::detected).collect());
    Ok(encode_message(&meta, &jpeg))
}

/// How far back `streetscope dashboard` reads the camera snapshots at start:
/// enough for every live camera's latest (one every 5 s), not the topic's hour.
const SNAPSHOTS_LOOKBACK_MS: i64 = 60_000;

/// `streetscope dashboard`: the dashboard of a distributed deployment.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// The cluster configuration (TOML: `[kafka]` with its topics; `[dashboard]`:
    /// the server's request limits, connection bound and TLS).
    #[arg(long, env = "STREETSCOPE_CLUSTER_CONFIG")]
    pub cluster: std::path::PathBuf,
    /// Overrides `kafka.brokers` of the file.
    #[arg(long, env = "STREETSCOPE_BROKERS")]
    pub brokers: Option<String>,
    /// Where to serve the dashboard.
    #[arg(long, env = "STREETSCOPE_DASHBOARD_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bearer tokens that may read the dashboard, one per line (the registry's
    /// format; either role may read). Required to listen beyond loopback unless
    /// `--open`.
    #[arg(long, env = "STREETSCOPE_DASHBOARD_TOKENS_FILE")]
    pub tokens_file: Option<std::path::PathBuf>,
    /// Serve without tokens on a non-loopback address (a network of its own).
    #[arg(long)]
    pub open: bool,
    /// The city's offset from UTC in minutes: the day chart's bins are of the
    /// city's day.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub utc_offset_minutes: i32,
}

/// Serves the dashboard of the result topics (events, counts, alerts) and the
/// registry's cameras, read from their beginning (their retention: the day so
/// far) and then followed live. Runs until Ctrl-C or SIGTERM.
pub fn dashboard(args: DashboardArgs) -> anyhow::Result<std::process::ExitCode> {
    let cluster = crate::cluster::ClusterArgs {
        cluster: args.cluster.clone(),
        brokers: args.brokers.clone(),
        status_addr: None,
        stop_timeout: crate::cluster::DEFAULT_STOP_TIMEOUT_S,
        group_instance_id: None,
    }
    .load()?;
    let tokens = match &args.tokens_file {
        Some(path) => Some(streetscope_registry::auth::Tokens::from_file(path)?),
        None if args.listen.ip().is_loopback() || args.open => None,
        None => anyhow::bail!(
            "--listen {} is reachable from other machines: give --tokens-file (bearer tokens, the registry's format) \
             or --open to serve without tokens",
            args.listen
        ),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("dashboard")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let handle = DashboardHandle::new(&[], SnapshotPolicy::default());
        handle.with(|d| d.day_offset_ms = i64::from(args.utc_offset_minutes) * 60_000);
        let kafka = cluster.kafka.clone();
        let t = &kafka.topics;
        let topics = [t.cameras.name.clone(), t.events.name.clone(), t.counts.name.clone(), t.alerts.name.clone()];
        let follower = {
            let (kafka, topics) = (kafka.clone(), topics.clone());
            tokio::task::spawn_blocking(move || {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                streetscope_transport::kafka::TableFollower::new(&kafka, &names)
            })
            .await
            .context("the topic reader panicked")??
        };
        // The camera snapshots: only the last minute's (the latest per camera).
        let snapshots = {
            let (kafka, topic) = (kafka.clone(), t.camera_snapshots.name.clone());
            tokio::task::spawn_blocking(move || {
                let since = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
                    - SNAPSHOTS_LOOKBACK_MS;
                streetscope_transport::kafka::TableFollower::since(&kafka, &[&topic], since)
            })
            .await
            .context("the snapshots reader panicked")??
        };
        let opts = ServeOptions { tokens, http: cluster.dashboard.clone() };
        let bound = streetscope_dashboard::serve(args.listen, handle.clone(), opts)
            .await
            .with_context(|| format!("serving the dashboard on {}", args.listen))?;
        eprintln!("dashboard: {bound}/ (topics {})", topics.join(", "));
        let feed = {
            let handle = handle.clone();
            let cameras = topics[0].clone();
            async move {
                let mut caught_up = false;
                loop {
                    let rec = follower.next().await;
                    apply_message(&handle, &cameras, &rec.topic, &rec.key, rec.value.as_deref());
                    if !caught_up && follower.caught_up() {
                        caught_up = true;
                        tracing::info!("dashboard: read the topics to their end; following them live");
                    }
                }
            }
        };
        let snapshots_feed = {
            let handle = handle.clone();
            async move {
                loop {
                    let rec = snapshots.next().await;
                    apply_snapshot(&handle, &rec.key, rec.value.as_deref());
                }
            }
        };
        tokio::select! {
            _ = feed => {}
            _ = snapshots_feed => {}
            _ = shutdown() => {}
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// One message of a followed topic: a camera spec (or its tombstone), or a
/// result record. What does not parse is logged and skipped.
pub fn apply_message(handle: &DashboardHandle, cameras_topic: &str, topic: &str, key: &str, value: Option<&[u8]>) {
    if topic == cameras_topic {
        match value.map(serde_json::from_slice::<streetscope_contracts::registry::CameraSpec>) {
            None => handle.remove_camera(key),
            Some(Ok(spec)) => handle.upsert_camera(spec.camera),
            Some(Err(e)) => tracing::warn!(topic, key, "skipping a camera spec that does not parse: {e}"),
        }
        return;
    }
    let Some(value) = value else { return };
    match serde_json::from_slice::<ResultRecord>(value) {
        Ok(rec) => handle.apply(&rec),
        Err(e) => tracing::warn!(topic, key, "skipping a record that does not parse: {e}"),
    }
}

/// One message of the camera snapshots topic: a detector's picture or the
/// aggregator's overlay of it. What does not decode, or names another camera
/// than its key, is logged and skipped.
pub fn apply_snapshot(handle: &DashboardHandle, key: &str, value: Option<&[u8]>) {
    use streetscope_contracts::snapshots::{decode_any, SnapshotMessage};
    let Some(value) = value else { return };
    match decode_any(value) {
        Ok(SnapshotMessage::Picture(meta, _)) if meta.camera_id != key => {
            tracing::warn!(key, camera = %meta.camera_id, "skipping a camera snapshot under another camera's key")
        }
        Ok(SnapshotMessage::Overlay(o)) if o.camera_id != key => {
            tracing::warn!(key, camera = %o.camera_id, "skipping a snapshot overlay under another camera's key")
        }
        Ok(SnapshotMessage::Picture(meta, jpeg)) => handle.snapshot(meta, jpeg.into()),
        Ok(SnapshotMessage::Overlay(o)) => handle.overlay(o),
        Err(e) => tracing::warn!(key, "skipping a camera snapshot: {e}"),
    }
}

async fn shutdown() {
    RunUi::wait_for_signal().await;
}
