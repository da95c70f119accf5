//! The camera registry's records: what the compacted topics
//! `streetscope.cameras` (key: camera id) and `streetscope.intersections`
//! (key: intersection id) hold, as JSON, and what the registry API takes and
//! returns.
//!
//! A camera is a [`CameraConfig`] — the same type, with the same checks, as a
//! camera of a pipeline config — plus an `enabled` flag. An intersection names
//! its approaches, each tied to a counting line or a zone of one of its cameras.
//!
//! The checks here look at one record alone ([`CameraSpec::validate`],
//! [`IntersectionSpec::validate`]); the registry adds those that need the other
//! records (unique ids, references).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{redact_url, valid_id, ApproachConfig, CameraConfig, FieldError};

/// URL schemes a registered camera's source may use. Unlike a pipeline config,
/// the registry takes no bare file paths: the cameras run on ingest pods, not
/// where the registry runs (`file:///…` names a file on the pods).
pub const REGISTRY_SOURCE_SCHEMES: &[&str] = &["rtsp", "rtsps", "http", "https", "file"];

/// The most counting lines a camera may have.
pub const MAX_LINES: usize = 32;
/// The most zones a camera may have.
pub const MAX_ZONES: usize = 32;
/// The longest source URL, in bytes.
pub const MAX_SOURCE_LEN: usize = 2048;

/// A registered camera: a camera config plus whether ingest runs it.
///
/// On the wire its fields are those of [`CameraConfig`] with `enabled` beside
/// them (one flat JSON object); unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraSpec {
    /// The camera.
    #[serde(flatten)]
    pub camera: CameraConfig,
    /// Whether ingest runs the camera. A disabled camera keeps its spec and
    /// its place in its intersection.
    pub enabled: bool,
}

impl<'de> Deserialize<'de> for CameraSpec {
    // `deny_unknown_fields` does not combine with `flatten`; so `enabled` is
    // taken out and the rest must be exactly a `CameraConfig`, which refuses
    // unknown fields by name.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut value = serde_json::Value::deserialize(d)?;
        let obj = value.as_object_mut().ok_or_else(|| D::Error::custom("a camera spec is an object"))?;
        let enabled = match obj.remove("enabled") {
            None => true,
            Some(serde_json::Value::Bool(b)) => b,
            Some(other) => return Err(D::Error::custom(format!("enabled: expected true or false, got {other}"))),
        };
        // Read back from text, not from the value: a deserializer over a value
        // tells each sequence its length, and serde then reserves room for all
        // of it (up to 1 MiB) before the first element is checked, so a body of
        // `"lines":[2,2,…]` took 52 bytes per byte (found at volume, seed
        // 0x5747524545545343). From text, a sequence grows as it is read. The
        // position of an error would be in the re-written text: it is left out.
        let text = serde_json::to_vec(&value).map_err(D::Error::custom)?;
        let camera = serde_json::from_slice::<CameraConfig>(&text).map_err(|e| {
            let message = e.to_string();
            let without_position = match message.rfind(" at line ") {
                Some(i) if e.line() > 0 => &message[..i],
                _ => &message,
            };
            D::Error::custom(without_position)
        })?;
        Ok(Self { camera, enabled })
    }
}

impl JsonSchema for CameraSpec {
    fn schema_name() -> Cow<'static, str> {
        "CameraSpec".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = CameraConfig::json_schema(generator);
        if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.insert(
                "enabled".into(),
                serde_json::json!({
                    "type": "boolean",
                    "default": true,
                    "description": "Whether ingest runs the camera. A disabled camera keeps its spec and its place in its intersection."
                }),
            );
        }
        schema.insert(
            "description".into(),
            "A registered camera: a camera config plus whether ingest runs it. In API responses the \
             password of `source` is replaced by `***`."
                .into(),
        );
        schema
    }
}

impl CameraSpec {
    /// An enabled camera.
    pub fn new(camera: CameraConfig) -> Self {
        Self { camera, enabled: true }
    }

    /// The camera's id.
    pub fn id(&self) -> &str {
        &self.camera.id
    }

    /// Checks the camera alone: the rules of a pipeline config's camera, and
    /// those of the registry (the source is a URL of a known scheme with a
    /// host, sizes are bounded). Field paths are the spec's own (`sample_fps`,
    /// `lines[0].start`); values never hold a password.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = self.camera.validate("");
        let c = &self.camera;
        if !errs.iter().any(|e| e.field == "source") {
            if let Err(reason) = check_source_url(&c.source) {
                errs.push(FieldError::new("source", format!("{:?}", redact_url(&c.source)), reason));
            }
        }
        if c.lines.len() > MAX_LINES {
            errs.push(FieldError::new("lines", format!("{} lines", c.lines.len()), format!("at most {MAX_LINES}")));
        }
        if c.zones.len() > MAX_ZONES {
            errs.push(FieldError::new("zones", format!("{} zones", c.zones.len()), format!("at most {MAX_ZONES}")));
        }
        // A template is a path on the ingest pods: through the registry, any
        // holder of a write token could make them read any file there (and
        // show the `{names}` in it in the camera's error). Templates belong to
        // the operator's own configuration file.
        if let Some(t) = &c.template {
            errs.push(FieldError::new(
                "template",
                format!("{:?}", t.display().to_string()),
                "not accepted by the registry (a file on the ingest pods); an operator's template is set in a \
                 pipeline configuration file",
            ));
        }
        errs
    }
}

/// Checks the form of a registered camera's source URL.
pub fn check_source_url(source: &str) -> Result<(), String> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(format!("at most {MAX_SOURCE_LEN} bytes"));
    }
    if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL has no spaces or control characters (percent-encode them)".into());
    }
    // The ingest pipeline templates quote the URL: a quote or a backslash
    // would end or escape the quoting (ingest refuses them too, but only when
    // the camera starts).
    if source.contains(['"', '\\']) {
        return Err("a URL has no double quotes or backslashes (percent-encode them: %22, %5C)".into());
    }
    let Some((scheme, rest)) = source.split_once("://") else {
        return Err(format!(
            "must be a URL ({}://…); a file on the ingest pods is file:///path",
            REGISTRY_SOURCE_SCHEMES.join("://…, ")
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !REGISTRY_SOURCE_SCHEMES.contains(&scheme.as_str()) {
        return Err(format!("unsupported scheme {scheme:?}; use one of {}", REGISTRY_SOURCE_SCHEMES.join(", ")));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if scheme == "file" {
        if !authority.is_empty() || !rest.starts_with('/') || rest.len() < 2 {
            return Err("a file URL is file:///absolute/path (no host)".into());
        }
        return Ok(());
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Err("an IPv6 host is written [address]".into()),
        }
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._:%".contains(c)) {
        return Err(format!("{host:?} is not a host name or address"));
    }
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(n) if n > 0) {
            return Err(format!("port {p:?} is not a number in [1, 65535]"));
        }
    }
    Ok(())
}

/// A point on the map (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoLocation {
    /// Latitude in degrees, in [-90, 90].
    pub lat: f64,
    /// Longitude in degrees, in [-180, 180].
    pub lon: f64,
}

/// A registered intersection: its name and its approaches, each seen by one of
/// its cameras across one of that camera's counting lines or over one of its zones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntersectionSpec {
    /// Unique id, e.g. `"main-and-5th"`; cameras name it in `intersection`.
    pub id: String,
    /// A name for people, e.g. `"Main St & 5th Ave"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text: what an operator should know about the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoLocation>,
    /// The approaches, for turning movements: each names a camera of this
    /// intersection and one of its counting lines or zones. None: no turning movements.
    #[serde(default)]
    pub approaches: Vec<ApproachConfig>,
}

/// The longest intersection name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest intersection description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

impl IntersectionSpec {
    /// Checks the intersection against the registered cameras: each approach
    /// names a camera of this intersection and one of its counting lines or
    /// zones, a line or zone serves one approach, approach names are unique per camera.
    pub fn validate<'a>(&self, cameras: impl Fn(&str) -> Option<&'a CameraConfig>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut bad = |field: String, value: String, reason: &str| errs.push(FieldError::new(field, value, reason));
        if !valid_id(&self.id) {
            bad("id".into(), format!("{:?}", self.id), "use 1-64 characters of letters, digits, '-', '_' or '.'");
        }
        if let Some(n) = &self.name {
            if n.trim().is_empty() || n.chars().count() > MAX_NAME_CHARS {
                bad("name".into(), format!("{n:?}"), &format!("1-{MAX_NAME_CHARS} characters, not only spaces"));
            }
        }
        if let Some(d) = &self.description {
            if d.chars().count() > MAX_DESCRIPTION_CHARS {
                bad("description".into(), format!("{} characters", d.chars().count()), "at most 4000 characters");
            }
        }
        if let Some(l) = self.location {
            if !(l.lat.is_finite() && (-90.0..=90.0).contains(&l.lat)) {
                bad("location.lat".into(), l.lat.to_string(), "degrees in [-90, 90]");
            }
            if !(l.lon.is_finite() && (-180.0..=180.0).contains(&l.lon)) {
                bad("location.lon".into(), l.lon.to_string(), "degrees in [-180, 180]");
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut taken = crate::config::ApproachTargets::default();
        for (i, a) in self.approaches.iter().enumerate() {
            let at = |f: &str| format!("approaches[{i}].{f}");
            let Some(cam) = cameras(&a.camera) else {
                bad(at("camera"), format!("{:?}", a.camera), "no registered camera has this id");
                continue;
            };
            if cam.intersection != self.id {
                bad(
                    at("camera"),
                    format!("{:?}", a.camera),
                    &format!("the camera belongs to intersection {:?}", cam.intersection),
                );
                continue;
            }
            if a.name.trim().is_empty() {
                bad(at("name"), format!("{:?}", a.name), "must not be empty");
            } else if !names.insert((a.camera.as_str(), a.name.as_str())) {
                bad(at("name"), format!("{:?}", a.name), "approach names must be unique per camera");
            }
            a.check_target(cam, &mut taken, |f, v, r| bad(at(f), v, r));
        }
        errs
    }
}

/// One field of a refused request: which, its value (passwords replaced by
/// `***`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiFieldError {
    /// Path of the field in the request body, e.g. `lines[1].start`.
    pub field: String,
    /// The value as sent.
    pub value: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl From<FieldError> for ApiFieldError {
    fn from(e: FieldError) -> Self {
        Self { field: e.field, value: e.value, reason: e.reason }
    }
}

/// The body of every error response of the registry API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiError {
    /// What kind of error: `invalid`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `unavailable`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
    /// One entry per offending field (`invalid`, and `conflict` when fields
    /// are the cause).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ApiFieldError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera() -> CameraSpec {
        serde_json::from_value(serde_json::json!({
            "id": "cam-1", "intersection": "x-1", "source": "rtsp://admin:pw@10.0.0.5:554/s1",
            "lines": [{"name": "north", "start": [0.1, 0.5], "end": [0.9, 0.5]}]
        }))
        .unwrap()
    }

    #[test]
    fn camera_spec_is_flat_and_refuses_unknown_fields() {
        let c = camera();
        assert!(c.enabled);
        assert_eq!(c.camera.sample_fps, 10.0);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["enabled"], true);
        assert_eq!(v["id"], "cam-1");
        let back: CameraSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let err = serde_json::from_value::<CameraSpec>(serde_json::json!({
            "id": "c", "intersection": "x", "source": "rtsp://h/s", "sample_fsp": 3
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("sample_fsp"), "{err}");
        let err = serde_json::from_value::<CameraSpec>(serde_json::json!({
            "id": "c", "intersection": "x", "source": "rtsp://h/s", "enabled": "yes"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("enabled"), "{err}");
        let toml_spec: CameraSpec =
            toml::from_str("id = \"c\"\nintersection = \"x\"\nsource = \"rtsp://h/s\"\nenabled = false\n").unwrap();
        assert!(!toml_spec.enabled);
    }

    #[test]
    fn schema_has_enabled_and_the_camera_fields() {
        let s = schemars::schema_for!(CameraSpec);
        let props = s.as_value()["properties"].as_object().unwrap();
        for f in ["id", "intersection", "source", "sample_fps", "lines", "enabled"] {
            assert!(props.contains_key(f), "{f}");
        }
    }

    #[test]
    fn source_urls_are_checked_and_redacted_in_errors() {
        for ok in [
            "rtsp://admin:pw@10.0.0.5:554/s1",
            "https://cam.example/mjpg",
            "file:///clips/a.mp4",
            "rtsp://[::1]:8554/x",
        ] {
            assert_eq!(check_source_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "clip.mp4",
            "ftp://h/x",
            "rtsp://",
            "rtsp:///path",
            "rtsp://h:99999/x",
            "rtsp://h:abc/x",
            "rtsp://h o/x",
            "file://host/x",
            "rtsp://b@d!/x",
        ] {
            assert!(check_source_url(bad).is_err(), "{bad}");
        }
        let mut c = camera();
        c.camera.source = "rtsp://admin:s3cret@:554/x".into();
        let errs = c.validate();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "source");
        assert!(!errs[0].value.contains("s3cret"), "{errs:?}");
    }

    #[test]
    fn camera_rules_are_those_of_the_pipeline_config() {
        let mut c = camera();
        c.camera.sample_fps = 0.0;
        c.camera.lines[0].start = [1.5, 0.0];
        let fields: Vec<String> = c.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["sample_fps", "lines[0].start"]);
    }

    #[test]
    fn intersections_check_their_approaches() {
        let cam = camera();
        let other = CameraConfig { id: "cam-2".into(), intersection: "y".into(), ..cam.camera.clone() };
        let cams = [cam.camera.clone(), other];
        let lookup = |id: &str| cams.iter().find(|c| c.id == id);
        let spec: IntersectionSpec = serde_json::from_value(serde_json::json!({
            "id": "x-1", "name": "Main & 5th", "location": {"lat": 91.0, "lon": 2.0},
            "approaches": [
                {"camera": "cam-1", "name": "north", "line": "north"},
                {"camera": "cam-1", "name": "south", "line": "north"},
                {"camera": "cam-1", "name": "east", "line": "nope"},
                {"camera": "cam-2", "name": "west", "line": "north"},
                {"camera": "cam-9", "name": "west", "line": "north"},
                {"camera": "cam-1", "name": "arm", "zone": "nope"}
            ]
        }))
        .unwrap();
        let got: Vec<String> = spec.validate(lookup).into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "location.lat = 91: degrees in [-90, 90]",
                "approaches[1].line = \"north\": a line can belong to one approach only",
                "approaches[2].line = \"nope\": the camera has no counting line of this name",
                "approaches[3].camera = \"cam-2\": the camera belongs to intersection \"y\"",
                "approaches[4].camera = \"cam-9\": no registered camera has this id",
                "approaches[5].zone = \"nope\": the camera has no zone of this name",
            ]
        );
        assert!(serde_json::from_value::<IntersectionSpec>(serde_json::json!({"id": "x", "nme": "a"})).is_err());
    }
}
