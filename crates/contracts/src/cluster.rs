//! The configuration of the distributed stages (`streetscope ingest|detect|
//! aggregate|registry|topics`): the Kafka connection plus the settings of the
//! stages. Cameras and intersections are not here: they live in the registry
//! (the compacted cameras and intersections topics).

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{
    AnalyticsConfig, ConfigError, DetectorConfig, FieldError, IngestConfig, OutputConfig, PipelineConfig, TrackerConfig,
};
use crate::http::HttpServerConfig;
use crate::kafka::KafkaConfig;

/// Configuration shared by the processes of a distributed deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The Kafka cluster and its topics.
    pub kafka: KafkaConfig,
    /// The object detector of `streetscope detect`.
    #[serde(default)]
    pub detector: DetectorConfig,
    /// The tracker of `streetscope aggregate`.
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// Stall watchdog and reconnection of `streetscope ingest`.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Windows of `streetscope aggregate`. Approaches come from the registry's
    /// intersections and are added to those listed here.
    #[serde(default)]
    pub analytics: AnalyticsConfig,
    /// The aggregators' state keeping.
    #[serde(default)]
    pub aggregate: AggregateStateConfig,
    /// The HTTP server of `streetscope registry`: request limits, connection
    /// bound and TLS.
    #[serde(default)]
    pub registry: HttpServerConfig,
    /// The HTTP server of each stage's `--status-addr` (`/healthz`, `/readyz`,
    /// `/status`, `/metrics`): request limits, connection bound and TLS.
    #[serde(default)]
    pub status: HttpServerConfig,
    /// The HTTP server of `streetscope dashboard`: request limits, connection
    /// bound and TLS.
    #[serde(default)]
    pub dashboard: HttpServerConfig,
}

/// How aggregators keep their state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateStateConfig {
    /// Seconds between snapshots of each intersection's state to the snapshots
    /// topic. Input offsets are committed only after a snapshot that covers them
    /// is durable, so a restarted or rebalanced aggregator replays at most this
    /// much input.
    #[serde(default = "default_snapshot_interval_s")]
    pub snapshot_interval_s: f64,
    /// Seconds between running-count records per intersection on the counts topic.
    #[serde(default = "default_counts_interval_s")]
    pub counts_interval_s: f64,
    /// An intersection with no new detections for this many seconds has its
    /// tracks ended (the crossings they hold are released) and its open windows
    /// closed, as at the end of a file in `streetscope run`.
    #[serde(default = "default_finish_idle_s")]
    pub finish_idle_s: f64,
}

fn default_snapshot_interval_s() -> f64 {
    2.0
}
fn default_counts_interval_s() -> f64 {
    2.0
}
fn default_finish_idle_s() -> f64 {
    10.0
}

impl Default for AggregateStateConfig {
    fn default() -> Self {
        Self {
            snapshot_interval_s: default_snapshot_interval_s(),
            counts_interval_s: default_counts_interval_s(),
            finish_idle_s: default_finish_idle_s(),
        }
    }
}

impl ClusterConfig {
    /// Parses TOML text (`origin` names it in errors) and validates it. Every
    /// relative path in it is taken from `base_dir`, the file's folder
    /// ([`crate::paths`]).
    pub fn from_toml_str(text: &str, origin: &str, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg: ClusterConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if let Some(base) = base_dir {
            cfg.resolve_relative(base);
        }
        cfg.validate().map_err(|errors| ConfigError::Invalid { origin: origin.to_owned(), errors })?;
        Ok(cfg)
    }

    /// Checks every field; errors name the field and the value.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = self.kafka.validate("kafka");
        // The stage sections follow the rules of the one-process configuration.
        let as_pipeline = PipelineConfig {
            cameras: Vec::new(),
            detector: self.detector.clone(),
            tracker: self.tracker.clone(),
            ingest: self.ingest.clone(),
            analytics: AnalyticsConfig { approaches: Vec::new(), ..self.analytics.clone() },
            output: OutputConfig::default(),
            status: self.status.clone(),
            dashboard: self.dashboard.clone(),
        };
        if let Err(e) = as_pipeline.validate() {
            errs.extend(e.into_iter().filter(|e| e.field != "cameras"));
        }
        let a = &self.aggregate;
        if !(0.1..=3600.0).contains(&a.snapshot_interval_s) {
            errs.push(FieldError::new(
                "aggregate.snapshot_interval_s",
                a.snapshot_interval_s.to_string(),
                "must be in [0.1, 3600]",
            ));
        }
        if !(0.1..=3600.0).contains(&a.counts_interval_s) {
            errs.push(FieldError::new(
                "aggregate.counts_interval_s",
                a.counts_interval_s.to_string(),
                "must be in [0.1, 3600]",
            ));
        }
        if !(0.5..=86_400.0).contains(&a.finish_idle_s) {
            errs.push(FieldError::new(
                "aggregate.finish_idle_s",
                a.finish_idle_s.to_string(),
                "must be in [0.5, 86400]",
            ));
        }
        errs.extend(self.registry.validate("registry"));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_cluster_config_parses_and_errors_name_fields() {
        let cfg = ClusterConfig::from_toml_str("[kafka]\nbrokers = \"127.0.0.1:9092\"\n", "c.toml", None).unwrap();
        assert_eq!(cfg.kafka.topics.frames.name, "streetscope.frames");
        let e = ClusterConfig::from_toml_str(
            "[kafka]\nbrokers = \"127.0.0.1:9092\"\n[detector]\nconfidence = 2.0\n[aggregate]\nsnapshot_interval_s = 0\n",
            "c.toml",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("detector.confidence = 2"), "{e}");
        assert!(e.contains("aggregate.snapshot_interval_s = 0"), "{e}");
        assert!(!e.contains("at least one camera"), "{e}");
        let e = ClusterConfig::from_toml_str("[kafka]\nbrokers = \"x:1\"\nbogus = 1\n", "c.toml", None).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
