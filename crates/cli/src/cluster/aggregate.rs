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
//! What each input does to the intersections held — the registry followed
//! live, detections refused with a reason, tracks ended at the end of the
//! recordings or after silence, time kept by each intersection's event clock —
//! is [`streetscope_pipeline::aggregate::Intersections`], tested without a
//! broker; this file moves bytes between it and Kafka and keeps the delivery
//! rules of [`streetscope_transport::delivery`].

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use streetscope_contracts::cluster::ClusterConfig;
use streetscope_contracts::kafka::{headers, EndOfStream};
use streetscope_contracts::records::ResultRecord;
use streetscope_contracts::trace::TRACEPARENT;
use streetscope_contracts::FrameDetections;
use streetscope_pipeline::aggregate::{Intersections, Released, Table};
use streetscope_telemetry::metrics::{DeliveryBoard, DeliverySample};
use streetscope_telemetry::StageMeter;
use streetscope_transport::delivery::Processed;
use streetscope_transport::kafka::{
    header, payload, read_table, Assignment, DeadLetters, GroupConsumer, Incoming, Origin, OwnedMessage, Pending,
    Producer, Role, TableFollower, TableRecord,
};

use super::ClusterArgs;

pub fn aggregate_stage(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.load()?;
    let _spans = streetscope_telemetry::spans::init_from_env("streetscope-aggregate");
    super::runtime("streetscope-aggregate")?.block_on(run(args, cfg))
}

struct Stage {
    cfg: ClusterConfig,
    consumer: GroupConsumer,
    producer: Producer,
    dlq: DeadLetters,
    intersections: Intersections,
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
    let mut intersections = Intersections::new(
        cfg.tracker.clone(),
        cfg.analytics.clone(),
        Duration::from_secs_f64(cfg.aggregate.finish_idle_s),
    );
    while !follower.caught_up() {
        let r = follower.next().await;
        if let Some(table) = table_of(&cfg, &r) {
            // Nothing is held yet: no records to publish.
            intersections.registry_record(table, &r.key, r.value.as_deref());
        }
    }
    ready.set("registry", true);
    tracing::info!(
        cameras = intersections.registry().cameras(),
        intersections = intersections.registry().intersections(),
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
        intersections,
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

/// Which followed table a record came from.
fn table_of(cfg: &ClusterConfig, r: &TableRecord) -> Option<Table> {
    let topics = &cfg.kafka.topics;
    if r.topic == topics.cameras.name {
        Some(Table::Cameras)
    } else if r.topic == topics.intersections.name {
        Some(Table::Intersections)
    } else {
        None
    }
}

fn unix_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Stage {
    fn topics(&self) -> &streetscope_contracts::kafka::TopicsConfig {
        &self.cfg.kafka.topics
    }

    /// Handles one message; false when it was a dead letter or skipped.
    async fn handle(&mut self, m: &OwnedMessage) -> anyhow::Result<bool> {
        let origin = Origin::of(m);
        let (partition, offset) = (origin.partition, origin.offset);
        let handled = self.aggregate(m, partition).await;
        // A dead letter is done with too: its offset moves on with the others.
        self.processed.processed(partition, offset);
        handled
    }

    async fn aggregate(&mut self, m: &OwnedMessage, partition: i32) -> anyhow::Result<bool> {
        if header(m, headers::END_OF_STREAM).is_some() {
            return match serde_json::from_slice::<EndOfStream>(payload(m)) {
                Ok(marker) => {
                    if let Some(released) = self.intersections.end_of_stream(&marker) {
                        self.publish_all(vec![released], None).await?;
                    }
                    Ok(true)
                }
                Err(e) => {
                    self.dlq.send(m, "end_of_stream_marker", &format!("end-of-stream marker: {e}")).await?;
                    Ok(false)
                }
            };
        }
        let fd: FrameDetections = match serde_json::from_slice(payload(m)) {
            Ok(fd) => fd,
            Err(e) => {
                self.dlq.send(m, "detections_json", &format!("detections JSON: {e}")).await?;
                return Ok(false);
            }
        };
        // Decodes, but cannot be true (a box outside the frame, a bad id, ...).
        if let Err(why) = fd.check() {
            self.dlq.send(m, why.label(), &format!("detections {}: {why}", why.label())).await?;
            return Ok(false);
        }
        let started = std::time::SystemTime::now();
        match self.intersections.detections(&fd, partition, Instant::now(), unix_now_ms()) {
            Ok(records) => {
                if header(m, headers::SNAPSHOT).is_some() {
                    self.snapshot_overlay(&fd);
                }
                let trace = super::continue_trace(header(m, TRACEPARENT)).to_string();
                self.publish(&fd.intersection_id, records, &trace).await?;
                streetscope_telemetry::spans::record(
                    "aggregate",
                    &trace,
                    header(m, TRACEPARENT),
                    started,
                    &fd.camera_id,
                    fd.seq,
                );
                Ok(true)
            }
            Err(why) => {
                tracing::warn!(camera = %fd.camera_id, intersection = %fd.intersection_id, seq = fd.seq, "{why}: to the dead-letter topic");
                self.dlq.send(m, "refused", &why).await?;
                Ok(false)
            }
        }
    }

    /// The detector snapshotted this frame: its overlay (each box's confirmed
    /// track) to the camera snapshots topic, under the camera's key, for the
    /// dashboard to join to the picture. Fire-and-forget, as the pictures: a
    /// lost overlay is an unlabelled picture, never a lost count; not written
    /// for a replayed (duplicate) frame, whose tracks are long gone.
    fn snapshot_overlay(&self, fd: &FrameDetections) {
        use streetscope_contracts::snapshots::{encode_overlay, SnapshotOverlay};
        let Some((seq, tracks)) = self.intersections.frame_tracks(&fd.intersection_id, &fd.camera_id) else { return };
        if seq != fd.seq {
            return;
        }
        let value = encode_overlay(&SnapshotOverlay::of_detections(fd, tracks));
        let (producer, topic, camera) =
            (self.producer.clone(), self.topics().camera_snapshots.name.clone(), fd.camera_id.to_string());
        tokio::spawn(async move {
            if let Err(e) = producer.send(&topic, &camera, Some(&value), &[]).await {
                tracing::warn!(camera, "snapshot overlay not written: {e}");
            }
        });
    }

    /// Applies one record of the registry's tables to the intersections held here.
    async fn registry_changed(&mut self, record: TableRecord) -> anyhow::Result<()> {
        let Some(table) = table_of(&self.cfg, &record) else { return Ok(()) };
        let released = self.intersections.registry_record(table, &record.key, record.value.as_deref());
        self.publish_all(released, None).await
    }

    /// Publishes released records, each intersection's under its key; `trace`
    /// None starts a new trace.
    async fn publish_all(&mut self, released: Vec<Released>, trace: Option<&str>) -> anyhow::Result<()> {
        let trace = trace.map_or_else(|| super::continue_trace(None).to_string(), str::to_owned);
        for (intersection, records) in released {
            self.publish(&intersection, records, &trace).await?;
        }
        Ok(())
    }

    async fn publish(&mut self, intersection: &str, records: Vec<ResultRecord>, trace: &str) -> anyhow::Result<()> {
        for r in records {
            let topic = r.topic(self.topics()).name.clone();
            let json = serde_json::to_vec(&r)?;
            // Stamped with its event time: `streetscope report --brokers` finds
            // a study's period by offsets-for-times instead of reading the topic.
            let headers = [(TRACEPARENT, trace.as_bytes())];
            let p = self.producer.send_at(&topic, intersection, Some(&json), &headers, r.event_time_ms()).await?;
            self.pending.push(p);
        }
        Ok(())
    }

    /// Outputs durable, then snapshots durable, then offsets marked done.
    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        let idle = self.intersections.finish_idle(Instant::now());
        self.publish_all(idle, None).await?;
        let checkpoint = self.processed.checkpoint();
        for p in self.pending.drain(..) {
            p.durable().await.context("publishing results")?;
        }
        let checkpoint = checkpoint.outputs_durable();
        let topic = self.topics().snapshots.name.clone();
        let mut writes = Vec::new();
        for (id, snap) in self.intersections.dirty_snapshots() {
            let json = serde_json::to_vec(&snap)?;
            writes.push(self.producer.send(&topic, &id, Some(&json), &[]).await?);
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

    /// Each intersection's event clock drives what needs time without input
    /// (a camera gone stale, windows of silent cameras), as in `streetscope
    /// run`; then the counts records of what changed.
    async fn publish_counts(&mut self) -> anyhow::Result<()> {
        let ticked = self.intersections.tick(Instant::now());
        self.publish_all(ticked, None).await?;
        self.delivery.update(self.intersections.delivery().into_iter().map(|(camera, d)| DeliverySample {
            camera,
            frames: d.frames,
            duplicates: d.duplicates,
            missing: d.missing,
            restarts: d.restarts,
        }));
        let counts = self.intersections.counts();
        counts.iter().flat_map(|(_, r)| r).for_each(streetscope_telemetry::metrics::record_published);
        self.publish_all(counts, None).await
    }

    /// Restores the intersections of newly assigned partitions from their
    /// snapshots (the snapshots partition of the same number).
    async fn assigned(&mut self, parts: &[(String, i32)]) -> anyhow::Result<()> {
        let mut restored = 0;
        for &(_, p) in parts {
            let (k, topic) = (self.cfg.kafka.clone(), self.topics().snapshots.name.clone());
            let rows = tokio::task::spawn_blocking(move || read_table(&k, &topic, Some(&[p]))).await??;
            restored += self.intersections.restore(p, rows, Instant::now());
        }
        let ids: Vec<i32> = parts.iter().map(|(_, p)| *p).collect();
        tracing::info!(partitions = ?ids, restored, "detections partitions assigned");
        Ok(())
    }

    fn revoked(&mut self, parts: &[(String, i32)]) {
        let ids: HashSet<i32> = parts.iter().map(|(_, p)| *p).collect();
        self.intersections.revoke(&ids);
        for p in &ids {
            self.processed.revoked(*p);
        }
        tracing::info!(partitions = ?ids, "detections partitions revoked; their state was dropped");
    }
}
