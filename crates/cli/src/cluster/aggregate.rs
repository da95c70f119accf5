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
//!
//! The registry is followed live ([`TableFollower`]): the stage reads the
//! cameras and intersections tables to their end before it takes a partition,
//! then applies each change to the intersections it holds as `streetscope run`
//! applies its watched configuration — a camera added or edited goes through
//! [`Aggregator::upsert_camera`] (a moved counting line counts from the next
//! frame on, tracks kept), a camera deleted or moved away through
//! [`Aggregator::remove_camera`]; an intersection's approaches changed rebuild
//! its aggregator from its own snapshot. Detections of a camera the registry
//! does not know go to the dead-letter topic.
//!
//! Time without input (a camera gone stale, windows to close) follows the
//! [`EventClock`] of each intersection, the same rule as `streetscope run`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use streetscope_aggregate::snapshot::AggregatorSnapshot;
use streetscope_aggregate::stage::EventClock;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig};
use streetscope_contracts::kafka::{headers, EndOfStream};
use streetscope_contracts::records::{CountsRecord, ResultRecord, SCHEMA_VERSION};
use streetscope_contracts::registry::{CameraSpec, IntersectionSpec};
use streetscope_contracts::trace::TRACEPARENT;
use streetscope_contracts::FrameDetections;
use streetscope_registry::redact::scrub_text;
use streetscope_telemetry::metrics::{DeliveryBoard, DeliverySample};
use streetscope_transport::delivery::Processed;
use streetscope_transport::kafka::{
    header, payload, read_table, Assignment, DeadLetters, GroupConsumer, Incoming, Origin, OwnedMessage, Pending,
    Producer, Role, TableFollower, TableRecord,
};

use streetscope_telemetry::StageMeter;

use super::ClusterArgs;

pub fn aggregate_stage(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.load()?;
    let _spans = streetscope_telemetry::spans::init_from_env("streetscope-aggregate");
    super::runtime("streetscope-aggregate")?.block_on(run(args, cfg))
}

/// The registry as the aggregator needs it.
#[derive(Debug, Default)]
struct Registry {
    cameras: BTreeMap<String, CameraConfig>,
    intersections: BTreeMap<String, IntersectionSpec>,
}

impl Registry {
    /// Takes one record of the followed tables; what it changed.
    fn apply(&mut self, cfg: &ClusterConfig, r: TableRecord) -> Option<RegistryChange> {
        let k = &cfg.kafka;
        if r.topic == k.topics.cameras.name {
            let old = self.cameras.get(&r.key).cloned();
            let new = match r.value.as_deref().map(serde_json::from_slice::<CameraSpec>) {
                None => None,
                Some(Ok(spec)) if spec.camera.id == r.key => Some(spec.camera),
                Some(Ok(spec)) => {
                    tracing::error!(camera = %r.key, "camera spec under another key ({:?}) in {}: ignored", spec.camera.id, r.topic);
                    return None;
                }
                Some(Err(e)) => {
                    tracing::error!(camera = %r.key, "unreadable camera spec in {}: {}", r.topic, scrub_text(&e.to_string()));
                    return None;
                }
            };
            match &new {
                Some(c) => self.cameras.insert(r.key.clone(), c.clone()),
                None => self.cameras.remove(&r.key),
            };
            (old != new).then(|| RegistryChange::Camera { old: old.map(Box::new), new: new.map(Box::new) })
        } else if r.topic == k.topics.intersections.name {
            match r.value.as_deref().map(serde_json::from_slice::<IntersectionSpec>) {
                None => {
                    self.intersections.remove(&r.key);
                }
                Some(Ok(spec)) => {
                    self.intersections.insert(r.key.clone(), spec);
                }
                Some(Err(e)) => {
                    tracing::error!(intersection = %r.key, "unreadable intersection spec in {}: {e}", r.topic);
                    return None;
                }
            }
            Some(RegistryChange::Intersection(r.key))
        } else {
            None
        }
    }

    /// The cameras of `intersection`, in id order.
    fn cameras_of(&self, intersection: &str) -> Vec<CameraConfig> {
        self.cameras.values().filter(|c| c.intersection == intersection).cloned().collect()
    }

    /// `base` with the intersection's approaches from the registry: those of
    /// every camera of the intersection, so that a camera added later finds
    /// its approaches ([`Aggregator::upsert_camera`]).
    fn analytics_for(&self, intersection: &str, base: &AnalyticsConfig) -> AnalyticsConfig {
        let ids: HashSet<&str> = self.cameras_of_ids(intersection);
        let mut a = base.clone();
        a.approaches.retain(|ap| ids.contains(ap.camera.as_str()));
        if let Some(spec) = self.intersections.get(intersection) {
            a.approaches.extend(spec.approaches.iter().cloned());
        }
        a
    }

    fn cameras_of_ids(&self, intersection: &str) -> HashSet<&str> {
        self.cameras.values().filter(|c| c.intersection == intersection).map(|c| c.id.as_str()).collect()
    }
}

/// What a record of the registry's tables changed.
#[derive(Debug)]
enum RegistryChange {
    /// A camera added (`old` None), edited, or deleted (`new` None).
    Camera { old: Option<Box<CameraConfig>>, new: Option<Box<CameraConfig>> },
    /// An intersection's spec (its approaches) written or deleted.
    Intersection(String),
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
    /// The event time reached (see [`EventClock`]).
    clock: EventClock,
}

struct Stage {
    cfg: ClusterConfig,
    consumer: GroupConsumer,
    producer: Producer,
    dlq: DeadLetters,
    registry: Registry,
    held: HashMap<String, Held>,
    /// Per detections partition: the last offset processed and not yet covered by a snapshot.
    processed: Processed,
    /// Outputs on their way; all durable before the next snapshot.
    pending: Vec<Pending>,
    /// What reached each camera's aggregator, for /metrics.
    delivery: DeliveryBoard,
}

async fn run(args: &ClusterArgs, cfg: ClusterConfig) -> anyhow::Result<ExitCode> {
    let k = &cfg.kafka;
    let meter = StageMeter::new("aggregate");
    let ready = crate::status::Readiness::pending(&["registry", "partitions"]);
    let sources = crate::status::StatusSources::of_stage(&meter);
    let delivery = sources.delivery.clone();
    super::serve_status_with(args, &cfg, sources, ready.clone()).await?;
    // The whole registry first: partitions are restored against it.
    let follower = {
        let (k, topics) = (k.clone(), [k.topics.cameras.name.clone(), k.topics.intersections.name.clone()]);
        tokio::task::spawn_blocking(move || TableFollower::new(&k, &[&topics[0], &topics[1]])).await??
    };
    let mut registry = Registry::default();
    while !follower.caught_up() {
        registry.apply(&cfg, follower.next().await);
    }
    ready.set("registry", true);
    tracing::info!(
        cameras = registry.cameras.len(),
        intersections = registry.intersections.len(),
        "registry read; joining the aggregators' group"
    );
    let consumer = GroupConsumer::new(k, &k.groups.aggregate, &[&k.topics.detections.name])?;
    let lag = streetscope_transport::kafka::LagProbe::new(k, &k.groups.aggregate, &[&k.topics.detections.name])?;
    streetscope_telemetry::metrics::watch_consumer_lag(&k.groups.aggregate, move || lag.lag());
    let producer = Producer::new(k, Role::RecordProducer)?;
    let dlq = DeadLetters::new(producer.clone(), &k.topics.dlq.name, "aggregate");
    let snapshot_every = Duration::from_secs_f64(cfg.aggregate.snapshot_interval_s);
    let counts_every = Duration::from_secs_f64(cfg.aggregate.counts_interval_s);
    let mut stage = Stage {
        cfg,
        consumer,
        producer,
        dlq,
        registry,
        held: HashMap::new(),
        processed: Processed::default(),
        pending: Vec::new(),
        delivery,
    };
    let mut snap_tick = tokio::time::interval(snapshot_every);
    let mut counts_tick = tokio::time::interval(counts_every);
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
                Incoming::Rebalance(Assignment::Assigned(parts)) => {
                    stage.assigned(&parts).await?;
                    ready.set("partitions", true);
                }
                Incoming::Rebalance(Assignment::Revoked(parts)) => stage.revoked(&parts),
            },
            record = follower.next() => stage.registry_changed(record).await?,
            _ = snap_tick.tick() => stage.checkpoint().await?,
            _ = counts_tick.tick() => stage.publish_counts().await?,
            _ = &mut shutdown => {
                // Within the stop timeout: outputs durable, snapshots written,
                // offsets committed, then the group left — the next owner of
                // these partitions restores exactly this state.
                tracing::info!("stopping: snapshot, then commit, then leave the group");
                let stop = Duration::from_secs_f64(args.stop_timeout);
                match tokio::time::timeout(stop, stage.checkpoint()).await {
                    Ok(r) => r?,
                    Err(_) => tracing::warn!("the last snapshot did not finish within {stop:?}; the next owner replays from the last one"),
                }
                stage.consumer.commit_now()?;
                break;
            }
        }
    }
    stage.producer.flush(Duration::from_secs(5)).ok();
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
                    self.processed.processed(partition, offset);
                    return Ok(false);
                }
            }
            self.processed.processed(partition, offset);
            return Ok(true);
        }
        let fd: FrameDetections = match serde_json::from_slice(payload(m)) {
            Ok(fd) => fd,
            Err(e) => {
                self.dlq.send(m, &format!("detections JSON: {e}")).await?;
                self.processed.processed(partition, offset);
                return Ok(false);
            }
        };
        // Decodes, but cannot be true (a box outside the frame, a bad id, ...).
        if let Err(why) = fd.check() {
            self.dlq.send(m, &format!("detections {}: {why}", why.label())).await?;
            self.processed.processed(partition, offset);
            return Ok(false);
        }
        let started = std::time::SystemTime::now();
        let trace = super::continue_trace(header(m, TRACEPARENT)).to_string();
        let intersection = fd.intersection_id.to_string();
        if !self.ensure_intersection(&intersection, fd.camera_id.as_ref(), partition) {
            let why = match self.registry.cameras.get(fd.camera_id.as_ref()) {
                Some(c) => format!(
                    "detections of camera {:?} for intersection {intersection:?}, but the registry puts it in {:?}",
                    fd.camera_id, c.intersection
                ),
                None => format!("detections of camera {:?}, which the registry does not know", fd.camera_id),
            };
            tracing::warn!(camera = %fd.camera_id, intersection, seq = fd.seq, "{why}: to the dead-letter topic");
            self.dlq.send(m, &why).await?;
            self.processed.processed(partition, offset);
            return Ok(false);
        }
        let h = self.held.get_mut(&intersection).expect("ensured above");
        let dups = h.agg.duplicates();
        let crossings = match h.agg.process(&fd) {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "{e}");
                Vec::new()
            }
        };
        let records = h.agg.drain(crossings);
        if h.agg.duplicates() == dups {
            h.clock.observe(fd.capture_time_ms, Instant::now());
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
        self.publish(&intersection, records, &trace).await?;
        streetscope_telemetry::spans::record(
            "aggregate",
            &trace,
            header(m, TRACEPARENT),
            started,
            &fd.camera_id,
            fd.seq,
        );
        self.processed.processed(partition, offset);
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

    /// Builds the aggregator of `intersection` from the registry if this
    /// stage does not hold it yet; false when the registry does not put
    /// `camera` in `intersection`.
    fn ensure_intersection(&mut self, intersection: &str, camera: &str, partition: i32) -> bool {
        if self.registry.cameras.get(camera).is_none_or(|c| c.intersection != intersection) {
            return false;
        }
        if let Some(h) = self.held.get_mut(intersection) {
            // Registry changes reach held intersections as they come; a camera
            // missing here was added while the intersection was being restored.
            if !h.cameras.iter().any(|c| c.id == camera) {
                let c = self.registry.cameras[camera].clone();
                h.agg.upsert_camera(&c);
                h.cameras.push(c);
            }
            return true;
        }
        let cameras = self.registry.cameras_of(intersection);
        let analytics = self.registry.analytics_for(intersection, &self.cfg.analytics);
        let agg = Aggregator::with_analytics(&cameras, &self.cfg.tracker, &analytics);
        self.held.insert(intersection.to_owned(), Held::new(agg, partition, cameras));
        true
    }

    /// Applies one record of the registry's tables to the intersections held
    /// here, as `streetscope run` applies its watched configuration.
    async fn registry_changed(&mut self, record: TableRecord) -> anyhow::Result<()> {
        let Some(change) = self.registry.apply(&self.cfg, record) else { return Ok(()) };
        let trace = super::continue_trace(None).to_string();
        match change {
            RegistryChange::Camera { old, new } => {
                let id = old.as_ref().or(new.as_ref()).map(|c| c.id.clone()).expect("one of them");
                // Leaving an intersection held here (deleted, or moved to another).
                if let Some(old) =
                    old.as_ref().filter(|o| new.as_ref().is_none_or(|n| n.intersection != o.intersection))
                {
                    if let Some(h) = self.held.get_mut(&old.intersection) {
                        let ended = h.agg.remove_camera(&id);
                        let records = h.agg.drain(ended);
                        h.cameras.retain(|c| c.id != id);
                        (h.dirty, h.counts_dirty) = (true, true);
                        tracing::info!(camera = %id, intersection = %old.intersection, "camera left the intersection (registry)");
                        self.publish(&old.intersection.clone(), records, &trace).await?;
                    }
                }
                // Added to, or edited in, an intersection held here.
                if let Some(new) = new {
                    if let Some(h) = self.held.get_mut(&new.intersection) {
                        h.agg.upsert_camera(&new);
                        let records = h.agg.drain(Vec::new());
                        h.cameras.retain(|c| c.id != id);
                        h.cameras.push((*new).clone());
                        (h.dirty, h.counts_dirty) = (true, true);
                        tracing::info!(camera = %id, intersection = %new.intersection, "camera updated (registry): counts from its next frame on");
                        self.publish(&new.intersection, records, &trace).await?;
                    }
                }
            }
            RegistryChange::Intersection(id) => {
                // New approaches: the aggregator rebuilt from its own state.
                if let Some(h) = self.held.remove(&id) {
                    let cameras = self.registry.cameras_of(&id);
                    let analytics = self.registry.analytics_for(&id, &self.cfg.analytics);
                    let agg = match Aggregator::restore(&cameras, &self.cfg.tracker, &analytics, h.agg.snapshot()) {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::error!(intersection = %id, "cannot carry the state over to the new approaches ({e}); starting afresh");
                            Aggregator::with_analytics(&cameras, &self.cfg.tracker, &analytics)
                        }
                    };
                    let mut rebuilt = Held::new(agg, h.partition, cameras);
                    (rebuilt.frames, rebuilt.as_of_ms, rebuilt.finished, rebuilt.ended, rebuilt.seen, rebuilt.clock) =
                        (h.frames, h.as_of_ms, h.finished, h.ended, h.seen, h.clock);
                    (rebuilt.dirty, rebuilt.counts_dirty) = (true, true);
                    tracing::info!(intersection = %id, "intersection updated (registry)");
                    self.held.insert(id, rebuilt);
                }
            }
        }
        Ok(())
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
        let checkpoint = self.processed.checkpoint();
        for p in self.pending.drain(..) {
            p.durable().await.context("publishing results")?;
        }
        let checkpoint = checkpoint.outputs_durable();
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
        for (p, off) in checkpoint.snapshots_durable().offsets() {
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
        // Each intersection's event clock drives what needs time without input
        // (a camera gone stale, windows of silent cameras), as in `streetscope run`.
        let at = Instant::now();
        let mut released = Vec::new();
        for (id, h) in self.held.iter_mut() {
            let Some(now_ms) = h.clock.now(at) else { continue };
            h.agg.tick(now_ms);
            let records = h.agg.drain(Vec::new());
            if !records.is_empty() {
                h.dirty = true;
                released.push((id.clone(), records));
            }
        }
        for (id, records) in released {
            self.publish(&id, records, &super::continue_trace(None).to_string()).await?;
        }
        self.delivery.update(self.held.values().flat_map(|h| {
            h.agg.delivery().into_iter().map(|(camera, d)| DeliverySample {
                camera,
                frames: d.frames,
                duplicates: d.duplicates,
                missing: d.missing,
                restarts: d.restarts,
            })
        }));
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
                let analytics = self.registry.analytics_for(&intersection, &self.cfg.analytics);
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
            self.processed.revoked(*p);
        }
        tracing::info!(partitions = ?ids, "detections partitions revoked; their state was dropped");
    }
}

/// Ends every track of `h`; the records that releases.
fn finish(h: &mut Held) -> Vec<ResultRecord> {
    let ended = h.agg.finish();
    let records = h.agg.drain(ended);
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
            clock: EventClock::default(),
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
