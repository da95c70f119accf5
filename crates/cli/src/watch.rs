//! The config file of `streetscope run`, watched for changes to its cameras.
//!
//! About once a second the file's modification time and size are looked at; when
//! they changed, its text is read and hashed, and a new text is parsed and
//! validated like at start-up. A valid file's cameras are compared with the
//! running set and the differences go out as [`CameraChange`]s — to the
//! aggregate stage first (so it knows a new camera before its first detections),
//! then to ingest. An invalid file is logged with every field and value at fault
//! and ignored: the last good set keeps running. Changes outside `[[cameras]]`
//! take effect at the next start (a warning says so).
//!
//! Polling rather than file notifications: it works the same on every file
//! system (network mounts, Kubernetes ConfigMaps swapped by symlink), and a
//! second of latency does not matter for a camera set.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use streetscope_contracts::cameras::{diff, CameraChange};
use streetscope_contracts::config::PipelineConfig;

/// How often the config file is looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a version of the file cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok(Stamp { modified: m.modified().ok(), len: m.len() })
}

fn hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Watches `path` (whose last good contents were `running`) until either
/// receiver goes away; sends the changes of each valid edit.
pub async fn watch_cameras(
    path: PathBuf,
    running: PipelineConfig,
    interval: Duration,
    ingest: std::sync::mpsc::Sender<CameraChange>,
    aggregate: tokio::sync::mpsc::Sender<CameraChange>,
) {
    let origin = path.display().to_string();
    let mut last_stamp = stamp(&path).ok();
    let mut last_hash = std::fs::read_to_string(&path).ok().map(|t| hash(&t));
    let mut running = running;
    let mut unreadable = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if aggregate.is_closed() {
            return;
        }
        // Editors save by writing a new file and renaming it over the old one;
        // for a moment there may be none.
        let (now, text) = match stamp(&path).and_then(|s| Ok((s, std::fs::read_to_string(&path)?))) {
            Ok(v) => {
                unreadable = false;
                v
            }
            Err(e) => {
                if !unreadable {
                    tracing::warn!("{origin}: cannot read the config file ({e}); the cameras keep running");
                }
                unreadable = true;
                continue;
            }
        };
        if last_stamp == Some(now) {
            continue;
        }
        last_stamp = Some(now);
        let h = hash(&text);
        if last_hash == Some(h) {
            continue;
        }
        last_hash = Some(h);
        let cfg = match PipelineConfig::from_toml_str(&text, &origin, path.parent()) {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::error!("ignoring the edit, the cameras keep running as they were: {e}");
                continue;
            }
        };
        let changes = diff(&running.cameras, &cfg.cameras);
        let others_changed = {
            let (mut a, mut b) = (running.clone(), cfg.clone());
            a.cameras.clear();
            b.cameras.clear();
            a != b
        };
        if others_changed {
            tracing::warn!(
                "{origin}: settings outside [[cameras]] changed; they take effect at the next start \
                 (only cameras are changed while running)"
            );
        }
        if !changes.is_empty() {
            tracing::info!("{origin}: {} camera change(s)", changes.len());
        }
        for change in changes {
            if aggregate.send(change.clone()).await.is_err() || ingest.send(change).is_err() {
                return;
            }
        }
        running = cfg;
    }
}
