//! `streetscope ingest --cluster FILE`: an ingest pod.
//!
//! Ingest pods share the cameras through the `streetscope-ingest` consumer
//! group on the compacted cameras topic. A pod reads each assigned partition
//! from its beginning (offsets are never committed: the topic is a table), so it
//! learns every camera of those partitions, and then follows the registry's
//! changes: a new or enabled camera is started, a changed one restarted, a
//! disabled or deleted one (tombstone) stopped. When a partition is revoked —
//! another pod joined, say — its cameras stop here and start on the new owner;
//! when a pod dies, the group hands its partitions to the others.
//!
//! Each camera runs under the same supervisor as in `streetscope run`
//! (reconnection with backoff, stall watchdog). Its frames, JPEG-encoded, go
//! through a bounded per-camera queue (live cameras drop the oldest when Kafka
//! is slow, and count it) to `streetscope.frames`, keyed by camera id, with a
//! new W3C trace context each.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::config::{redact_url, FrameIds};
use streetscope_contracts::kafka::{headers, EndOfStream};
use streetscope_contracts::registry::CameraSpec;
use streetscope_contracts::trace::{TraceContext, TRACEPARENT};
use streetscope_contracts::Frame;
use streetscope_ingest::numbering::MediaNumbering;
use streetscope_ingest::reconcile::{CameraStatuses, IngestSettings};
use streetscope_ingest::supervisor::{is_live, RestartPolicy, SupervisedCamera};
use streetscope_registry::redact::scrub_text;
use streetscope_telemetry::StageMeter;
use streetscope_transport::kafka::{
    is_tombstone, key, payload, Assignment, DeadLetters, GroupConsumer, Incoming, Origin, Producer, Role,
};
use streetscope_transport::{channel, FullPolicy, Subscribe};

use super::ClusterArgs;
use crate::status::DropCounters;

/// JPEG quality for cameras that do not set one: frames cross the network.
pub(crate) const DEFAULT_JPEG_QUALITY: u8 = 85;

pub fn ingest_stage(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.load()?;
    super::runtime("streetscope-ingest")?.block_on(run(args, cfg))
}

/// A camera running on this pod.
struct Running {
    spec: CameraSpec,
    partition: i32,
    camera: SupervisedCamera,
    forwarder: tokio::task::JoinHandle<Option<u64>>,
}

struct Pod {
    cfg: ClusterConfig,
    meter: StageMeter,
    producer: Producer,
    policy: RestartPolicy,
    running: HashMap<String, Running>,
    /// Frames produced, delivery failures, frames dropped from full queues.
    produced: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    dropped: HashMap<String, streetscope_transport::DropCounter>,
    /// What the status endpoint shows: the cameras running here and their drops.
    statuses: CameraStatuses,
    drops: DropCounters,
}

async fn run(args: &ClusterArgs, cfg: ClusterConfig) -> anyhow::Result<ExitCode> {
    let k = &cfg.kafka;
    let (statuses, drops, meter) = (CameraStatuses::default(), DropCounters::default(), StageMeter::new("produce"));
    let sources =
        crate::status::StatusSources { cameras: statuses.clone(), drops: drops.clone(), stages: vec![meter.clone()] };
    super::serve_status(args, sources).await?;
    let consumer = GroupConsumer::new(k, &k.groups.ingest, &[&k.topics.cameras.name])?;
    let producer = Producer::new(k, Role::FrameProducer)?;
    let dlq = DeadLetters::new(Producer::new(k, Role::RecordProducer)?, &k.topics.dlq.name, "ingest");
    let policy = RestartPolicy::from_config(&cfg.ingest);
    let mut pod = Pod {
        cfg: cfg.clone(),
        producer,
        policy,
        running: HashMap::new(),
        produced: Arc::default(),
        failed: Arc::default(),
        dropped: HashMap::new(),
        statuses,
        drops,
        meter,
    };
    let mut report = tokio::time::interval(Duration::from_secs(10));
    let mut ended = tokio::time::interval(Duration::from_millis(500));
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = consumer.next() => match incoming {
                Incoming::Message(m) => {
                    let id = key(&m).into_owned();
                    let origin = Origin::of(&m);
                    if is_tombstone(&m) {
                        pod.stop(&id, "deleted from the registry").await;
                        continue;
                    }
                    match serde_json::from_slice::<CameraSpec>(payload(&m)) {
                        Ok(spec) if spec.camera.id == id => pod.apply(spec, origin.partition).await,
                        Ok(spec) => {
                            dlq.send(&m, &format!("camera spec id {:?} differs from its key {id:?}", spec.camera.id)).await?
                        }
                        Err(e) => dlq.send(&m, &format!("camera spec: {}", scrub_text(&e.to_string()))).await?,
                    }
                }
                Incoming::Rebalance(Assignment::Assigned(parts)) => {
                    tracing::info!(?parts, "cameras partitions assigned: reading their cameras");
                }
                Incoming::Rebalance(Assignment::Revoked(parts)) => {
                    let gone: HashSet<i32> = parts.iter().map(|(_, p)| *p).collect();
                    let ids: Vec<String> =
                        pod.running.iter().filter(|(_, r)| gone.contains(&r.partition)).map(|(id, _)| id.clone()).collect();
                    for id in ids {
                        pod.stop(&id, "its partition moved to another ingest pod").await;
                    }
                }
            },
            _ = ended.tick() => pod.reap_ended().await,
            _ = report.tick() => {
                let dropped: u64 = pod.dropped.values().map(|d| d.get()).sum();
                tracing::info!(
                    cameras = pod.running.len(),
                    frames = pod.produced.load(Ordering::Relaxed),
                    failed = pod.failed.load(Ordering::Relaxed),
                    dropped,
                    "ingest pod running"
                );
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("stopping: cameras, then the producer");
    let ids: Vec<String> = pod.running.keys().cloned().collect();
    for id in ids {
        pod.stop(&id, "shutting down").await;
    }
    pod.producer.flush(Duration::from_secs(10)).ok();
    consumer.close();
    Ok(ExitCode::SUCCESS)
}

impl Pod {
    /// Starts, restarts or stops the camera as its spec says.
    async fn apply(&mut self, spec: CameraSpec, partition: i32) {
        let id = spec.camera.id.clone();
        if let Some(r) = self.running.get_mut(&id) {
            if r.spec == spec {
                r.partition = partition;
                return;
            }
            self.stop(&id, if spec.enabled { "its spec changed" } else { "disabled" }).await;
        }
        if !spec.enabled {
            return;
        }
        match self.start(spec.clone(), partition) {
            Ok(r) => {
                tracing::info!(camera = %id, source = %redact_url(&spec.camera.source), partition, "camera started");
                self.running.insert(id, r);
            }
            Err(e) => tracing::error!(camera = %id, "cannot start the camera: {e}"),
        }
    }

    fn start(&mut self, spec: CameraSpec, partition: i32) -> anyhow::Result<Running> {
        let c = &spec.camera;
        let [w, h] = self.cfg.detector.input_size.unwrap_or([640, 640]);
        let settings = IngestSettings {
            width: w,
            height: h,
            stall_timeout: Duration::from_secs_f64(self.cfg.ingest.stall_timeout_s),
            policy: self.policy.clone(),
        };
        let mut source = settings.source(c);
        source.jpeg_quality = Some(c.jpeg_quality.unwrap_or(DEFAULT_JPEG_QUALITY));
        let live = is_live(&c.source);
        let policy = if live { FullPolicy::DropOldest } else { FullPolicy::Block };
        let (tx, mut rx) = channel::<Frame>(&format!("frames of {}", c.id), 8, policy);
        self.dropped.insert(c.id.clone(), tx.drop_counter());
        self.drops.add(&c.id, tx.drop_counter());
        // Recordings are numbered by media position and play once (see `frame_ids`).
        let media = c.frame_ids.unwrap_or(if live { FrameIds::Sequence } else { FrameIds::Media }) == FrameIds::Media;
        let policy = RestartPolicy { restart_after_end: !media, ..self.policy.clone() };
        let numbering = std::sync::Mutex::new(MediaNumbering::new(c.sample_fps));
        let sink = move |mut f: Frame| {
            if media {
                f.seq = numbering.lock().unwrap_or_else(|p| p.into_inner()).number(f.pts_ns);
            }
            tx.publish_blocking(f).is_ok()
        };
        let camera = SupervisedCamera::spawn(source, policy, sink)?;
        self.statuses.insert(&c.id, camera.status().clone());
        let (producer, topic) = (self.producer.clone(), self.cfg.kafka.topics.frames.name.clone());
        let (produced, failed, meter) = (self.produced.clone(), self.failed.clone(), self.meter.clone());
        let forwarder = tokio::spawn(async move {
            let mut last_seq = None;
            while let Some(frame) = rx.next().await {
                last_seq = Some(frame.seq);
                let trace = TraceContext::root(super::random_bytes()).to_string();
                let bytes = frame.to_envelope();
                match producer.send(&topic, &frame.camera_id, Some(&bytes), &[(TRACEPARENT, trace.as_bytes())]).await {
                    Ok(p) => {
                        let (produced, failed, meter) = (produced.clone(), failed.clone(), meter.clone());
                        let camera = frame.camera_id.clone();
                        tokio::spawn(async move {
                            match p.durable().await {
                                Ok(_) => {
                                    meter.item();
                                    produced.fetch_add(1, Ordering::Relaxed)
                                }
                                Err(e) => {
                                    meter.error();
                                    tracing::warn!(%camera, seq = frame.seq, "frame lost: {e}");
                                    failed.fetch_add(1, Ordering::Relaxed)
                                }
                            };
                        });
                    }
                    Err(e) => {
                        tracing::warn!(camera = %frame.camera_id, seq = frame.seq, "frame lost: {e}");
                        meter.error();
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            last_seq
        });
        Ok(Running { spec, partition, camera, forwarder })
    }

    /// Cameras whose recording ended by itself (files and `frame_ids = "media"`
    /// sources play once): after their last frame, an end-of-stream marker on
    /// the camera's partition of the frames topic, so the aggregator ends its
    /// tracks as `streetscope run` does at the end of a file.
    async fn reap_ended(&mut self) {
        let done: Vec<String> =
            self.running.iter().filter(|(_, r)| r.camera.is_finished()).map(|(id, _)| id.clone()).collect();
        for id in done {
            let r = self.running.remove(&id).expect("listed above");
            self.dropped.remove(&id);
            self.statuses.remove(&id);
            let camera = r.camera;
            let report = tokio::task::spawn_blocking(move || camera.join()).await;
            let last_seq = r.forwarder.await.ok().flatten();
            match report {
                Ok(Ok(rep)) if !rep.stopped => {
                    let marker = EndOfStream {
                        camera_id: id.clone(),
                        intersection_id: r.spec.camera.intersection.clone(),
                        last_seq,
                    };
                    let json = serde_json::to_vec(&marker).expect("serialisable");
                    let topic = &self.cfg.kafka.topics.frames.name;
                    match self
                        .producer
                        .send_durable(topic, &id, Some(&json), &[(headers::END_OF_STREAM, id.as_bytes())])
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(camera = %id, frames = rep.frames, "recording ended: end-of-stream sent")
                        }
                        Err(e) => {
                            tracing::error!(camera = %id, "recording ended; the end-of-stream marker was lost: {e}")
                        }
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(camera = %id, "camera failed: {e}"),
                Err(e) => tracing::error!(camera = %id, "camera thread: {e}"),
            }
        }
    }

    async fn stop(&mut self, id: &str, why: &str) {
        let Some(r) = self.running.remove(id) else { return };
        tracing::info!(camera = %id, "stopping the camera: {why}");
        let camera = r.camera;
        // Joining waits for GStreamer to tear down: off the async threads.
        let _ = tokio::task::spawn_blocking(move || camera.shutdown()).await;
        // The queue's sender went with the camera: the forwarder drains what is left and ends.
        let _ = r.forwarder.await;
        self.dropped.remove(id);
        self.statuses.remove(id);
    }
}
