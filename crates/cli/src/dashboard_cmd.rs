//! The traffic dashboard (`streetscope-dashboard`) wired to its sources:
//! `streetscope run --ui ADDR` feeds it the run's own results, frames and
//! detections in-process (this module's [`RunUi`] and [`Tap`]);
//! `streetscope dashboard` reads the result topics and the registry's cameras
//! from Kafka ([`dashboard`]).

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
        tokio::select! {
            _ = feed => {}
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

async fn shutdown() {
    RunUi::wait_for_signal().await;
}
