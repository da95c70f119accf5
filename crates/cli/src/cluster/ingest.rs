//! `streetscope ingest --cluster FILE`: an ingest pod.
//!
//! Ingest pods share the cameras through the `streetscope-ingest` consumer
//! group on the compacted cameras topic. A pod reads each assigned partition
//! from its beginning (offsets are never committed: the topic is a table), so it
//! learns every camera of those partitions, and then follows the registry's
//! changes ([`RegistryCameras`] turns them into [`CameraChange`]s). The changes
//! drive the same [`Reconciler`] as `streetscope run`: a camera starts, restarts
//! only when its ingest settings changed (a moved counting line is the
//! aggregator's business), and stops when it is disabled, deleted, or its
//! partition moves to another pod.
//!
//! Each start of a live camera is a new run of its frame identity (see
//! `streetscope_contracts::identity`), so a camera's numbers keep rising through
//! a pod killed, stopped by a rolling update or replaced by another. Frames go
//! through the camera's bounded queue ([`camera_queue`], as in `streetscope run`:
//! live cameras drop the oldest when Kafka is slow, and count it) to the frames
//! topic. A recording that ends by itself is followed by an end-of-stream
//! marker on its partition, so the aggregator ends its tracks as `streetscope
//! run` does at the end of a file.
//!
//! On SIGTERM the pod stops its cameras, drains their queues into the
//! producer, waits until the frames are durable and leaves the group, within
//! `--stop-timeout`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streetscope_contracts::cameras::CameraChange;
use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::kafka::{headers, EndOfStream};
use streetscope_ingest::reconcile::{Finished, IngestSettings, Reconciler};
use streetscope_ingest::supervisor::RestartPolicy;
use streetscope_ingest::{CameraSource, StopHandle};
use streetscope_pipeline::cameras::{camera_queue, DropCounters};
use streetscope_pipeline::ingest::{RegistryCameras, SpecMessage};
use streetscope_registry::redact::scrub_text;
use streetscope_telemetry::StageMeter;
use streetscope_transport::kafka::{
    is_tombstone, key, payload, Assignment, DeadLetters, FramePublisher, GroupConsumer, Incoming, Origin, Producer,
    Role,
};

use super::ClusterArgs;

pub(crate) use streetscope_ingest::reconcile::DEFAULT_JPEG_QUALITY;

/// Frames an ingest pod's camera queue holds while Kafka is slow.
pub(crate) const POD_QUEUE_FRAMES: usize = 8;

pub fn ingest_stage(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.load()?;
    let _spans = streetscope_telemetry::spans::init_from_env("streetscope-ingest");
    super::runtime("streetscope-ingest")?.block_on(run(args, cfg))
}

/// The forwarders of the cameras' queues, by camera id (the latest start).
type Forwarders = Arc<Mutex<HashMap<String, tokio::task::JoinHandle<Option<u64>>>>>;

/// A camera that ended by itself, with its forwarder.
type Ended = (Finished, Option<tokio::task::JoinHandle<Option<u64>>>);

async fn run(args: &ClusterArgs, cfg: ClusterConfig) -> anyhow::Result<ExitCode> {
    let k = &cfg.kafka;
    let (drops, meter) = (DropCounters::default(), StageMeter::new("produce"));
    let producer = Producer::new(k, Role::FrameProducer)?;
    let frames = FramePublisher::new(producer.clone(), &k.topics.frames.name, super::random_bytes);
    let stats = frames.stats();
    let [w, h] = cfg.detector.input_size.unwrap_or([640, 640]);
    let settings = IngestSettings {
        width: w,
        height: h,
        stall_timeout: Duration::from_secs_f64(cfg.ingest.stall_timeout_s),
        policy: RestartPolicy::from_config(&cfg.ingest),
        default_jpeg_quality: Some(DEFAULT_JPEG_QUALITY),
    };
    let forwarders: Forwarders = Arc::default();
    let make_sink = {
        let (drops, meter, rt, forwarders) =
            (drops.clone(), meter.clone(), tokio::runtime::Handle::current(), forwarders.clone());
        move |cam: &CameraSource| {
            let q = camera_queue(cam, POD_QUEUE_FRAMES, frames.clone(), &meter, &rt);
            drops.add(&cam.camera_id, q.drops);
            forwarders.lock().unwrap_or_else(|e| e.into_inner()).insert(cam.camera_id.clone(), q.forwarder);
            q.sink
        }
    };
    let reconciler = Reconciler::new(settings, make_sink);
    let running = reconciler.statuses();
    let sources = crate::status::StatusSources {
        cameras: running.clone(),
        drops: drops.clone(),
        stages: vec![meter.clone()],
        delivery: Default::default(),
    };
    super::serve_status(args, &cfg, sources).await?;

    // The reconciler's thread: changes in, cameras that ended by themselves out
    // (with their forwarder, taken on that thread before any later start).
    let (changes, changes_rx) = std::sync::mpsc::channel::<CameraChange>();
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::channel::<Ended>(64);
    let stop = StopHandle::default();
    let driver = {
        let (stop, forwarders) = (stop.clone(), forwarders.clone());
        tokio::task::spawn_blocking(move || {
            reconciler.drive(changes_rx, &stop, |finished| {
                let fwd = forwarders.lock().unwrap_or_else(|e| e.into_inner()).remove(&finished.0);
                let _ = ended_tx.blocking_send((finished, fwd));
            })
        })
    };

    let consumer = GroupConsumer::with_instance_id(
        k,
        &k.groups.ingest,
        &[&k.topics.cameras.name],
        args.group_instance_id.as_deref(),
    )?;
    let dlq = DeadLetters::new(Producer::new(k, Role::RecordProducer)?, &k.topics.dlq.name, "ingest");
    let mut cameras = RegistryCameras::default();
    let mut report = tokio::time::interval(Duration::from_secs(10));
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = consumer.next() => match incoming {
                Incoming::Message(m) => {
                    let id = key(&m).into_owned();
                    let partition = Origin::of(&m).partition;
                    let message = if is_tombstone(&m) {
                        SpecMessage::Tombstone
                    } else {
                        match serde_json::from_slice(payload(&m)) {
                            Ok(spec) => SpecMessage::Spec(Box::new(spec)),
                            Err(e) => {
                                dlq.send(&m, "camera_spec_json", &format!("camera spec: {}", scrub_text(&e.to_string()))).await?;
                                continue;
                            }
                        }
                    };
                    match cameras.message(&id, partition, message) {
                        Ok(Some(change)) => {
                            if changes.send(change).is_err() {
                                anyhow::bail!("the cameras' thread ended");
                            }
                        }
                        Ok(None) => {}
                        Err((reason, why)) => dlq.send(&m, reason, &why).await?,
                    }
                }
                Incoming::Rebalance(Assignment::Assigned(parts)) => {
                    tracing::info!(?parts, "cameras partitions assigned: reading their cameras");
                }
                Incoming::Rebalance(Assignment::Revoked(parts)) => {
                    let gone: Vec<i32> = parts.iter().map(|(_, p)| *p).collect();
                    for change in cameras.revoked(&gone) {
                        tracing::info!(camera = %change.camera_id(), "stopping the camera: its partition moved to another ingest pod");
                        let _ = changes.send(change);
                    }
                }
            },
            Some(((id, outcome), fwd)) = ended_rx.recv() => {
                let last_seq = match fwd { Some(f) => f.await.ok().flatten(), None => None };
                match outcome {
                    Ok(rep) if !rep.stopped => {
                        let Some(intersection) = cameras.ended(&id) else {
                            // Its partition moved away (or the camera was removed)
                            // while it ran: the pod that has it now owns its end.
                            tracing::info!(camera = %id, frames = rep.frames, "recording ended after the camera left this pod: no end-of-stream sent from here");
                            continue;
                        };
                        let marker = EndOfStream { camera_id: id.clone(), intersection_id: intersection, last_seq };
                        let json = serde_json::to_vec(&marker).expect("serialisable");
                        let topic = &cfg.kafka.topics.frames.name;
                        match producer.send_durable(topic, &id, Some(&json), &[(headers::END_OF_STREAM, id.as_bytes())]).await {
                            Ok(_) => tracing::info!(camera = %id, frames = rep.frames, "recording ended: end-of-stream sent"),
                            Err(e) => tracing::error!(camera = %id, "recording ended; the end-of-stream marker was lost: {e}"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(camera = %id, "camera failed: {e}"),
                }
            }
            _ = report.tick() => {
                tracing::info!(
                    cameras = running.handles().len(),
                    assigned = cameras.running(),
                    frames = stats.produced.load(Ordering::Relaxed),
                    failed = stats.failed.load(Ordering::Relaxed),
                    dropped = drops.total(),
                    "ingest pod running"
                );
            }
            _ = &mut shutdown => break,
        }
    }

    // Stop: cameras first (their queues drain into the producer), then every
    // frame durable, then leave the group — all within the stop timeout.
    let deadline = Instant::now() + Duration::from_secs_f64(args.stop_timeout);
    tracing::info!("stopping: cameras, then the frames in flight, then the group");
    stop.stop();
    drop(changes);
    let finished = tokio::time::timeout_at(deadline.into(), async {
        let outcomes = driver.await.unwrap_or_default();
        let pending: Vec<_> = forwarders.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, f)| f).collect();
        for f in pending {
            let _ = f.await;
        }
        outcomes
    })
    .await;
    match finished {
        Ok(outcomes) => tracing::info!(cameras = outcomes.len(), "cameras stopped"),
        Err(_) => tracing::warn!("cameras did not stop within the stop timeout"),
    }
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    if let Err(e) = producer.flush(left) {
        tracing::warn!("frames still in flight at exit: {e}");
    }
    consumer.close();
    tracing::info!(
        frames = stats.produced.load(Ordering::Relaxed),
        failed = stats.failed.load(Ordering::Relaxed),
        "ingest pod stopped"
    );
    Ok(ExitCode::SUCCESS)
}
