//! What an ingest pod makes of the compacted cameras topic: each message of an
//! assigned partition becomes (at most) one [`CameraChange`] for the pod's
//! [`Reconciler`](streetscope_ingest::reconcile::Reconciler) — the same
//! changes `streetscope run` makes of its watched configuration file. Pure: the
//! pod reads the topic and applies the changes.

use std::collections::HashMap;

use streetscope_contracts::cameras::CameraChange;
use streetscope_contracts::registry::CameraSpec;

/// A message of the cameras topic, decoded.
#[derive(Debug, Clone)]
pub enum SpecMessage {
    /// The camera's spec as the registry wrote it.
    Spec(Box<CameraSpec>),
    /// A tombstone: the camera was deleted.
    Tombstone,
}

impl From<CameraSpec> for SpecMessage {
    fn from(spec: CameraSpec) -> Self {
        SpecMessage::Spec(Box::new(spec))
    }
}

/// The cameras of this pod's partitions of the cameras topic, as the registry
/// last wrote them.
#[derive(Debug, Default)]
pub struct RegistryCameras {
    /// Per camera id: the partition it came from and its spec.
    known: HashMap<String, (i32, CameraSpec)>,
}

impl RegistryCameras {
    /// Takes message `m` of camera `id` from `partition`; returns the change it
    /// makes to the cameras that run here, or why it is a dead letter (the
    /// dead-letter reason, and the text).
    ///
    /// - an enabled spec: upsert (the reconciler restarts a running camera only
    ///   when its ingest settings changed);
    /// - a disabled spec, or a tombstone, of a camera that ran: remove;
    /// - a spec whose id is not its key (`camera_spec_key`), or that the
    ///   registry would refuse (`camera_spec_invalid`: whoever can write the
    ///   topic is not held to the registry's checks otherwise): refused, and a
    ///   camera it would have changed goes on as it was.
    pub fn message(
        &mut self,
        id: &str,
        partition: i32,
        m: SpecMessage,
    ) -> Result<Option<CameraChange>, (&'static str, String)> {
        match m {
            SpecMessage::Tombstone => {
                Ok(self.known.remove(id).filter(|(_, s)| s.enabled).map(|_| CameraChange::Remove { id: id.to_owned() }))
            }
            SpecMessage::Spec(spec) if spec.camera.id != id => {
                Err(("camera_spec_key", format!("camera spec id {:?} differs from its key {id:?}", spec.camera.id)))
            }
            SpecMessage::Spec(spec) => {
                let errors = spec.validate();
                if !errors.is_empty() {
                    // The values of FieldErrors hold no password; the text is
                    // cut at 2,000 characters (an id may be a megabyte long).
                    let list: Vec<String> = errors.iter().take(20).map(ToString::to_string).collect();
                    let text = format!("camera spec {id:?}: {} refused field(s): {}", errors.len(), list.join("; "));
                    return Err(("camera_spec_invalid", text.chars().take(2000).collect()));
                }
                let was_enabled = self.known.get(id).is_some_and(|(_, s)| s.enabled);
                let change = if spec.enabled {
                    Some(CameraChange::Upsert(spec.camera.clone()))
                } else if was_enabled {
                    Some(CameraChange::Remove { id: id.to_owned() })
                } else {
                    None
                };
                self.known.insert(id.to_owned(), (partition, *spec));
                Ok(change)
            }
        }
    }

    /// `partitions` moved to another pod: their cameras stop here.
    pub fn revoked(&mut self, partitions: &[i32]) -> Vec<CameraChange> {
        let mut gone: Vec<String> =
            self.known.iter().filter(|(_, (p, _))| partitions.contains(p)).map(|(id, _)| id.clone()).collect();
        gone.sort();
        gone.into_iter()
            .filter_map(|id| {
                let (_, spec) = self.known.remove(&id).expect("listed above");
                spec.enabled.then_some(CameraChange::Remove { id })
            })
            .collect()
    }

    /// Camera `id` ended by itself (a recording played to its end): its
    /// intersection, for the end-of-stream marker; None when the camera is no
    /// longer this pod's.
    pub fn ended(&self, id: &str) -> Option<String> {
        self.known.get(id).map(|(_, s)| s.camera.intersection.clone())
    }

    /// Enabled cameras of this pod's partitions.
    pub fn running(&self) -> usize {
        self.known.values().filter(|(_, s)| s.enabled).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, enabled: bool, line_x: f64) -> CameraSpec {
        serde_json::from_value(serde_json::json!({
            "id": id, "intersection": "x1", "source": "rtsp://127.0.0.1:8554/cam", "enabled": enabled,
            "lines": [{"name": "stop", "start": [line_x, 0.0], "end": [line_x, 1.0]}],
        }))
        .expect("a valid spec")
    }

    fn upsert_of(c: Option<CameraChange>) -> Option<String> {
        match c {
            Some(CameraChange::Upsert(c)) => Some(c.id),
            _ => None,
        }
    }

    #[test]
    fn specs_become_changes() {
        let mut r = RegistryCameras::default();
        assert_eq!(upsert_of(r.message("a", 0, spec("a", true, 0.5).into()).unwrap()).as_deref(), Some("a"));
        // An edit is an upsert too: the reconciler decides whether ingest restarts.
        assert!(matches!(r.message("a", 0, spec("a", true, 0.6).into()).unwrap(), Some(CameraChange::Upsert(_))));
        assert_eq!(
            r.message("a", 0, spec("a", false, 0.6).into()).unwrap(),
            Some(CameraChange::Remove { id: "a".into() })
        );
        assert_eq!(r.message("a", 0, spec("a", false, 0.6).into()).unwrap(), None, "disabled twice");
        assert_eq!(r.message("a", 0, SpecMessage::Tombstone).unwrap(), None, "deleted while disabled");
        assert_eq!(r.message("b", 1, SpecMessage::Tombstone).unwrap(), None, "never seen");
        r.message("b", 1, spec("b", true, 0.5).into()).unwrap();
        assert_eq!(r.message("b", 1, SpecMessage::Tombstone).unwrap(), Some(CameraChange::Remove { id: "b".into() }));
        assert_eq!(r.running(), 0);
    }

    #[test]
    fn a_spec_under_another_key_is_a_dead_letter() {
        let mut r = RegistryCameras::default();
        let (reason, e) = r.message("a", 0, spec("b", true, 0.5).into()).unwrap_err();
        assert_eq!(reason, "camera_spec_key");
        assert!(e.contains("\"b\"") && e.contains("\"a\""), "{e}");
        assert_eq!(r.running(), 0);
    }

    /// A spec written to the topic past the registry is held to its checks: a
    /// `template` (a file on this pod) or a quote in the source is refused, and
    /// the camera goes on with the spec it had.
    #[test]
    fn a_spec_the_registry_would_refuse_is_a_dead_letter() {
        let mut r = RegistryCameras::default();
        r.message("a", 0, spec("a", true, 0.5).into()).unwrap();
        let mut bad = spec("a", true, 0.6);
        bad.camera.template = Some("/dev/zero".into());
        bad.camera.source = "rtsp://h/a\"!fakesink".into();
        let (reason, e) = r.message("a", 0, bad.into()).unwrap_err();
        assert_eq!(reason, "camera_spec_invalid");
        assert!(e.starts_with("camera spec \"a\": 2 refused field(s): source"), "{e}");
        assert!(e.contains("template"), "{e}");
        assert_eq!(r.running(), 1);
        assert_eq!(r.ended("a").as_deref(), Some("x1"));
    }

    #[test]
    fn revoked_partitions_stop_their_cameras_only() {
        let mut r = RegistryCameras::default();
        for (id, p, on) in [("a", 0, true), ("b", 1, true), ("c", 1, false), ("d", 2, true)] {
            r.message(id, p, spec(id, on, 0.5).into()).unwrap();
        }
        let stopped = r.revoked(&[1, 3]);
        assert_eq!(stopped, [CameraChange::Remove { id: "b".into() }], "c was not running");
        assert_eq!(r.running(), 2);
        assert_eq!(r.ended("a").as_deref(), Some("x1"));
        assert_eq!(r.ended("b"), None, "no longer ours");
    }
}
