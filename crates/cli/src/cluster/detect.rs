//! `streetscope detect --cluster FILE`: the detector as a consumer-group member.
//!
//! Frames are read from `streetscope.frames` in the `detectors` group, decoded
//! (a frame that does not decode goes to the dead-letter topic, and the stage
//! goes on), run through the same [`DetectStage`] as `streetscope run`
//! (preprocessing workers, batching, order kept) and published as JSON to
//! `streetscope.detections`, keyed by intersection. A frame's offset is marked
//! done only once its detections are durable and every frame before it in the
//! partition is done too, so a crash replays and never skips; the aggregator
//! drops the replayed duplicates by (camera, sequence number). Which offsets
//! are done is decided by [`InFlight`], a pure type with its own tests; each
//! frame's trace context travels in its entry, so a frame that is shed or fails
//! leaves nothing behind.
//!
//! On SIGTERM the reader stops taking frames, the frames inside the stage come
//! out and are published, their offsets are committed, and the pod leaves the
//! group — all within `--stop-timeout`.

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
use streetscope_telemetry::{spans, StageMeter};
use streetscope_transport::delivery::{InFlight, Slot};
use streetscope_transport::kafka::{
    header, DeadLetters, GroupConsumer, Incoming, LagProbe, Origin, Pending, Producer, Role,
};
use streetscope_transport::{channel, FullPolicy, Publish, Subscribe};

use super::ClusterArgs;

/// The frames a detector pod has taken and not yet settled: keyed by
/// (camera, sequence number), markers passed on in order, the trace context of
/// each frame with it.
type Flight = InFlight<Origin, (Arc<str>, u64), EndOfStream, String>;

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
    let _spans = streetscope_telemetry::spans::init_from_env("streetscope-detect");
    super::runtime("streetscope-detect")?.block_on(run(args, cfg, detector))
}

async fn run(args: &ClusterArgs, cfg: ClusterConfig, detector: Detector) -> anyhow::Result<ExitCode> {
    let k = &cfg.kafka;
    let consumer = Arc::new(GroupConsumer::new(k, &k.groups.detect, &[&k.topics.frames.name])?);
    let lag = LagProbe::new(k, &k.groups.detect, &[&k.topics.frames.name])?;
    streetscope_telemetry::metrics::watch_consumer_lag(&k.groups.detect, move || lag.lag());
    let producer = Producer::new(k, Role::RecordProducer)?;
    let dlq = DeadLetters::new(producer.clone(), &k.topics.dlq.name, "detect");
    let detections_topic = k.topics.detections.name.clone();

    let opts = StageOptions::from_config(&cfg.detector);
    let meter = StageMeter::new("detect");
    // The model is warmed before this runs; ready once the group gave partitions.
    let ready = crate::status::Readiness::pending(&["partitions"]);
    super::serve_status_with(args, &cfg, crate::status::StatusSources::of_stage(&meter), ready.clone()).await?;
    let (frames_tx, frames_rx) = channel::<Frame>("frames", 8, FullPolicy::Block);
    let (dets_tx, mut dets_rx) = channel::<FrameDetections>("detections", 64, FullPolicy::Block);
    let stage = tokio::spawn(DetectStage::with_options(detector, meter.clone(), opts).run(frames_rx, dets_tx));

    let flight: Arc<Mutex<Flight>> = Arc::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Done>(1024);

    // Reader: messages → frames for the stage (or dead letters), in order. It
    // stops taking frames when the pod is asked to stop.
    let stopping = Arc::new(tokio::sync::Notify::new());
    let reader = {
        let (consumer, flight, ready, stopping) = (consumer.clone(), flight.clone(), ready.clone(), stopping.clone());
        async move {
            loop {
                let m = tokio::select! {
                    biased;
                    _ = stopping.notified() => break,
                    incoming = consumer.next() => match incoming {
                        Incoming::Message(m) => m,
                        Incoming::Rebalance(a) => {
                            tracing::info!(?a, "frames partitions changed");
                            ready.set("partitions", true);
                            continue;
                        }
                    },
                };
                let origin = Origin::of(&m);
                let push = |slot, tag| flight.lock().unwrap_or_else(|p| p.into_inner()).push(origin.clone(), slot, tag);
                if header(&m, headers::END_OF_STREAM).is_some() {
                    match serde_json::from_slice::<EndOfStream>(streetscope_transport::kafka::payload(&m)) {
                        Ok(marker) => push(Slot::Marker(marker), String::new()),
                        Err(e) => {
                            dlq.send(&m, &format!("end-of-stream marker: {e}")).await?;
                            push(Slot::Settled, String::new());
                        }
                    }
                    continue;
                }
                match Frame::from_envelope(streetscope_transport::kafka::payload(&m)) {
                    Ok(frame) if frame.check().is_err() => {
                        // It decodes but cannot be true: a dead letter, named.
                        let why = frame.check().expect_err("checked above");
                        dlq.send(&m, &format!("frame {}: {why}", why.label())).await?;
                        push(Slot::Settled, String::new());
                    }
                    Ok(frame) => {
                        let trace = super::continue_trace(header(&m, TRACEPARENT)).to_string();
                        spans::begin("detect", &frame.camera_id, frame.seq, &trace, header(&m, TRACEPARENT));
                        push(Slot::Item((frame.camera_id.clone(), frame.seq)), trace);
                        if frames_tx.publish(frame).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        dlq.send(&m, &format!("frame envelope: {e}")).await?;
                        push(Slot::Settled, String::new());
                    }
                }
            }
            // Dropping the stage's input ends it once the frames inside come out.
            drop(frames_tx);
            anyhow::Ok(())
        }
    };

    // Publisher: detections in input order → producer; offsets to the committer.
    let publisher = {
        let (flight, producer, done_tx) = (flight.clone(), producer.clone(), done_tx.clone());
        async move {
            let mut idle = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    fd = dets_rx.next() => {
                        let Some(fd) = fd else { break };
                        let key = (fd.camera_id.clone(), fd.seq);
                        let settled = flight.lock().unwrap_or_else(|p| p.into_inner()).complete(&key);
                        let Some(mut settled) = settled else {
                            // Its input was revoked meanwhile: publish (at-least-once;
                            // the aggregator drops a duplicate), commit nothing.
                            tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "detections for a frame not in flight (revoked partition?)");
                            let json = serde_json::to_vec(&fd)?;
                            producer.send(&detections_topic, &fd.intersection_id, Some(&json), &[]).await?;
                            continue;
                        };
                        let own = settled.pop().expect("ends with the frame's own entry");
                        let mut origins = Vec::new();
                        for e in settled {
                            // Frames before it were shed or failed; markers go on in order.
                            if let Slot::Marker(marker) = &e.slot {
                                let p = send_marker(&producer, &detections_topic, marker).await?;
                                if done_tx.send(Done::Delivered(p, std::mem::take(&mut origins))).await.is_err() { break; }
                            }
                            origins.push(e.origin);
                        }
                        origins.push(own.origin);
                        let json = serde_json::to_vec(&fd)?;
                        let pending = producer
                            .send(&detections_topic, &fd.intersection_id, Some(&json), &[(TRACEPARENT, own.tag.as_bytes())])
                            .await?;
                        spans::end("detect", &fd.camera_id, fd.seq);
                        if done_tx.send(Done::Delivered(pending, origins)).await.is_err() { break; }
                    }
                    _ = idle.tick() => {
                        // Dead letters and markers at the front, no frame before them in flight.
                        let front = flight.lock().unwrap_or_else(|p| p.into_inner()).take_settled_front();
                        let mut origins = Vec::new();
                        for e in front {
                            if let Slot::Marker(marker) = &e.slot {
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
    let (mut reader, mut publisher, mut committer, progress) =
        (tokio::spawn(reader), tokio::spawn(publisher), tokio::spawn(committer), tokio::spawn(progress));
    let joined = |r: Result<anyhow::Result<()>, tokio::task::JoinError>, what: &str| -> anyhow::Result<()> {
        r.with_context(|| format!("{what} panicked"))?.with_context(|| what.to_owned())
    };
    let outcome = tokio::select! {
        r = &mut reader => joined(r, "reading frames"),
        r = &mut publisher => joined(r, "publishing detections"),
        r = &mut committer => joined(r, "committing offsets"),
        _ = super::shutdown_signal() => {
            // No new frame; those inside the stage come out, are published and
            // committed; then the group is left — within the stop timeout.
            tracing::info!("stopping: finishing the frames in flight, then commit");
            stopping.notify_one();
            let stop = Duration::from_secs_f64(args.stop_timeout);
            let drained = tokio::time::timeout(stop, async {
                joined(reader.await, "reading frames")?;
                joined(publisher.await, "publishing detections")?;
                joined(committer.await, "committing offsets")
            })
            .await;
            match drained {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("frames still in flight after {stop:?}: their next owner replays them");
                    Ok(())
                }
            }
        }
    };
    progress.abort();
    stage.abort();
    producer.flush(Duration::from_secs(5)).ok();
    if let Err(e) = consumer.commit_now() {
        tracing::warn!("last commit: {e}");
    }
    if let Ok(c) = Arc::try_unwrap(consumer) {
        c.close();
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}
