//! The distributed stages: each runs as its own process and talks to the others
//! through Kafka topics (DESIGN.md). The stage logic is the same as in
//! `streetscope run`; only the transport differs.
//!
//! - `topics`: creates the topics, idempotently.
//! - `ingest`: runs the cameras of the cameras-topic partitions assigned to this
//!   pod and produces frames.
//! - `detect`: consumes frames in the `detectors` group, produces detections.
//! - `aggregate`: consumes detections in the `aggregators` group, keeps each
//!   intersection's state (snapshots + replay), produces events, counts, alerts.

pub mod aggregate;
pub mod detect;
pub mod ingest;
pub mod topics;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::trace::TraceContext;

/// Where a distributed stage finds its configuration.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The cluster configuration (TOML: `[kafka]` and the stage sections).
    #[arg(long, env = "STREETSCOPE_CLUSTER_CONFIG")]
    pub cluster: PathBuf,
    /// Overrides `kafka.brokers` of the file.
    #[arg(long, env = "STREETSCOPE_BROKERS")]
    pub brokers: Option<String>,
    /// Serve /healthz, /status (JSON) and /metrics (Prometheus) on this address
    /// (e.g. 0.0.0.0:9464 for Kubernetes probes and scraping).
    #[arg(long, env = "STREETSCOPE_STATUS_ADDR")]
    pub status_addr: Option<std::net::SocketAddr>,
    /// Once asked to stop (SIGTERM, Ctrl-C), how long the stage may take to
    /// finish or hand back its work, commit and leave its group, in seconds;
    /// then it exits anyway. Keep it under the pod's termination grace period.
    #[arg(long, env = "STREETSCOPE_STOP_TIMEOUT", default_value_t = DEFAULT_STOP_TIMEOUT_S)]
    pub stop_timeout: f64,
    /// Join the stage's consumer group as this static member (Kafka's
    /// `group.instance.id`; e.g. the pod's name in a StatefulSet): restarted
    /// within the session timeout under the same id, the stage gets its
    /// partitions back without a rebalance. Used by ingest pods.
    #[arg(long, env = "STREETSCOPE_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,
}

/// The default of `--stop-timeout`: under Kubernetes' default termination
/// grace period of 30 s.
pub const DEFAULT_STOP_TIMEOUT_S: f64 = 25.0;

impl ClusterArgs {
    /// Reads and validates the configuration.
    pub fn load(&self) -> anyhow::Result<ClusterConfig> {
        let mut cfg = read_cluster_config(&self.cluster)?;
        if let Some(b) = &self.brokers {
            cfg.kafka.brokers = b.clone();
            if let Err(errs) = cfg.validate() {
                let list: Vec<String> = errs.iter().map(|e| format!("  - {e}")).collect();
                anyhow::bail!("--brokers: invalid configuration:\n{}", list.join("\n"));
            }
        }
        Ok(cfg)
    }
}

/// Reads and validates a cluster configuration file (the contracts crate does
/// no IO: it parses the text read here).
pub fn read_cluster_config(path: &std::path::Path) -> anyhow::Result<ClusterConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    Ok(ClusterConfig::from_toml_str(&text, &path.display().to_string(), path.parent())?)
}

/// Serves the stage's status endpoint when `--status-addr` asks for one. Must
/// be called inside the stage's runtime.
pub async fn serve_status(
    args: &ClusterArgs,
    cfg: &ClusterConfig,
    sources: crate::status::StatusSources,
) -> anyhow::Result<()> {
    if let Some(addr) = args.status_addr {
        let bound = crate::status::serve(addr, std::sync::Arc::new(sources), &cfg.status).await?;
        tracing::info!("status: {bound}/status  metrics: {bound}/metrics");
    }
    Ok(())
}

/// [`serve_status`], with `/readyz` following `ready`.
pub async fn serve_status_with(
    args: &ClusterArgs,
    cfg: &ClusterConfig,
    sources: crate::status::StatusSources,
    ready: crate::status::Readiness,
) -> anyhow::Result<()> {
    if let Some(addr) = args.status_addr {
        let bound = crate::status::serve_with(addr, std::sync::Arc::new(sources), ready, &cfg.status).await?;
        tracing::info!("status: {bound}/status  metrics: {bound}/metrics");
    }
    Ok(())
}

/// 24 bytes that differ between calls and processes, for trace and span ids
/// (not for secrets).
pub fn random_bytes() -> [u8; 24] {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; 24];
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// A new span id.
pub fn span_id() -> [u8; 8] {
    let mut s = [0; 8];
    s.copy_from_slice(&random_bytes()[..8]);
    s
}

/// The trace context of an incoming message continued by this stage, or a new
/// root when the message carried none.
pub fn continue_trace(incoming: Option<&[u8]>) -> TraceContext {
    incoming
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(TraceContext::parse)
        .map(|t| t.child(span_id()))
        .unwrap_or_else(|| TraceContext::root(random_bytes()))
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A multi-threaded runtime for a stage.
pub fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().thread_name(name).build()?)
}
