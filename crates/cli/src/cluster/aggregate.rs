//! `streetscope aggregate --cluster FILE`: the aggregator as a consumer-group
//! member, effectively-once.
//!
//! Detections are read from `streetscope.detections` (key = intersection) in
//! the `aggregators` group. Each intersection of an assigned partition has its
//! own [`Aggregator`] — the same code as `streetscope run` — built from the
//! registry (cameras and intersections topics). Its outputs go to the events,
//! counts and alerts topics.
//!
//! State and offsets move together: every `aggregate.snapshot_interval_s` the
//! stage waits until its outputs are durable, writes a snapshot of every
//! changed intersection to `streetscope.snapshots` (compacted, key =
//! intersection, same partition number as the detections it came from), and
//! only then marks the input offsets done. On assignment of a detections
//! partition the stage restores that partition's intersections from their
//! snapshots before it reads a message; the consumer resumes at the committed
//! offset, which a snapshot always covers, and the inputs replayed between the
//! two are dropped as duplicates by (camera, sequence number). A snapshot is
//! never written for a partition after it was revoked, so an old owner cannot
//! overwrite a newer state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use streetscope_aggregate::snapshot::AggregatorSnapshot;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig};
use streetscope_contracts::kafka::{headers, EndOfStream};
use streetscope_contracts::records::{CountsRecord, ResultRecord, SCHEMA_VERSION};
use streetscope_contracts::registry::{CameraSpec, IntersectionSpec};
use streetscope_contracts::trace::TRACEPARENT;
use streetscope_contracts::FrameDetections;
use streetscope_registry::redact::scrub_text;
use streetscope_transport::kafka::{
    header, payload, read_table, Assignment, DeadLetters, GroupConsumer, Incoming, Origin, OwnedMessage, Pending,
    Producer, Role,
};

use streetscope_telemetry::StageMeter;

use super::ClusterArgs;

pub fn aggregate_stage(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.load()?;
    super::runtime("streetscope-aggregate")?.block_on(run(args, cfg))
}

/// The registry as the aggregator needs it.
#[derive(Debug, Default)]
struct Registry {
    cameras: BTreeMap<String, CameraConfig>,
    intersections: BTreeMap<String, IntersectionSpec>,
}

impl Registry {
    fn load(cfg: &ClusterConfig) -> anyhow::Result<Self> {
        let k = &cfg.kafka;
        let mut reg = Registry::default();
        for (id, v) in read_table(k, &k.topics.cameras.name, None)? {
            let Some(v) = v else { continue };
            match serde_json::from_slice::<CameraSpec>(&v) {
                Ok(spec) => {
                    reg.cameras.insert(id, spec.camera);
                }
                Err(e) => {
                    tracing::error!(camera = %id, "unreadable camera spec in {}: {}", k.topics.cameras.name, scrub_text(&e.to_string()))
                }
            }
        }
        for (id, v) in read_table(k, &k.topics.intersections.name, None)? {
            let Some(v) = v else { continue };
            match serde_json::from_slice::<IntersectionSpec>(&v) {
                Ok(spec) => {
                    reg.intersections.insert(id, spec);
                }
                Err(e) => {
                    tracing::error!(intersection = %id, "unreadable intersection spec in {}: {e}", k.topics.intersections.name)
                }
            }
        }
        Ok(reg)
    }

    /// The cameras of `intersection`, in id order.
    fn cameras_of(&self, intersection: &str) -> Vec<CameraConfig> {
        self.cameras.values().filter(|c| c.intersection == intersection).cloned().collect()
    }

    /// `base` with the intersection's approaches from the registry.
    fn analytics_for(&self, intersection: &str, base: &AnalyticsConfig, cameras: &[CameraConfig]) -> AnalyticsConfig {
        let ids: HashSet<&str> = cameras.iter().map(|c| c.id.as_str()).collect();
        let mut a = base.clone();
        a.approaches.retain(|ap| ids.contains(ap.camera.as_str()));
        if let Some(spec) = self.intersections.get(intersection) {
            a.approaches.extend(spec.approaches.iter().filter(|ap| ids.contains(ap.camera.as_str())).cloned());
        }
        a
    }
}

/// One intersection held by this aggregator.
struct Held {
    agg: Aggregator,
    /// Detections partition it lives in.
    partition: i32,
    /// Camera set it was built with.
    cameras: Vec<CameraConfig>,
    /// Changed since the last snapshot.
    dirty: bool,
    /// Changed since the last counts record.
    counts_dirty: bool,
    /// Frames aggregated (duplicates excluded), newest capture time.
    frames: u64,
    as_of_ms: i64,
    /// When the last new (non-duplicate) input came; all tracks are ended
    /// after `aggregate.finish_idle_s` without one.
    last_input: Instant,
    finished: bool,
    /// Cameras whose recording ended (end-of-stream markers).
    ended: BTreeSet<String>,
    /// Cameras that sent frames.
    seen: BTreeSet<String>,
}

struct Stage {
    cfg: ClusterConfig,
    consumer: GroupConsumer,
    producer: Producer,
    dlq: DeadLetters,
    registry: Registry,
    held: HashMap<String, Held>,
    /// Per detections partition: the last offset processed and not yet covered by a snapshot.
    processed: BTreeMap<i32, i64>,
    /// Outputs on their way; all durable before the next snapshot.
    pending: Vec<Pending>,
}

async fn run(args: &ClusterArgs, cfg: ClusterConfig) -> anyhow::Result<ExitCode> {
    let k = &cfg.kafka;
    let meter = StageMeter::new("aggregate");
    super::serve_status(args, crate::status::StatusSources::of_stage(&meter)).await?;
    let consumer = GroupConsumer::new(k, &k.groups.aggregate, &[&k.topics.detections.name])?;
    let producer = Producer::new(k, Role::RecordProducer)?;
    let dlq = DeadLetters::new(producer.clone(), &k.topics.dlq.name, "aggregate");
    let registry = {
        let c = cfg.clone();
        tokio::task::spawn_blocking(move || Registry::load(&c)).await??
    };
    tracing::info!(
        cameras = registry.cameras.len(),
        intersections = registry.intersections.len(),
        "registry loaded; waiting for detections partitions"
    );
    let snapshot_every = Duration::from_secs_f64(cfg.aggregate.snapshot_interval_s);
    let counts_every = Duration::from_secs_f64(cfg.aggregate.counts_interval_s);
    let mut stage = Stage {
        cfg,
        consumer,
        producer,
        dlq,
        registry,
        held: HashMap::new(),
        processed: BTreeMap::new(),
        pending: Vec::new(),
    };
    let mut snap_tick = tokio::time::interval(snapshot_every);
    let mut counts_tick = tokio::time::interval(counts_every);
    let mut registry_tick = tokio::time::interval(Duration::from_secs(10));
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = stage.consumer.next() => match incoming {
                Incoming::Message(m) => {
                    let t = Instant::now();
                    if stage.handle(&m).await? {
                        meter.item();
                    } else {
                        meter.error();
                    }
                    meter.add_busy(t.elapsed().as_nanos() as u64);
                }
                Incoming::Rebalance(Assignment::Assigned(parts)) => stage.assigned(&parts).await?,
                Incoming::Rebalance(Assignment::Revoked(parts)) => stage.revoked(&parts),
            },
            _ = snap_tick.tick() => stage.checkpoint().await?,
            _ = counts_tick.tick() => stage.publish_counts().await?,
            _ = registry_tick.tick() => stage.reload_registry().await,
            _ = &mut shutdown => {
                tracing::info!("stopping: snapshot, then commit");
                stage.checkpoint().await?;
                stage.consumer.commit_now()?;
                break;
            }
        }
    }
    stage.producer.flush(Duration::from_secs(10)).ok();
    stage.consumer.close();
    Ok(ExitCode::SUCCESS)
}

impl Stage {
    fn topics(&self) -> &streetscope_contracts::kafka::TopicsConfig {
        &self.cfg.kafka.topics
    }

    /// Handles one message; false when it was a dead letter or skipped.
    async fn handle(&mut self, m: &OwnedMessage) -> anyhow::Result<bool> {
        let origin = Origin::of(m);
        let (partition, offset) = (origin.partition, origin.offset);
        if header(m, headers::END_OF_STREAM).is_some() {
            match serde_json::from_slice::<EndOfStream>(payload(m)) {
                Ok(marker) => self.end_of_stream(marker).await?,
                Err(e) => {
                    self.dlq.send(m, &format!("end-of-stream marker: {e}")).await?;
                    self.processed.insert(partition, offset);
                    return Ok(false);
                }
            }
            self.processed.insert(partition, offset);
            return Ok(true);
        }
        let fd: FrameDetections = match serde_json::from_slice(payload(m)) {
            Ok(fd) => fd,
            Err(e) => {
                self.dlq.send(m, &format!("detections JSON: {e}")).await?;
                self.processed.insert(partition, offset);
                return Ok(false);
            }
        };
        let trace = super::continue_trace(header(m, TRACEPARENT)).to_string();
        let intersection = fd.intersection_id.to_string();
        if !self.ensure_intersection(&intersection, fd.camera_id.as_ref(), partition).await {
            tracing::warn!(camera = %fd.camera_id, intersection, seq = fd.seq, "detections of a camera the registry does not know: skipped");
            self.processed.insert(partition, offset);
            return Ok(false);
        }
        let h = self.held.get_mut(&intersection).expect("ensured above");
        let dups = h.agg.duplicates();
        let mut records: Vec<ResultRecord> = match h.agg.process(&fd) {
            Ok(events) => events.into_iter().map(ResultRecord::Crossing).collect(),
            Err(e) => {
                tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "{e}");
                Vec::new()
            }
        };
        if h.agg.duplicates() == dups {
            h.frames += 1;
            h.as_of_ms = h.as_of_ms.max(fd.capture_time_ms);
            h.last_input = Instant::now();
            h.finished = false;
            h.ended.remove(fd.camera_id.as_ref());
            if !h.seen.contains(fd.camera_id.as_ref()) {
                h.seen.insert(fd.camera_id.to_string());
            }
            h.dirty = true;
            h.counts_dirty = true;
        }
        records.extend(h.agg.take_turning_events().into_iter().map(ResultRecord::TurningMovement));
        records.extend(h.agg.take_windows().into_iter().map(ResultRecord::Window));
        records.extend(h.agg.take_alerts().into_iter().map(ResultRecord::Alert));
        self.publish(&intersection, records, &trace).await?;
        self.processed.insert(partition, offset);
        Ok(true)
    }

    /// A recorded camera ended; once every camera of its intersection that sent
    /// frames has, the intersection's tracks end (as at the end of the files in
    /// `streetscope run`).
    async fn end_of_stream(&mut self, marker: EndOfStream) -> anyhow::Result<()> {
        let Some(h) = self.held.get_mut(&marker.intersection_id) else {
            tracing::info!(camera = %marker.camera_id, "end of stream of a camera with no state here");
            return Ok(());
        };
        h.ended.insert(marker.camera_id.clone());
        h.dirty = true;
        let all = h.seen.iter().all(|c| h.ended.contains(c));
        if all && !h.finished {
            let records = finish(h);
            tracing::info!(intersection = %marker.intersection_id, "every recording ended: tracks ended");
            self.publish(&marker.intersection_id, records, &super::continue_trace(None).to_string()).await?;
        }
        Ok(())
    }

    /// Builds (or rebuilds, when its camera set changed) the aggregator of
    /// `intersection`; false when the registry does not know `camera`.
    async fn ensure_intersection(&mut self, intersection: &str, camera: &str, partition: i32) -> bool {
        if self.held.get(intersection).is_some_and(|h| h.cameras.iter().any(|c| c.id == camera)) {
            return true;
        }
        if self.registry.cameras.get(camera).is_none_or(|c| c.intersection != intersection) {
            self.reload_registry().await;
            if self.registry.cameras.get(camera).is_none_or(|c| c.intersection != intersection) {
                return false;
            }
        }
        let cameras = self.registry.cameras_of(intersection);
        let analytics = self.registry.analytics_for(intersection, &self.cfg.analytics, &cameras);
        let agg = match self.held.remove(intersection) {
            // A camera joined: carry the state over (cameras absent from a snapshot start afresh).
            Some(old) => match Aggregator::restore(&cameras, &self.cfg.tracker, &analytics, old.agg.snapshot()) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(
                        intersection,
                        "cannot carry the state over to the new camera set ({e}); starting afresh"
                    );
                    Aggregator::with_analytics(&cameras, &self.cfg.tracker, &analytics)
                }
            },
            None => Aggregator::with_analytics(&cameras, &self.cfg.tracker, &analytics),
        };
        self.held.insert(intersection.to_owned(), Held::new(agg, partition, cameras));
        true
    }

    async fn publish(&mut self, intersection: &str, records: Vec<ResultRecord>, trace: &str) -> anyhow::Result<()> {
        for r in records {
            let topic = match &r {
                ResultRecord::Crossing(_) | ResultRecord::TurningMovement(_) => &self.topics().events.name,
                ResultRecord::Window(_) | ResultRecord::Counts(_) | ResultRecord::Summary(_) => {
                    &self.topics().counts.name
                }
                ResultRecord::Alert(_) => &self.topics().alerts.name,
            }
            .clone();
            let json = serde_json::to_vec(&r)?;
            let p = self.producer.send(&topic, intersection, Some(&json), &[(TRACEPARENT, trace.as_bytes())]).await?;
            self.pending.push(p);
        }
        Ok(())
    }

    /// Outputs durable, then snapshots durable, then offsets marked done.
    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.finish_idle().await?;
        for p in self.pending.drain(..) {
            p.durable().await.context("publishing results")?;
        }
        let topic = self.topics().snapshots.name.clone();
        let mut writes = Vec::new();
        for (id, h) in self.held.iter_mut().filter(|(_, h)| h.dirty) {
            let snap = StoredSnapshot {
                frames: h.frames,
                as_of_ms: h.as_of_ms,
                finished: h.finished,
                ended: h.ended.clone(),
                seen: h.seen.clone(),
                state: h.agg.snapshot(),
            };
            let json = serde_json::to_vec(&snap)?;
            writes.push(self.producer.send(&topic, id, Some(&json), &[]).await?);
            h.dirty = false;
        }
        for w in writes {
            w.durable().await.context("writing snapshots")?;
        }
        let detections = self.topics().detections.name.clone();
        for (p, off) in std::mem::take(&mut self.processed) {
            self.consumer.mark_done(&detections, p, off);
        }
        Ok(())
    }

    /// Ends the tracks of intersections that had no new input for a while, as
    /// the end of a file does in `streetscope run`: the crossings they hold are
    /// released and the open windows closed.
    async fn finish_idle(&mut self) -> anyhow::Result<()> {
        let idle = Duration::from_secs_f64(self.cfg.aggregate.finish_idle_s);
        let mut out = Vec::new();
        for (id, h) in self.held.iter_mut() {
            if !h.finished && h.frames > 0 && h.last_input.elapsed() >= idle {
                let records = finish(h);
                tracing::info!(intersection = %id, "no new detections for {idle:?}: tracks ended");
                out.push((id.clone(), records));
            }
        }
        for (id, records) in out {
            self.publish(&id, records, &super::continue_trace(None).to_string()).await?;
        }
        Ok(())
    }

    async fn publish_counts(&mut self) -> anyhow::Result<()> {
        // The stage's clock drives what needs time without input (a camera gone stale).
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let mut alerts = Vec::new();
        for (id, h) in self.held.iter_mut() {
            h.agg.tick(now_ms);
            let a: Vec<ResultRecord> = h.agg.take_alerts().into_iter().map(ResultRecord::Alert).collect();
            if !a.is_empty() {
                h.dirty = true;
                alerts.push((id.clone(), a));
            }
        }
        for (id, a) in alerts {
            self.publish(&id, a, &super::continue_trace(None).to_string()).await?;
        }
        let mut out = Vec::new();
        for (id, h) in self.held.iter_mut().filter(|(_, h)| h.counts_dirty) {
            h.counts_dirty = false;
            out.push((
                id.clone(),
                ResultRecord::Counts(CountsRecord {
                    schema_version: SCHEMA_VERSION,
                    intersection_id: id.clone(),
                    as_of_capture_time_ms: h.as_of_ms,
                    frames: h.frames,
                    duplicates: h.agg.duplicates(),
                    counts: h.agg.counts(),
                    turning_movements: h.agg.turning_movements(),
                    complete: h.finished && !h.seen.is_empty() && h.seen.iter().all(|c| h.ended.contains(c)),
                }),
            ));
        }
        for (id, r) in out {
            self.publish(&id, vec![r], &super::continue_trace(None).to_string()).await?;
        }
        Ok(())
    }

    /// Restores the intersections of newly assigned partitions from their
    /// snapshots (the snapshots partition of the same number).
    async fn assigned(&mut self, parts: &[(String, i32)]) -> anyhow::Result<()> {
        let mut restored = 0;
        for &(_, p) in parts {
            let (k, topic) = (self.cfg.kafka.clone(), self.topics().snapshots.name.clone());
            let rows = tokio::task::spawn_blocking(move || read_table(&k, &topic, Some(&[p]))).await??;
            for (intersection, value) in rows {
                let Some(value) = value else { continue };
                let snap: StoredSnapshot = match serde_json::from_slice(&value) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(intersection, "unreadable snapshot ({e}); its state starts afresh");
                        continue;
                    }
                };
                let cameras = self.registry.cameras_of(&intersection);
                let analytics = self.registry.analytics_for(&intersection, &self.cfg.analytics, &cameras);
                match Aggregator::restore(&cameras, &self.cfg.tracker, &analytics, snap.state) {
                    Ok(agg) => {
                        let mut h = Held::new(agg, p, cameras);
                        (h.frames, h.as_of_ms, h.finished, h.ended, h.seen) =
                            (snap.frames, snap.as_of_ms, snap.finished, snap.ended, snap.seen);
                        self.held.insert(intersection, h);
                        restored += 1;
                    }
                    Err(e) => {
                        tracing::error!(
                            intersection,
                            "snapshot does not fit the registry ({e}); its state starts afresh"
                        )
                    }
                }
            }
        }
        let ids: Vec<i32> = parts.iter().map(|(_, p)| *p).collect();
        tracing::info!(partitions = ?ids, restored, "detections partitions assigned");
        Ok(())
    }

    fn revoked(&mut self, parts: &[(String, i32)]) {
        let ids: HashSet<i32> = parts.iter().map(|(_, p)| *p).collect();
        self.held.retain(|_, h| !ids.contains(&h.partition));
        for p in &ids {
            self.processed.remove(p);
        }
        tracing::info!(partitions = ?ids, "detections partitions revoked; their state was dropped");
    }

    async fn reload_registry(&mut self) {
        let c = self.cfg.clone();
        match tokio::task::spawn_blocking(move || Registry::load(&c)).await {
            Ok(Ok(r)) => self.registry = r,
            Ok(Err(e)) => tracing::warn!("reading the registry: {e:#}"),
            Err(e) => tracing::warn!("reading the registry: {e}"),
        }
    }
}

/// Ends every track of `h`; the records that releases.
fn finish(h: &mut Held) -> Vec<ResultRecord> {
    let mut records: Vec<ResultRecord> = h.agg.finish().into_iter().map(ResultRecord::Crossing).collect();
    records.extend(h.agg.take_turning_events().into_iter().map(ResultRecord::TurningMovement));
    records.extend(h.agg.take_windows().into_iter().map(ResultRecord::Window));
    h.finished = true;
    h.dirty = true;
    h.counts_dirty = true;
    records
}

impl Held {
    fn new(agg: Aggregator, partition: i32, cameras: Vec<CameraConfig>) -> Self {
        Self {
            agg,
            partition,
            cameras,
            dirty: false,
            counts_dirty: true,
            frames: 0,
            as_of_ms: 0,
            last_input: Instant::now(),
            finished: false,
            ended: BTreeSet::new(),
            seen: BTreeSet::new(),
        }
    }
}

/// What the snapshots topic holds per intersection.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredSnapshot {
    frames: u64,
    as_of_ms: i64,
    finished: bool,
    #[serde(default)]
    ended: BTreeSet<String>,
    #[serde(default)]
    seen: BTreeSet<String>,
    state: AggregatorSnapshot,
}
