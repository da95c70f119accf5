//! `streetscope detect --cluster FILE`: the detector as a consumer-group member.
//!
//! Frames are read from `streetscope.frames` in the `detectors` group, decoded
//! (a frame that does not decode goes to the dead-letter topic, and the stage
//! goes on), run through the same [`DetectStage`] as `streetscope run`
//! (preprocessing workers, batching, order kept) and published as JSON to
//! `streetscope.detections`, keyed by intersection. A frame's offset is marked
//! done only once its detections are durable and every frame before it in the
//! partition is done too, so a crash replays and never skips; the aggregator
//! drops the replayed duplicates by (camera, sequence number).

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::kafka::{headers, EndOfStream};
use streetscope_contracts::trace::TRACEPARENT;
use streetscope_contracts::{Frame, FrameDetections};
use streetscope_detect::stage::{DetectStage, StageOptions};
use streetscope_detect::{Detector, DetectorOptions};
use streetscope_telemetry::StageMeter;
use streetscope_transport::kafka::{header, DeadLetters, GroupConsumer, Incoming, Origin, Pending, Producer, Role};
use streetscope_transport::{channel, FullPolicy, Publish, Subscribe};

use super::ClusterArgs;

/// One consumed message, in consumption order, until it is done.
#[derive(Debug)]
struct Entry {
    origin: Origin,
    /// The frame it carried; None for a dead letter (already handled) or a marker.
    frame: Option<(Arc<str>, u64)>,
    /// An end-of-stream marker, passed on to the detections topic in order.
    marker: Option<EndOfStream>,
}

/// Trace context per frame in flight, by (camera, sequence number).
type Traces = std::collections::HashMap<(Arc<str>, u64), String>;

/// What the committer awaits, in order.
enum Done {
    /// Detections on their way, then these offsets.
    Delivered(Pending, Vec<Origin>),
    /// Offsets with nothing to wait for.
    Skipped(Vec<Origin>),
}

/// Passes an end-of-stream marker on to the detections topic (key = intersection).
async fn send_marker(producer: &Producer, topic: &str, marker: &EndOfStream) -> anyhow::Result<Pending> {
    let json = serde_json::to_vec(marker)?;
    Ok(producer
        .send(topic, &marker.intersection_id, Some(&json), &[(headers::END_OF_STREAM, marker.camera_id.as_bytes())])
        .await?)
}

pub fn detect_stage(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.load()?;
    let model = cfg.detector.model.clone().unwrap_or_else(crate::paths::default_model);
    let mut detector = Detector::load(&model, DetectorOptions::from_config(&cfg.detector))?;
    let warm = detector.warm_up()?;
    tracing::info!("detector ready on {} (warm-up {warm:.2} s)", detector.provider().name());
    super::runtime("streetscope-detect")?.block_on(run(args, cfg, detector))
}

async fn run(args: &ClusterArgs, cfg: ClusterConfig, detector: Detector) -> anyhow::Result<ExitCode> {
    let k = &cfg.kafka;
    let consumer = Arc::new(GroupConsumer::new(k, &k.groups.detect, &[&k.topics.frames.name])?);
    let producer = Producer::new(k, Role::RecordProducer)?;
    let dlq = DeadLetters::new(producer.clone(), &k.topics.dlq.name, "detect");
    let detections_topic = k.topics.detections.name.clone();

    let opts = StageOptions::from_config(&cfg.detector);
    let meter = StageMeter::new("detect");
    super::serve_status(args, crate::status::StatusSources::of_stage(&meter)).await?;
    let (frames_tx, frames_rx) = channel::<Frame>("frames", 8, FullPolicy::Block);
    let (dets_tx, mut dets_rx) = channel::<FrameDetections>("detections", 64, FullPolicy::Block);
    let stage = tokio::spawn(DetectStage::with_options(detector, meter.clone(), opts).run(frames_rx, dets_tx));

    let fifo: Arc<Mutex<VecDeque<Entry>>> = Arc::default();
    let traces: Arc<Mutex<Traces>> = Arc::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Done>(1024);

    // Reader: messages → frames for the stage (or dead letters), in order.
    let reader = {
        let (consumer, fifo, traces) = (consumer.clone(), fifo.clone(), traces.clone());
        async move {
            loop {
                let m = match consumer.next().await {
                    Incoming::Message(m) => m,
                    Incoming::Rebalance(a) => {
                        tracing::info!(?a, "frames partitions changed");
                        continue;
                    }
                };
                let origin = Origin::of(&m);
                if header(&m, headers::END_OF_STREAM).is_some() {
                    match serde_json::from_slice::<EndOfStream>(streetscope_transport::kafka::payload(&m)) {
                        Ok(marker) => {
                            fifo.lock().expect("poisoned").push_back(Entry {
                                origin,
                                frame: None,
                                marker: Some(marker),
                            });
                        }
                        Err(e) => {
                            dlq.send(&m, &format!("end-of-stream marker: {e}")).await?;
                            fifo.lock().expect("poisoned").push_back(Entry { origin, frame: None, marker: None });
                        }
                    }
                    continue;
                }
                match Frame::from_envelope(streetscope_transport::kafka::payload(&m)) {
                    Ok(frame) => {
                        let key = (frame.camera_id.clone(), frame.seq);
                        let trace = super::continue_trace(header(&m, TRACEPARENT));
                        traces.lock().expect("poisoned").insert(key.clone(), trace.to_string());
                        fifo.lock().expect("poisoned").push_back(Entry { origin, frame: Some(key), marker: None });
                        if frames_tx.publish(frame).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        dlq.send(&m, &format!("frame envelope: {e}")).await?;
                        fifo.lock().expect("poisoned").push_back(Entry { origin, frame: None, marker: None });
                    }
                }
            }
            anyhow::Ok(())
        }
    };

    // Publisher: detections in input order → producer; offsets to the committer.
    let publisher = {
        let (fifo, traces, producer, done_tx) = (fifo.clone(), traces.clone(), producer.clone(), done_tx.clone());
        async move {
            let mut idle = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    fd = dets_rx.next() => {
                        let Some(fd) = fd else { break };
                        let key = (fd.camera_id.clone(), fd.seq);
                        // Entries before this frame's produced nothing (shed, failed, dead letters).
                        let mut origins = Vec::new();
                        let mut found = false;
                        let mut popped = Vec::new();
                        {
                            let mut q = fifo.lock().expect("poisoned");
                            while let Some(e) = q.pop_front() {
                                let hit = e.frame.as_ref() == Some(&key);
                                popped.push(e);
                                if hit { found = true; break; }
                            }
                        }
                        for e in popped {
                            if let Some(marker) = &e.marker {
                                let p = send_marker(&producer, &detections_topic, marker).await?;
                                if done_tx.send(Done::Delivered(p, std::mem::take(&mut origins))).await.is_err() { break; }
                            }
                            origins.push(e.origin);
                        }
                        if !found {
                            tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "detections for a frame not in flight (revoked partition?)");
                        }
                        let trace = traces.lock().expect("poisoned").remove(&key).unwrap_or_default();
                        let json = serde_json::to_vec(&fd)?;
                        let pending = producer
                            .send(&detections_topic, &fd.intersection_id, Some(&json), &[(TRACEPARENT, trace.as_bytes())])
                            .await?;
                        if done_tx.send(Done::Delivered(pending, origins)).await.is_err() { break; }
                    }
                    _ = idle.tick() => {
                        // Dead letters and markers at the front, no frame before them in flight.
                        let mut popped = Vec::new();
                        {
                            let mut q = fifo.lock().expect("poisoned");
                            while q.front().is_some_and(|e| e.frame.is_none()) {
                                popped.push(q.pop_front().expect("checked"));
                            }
                        }
                        let mut origins = Vec::new();
                        for e in popped {
                            if let Some(marker) = &e.marker {
                                let p = send_marker(&producer, &detections_topic, marker).await?;
                                if done_tx.send(Done::Delivered(p, std::mem::take(&mut origins))).await.is_err() { break; }
                                tracing::info!(camera = %marker.camera_id, "recording ended: end-of-stream passed on");
                            }
                            origins.push(e.origin);
                        }
                        if !origins.is_empty() && done_tx.send(Done::Skipped(origins)).await.is_err() { break; }
                    }
                }
            }
            anyhow::Ok(())
        }
    };
    drop(done_tx);

    // Committer: waits for each delivery in order, then marks its offsets done.
    let committer = {
        let consumer = consumer.clone();
        async move {
            while let Some(d) = done_rx.recv().await {
                let origins = match d {
                    Done::Delivered(p, origins) => {
                        p.durable().await.context("publishing detections")?;
                        origins
                    }
                    Done::Skipped(origins) => origins,
                };
                for o in origins {
                    consumer.mark_done(&o.topic, o.partition, o.offset);
                }
            }
            anyhow::Ok(())
        }
    };

    let progress = {
        let meter = meter.clone();
        async move {
            let mut t = tokio::time::interval(Duration::from_secs(5));
            loop {
                t.tick().await;
                let st = meter.stats();
                let ms = if st.items > 0 { st.busy_s * 1e3 / st.items as f64 } else { 0.0 };
                tracing::info!(frames = st.items, inference_ms_per_frame = format!("{ms:.1}"), "detect stage running");
            }
        }
    };
    let outcome = tokio::select! {
        r = reader => r.context("reading frames"),
        r = publisher => r.context("publishing detections"),
        r = committer => r,
        _ = progress => Ok(()),
        _ = super::shutdown_signal() => {
            tracing::info!("stopping: committing what is done");
            Ok(())
        }
    };
    stage.abort();
    producer.flush(Duration::from_secs(10)).ok();
    if let Ok(c) = Arc::try_unwrap(consumer) {
        c.close();
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}
