//! The one rule for paths in a configuration file: a relative path is taken
//! from the folder of the file that names it, so that `streetscope run
//! --config /etc/streetscope/city.toml` reads the same files whatever the
//! working directory. Absolute paths and URLs stay as written, and so does an
//! empty path (`validate` names it). A default that no file names (the results
//! file `streetscope-results.jsonl`, the model of `STREETSCOPE_MODEL`) and a
//! path given on the command line or in an environment variable (`--model`,
//! `--output`, `OTEL_EXPORTER_OTLP_CERTIFICATE`, …) is taken as given, from
//! the working directory.
//!
//! Every path field of the pipeline and cluster configurations is visited
//! here and nowhere else (`resolve_relative` on each struct that holds one);
//! a test walks the configurations' JSON Schemas and fails when a path field
//! is added that this visit does not reach.

use std::path::{Path, PathBuf};

use crate::cluster::ClusterConfig;
use crate::config::{CameraConfig, DetectorConfig, OutputConfig, PipelineConfig};
use crate::http::HttpServerConfig;
use crate::kafka::KafkaConfig;

/// `path` taken from `base` when it is relative and not empty.
pub fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() && !path.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

fn resolve_opt(base: &Path, path: &mut Option<PathBuf>) {
    if let Some(p) = path {
        resolve(base, p);
    }
}

/// A path in a string that may also be a URL (`scheme://…`): the URL stays.
fn resolve_str(base: &Path, s: &mut String) {
    if !s.contains("://") && !s.is_empty() && Path::new(s.as_str()).is_relative() {
        *s = base.join(&*s).to_string_lossy().into_owned();
    }
}

impl PipelineConfig {
    /// Takes every relative path of the configuration from `base`, the folder
    /// of its file (see the module's rule).
    pub fn resolve_relative(&mut self, base: &Path) {
        for cam in &mut self.cameras {
            cam.resolve_relative(base);
        }
        self.detector.resolve_relative(base);
        self.output.resolve_relative(base);
        self.status.resolve_relative(base);
        self.dashboard.resolve_relative(base);
    }
}

impl ClusterConfig {
    /// Takes every relative path of the configuration from `base`, the folder
    /// of its file (see the module's rule).
    pub fn resolve_relative(&mut self, base: &Path) {
        self.kafka.resolve_relative(base);
        self.detector.resolve_relative(base);
        self.registry.resolve_relative(base);
        self.status.resolve_relative(base);
        self.dashboard.resolve_relative(base);
    }
}

impl CameraConfig {
    /// The source when it is a file path (not a URL), and the template.
    pub fn resolve_relative(&mut self, base: &Path) {
        resolve_str(base, &mut self.source);
        resolve_opt(base, &mut self.template);
    }
}

impl DetectorConfig {
    /// The model and TensorRT's engine cache.
    pub fn resolve_relative(&mut self, base: &Path) {
        resolve_opt(base, &mut self.model);
        resolve_opt(base, &mut self.tensorrt.engine_cache_dir);
    }
}

impl OutputConfig {
    /// The results file, when the configuration names one.
    pub fn resolve_relative(&mut self, base: &Path) {
        resolve_opt(base, &mut self.path);
    }
}

impl HttpServerConfig {
    /// The TLS certificate and key.
    pub fn resolve_relative(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            resolve(base, &mut tls.cert_file);
            resolve(base, &mut tls.key_file);
        }
    }
}

impl KafkaConfig {
    /// The TLS files, the SASL password file, and librdkafka's file
    /// properties in `extra` (those named `*.location`; `probe`, which asks
    /// librdkafka to look for the system's CAs, is not a path).
    pub fn resolve_relative(&mut self, base: &Path) {
        if let Some(tls) = &mut self.security.tls {
            for p in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file, &mut tls.key_password_file] {
                resolve_opt(base, p);
            }
        }
        if let Some(sasl) = &mut self.security.sasl {
            resolve_opt(base, &mut sasl.password_file);
        }
        for (key, value) in &mut self.extra {
            if key.to_ascii_lowercase().ends_with(".location") && value.trim() != "probe" {
                resolve_str(base, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folder every relative path below is taken from.
    const BASE: &str = "/etc/streetscope";

    fn expect(cfg: &serde_json::Value, pointer: &str, want: &str) {
        assert_eq!(cfg.pointer(pointer).and_then(|v| v.as_str()), Some(want), "{pointer} in {cfg:#}");
    }

    const PIPELINE: &str = r#"
[[cameras]]
id = "file"
intersection = "x"
source = "clips/a.mp4"
template = "templates/mine.txt"

[[cameras]]
id = "url"
intersection = "x"
source = "rtsp://cam/s1"
template = "/opt/templates/abs.txt"

[[cameras]]
id = "abs"
intersection = "x"
source = "/srv/clips/b.mp4"

[[cameras]]
id = "file-url"
intersection = "x"
source = "file:///srv/clips/c.mp4"

[detector]
model = "models/m.onnx"
tensorrt.engine_cache_dir = "engines"

[output]
path = "out/results.jsonl"

[status.tls]
cert_file = "tls/status.pem"
key_file = "tls/status.key"

[dashboard.tls]
cert_file = "../tls/ui.pem"
key_file = "tls/ui.key"
"#;

    /// Each path field of the pipeline configuration (at its first camera)
    /// and where it must come out; every one is relative in `PIPELINE`.
    const PIPELINE_RESOLVED: &[(&str, &str)] = &[
        ("/cameras/0/source", "/etc/streetscope/clips/a.mp4"),
        ("/cameras/0/template", "/etc/streetscope/templates/mine.txt"),
        ("/detector/model", "/etc/streetscope/models/m.onnx"),
        ("/detector/tensorrt/engine_cache_dir", "/etc/streetscope/engines"),
        ("/output/path", "/etc/streetscope/out/results.jsonl"),
        ("/status/tls/cert_file", "/etc/streetscope/tls/status.pem"),
        ("/status/tls/key_file", "/etc/streetscope/tls/status.key"),
        ("/dashboard/tls/cert_file", "/etc/streetscope/../tls/ui.pem"),
        ("/dashboard/tls/key_file", "/etc/streetscope/tls/ui.key"),
    ];

    /// Every path field of the pipeline configuration, relative in the file,
    /// comes out taken from the file's folder; URLs and absolute paths as written.
    #[test]
    fn pipeline_paths_are_taken_from_the_files_folder() {
        let cfg = PipelineConfig::from_toml_str(PIPELINE, "city.toml", Some(Path::new(BASE))).unwrap();
        let v = serde_json::to_value(&cfg).unwrap();
        for (pointer, want) in PIPELINE_RESOLVED {
            expect(&v, pointer, want);
        }
        expect(&v, "/cameras/1/source", "rtsp://cam/s1");
        expect(&v, "/cameras/1/template", "/opt/templates/abs.txt");
        expect(&v, "/cameras/2/source", "/srv/clips/b.mp4");
        expect(&v, "/cameras/3/source", "file:///srv/clips/c.mp4");
        // Without a folder (text that is not from a file), and for a bare
        // file name's folder (`Path::new("city.toml").parent()` is ""), paths
        // stay as written: from the working directory.
        for base in [None, Some(Path::new(""))] {
            let cfg = PipelineConfig::from_toml_str(PIPELINE, "city.toml", base).unwrap();
            let v = serde_json::to_value(&cfg).unwrap();
            expect(&v, "/cameras/0/source", "clips/a.mp4");
            expect(&v, "/detector/model", "models/m.onnx");
            expect(&v, "/status/tls/cert_file", "tls/status.pem");
        }
        // The results file that no file names stays in the working directory.
        let bare = PIPELINE.replace("[output]\npath = \"out/results.jsonl\"\n", "");
        assert_ne!(bare, PIPELINE);
        let cfg = PipelineConfig::from_toml_str(&bare, "city.toml", Some(Path::new(BASE))).unwrap();
        assert_eq!(cfg.output.path(), Path::new("streetscope-results.jsonl"));
    }

    const CLUSTER: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
extra = { "ssl.crl.location" = "tls/crl.pem", "ssl.ca.location" = "probe", "ssl.engine.location" = "/usr/lib/e.so", "client.rack" = "rack-1" }

[kafka.security.tls]
ca_file = "tls/ca.pem"
cert_file = "tls/client.pem"
key_file = "secrets/client.key"
key_password_file = "secrets/key-password"

[kafka.security.sasl]
mechanism = "PLAIN"
username = "u"
password_file = "secrets/sasl"

[detector]
model = "models/m.onnx"
tensorrt.engine_cache_dir = "engines"

[registry.tls]
cert_file = "tls/registry.pem"
key_file = "tls/registry.key"

[status.tls]
cert_file = "tls/status.pem"
key_file = "tls/status.key"

[dashboard.tls]
cert_file = "tls/ui.pem"
key_file = "tls/ui.key"
"#;

    /// Each path field of the cluster configuration and where it must come
    /// out; every one is relative in `CLUSTER`.
    const CLUSTER_RESOLVED: &[(&str, &str)] = &[
        ("/kafka/security/tls/ca_file", "/etc/streetscope/tls/ca.pem"),
        ("/kafka/security/tls/cert_file", "/etc/streetscope/tls/client.pem"),
        ("/kafka/security/tls/key_file", "/etc/streetscope/secrets/client.key"),
        ("/kafka/security/tls/key_password_file", "/etc/streetscope/secrets/key-password"),
        ("/kafka/security/sasl/password_file", "/etc/streetscope/secrets/sasl"),
        ("/kafka/extra/ssl.crl.location", "/etc/streetscope/tls/crl.pem"),
        ("/detector/model", "/etc/streetscope/models/m.onnx"),
        ("/detector/tensorrt/engine_cache_dir", "/etc/streetscope/engines"),
        ("/registry/tls/cert_file", "/etc/streetscope/tls/registry.pem"),
        ("/registry/tls/key_file", "/etc/streetscope/tls/registry.key"),
        ("/status/tls/cert_file", "/etc/streetscope/tls/status.pem"),
        ("/status/tls/key_file", "/etc/streetscope/tls/status.key"),
        ("/dashboard/tls/cert_file", "/etc/streetscope/tls/ui.pem"),
        ("/dashboard/tls/key_file", "/etc/streetscope/tls/ui.key"),
    ];

    /// Every path field of the cluster configuration (the file of `streetscope
    /// ingest|detect|aggregate|registry|dashboard|topics --cluster`) likewise;
    /// librdkafka's properties that are not files stay as written.
    #[test]
    fn cluster_paths_are_taken_from_the_files_folder() {
        let cfg = ClusterConfig::from_toml_str(CLUSTER, "cluster.toml", Some(Path::new(BASE))).unwrap();
        let v = serde_json::to_value(&cfg).unwrap();
        for (pointer, want) in CLUSTER_RESOLVED {
            expect(&v, pointer, want);
        }
        expect(&v, "/kafka/extra/ssl.ca.location", "probe");
        expect(&v, "/kafka/extra/ssl.engine.location", "/usr/lib/e.so");
        expect(&v, "/kafka/extra/client.rack", "rack-1");
    }

    /// An empty path is left for `validate` to name, not made into the folder.
    #[test]
    fn an_empty_path_stays_empty_and_is_refused() {
        let text = "[kafka]\nbrokers = \"h:1\"\n[status.tls]\ncert_file = \"\"\nkey_file = \"k.pem\"\n";
        let e = ClusterConfig::from_toml_str(text, "c.toml", Some(Path::new(BASE))).unwrap_err().to_string();
        assert!(e.contains("status.tls.cert_file = \"\""), "{e}");
    }

    /// The fields of a schema node that hold a path, by name: `*_file`,
    /// `*_dir`, `path`, `model`, `template`, `source`; with their pointers.
    fn path_fields(schema: &serde_json::Value, node: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        let node = match node["$ref"].as_str() {
            Some(r) => &schema["$defs"][r.rsplit('/').next().unwrap()],
            None => node,
        };
        for branch in ["anyOf", "oneOf", "allOf"] {
            for n in node[branch].as_array().into_iter().flatten() {
                path_fields(schema, n, at, out);
            }
        }
        if node["items"].is_object() {
            path_fields(schema, &node["items"], &format!("{at}/0"), out);
        }
        for (name, p) in node["properties"].as_object().into_iter().flatten() {
            let here = format!("{at}/{name}");
            let pathlike = name.ends_with("_file")
                || name.ends_with("_dir")
                || ["path", "model", "template", "source"].contains(&name.as_str());
            if pathlike {
                out.push(here.clone());
            }
            path_fields(schema, p, &here, out);
        }
    }

    /// Guards the visit: every path-like field of either configuration's JSON
    /// Schema is one that the tests above set relative and see resolved. A
    /// new path field fails here until `resolve_relative` and those tests
    /// cover it.
    #[test]
    fn every_path_field_of_the_schemas_is_resolved() {
        for (schema, covered) in [
            (schemars::schema_for!(PipelineConfig), PIPELINE_RESOLVED),
            (schemars::schema_for!(ClusterConfig), CLUSTER_RESOLVED),
        ] {
            let schema = schema.as_value().clone();
            let mut fields = Vec::new();
            path_fields(&schema, &schema, "", &mut fields);
            fields.sort();
            fields.dedup();
            assert!(fields.len() >= 6, "{fields:?}");
            for f in &fields {
                assert!(
                    covered.iter().any(|(p, _)| p == f),
                    "{f}: a path field that resolve_relative and its test do not cover"
                );
            }
        }
    }
}
