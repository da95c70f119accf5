//! A blocking client of the registry API, for `streetscope cameras …` and
//! `streetscope intersections …`, and the helpers that read spec files and
//! print what the API said.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use streetscope_contracts::registry::{ApiError, CameraSpec, IntersectionSpec};

use crate::redact::scrub_text;

/// The environment variable the CLI reads its token from.
pub const TOKEN_ENV: &str = "STREETSCOPE_TOKEN";
/// The environment variable naming the registry's URL.
pub const URL_ENV: &str = "STREETSCOPE_REGISTRY_URL";
/// The registry's URL when none is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{}", format_api_error(*.status, .body))]
    Api { status: u16, body: ApiError },
    /// The registry could not be reached, or answered something else than its API.
    #[error("registry at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// A spec file could not be read or parsed.
    #[error("{path}: {reason}")]
    Spec { path: String, reason: String },
}

/// Renders an API error for people: the status, the message, then one line
/// per offending field.
pub fn format_api_error(status: u16, e: &ApiError) -> String {
    let mut s = format!("{} ({status}): {}", e.error, e.message);
    for f in &e.errors {
        if f.value.is_empty() {
            s += &format!("\n  - {}: {}", f.field, f.reason);
        } else {
            s += &format!("\n  - {} = {}: {}", f.field, f.value, f.reason);
        }
    }
    s
}

/// A client of one registry.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct CameraList {
    cameras: Vec<CameraSpec>,
}

#[derive(Deserialize)]
struct IntersectionList {
    intersections: Vec<IntersectionSpec>,
}

impl Client {
    /// A client of the registry at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self { base: base_url.trim_end_matches('/').to_owned(), token, agent }
    }

    /// Sends a request and decodes a successful answer as `R`.
    fn call<R: DeserializeOwned>(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<R, ClientError> {
        let url = format!("{}{path}", self.base);
        let transport = |reason: String| ClientError::Transport { url: self.base.clone(), reason };
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        macro_rules! with_auth {
            ($req:expr) => {{
                let req = $req;
                match &auth {
                    Some(a) => req.header("Authorization", a),
                    None => req,
                }
            }};
        }
        let result = match (method, body) {
            ("GET", _) => with_auth!(self.agent.get(&url)).call(),
            ("DELETE", _) => with_auth!(self.agent.delete(&url)).call(),
            ("POST", b) => {
                with_auth!(self.agent.post(&url)).content_type("application/json").send(b.unwrap_or_default())
            }
            ("PUT", b) => with_auth!(self.agent.put(&url)).content_type("application/json").send(b.unwrap_or_default()),
            ("PATCH", b) => with_auth!(self.agent.patch(&url))
                .content_type("application/merge-patch+json")
                .send(b.unwrap_or_default()),
            (m, _) => return Err(transport(format!("unsupported method {m}"))),
        };
        let mut resp = result.map_err(|e| transport(scrub_text(&e.to_string())))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(|e| transport(e.to_string()))?;
        if (200..300).contains(&status) {
            let text = if text.is_empty() { "null" } else { text.as_str() };
            return serde_json::from_str(text).map_err(|e| transport(format!("unexpected answer ({status}): {e}")));
        }
        match serde_json::from_str::<ApiError>(&text) {
            Ok(body) => Err(ClientError::Api { status, body }),
            Err(_) => Err(transport(format!("HTTP {status}: {}", scrub_text(text.trim())))),
        }
    }

    fn send<B: Serialize, R: DeserializeOwned>(&self, method: &str, path: &str, body: &B) -> Result<R, ClientError> {
        self.call(method, path, Some(serde_json::to_vec(body).expect("specs serialise")))
    }

    /// Every camera (sources redacted), optionally of one intersection.
    pub fn list_cameras(&self, intersection: Option<&str>) -> Result<Vec<CameraSpec>, ClientError> {
        let path = match intersection {
            Some(i) => format!("/v1/cameras?intersection={i}"),
            None => "/v1/cameras".to_owned(),
        };
        Ok(self.call::<CameraList>("GET", &path, None)?.cameras)
    }

    /// One camera (source redacted).
    pub fn get_camera(&self, id: &str) -> Result<CameraSpec, ClientError> {
        self.call("GET", &format!("/v1/cameras/{id}"), None)
    }

    /// Registers a camera.
    pub fn create_camera(&self, spec: &CameraSpec) -> Result<CameraSpec, ClientError> {
        self.send("POST", "/v1/cameras", spec)
    }

    /// Replaces a camera with `spec` (a source with `***` keeps the stored password).
    pub fn replace_camera(&self, spec: &CameraSpec) -> Result<CameraSpec, ClientError> {
        self.send("PUT", &format!("/v1/cameras/{}", spec.id()), spec)
    }

    /// Changes some fields of a camera (JSON merge patch).
    pub fn patch_camera(&self, id: &str, patch: &serde_json::Value) -> Result<CameraSpec, ClientError> {
        self.send("PATCH", &format!("/v1/cameras/{id}"), patch)
    }

    /// Deletes a camera.
    pub fn delete_camera(&self, id: &str) -> Result<(), ClientError> {
        self.call::<serde_json::Value>("DELETE", &format!("/v1/cameras/{id}"), None).map(drop)
    }

    /// Every intersection.
    pub fn list_intersections(&self) -> Result<Vec<IntersectionSpec>, ClientError> {
        Ok(self.call::<IntersectionList>("GET", "/v1/intersections", None)?.intersections)
    }

    /// One intersection.
    pub fn get_intersection(&self, id: &str) -> Result<IntersectionSpec, ClientError> {
        self.call("GET", &format!("/v1/intersections/{id}"), None)
    }

    /// Registers an intersection.
    pub fn create_intersection(&self, spec: &IntersectionSpec) -> Result<IntersectionSpec, ClientError> {
        self.send("POST", "/v1/intersections", spec)
    }

    /// Replaces an intersection.
    pub fn replace_intersection(&self, spec: &IntersectionSpec) -> Result<IntersectionSpec, ClientError> {
        self.send("PUT", &format!("/v1/intersections/{}", spec.id), spec)
    }

    /// Deletes an intersection.
    pub fn delete_intersection(&self, id: &str) -> Result<(), ClientError> {
        self.call::<serde_json::Value>("DELETE", &format!("/v1/intersections/{id}"), None).map(drop)
    }
}

/// Reads a spec file: JSON when it ends in `.json` or starts with `{`, else TOML.
pub fn read_spec<V: DeserializeOwned>(path: &Path) -> Result<V, ClientError> {
    let bad = |reason: String| ClientError::Spec { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    parse_spec(&text, path.extension().is_some_and(|e| e == "json")).map_err(bad)
}

/// Parses a spec: JSON when `json` or the text starts with `{`, else TOML.
/// Errors never quote a password.
pub fn parse_spec<V: DeserializeOwned>(text: &str, json: bool) -> Result<V, String> {
    if json || text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| scrub_text(&e.to_string()))
    } else {
        toml::from_str(text).map_err(|e| scrub_text(e.to_string().trim_end()))
    }
}

/// A table of cameras for the terminal (sources already redacted by the API).
pub fn cameras_table(cameras: &[CameraSpec]) -> String {
    let rows: Vec<[String; 6]> = cameras
        .iter()
        .map(|c| {
            [
                c.camera.id.clone(),
                c.camera.intersection.clone(),
                if c.enabled { "yes" } else { "no" }.to_owned(),
                format!("{}", c.camera.sample_fps),
                c.camera.lines.len().to_string(),
                c.camera.source.clone(),
            ]
        })
        .collect();
    table(["ID", "INTERSECTION", "ENABLED", "FPS", "LINES", "SOURCE"], &rows)
}

/// A table of intersections for the terminal.
pub fn intersections_table(intersections: &[IntersectionSpec]) -> String {
    let rows: Vec<[String; 3]> = intersections
        .iter()
        .map(|i| [i.id.clone(), i.name.clone().unwrap_or_default(), i.approaches.len().to_string()])
        .collect();
    table(["ID", "NAME", "APPROACHES"], &rows)
}

fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = head.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        s.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}
