//! Changes to the set of cameras while a pipeline runs.
//!
//! Whatever holds the camera set — the watched config file of `streetscope run`,
//! the compacted `streetscope.cameras` topic of the registry — speaks to ingest
//! and aggregate in [`CameraChange`]s: a camera is added or updated (upsert,
//! keyed by its id) or removed (a tombstone). The consumers apply them one at a
//! time and touch no other camera. Changes carry cameras that have passed
//! validation; the producer checks them (and refuses a bad set as a whole).

use crate::config::CameraConfig;

/// One change to the camera set.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraChange {
    /// A camera is added, or replaces the camera of the same id.
    Upsert(CameraConfig),
    /// The camera of this id is removed (a no-op for an id not in the set).
    Remove { id: String },
}

impl CameraChange {
    /// The id of the camera the change is about.
    pub fn camera_id(&self) -> &str {
        match self {
            CameraChange::Upsert(c) => &c.id,
            CameraChange::Remove { id } => id,
        }
    }
}

/// The changes that turn the camera set `old` into `new`: removals first (in
/// `old`'s order), then upserts of the cameras that are new or differ in any
/// field (in `new`'s order). Cameras equal in both give no change.
pub fn diff(old: &[CameraConfig], new: &[CameraConfig]) -> Vec<CameraChange> {
    let mut changes: Vec<CameraChange> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.id == o.id))
        .map(|o| CameraChange::Remove { id: o.id.clone() })
        .collect();
    changes.extend(
        new.iter().filter(|n| old.iter().find(|o| o.id == n.id) != Some(*n)).map(|n| CameraChange::Upsert(n.clone())),
    );
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(id: &str, fps: f64) -> CameraConfig {
        let text = format!("id = {id:?}\nintersection = \"x\"\nsource = \"rtsp://h/{id}\"\nsample_fps = {fps}\n");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn diff_removes_adds_and_updates_only_what_changed() {
        let old = [cam("a", 5.0), cam("b", 5.0), cam("c", 5.0)];
        let new = [cam("c", 10.0), cam("a", 5.0), cam("d", 5.0)];
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            [
                CameraChange::Remove { id: "b".into() },
                CameraChange::Upsert(cam("c", 10.0)),
                CameraChange::Upsert(cam("d", 5.0)),
            ]
        );
        assert_eq!(changes.iter().map(CameraChange::camera_id).collect::<Vec<_>>(), ["b", "c", "d"]);
        assert!(diff(&new, &new).is_empty());
        assert_eq!(diff(&[], &old[..1]), [CameraChange::Upsert(cam("a", 5.0))]);
    }
}
