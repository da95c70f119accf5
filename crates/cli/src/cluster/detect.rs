//! `streetscope detect --cluster FILE`: the detector as a consumer-group member.
//!
//! The same [`DetectStage`] as `streetscope run` (preprocessing workers,
//! batching, order kept), connected to Kafka instead of in-process channels:
//! its input is a [`RelayInput`](streetscope_transport::relay::RelayInput) on
//! `streetscope.frames` in the `detectors` group, its output a
//! [`RelayOutput`](streetscope_transport::relay::RelayOutput) to
//! `streetscope.detections`, keyed by intersection. The relay owns the
//! delivery rules (a frame's offset is committed only once its detections are
//! durable and every frame before it is done; a crash replays and never
//! skips; the aggregator drops replayed duplicates by camera and sequence
//! number). What is the detector's own is [`FramesToDetections`]: how a frame
//! message decodes (an envelope that does not decode, or a frame that cannot be
//! true, is a dead letter with its reason; an end-of-stream marker is passed
//! on in order) and how detections are written.
//!
//! On SIGTERM the relay stops taking frames, the frames inside the stage come
//! out and are published, their offsets are committed, and the pod leaves the
//! group — all within `--stop-timeout`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::kafka::{headers, EndOfStream};
use streetscope_contracts::trace::TRACEPARENT;
use streetscope_contracts::{Frame, FrameDetections};
use streetscope_detect::stage::{DetectStage, StageOptions};
use streetscope_detect::Detector;
use streetscope_telemetry::{spans, StageMeter};
use streetscope_transport::kafka::{
    header, payload, Assignment, DeadLetters, GroupConsumer, LagProbe, OwnedMessage, Producer, Role,
};
use streetscope_transport::relay::{relay, Codec, Decoded, Encoded};

use super::ClusterArgs;
use crate::dashboard_cmd::SnapshotWriter;

/// How frames and detections look on their topics.
pub struct FramesToDetections {
    /// The dashboard's camera snapshots: a frame per camera every 5 s with its
    /// detections, offered here on their way through.
    snapshots: SnapshotWriter,
}

impl Codec for FramesToDetections {
    type In = Frame;
    type Out = FrameDetections;
    /// (camera, sequence number): unique per frame.
    type Key = (Arc<str>, u64);
    type Marker = EndOfStream;

    fn decode(&self, m: &OwnedMessage) -> Decoded<Frame, Self::Key, EndOfStream> {
        if header(m, headers::END_OF_STREAM).is_some() {
            return match serde_json::from_slice::<EndOfStream>(payload(m)) {
                Ok(marker) => Decoded::Marker(marker),
                Err(e) => {
                    Decoded::Poison { label: "end_of_stream_marker", reason: format!("end-of-stream marker: {e}") }
                }
            };
        }
        match Frame::from_envelope(payload(m)) {
            // It decodes but cannot be true: a dead letter, named.
            Ok(frame) => match frame.check() {
                Err(why) => Decoded::Poison { label: why.label(), reason: format!("frame {}: {why}", why.label()) },
                Ok(()) => {
                    self.snapshots.offer_frame(&frame);
                    let tag = super::continue_trace(header(m, TRACEPARENT)).to_string();
                    spans::begin("detect", &frame.camera_id, frame.seq, &tag, header(m, TRACEPARENT));
                    Decoded::Item { key: (frame.camera_id.clone(), frame.seq), tag, item: frame }
                }
            },
            Err(e) => Decoded::Poison { label: "frame_envelope", reason: format!("frame envelope: {e}") },
        }
    }

    fn key_of(&self, d: &FrameDetections) -> Self::Key {
        (d.camera_id.clone(), d.seq)
    }

    fn encode(&self, d: &FrameDetections, tag: &str) -> Result<Encoded, String> {
        let value = serde_json::to_vec(d).map_err(|e| e.to_string())?;
        let mut headers = if tag.is_empty() { Vec::new() } else { vec![(TRACEPARENT, tag.as_bytes().to_vec())] };
        if self.snapshots.marks(d) {
            // A snapshot's frame: the aggregator answers with its track ids.
            headers.push((streetscope_contracts::kafka::headers::SNAPSHOT, Vec::new()));
        }
        Ok(Encoded { key: d.intersection_id.to_string(), value, headers })
    }

    fn encode_marker(&self, marker: &EndOfStream) -> Result<Encoded, String> {
        tracing::info!(camera = %marker.camera_id, "recording ended: end-of-stream passed on");
        Ok(Encoded {
            key: marker.intersection_id.clone(),
            value: serde_json::to_vec(marker).map_err(|e| e.to_string())?,
            headers: vec![(headers::END_OF_STREAM, marker.camera_id.as_bytes().to_vec())],
        })
    }

    fn published(&self, d: &FrameDetections) {
        spans::end("detect", &d.camera_id, d.seq);
        self.snapshots.detections(d);
    }
}

pub fn detect_stage(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.load()?;
    let model = cfg.detector.model.clone().unwrap_or_else(crate::paths::default_model);
    let detectors = crate::run::load_detectors(&model, &cfg.detector)?;
    let _spans = streetscope_telemetry::spans::init_from_env("streetscope-detect");
    super::runtime("streetscope-detect")?.block_on(run(args, cfg, detectors))
}

async fn run(args: &ClusterArgs, cfg: ClusterConfig, detectors: Vec<Detector>) -> anyhow::Result<ExitCode> {
    let k = &cfg.kafka;
    let consumer = Arc::new(GroupConsumer::new(k, &k.groups.detect, &[&k.topics.frames.name])?);
    let lag = LagProbe::new(k, &k.groups.detect, &[&k.topics.frames.name])?;
    streetscope_telemetry::metrics::watch_consumer_lag(&k.groups.detect, move || lag.lag());
    let producer = Producer::new(k, Role::RecordProducer)?;
    let dlq = DeadLetters::new(producer.clone(), &k.topics.dlq.name, "detect");

    let meter = StageMeter::new("detect");
    // The model is warmed before this runs; ready once the group gave partitions.
    let ready = crate::status::Readiness::pending(&["partitions"]);
    super::serve_status_with(args, &cfg, crate::status::StatusSources::of_stage(&meter), ready.clone()).await?;
    let on_rebalance = move |a: &Assignment| {
        tracing::info!(?a, "frames partitions changed");
        ready.set("partitions", true);
    };
    let snapshots = SnapshotWriter::new(producer.clone(), &k.topics.camera_snapshots.name, Default::default());
    let codec = FramesToDetections { snapshots };
    let (frames, detections, control) =
        relay(consumer, producer.clone(), dlq, &k.topics.detections.name, codec, on_rebalance);
    // The same stage, the same call as `streetscope run`; only the ends differ.
    let stage = DetectStage::with_streams(detectors, meter.clone(), StageOptions::from_config(&cfg.detector));
    let mut stage = tokio::spawn(stage.run(frames, detections));

    let progress = tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(5));
        loop {
            t.tick().await;
            let st = meter.stats();
            let ms = if st.items > 0 { st.busy_s * 1e3 / st.items as f64 } else { 0.0 };
            tracing::info!(frames = st.items, inference_ms_per_frame = format!("{ms:.1}"), "detect stage running");
        }
    });
    // The stage ends when its input does: on SIGTERM (the relay stops taking
    // frames) or when the relay fails.
    let stop = Duration::from_secs_f64(args.stop_timeout);
    let mut deadline = None;
    let ended = tokio::select! {
        r = &mut stage => Some(r),
        _ = super::shutdown_signal() => None,
    };
    let ended = match ended {
        Some(r) => r,
        None => {
            tracing::info!("stopping: finishing the frames in flight, then commit");
            deadline = Some(Instant::now() + stop);
            control.stop();
            match tokio::time::timeout(stop, &mut stage).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("frames still in the stage after {stop:?}: their next owner replays them");
                    stage.abort();
                    stage.await
                }
            }
        }
    };
    progress.abort();
    let stage_result = match ended {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("detect stage: {e}")),
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("detect stage panicked: {e}")),
    };
    let left =
        deadline.map_or(stop, |d: Instant| d.saturating_duration_since(Instant::now()).max(Duration::from_secs(1)));
    let delivered = control.finish(left).await.map_err(|e| anyhow::anyhow!("publishing detections: {e}"));
    producer.flush(Duration::from_secs(5)).ok();
    stage_result?;
    delivered?;
    Ok(ExitCode::SUCCESS)
}
