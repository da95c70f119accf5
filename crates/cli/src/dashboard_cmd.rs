//! The traffic dashboard (`streetscope-dashboard`) wired to its sources:
//! `streetscope run --ui ADDR` feeds it the run's own results, frames and
//! detections in-process (this module's [`RunUi`] and [`Tap`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use streetscope_contracts::config::CameraConfig;
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
    /// Serves the dashboard on `addr` for `cameras`, their states read from
    /// ingest's `statuses` every second. Prints where it is.
    pub async fn start(addr: SocketAddr, cameras: &[CameraConfig], statuses: CameraStatuses) -> anyhow::Result<Self> {
        let handle = DashboardHandle::new(cameras, SnapshotPolicy::default());
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "the dashboard of `run --ui` has no tokens: it is open to anyone who reaches {addr} (use 127.0.0.1, \
                 or `streetscope dashboard --tokens-file` for an exposed one)"
            );
        }
        let bound = streetscope_dashboard::serve(addr, handle.clone(), ServeOptions::default())
            .await
            .with_context(|| format!("binding the dashboard address {addr}"))?;
        eprintln!("dashboard: http://{bound}/");
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
    fn next(&mut self) -> impl Future<Output = Option<Frame>> + Send {
        async move {
            let f = self.inner.next().await?;
            if let Some(ui) = &self.ui {
                ui.offer_frame(&f);
            }
            Some(f)
        }
    }
}

impl<S: Subscribe<FrameDetections>> Subscribe<FrameDetections> for Tap<S> {
    fn next(&mut self) -> impl Future<Output = Option<FrameDetections>> + Send {
        async move {
            let fd = self.inner.next().await?;
            if let Some(ui) = &self.ui {
                ui.offer_detections(&fd);
            }
            Some(fd)
        }
    }
}
