//! Telemetry: logging set-up, per-stage throughput meters, Prometheus metrics
//! and OpenTelemetry spans.
//!
//! One place defines how the process logs ([`init_logging`]), how a stage
//! measures itself ([`StageMeter`]; the CLI reads the meters for its progress
//! line and the run summary), which metrics it exports ([`metrics`]) and
//! which spans it records ([`spans`]).

pub mod metrics;
pub mod spans;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing_subscriber::EnvFilter;

/// Sets up logging to stderr. `RUST_LOG` overrides `default_level`
/// (e.g. `RUST_LOG=streetscope_ingest=debug`). ONNX Runtime's own chatter is
/// kept at warnings unless `RUST_LOG` says otherwise. Safe to call more than once.
pub fn init_logging(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default_level},ort=warn")));
    // Colours only on a terminal: log files and container logs get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
}

/// Counts what a stage did and how long it worked (not counting waits for input
/// or for room downstream). Cheap to clone and to update from any thread.
#[derive(Debug, Clone)]
pub struct StageMeter {
    inner: Arc<MeterInner>,
}

#[derive(Debug)]
struct MeterInner {
    name: String,
    items: AtomicU64,
    errors: AtomicU64,
    busy_ns: AtomicU64,
}

/// A snapshot of a meter.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStats {
    pub name: String,
    pub items: u64,
    pub errors: u64,
    pub busy_s: f64,
}

impl StageStats {
    /// Items per second of work: what the stage alone could sustain.
    pub fn items_per_s(&self) -> f64 {
        if self.busy_s > 0.0 {
            self.items as f64 / self.busy_s
        } else {
            0.0
        }
    }
}

impl StageMeter {
    pub fn new(name: &str) -> Self {
        Self {
            inner: Arc::new(MeterInner {
                name: name.to_owned(),
                items: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                busy_ns: AtomicU64::new(0),
            }),
        }
    }

    /// Runs `f`, adding its duration to the busy time.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.add_busy(start.elapsed().as_nanos() as u64);
        out
    }

    pub fn add_busy(&self, ns: u64) {
        self.inner.busy_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// One item done.
    pub fn item(&self) {
        self.inner.items.fetch_add(1, Ordering::Relaxed);
    }

    /// One item failed.
    pub fn error(&self) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn items(&self) -> u64 {
        self.inner.items.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> StageStats {
        StageStats {
            name: self.inner.name.clone(),
            items: self.items(),
            errors: self.inner.errors.load(Ordering::Relaxed),
            busy_s: self.inner.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_counts_items_and_busy_time() {
        let m = StageMeter::new("detect");
        let clone = m.clone();
        clone.time(|| std::thread::sleep(std::time::Duration::from_millis(20)));
        clone.item();
        clone.item();
        m.error();
        let s = m.stats();
        assert_eq!((s.name.as_str(), s.items, s.errors), ("detect", 2, 1));
        assert!(s.busy_s >= 0.02 && s.busy_s < 1.0, "{s:?}");
        assert!(s.items_per_s() > 0.0 && s.items_per_s() <= 100.0);
        assert_eq!(StageMeter::new("x").stats().items_per_s(), 0.0);
    }
}
