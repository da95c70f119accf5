//! The registry's state: cameras and intersections, kept in two tables
//! ([`TableLog`]) and mirrored in memory.
//!
//! Every change is checked against the whole registry first, then written to
//! its table, and only once the write is durable applied to the view; a change
//! that fails a check writes nothing. Writes are serialised by one lock, so the
//! checks see every earlier write. The view is rebuilt from the tables alone
//! when the registry opens ([`Registry::open`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use streetscope_contracts::config::{valid_id, FieldError};
use streetscope_contracts::registry::{CameraSpec, IntersectionSpec};
use streetscope_transport::{TableError, TableLog};
use tokio::sync::RwLock;

use crate::redact::{redact_source, restore_secrets};

/// What kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Camera,
    Intersection,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Camera => "camera",
            Kind::Intersection => "intersection",
        }
    }
}

/// Why a registry operation was refused or failed. Messages and values never
/// hold a password.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The record is invalid; nothing was written.
    #[error("invalid {}: {}", .kind.name(), .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid { kind: Kind, errors: Vec<FieldError> },
    /// No record has this id.
    #[error("no {} has id {id:?}", .kind.name())]
    NotFound { kind: Kind, id: String },
    /// A record with this id exists already (create).
    #[error("a {} with id {id:?} exists already", .kind.name())]
    Exists { kind: Kind, id: String },
    /// The change would break a reference between records; nothing was written.
    #[error("{message}")]
    Conflict { message: String, errors: Vec<FieldError> },
    /// The table could not be read or written.
    #[error(transparent)]
    Storage(#[from] TableError),
}

#[derive(Debug, Default)]
struct View {
    cameras: BTreeMap<String, CameraSpec>,
    intersections: BTreeMap<String, IntersectionSpec>,
}

/// Counts of what the registry holds, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub cameras: u64,
    pub cameras_enabled: u64,
    pub intersections: u64,
    /// Records found in a table at open that did not parse and were skipped.
    pub skipped_records: u64,
}

/// How long a write to a table may take before the change is answered as
/// failed (503). Writes hold the registry's lock, so a broker that does not
/// answer must not stall every request.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// The camera registry over two tables of the same kind (in memory, or Kafka
/// compacted topics).
#[derive(Debug)]
pub struct Registry<T: TableLog> {
    cameras: T,
    intersections: T,
    view: RwLock<View>,
    skipped: AtomicU64,
    write_timeout: Duration,
}

impl<T: TableLog> Registry<T> {
    /// Opens the registry: reads both tables to their end and builds the view.
    /// A record that does not parse is logged (by key) and skipped.
    pub async fn open(cameras: T, intersections: T) -> Result<Self, RegistryError> {
        let registry = Self {
            cameras,
            intersections,
            view: RwLock::default(),
            skipped: AtomicU64::new(0),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        };
        registry.reload().await?;
        Ok(registry)
    }

    /// Sets how long a write may take before the change is answered as failed.
    /// A write that timed out may still land in the table later; the view
    /// then shows it only after a restart (or [`Registry::reload`]).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Rebuilds the view from the tables.
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let mut view = self.view.write().await;
        let (cams, cam_skipped) = read_table::<CameraSpec>(&self.cameras).await?;
        let (inters, int_skipped) = read_table::<IntersectionSpec>(&self.intersections).await?;
        self.skipped.store(cam_skipped + int_skipped, Ordering::Relaxed);
        view.cameras = cams;
        view.intersections = inters;
        tracing::info!(
            cameras = view.cameras.len(),
            intersections = view.intersections.len(),
            skipped = cam_skipped + int_skipped,
            "registry loaded from {} and {}",
            self.cameras.name(),
            self.intersections.name()
        );
        Ok(())
    }

    /// Counts for metrics.
    pub async fn counts(&self) -> Counts {
        let view = self.view.read().await;
        Counts {
            cameras: view.cameras.len() as u64,
            cameras_enabled: view.cameras.values().filter(|c| c.enabled).count() as u64,
            intersections: view.intersections.len() as u64,
            skipped_records: self.skipped.load(Ordering::Relaxed),
        }
    }

    /// Every camera, by id, as stored (with passwords: redact before showing).
    pub async fn cameras(&self) -> Vec<CameraSpec> {
        self.view.read().await.cameras.values().cloned().collect()
    }

    /// One camera as stored.
    pub async fn camera(&self, id: &str) -> Option<CameraSpec> {
        self.view.read().await.cameras.get(id).cloned()
    }

    /// Every intersection, by id.
    pub async fn intersections(&self) -> Vec<IntersectionSpec> {
        self.view.read().await.intersections.values().cloned().collect()
    }

    /// One intersection.
    pub async fn intersection(&self, id: &str) -> Option<IntersectionSpec> {
        self.view.read().await.intersections.get(id).cloned()
    }

    /// Creates a camera; refused if the id exists.
    pub async fn create_camera(&self, mut spec: CameraSpec) -> Result<CameraSpec, RegistryError> {
        let mut view = self.view.write().await;
        if view.cameras.contains_key(spec.id()) {
            return Err(RegistryError::Exists { kind: Kind::Camera, id: spec.id().to_owned() });
        }
        spec.camera.source = restore_secrets(&spec.camera.source, None).map_err(source_error(&spec))?;
        check_camera(&view, &spec)?;
        self.put(&self.cameras, spec.id(), &spec).await?;
        log_camera("camera created", &spec);
        view.cameras.insert(spec.id().to_owned(), spec.clone());
        Ok(spec)
    }

    /// Replaces the camera `id` with `spec` (whose id must be `id`). A source
    /// sent with `***` for the stored password keeps the stored password.
    pub async fn replace_camera(&self, id: &str, spec: CameraSpec) -> Result<CameraSpec, RegistryError> {
        let mut view = self.view.write().await;
        self.replace_camera_in(&mut view, id, spec).await
    }

    /// Applies a JSON merge patch (RFC 7386) to the stored camera `id` and
    /// replaces it with the result, under the same checks as a replacement.
    pub async fn patch_camera(&self, id: &str, patch: &serde_json::Value) -> Result<CameraSpec, RegistryError> {
        let mut view = self.view.write().await;
        let Some(old) = view.cameras.get(id) else {
            return Err(RegistryError::NotFound { kind: Kind::Camera, id: id.to_owned() });
        };
        let mut merged = serde_json::to_value(old).expect("registry records serialise");
        merge_patch(&mut merged, patch);
        let spec: CameraSpec = serde_json::from_value(merged).map_err(|e| parse_error(Kind::Camera, &e))?;
        self.replace_camera_in(&mut view, id, spec).await
    }

    async fn replace_camera_in(
        &self,
        view: &mut View,
        id: &str,
        mut spec: CameraSpec,
    ) -> Result<CameraSpec, RegistryError> {
        let Some(old) = view.cameras.get(id) else {
            return Err(RegistryError::NotFound { kind: Kind::Camera, id: id.to_owned() });
        };
        if spec.id() != id {
            return Err(id_mismatch(Kind::Camera, spec.id(), id));
        }
        spec.camera.source =
            restore_secrets(&spec.camera.source, Some(&old.camera.source)).map_err(source_error(&spec))?;
        check_camera(view, &spec)?;
        check_camera_still_fits_approaches(view, &spec)?;
        self.put(&self.cameras, id, &spec).await?;
        log_camera("camera updated", &spec);
        view.cameras.insert(id.to_owned(), spec.clone());
        Ok(spec)
    }

    /// Deletes a camera; refused while an intersection's approach uses it.
    pub async fn delete_camera(&self, id: &str) -> Result<(), RegistryError> {
        let mut view = self.view.write().await;
        if !view.cameras.contains_key(id) {
            return Err(RegistryError::NotFound { kind: Kind::Camera, id: id.to_owned() });
        }
        let users: Vec<&str> = view
            .intersections
            .values()
            .filter(|i| i.approaches.iter().any(|a| a.camera == id))
            .map(|i| i.id.as_str())
            .collect();
        if !users.is_empty() {
            return Err(RegistryError::Conflict {
                message: format!(
                    "camera {id:?} serves approaches of intersection {}: remove them from the intersection first",
                    users.join(", ")
                ),
                errors: Vec::new(),
            });
        }
        self.tombstone(&self.cameras, id).await?;
        tracing::info!(camera = id, "camera deleted");
        view.cameras.remove(id);
        Ok(())
    }

    /// Creates an intersection; refused if the id exists.
    pub async fn create_intersection(&self, spec: IntersectionSpec) -> Result<IntersectionSpec, RegistryError> {
        let mut view = self.view.write().await;
        if view.intersections.contains_key(&spec.id) {
            return Err(RegistryError::Exists { kind: Kind::Intersection, id: spec.id.clone() });
        }
        check_intersection(&view, &spec)?;
        self.put(&self.intersections, &spec.id, &spec).await?;
        tracing::info!(intersection = %spec.id, approaches = spec.approaches.len(), "intersection created");
        view.intersections.insert(spec.id.clone(), spec.clone());
        Ok(spec)
    }

    /// Replaces the intersection `id` with `spec` (whose id must be `id`).
    pub async fn replace_intersection(
        &self,
        id: &str,
        spec: IntersectionSpec,
    ) -> Result<IntersectionSpec, RegistryError> {
        let mut view = self.view.write().await;
        if !view.intersections.contains_key(id) {
            return Err(RegistryError::NotFound { kind: Kind::Intersection, id: id.to_owned() });
        }
        if spec.id != id {
            return Err(id_mismatch(Kind::Intersection, &spec.id, id));
        }
        check_intersection(&view, &spec)?;
        self.put(&self.intersections, id, &spec).await?;
        tracing::info!(intersection = id, approaches = spec.approaches.len(), "intersection updated");
        view.intersections.insert(id.to_owned(), spec.clone());
        Ok(spec)
    }

    /// Deletes an intersection; refused while cameras belong to it.
    pub async fn delete_intersection(&self, id: &str) -> Result<(), RegistryError> {
        let mut view = self.view.write().await;
        if !view.intersections.contains_key(id) {
            return Err(RegistryError::NotFound { kind: Kind::Intersection, id: id.to_owned() });
        }
        let cams: Vec<&str> = view.cameras.values().filter(|c| c.camera.intersection == id).map(|c| c.id()).collect();
        if !cams.is_empty() {
            return Err(RegistryError::Conflict {
                message: format!(
                    "intersection {id:?} has cameras ({}): delete them or move them to another intersection first",
                    cams.join(", ")
                ),
                errors: Vec::new(),
            });
        }
        self.tombstone(&self.intersections, id).await?;
        tracing::info!(intersection = id, "intersection deleted");
        view.intersections.remove(id);
        Ok(())
    }

    async fn put<V: Serialize>(&self, table: &T, key: &str, value: &V) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec(value).expect("registry records serialise");
        self.write(table, key, Some(bytes)).await
    }

    async fn tombstone(&self, table: &T, key: &str) -> Result<(), RegistryError> {
        self.write(table, key, None).await
    }

    async fn write(&self, table: &T, key: &str, value: Option<Vec<u8>>) -> Result<(), RegistryError> {
        let result = match tokio::time::timeout(self.write_timeout, table.write(key, value)).await {
            Ok(r) => r,
            Err(_) => Err(TableError {
                table: table.name().to_owned(),
                message: format!(
                    "the write was not acknowledged within {:?}; it may still land: read the record back",
                    self.write_timeout
                ),
            }),
        };
        result.map_err(|e| {
            tracing::error!(table = table.name(), key, "write failed: {e}");
            RegistryError::Storage(e)
        })
    }
}

async fn read_table<V: DeserializeOwned>(table: &impl TableLog) -> Result<(BTreeMap<String, V>, u64), TableError> {
    let mut out = BTreeMap::new();
    let mut skipped = 0;
    for (key, bytes) in table.read_all().await? {
        match serde_json::from_slice::<V>(&bytes) {
            Ok(v) => {
                out.insert(key, v);
            }
            Err(e) => {
                skipped += 1;
                // The message may quote the record: scrub any URL in it.
                tracing::warn!(
                    table = table.name(),
                    key,
                    "skipping a record that does not parse: {}",
                    crate::redact::scrub_text(&e.to_string())
                );
            }
        }
    }
    Ok((out, skipped))
}

fn log_camera(what: &str, spec: &CameraSpec) {
    tracing::info!(
        camera = spec.id(),
        intersection = %spec.camera.intersection,
        source = %redact_source(&spec.camera.source),
        enabled = spec.enabled,
        "{what}"
    );
}

fn id_mismatch(kind: Kind, sent: &str, path: &str) -> RegistryError {
    RegistryError::Invalid {
        kind,
        errors: vec![FieldError::new("id", format!("{sent:?}"), format!("must be the id in the path, {path:?}"))],
    }
}

fn source_error(spec: &CameraSpec) -> impl FnOnce(&'static str) -> RegistryError + '_ {
    move |reason| RegistryError::Invalid {
        kind: Kind::Camera,
        errors: vec![FieldError::new("source", format!("{:?}", redact_source(&spec.camera.source)), reason)],
    }
}

/// The camera alone, then its reference to an intersection.
fn check_camera(view: &View, spec: &CameraSpec) -> Result<(), RegistryError> {
    let mut errors = spec.validate();
    // Values must never hold a password: the contracts' checks redact the
    // user info; query secrets are redacted here.
    for e in errors.iter_mut().filter(|e| e.field == "source") {
        e.value = format!("{:?}", redact_source(&spec.camera.source));
    }
    let inter = &spec.camera.intersection;
    if valid_id(inter) && !view.intersections.contains_key(inter) {
        errors.push(FieldError::new(
            "intersection",
            format!("{inter:?}"),
            "no registered intersection has this id: create the intersection first",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Invalid { kind: Kind::Camera, errors })
    }
}

/// An updated camera must keep serving the approaches that name it: same
/// intersection, and the lines or zones they use.
fn check_camera_still_fits_approaches(view: &View, spec: &CameraSpec) -> Result<(), RegistryError> {
    let mut errors = Vec::new();
    for inter in view.intersections.values() {
        for (i, a) in inter.approaches.iter().enumerate().filter(|(_, a)| a.camera == spec.id()) {
            if inter.id != spec.camera.intersection {
                errors.push(FieldError::new(
                    "intersection",
                    format!("{:?}", spec.camera.intersection),
                    format!(
                        "the camera serves approach {:?} of intersection {:?}; remove it there first",
                        a.name, inter.id
                    ),
                ));
            } else if let Some(line) = a.line.as_ref().filter(|l| !spec.camera.lines.iter().any(|x| &x.name == *l)) {
                errors.push(FieldError::new(
                    "lines",
                    format!("no line {line:?}"),
                    format!(
                        "intersection {:?} approach {i} ({:?}) uses this line; keep it or change the approach first",
                        inter.id, a.name
                    ),
                ));
            } else if let Some(zone) = a.zone.as_ref().filter(|z| !spec.camera.zones.iter().any(|x| &x.name == *z)) {
                errors.push(FieldError::new(
                    "zones",
                    format!("no zone {zone:?}"),
                    format!(
                        "intersection {:?} approach {i} ({:?}) uses this zone; keep it or change the approach first",
                        inter.id, a.name
                    ),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Conflict {
            message: format!("camera {:?} is used by an intersection's approaches", spec.id()),
            errors,
        })
    }
}

fn check_intersection(view: &View, spec: &IntersectionSpec) -> Result<(), RegistryError> {
    let errors = spec.validate(|id| view.cameras.get(id).map(|c| &c.camera));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Invalid { kind: Kind::Intersection, errors })
    }
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A body that does not parse as the record, as a field error. Serde names
/// unknown and missing fields; other messages go under `(body)`. Any URL
/// quoted in the message is redacted.
pub fn parse_error(kind: Kind, e: &serde_json::Error) -> RegistryError {
    let message = crate::redact::scrub_text(&e.to_string());
    // A field named by the empty string is shown as `""`: an answer's field
    // is never empty (a body with the key "" was answered with field "";
    // found at volume, seed 0x5747524545545343).
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|r| r.split('`').next())
            .map(|f| if f.is_empty() { "\"\"" } else { f })
    };
    let (field, value) = if let Some(f) = named("unknown field ") {
        (f.to_owned(), "(present)".to_owned())
    } else if let Some(f) = named("missing field ") {
        (f.to_owned(), "(absent)".to_owned())
    } else {
        ("(body)".to_owned(), String::new())
    };
    RegistryError::Invalid { kind, errors: vec![FieldError::new(field, value, message)] }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use streetscope_transport::MemoryTable;

    use super::*;

    /// A table whose writes never complete (a broker that does not answer).
    #[derive(Debug, Clone)]
    struct Hanging(MemoryTable);

    impl TableLog for Hanging {
        fn name(&self) -> &str {
            self.0.name()
        }
        async fn write(&self, _key: &str, _value: Option<Vec<u8>>) -> Result<(), TableError> {
            std::future::pending().await
        }
        async fn read_all(&self) -> Result<BTreeMap<String, Vec<u8>>, TableError> {
            self.0.read_all().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_hangs_fails_after_the_timeout_and_changes_nothing() {
        let t = |n: &str| Hanging(MemoryTable::new(n));
        let reg = Registry::open(t("c"), t("i")).await.unwrap().with_write_timeout(Duration::from_secs(2));
        let spec: IntersectionSpec = serde_json::from_str(r#"{"id": "x-1"}"#).unwrap();
        let err = reg.create_intersection(spec).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Storage(e) if e.message.contains("not acknowledged")), "{err}");
        assert!(reg.intersections().await.is_empty());
        // The lock is free again: reads and further writes are not stuck.
        assert!(reg.intersection("x-1").await.is_none());
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut v = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(&mut v, &serde_json::json!({"a": null, "b": {"c": 5}, "e": [2, 3], "f": "x"}));
        assert_eq!(v, serde_json::json!({"b": {"c": 5, "d": 3}, "e": [2, 3], "f": "x"}));
    }
}
