//! How the distributed stages reach Kafka: brokers, security, topics, and the
//! tuning of producers and consumers. Secrets (SASL password, TLS key password)
//! are never in this structure: it names the file or environment variable that
//! holds them, so a config can be logged, diffed and committed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::FieldError;

/// Kafka headers with a meaning in Streetscope's topics.
pub mod headers {
    /// W3C trace context of the frame the message derives from.
    pub const TRACEPARENT: &str = crate::trace::TRACEPARENT;
    /// On `streetscope.frames` and `streetscope.detections`: the camera's
    /// recording ended (a file, or recorded footage with `frame_ids = "media"`);
    /// the value is the camera id. The message's own value is an
    /// [`EndOfStream`](super::EndOfStream) in JSON. The aggregator ends the
    /// intersection's tracks once all its recorded cameras have ended, as the
    /// end of the files does in `streetscope run`.
    pub const END_OF_STREAM: &str = "streetscope.end-of-stream";
    /// On `streetscope.detections`: the detector wrote this frame to
    /// `streetscope.camera-snapshots` (value: empty); the aggregator answers it
    /// with the frame's [`SnapshotOverlay`](crate::snapshots::SnapshotOverlay)
    /// (track ids per box). A header, not a field: the detections' JSON and
    /// its schema stay as they are, and old records read the same.
    pub const SNAPSHOT: &str = "streetscope.snapshot";
}

/// The value of an end-of-stream marker (see [`headers::END_OF_STREAM`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndOfStream {
    pub camera_id: String,
    pub intersection_id: String,
    /// Sequence number of the camera's last frame.
    pub last_seq: Option<u64>,
}

/// Connection to a Kafka-protocol cluster (Apache Kafka, Redpanda, tansu, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Client id sent to the brokers (shows in broker logs and quotas).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// TLS and SASL.
    #[serde(default)]
    pub security: KafkaSecurity,
    /// Topic names and their layout.
    #[serde(default)]
    pub topics: TopicsConfig,
    /// Consumer group ids of the stages.
    #[serde(default)]
    pub groups: GroupsConfig,
    /// How long a producer waits to fill a batch, milliseconds. Frames are big:
    /// a few milliseconds fill a batch without adding visible latency.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u32,
    /// Largest producer batch, bytes.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u32,
    /// Compression of produced batches: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    /// JPEG frames do not compress; JSON records do.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Largest message, bytes (a JPEG frame is about 50 kB; raw RGB 1.2 MB).
    #[serde(default = "default_message_max_bytes")]
    pub message_max_bytes: u32,
    /// A consumer that sends no heartbeat for this long leaves its group and its
    /// partitions move to the others, milliseconds.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u32,
    /// Further librdkafka properties, passed as they are (see librdkafka's
    /// CONFIGURATION.md). Keys that carry secrets are refused here: use
    /// `security`.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// TLS and SASL settings. Passwords come from files (mounted Kubernetes
/// secrets) or environment variables, never from the config itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`. Default: `ssl` when
    /// `tls` is set, `sasl_ssl` when both are, `sasl_plaintext` with `sasl` only.
    #[serde(default)]
    pub protocol: Option<String>,
    /// TLS: the CA that signed the brokers' certificates, and optionally a client
    /// certificate.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL authentication.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
}

/// TLS files (PEM).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) to verify the brokers with. None: the system's CAs.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for brokers that require mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// File holding the private key's password, if it has one.
    #[serde(default)]
    pub key_password_file: Option<PathBuf>,
    /// Check that the broker's certificate names the host connected to.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

/// SASL credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// File holding the password (first line). One of this and `password_env`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

/// The topics of DESIGN.md and how `streetscope topics create` makes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Camera specs (compacted, key camera id). Partitions bound the ingest pods.
    #[serde(default = "cameras_topic")]
    pub cameras: TopicSpec,
    /// Intersection specs (compacted, key intersection id).
    #[serde(default = "intersections_topic")]
    pub intersections: TopicSpec,
    /// Frames (key camera id). Partitions bound the detector pods.
    #[serde(default = "frames_topic")]
    pub frames: TopicSpec,
    /// Detections (key intersection id). Partitions bound the aggregators.
    #[serde(default = "detections_topic")]
    pub detections: TopicSpec,
    /// Crossing and turning-movement events (key intersection id).
    #[serde(default = "events_topic")]
    pub events: TopicSpec,
    /// Window records and running counts (key intersection id).
    #[serde(default = "counts_topic")]
    pub counts: TopicSpec,
    /// Alerts (key intersection id).
    #[serde(default = "alerts_topic")]
    pub alerts: TopicSpec,
    /// Aggregator state per intersection (compacted, key intersection id; same
    /// partition count as `detections`, so a detections partition's state lives
    /// in the snapshots partition of the same number).
    #[serde(default = "snapshots_topic")]
    pub snapshots: TopicSpec,
    /// Messages that failed to decode, with the reason and their origin in headers.
    #[serde(default = "dlq_topic")]
    pub dlq: TopicSpec,
    /// The dashboard's camera snapshots (key camera id): one frame per camera
    /// every few seconds with its detections, written by the detectors; short
    /// retention, read by `streetscope dashboard` (see `snapshots`).
    #[serde(default = "camera_snapshots_topic")]
    pub camera_snapshots: TopicSpec,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Replication factor (3 in production; 1 on a one-broker test cluster).
    #[serde(default = "one")]
    pub replication: u16,
    /// `delete` or `compact`.
    #[serde(default = "delete")]
    pub cleanup_policy: String,
    /// How long messages are kept, hours; None: the broker's default.
    #[serde(default)]
    pub retention_hours: Option<u32>,
}

/// Consumer groups of the stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    /// Ingest pods share the cameras topic's partitions in this group.
    #[serde(default = "group_ingest")]
    pub ingest: String,
    /// Detector pods share the frames topic's partitions.
    #[serde(default = "group_detect")]
    pub detect: String,
    /// Aggregators share the detections topic's partitions.
    #[serde(default = "group_aggregate")]
    pub aggregate: String,
}

fn yes() -> bool {
    true
}
fn one() -> u16 {
    1
}
fn delete() -> String {
    "delete".into()
}
fn default_client_id() -> String {
    "streetscope".into()
}
fn default_linger_ms() -> u32 {
    5
}
fn default_batch_bytes() -> u32 {
    1 << 20
}
fn default_compression() -> String {
    "lz4".into()
}
fn default_message_max_bytes() -> u32 {
    4 << 20
}
fn default_session_timeout_ms() -> u32 {
    10_000
}
fn topic(name: &str, partitions: u32, cleanup: &str, retention_hours: Option<u32>) -> TopicSpec {
    TopicSpec { name: name.into(), partitions, replication: 1, cleanup_policy: cleanup.into(), retention_hours }
}
fn cameras_topic() -> TopicSpec {
    topic("streetscope.cameras", 4, "compact", None)
}
fn intersections_topic() -> TopicSpec {
    topic("streetscope.intersections", 1, "compact", None)
}
fn frames_topic() -> TopicSpec {
    topic("streetscope.frames", 8, "delete", Some(1))
}
fn detections_topic() -> TopicSpec {
    topic("streetscope.detections", 4, "delete", Some(24))
}
fn events_topic() -> TopicSpec {
    topic("streetscope.events", 4, "delete", Some(24 * 7))
}
fn counts_topic() -> TopicSpec {
    topic("streetscope.counts", 4, "delete", Some(24 * 30))
}
fn alerts_topic() -> TopicSpec {
    topic("streetscope.alerts", 4, "delete", Some(24 * 7))
}
fn snapshots_topic() -> TopicSpec {
    topic("streetscope.snapshots", 4, "compact", None)
}
fn dlq_topic() -> TopicSpec {
    topic("streetscope.dlq", 1, "delete", Some(24 * 7))
}
fn camera_snapshots_topic() -> TopicSpec {
    topic("streetscope.camera-snapshots", 4, "delete", Some(1))
}
fn group_ingest() -> String {
    "streetscope-ingest".into()
}
fn group_detect() -> String {
    "detectors".into()
}
fn group_aggregate() -> String {
    "aggregators".into()
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            cameras: cameras_topic(),
            intersections: intersections_topic(),
            frames: frames_topic(),
            detections: detections_topic(),
            events: events_topic(),
            counts: counts_topic(),
            alerts: alerts_topic(),
            snapshots: snapshots_topic(),
            dlq: dlq_topic(),
            camera_snapshots: camera_snapshots_topic(),
        }
    }
}

impl TopicsConfig {
    /// Every topic with the config field that names it.
    pub fn all(&self) -> [(&'static str, &TopicSpec); 10] {
        [
            ("cameras", &self.cameras),
            ("intersections", &self.intersections),
            ("frames", &self.frames),
            ("detections", &self.detections),
            ("events", &self.events),
            ("counts", &self.counts),
            ("alerts", &self.alerts),
            ("snapshots", &self.snapshots),
            ("dlq", &self.dlq),
            ("camera_snapshots", &self.camera_snapshots),
        ]
    }
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self { ingest: group_ingest(), detect: group_detect(), aggregate: group_aggregate() }
    }
}

impl KafkaConfig {
    /// A configuration with defaults for everything but the brokers.
    pub fn with_brokers(brokers: &str) -> Self {
        Self {
            brokers: brokers.into(),
            client_id: default_client_id(),
            security: KafkaSecurity::default(),
            topics: TopicsConfig::default(),
            groups: GroupsConfig::default(),
            linger_ms: default_linger_ms(),
            batch_bytes: default_batch_bytes(),
            compression: default_compression(),
            message_max_bytes: default_message_max_bytes(),
            session_timeout_ms: default_session_timeout_ms(),
            extra: BTreeMap::new(),
        }
    }

    /// The security protocol in effect (explicit, or implied by `tls`/`sasl`).
    pub fn protocol(&self) -> String {
        if let Some(p) = &self.security.protocol {
            return p.to_ascii_lowercase();
        }
        match (self.security.tls.is_some(), self.security.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
        .into()
    }

    /// Checks every field; errors name the field (under `prefix`) and the value.
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut bad = |field: &str, value: String, reason: &str| {
            errs.push(FieldError { field: format!("{prefix}.{field}"), value, reason: reason.into() })
        };
        if self.brokers.split(',').any(|b| {
            let b = b.trim();
            b.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        }) {
            bad("brokers", format!("{:?}", self.brokers), "use comma-separated host:port pairs");
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.compression.as_str()) {
            bad("compression", format!("{:?}", self.compression), "use none, gzip, snappy, lz4 or zstd");
        }
        if self.message_max_bytes < 1024 {
            bad("message_max_bytes", self.message_max_bytes.to_string(), "at least 1024");
        }
        if self.session_timeout_ms < 1000 {
            bad("session_timeout_ms", self.session_timeout_ms.to_string(), "at least 1000");
        }
        let protocol = self.protocol();
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
            bad("security.protocol", format!("{protocol:?}"), "use plaintext, ssl, sasl_plaintext or sasl_ssl");
        }
        if protocol.starts_with("sasl") && self.security.sasl.is_none() {
            bad("security.sasl", "none".into(), "a SASL protocol needs [kafka.security.sasl]");
        }
        if let Some(sasl) = &self.security.sasl {
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&sasl.mechanism.as_str()) {
                bad(
                    "security.sasl.mechanism",
                    format!("{:?}", sasl.mechanism),
                    "use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                );
            }
            if sasl.password_file.is_some() == sasl.password_env.is_some() {
                bad(
                    "security.sasl",
                    "password_file/password_env".into(),
                    "set exactly one of password_file and password_env",
                );
            }
        }
        if let Some(tls) = &self.security.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                bad(
                    "security.tls",
                    "cert_file/key_file".into(),
                    "a client certificate needs both cert_file and key_file",
                );
            }
        }
        for key in self.extra.keys() {
            let k = key.to_ascii_lowercase();
            if k.contains("password") || k.contains("secret") || k.contains("sasl.") || k.contains(".key") {
                bad(&format!("extra.{key}"), "(hidden)".into(), "secrets belong in [kafka.security], not in extra");
            }
        }
        for (field, t) in self.topics.all() {
            if t.name.is_empty()
                || t.name.len() > 249
                || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                bad(
                    &format!("topics.{field}.name"),
                    format!("{:?}", t.name),
                    "1-249 characters of letters, digits, '.', '_' or '-'",
                );
            }
            if t.partitions == 0 {
                bad(&format!("topics.{field}.partitions"), "0".into(), "at least 1");
            }
            if t.replication == 0 {
                bad(&format!("topics.{field}.replication"), "0".into(), "at least 1");
            }
            if !["delete", "compact"].contains(&t.cleanup_policy.as_str()) {
                bad(
                    &format!("topics.{field}.cleanup_policy"),
                    format!("{:?}", t.cleanup_policy),
                    "use delete or compact",
                );
            }
        }
        if self.topics.snapshots.partitions != self.topics.detections.partitions {
            bad(
                "topics.snapshots.partitions",
                self.topics.snapshots.partitions.to_string(),
                "must equal topics.detections.partitions (an aggregator restores a detections partition from the snapshots partition of the same number)",
            );
        }
        for (field, t) in [
            ("cameras", &self.topics.cameras),
            ("intersections", &self.topics.intersections),
            ("snapshots", &self.topics.snapshots),
        ] {
            if t.cleanup_policy != "compact" {
                bad(
                    &format!("topics.{field}.cleanup_policy"),
                    format!("{:?}", t.cleanup_policy),
                    "this topic is a table: it must be compact",
                );
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_protocol_follows_settings() {
        let mut k = KafkaConfig::with_brokers("127.0.0.1:9092,broker-2:9093");
        assert!(k.validate("kafka").is_empty());
        assert_eq!(k.protocol(), "plaintext");
        k.security.tls = Some(TlsConfig::default());
        assert_eq!(k.protocol(), "ssl");
        k.security.sasl = Some(SaslConfig {
            mechanism: "SCRAM-SHA-512".into(),
            username: "u".into(),
            password_file: Some("/run/secrets/kafka".into()),
            password_env: None,
        });
        assert_eq!(k.protocol(), "sasl_ssl");
        assert!(k.validate("kafka").is_empty());
    }

    #[test]
    fn errors_name_field_and_value() {
        let mut k = KafkaConfig::with_brokers("localhost");
        k.compression = "brotli".into();
        k.topics.cameras.cleanup_policy = "delete".into();
        k.topics.snapshots.partitions = 2;
        k.extra.insert("sasl.password".into(), "hunter2".into());
        let errs = k.validate("kafka");
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(text.iter().any(|e| e.starts_with("kafka.brokers = \"localhost\"")), "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("kafka.compression = \"brotli\"")), "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("kafka.topics.cameras.cleanup_policy")), "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("kafka.topics.snapshots.partitions = 2")), "{text:?}");
        assert!(text.iter().all(|e| !e.contains("hunter2")), "{text:?}");
    }
}
