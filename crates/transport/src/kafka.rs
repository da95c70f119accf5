//! The Kafka transport (distributed mode), over rdkafka with tokio.
//!
//! - [`client_config`] turns [`KafkaConfig`] into librdkafka properties, reading
//!   secrets from their files or environment variables; secrets never reach a
//!   log line or an error message.
//! - [`Producer`]: idempotent (`acks=all`, ordered, no duplicates from retries),
//!   compressed and batched; `send` hands back a future that resolves once the
//!   message is durable, so a stage can keep many in flight and commit in order.
//! - [`GroupConsumer`]: a member of a consumer group, cooperative-sticky
//!   rebalancing, offsets committed only for what the caller marks done with
//!   [`GroupConsumer::mark_done`] (after its outputs are durable); partition
//!   assignments and revocations come as events in the message stream.
//! - [`DeadLetters`]: messages that fail to decode go to the dead-letter topic,
//!   with the reason and their origin in headers.
//! - [`KafkaTable`]: a compacted topic read as a table ([`crate::TableLog`]).
//! - [`ensure_topics`]: creates the topics of DESIGN.md, idempotently.
//!
//! Invariant: this is the only module of the workspace that links rdkafka.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use streetscope_contracts::kafka::{KafkaConfig, TopicSpec};

use crate::table::{TableError, TableLog};

/// Why the Kafka transport failed. Messages name the topic and what to check;
/// they never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum KafkaTransportError {
    /// The configuration could not be turned into a client (a secret file that
    /// cannot be read, say).
    #[error("Kafka configuration: {0}")]
    Config(String),
    /// librdkafka refused to create the client.
    #[error("cannot create the Kafka {role}: {source}")]
    Client { role: &'static str, source: KafkaError },
    /// A produce failed after librdkafka's own retries.
    #[error("cannot deliver to {topic}: {source}")]
    Delivery { topic: String, source: KafkaError },
    /// Anything else the broker answered with an error.
    #[error("Kafka {what}: {source}")]
    Broker { what: String, source: KafkaError },
    /// The broker did not answer in time.
    #[error("Kafka {0}: timed out")]
    Timeout(String),
}

type Result<T, E = KafkaTransportError> = std::result::Result<T, E>;

/// What a client is for: the tuning differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Produces frames (big binary messages).
    FrameProducer,
    /// Produces JSON records, table rows, dead letters.
    RecordProducer,
    /// Consumes in a group.
    Consumer,
    /// Reads or administers without a group.
    Admin,
}

/// librdkafka properties for `cfg`, secrets read from their files or
/// environment variables. The returned config is never logged.
pub fn client_config(cfg: &KafkaConfig, role: Role) -> Result<ClientConfig> {
    let errs = cfg.validate("kafka");
    if !errs.is_empty() {
        let list: Vec<String> = errs.iter().map(ToString::to_string).collect();
        return Err(KafkaTransportError::Config(list.join("; ")));
    }
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", &cfg.client_id)
        .set("security.protocol", cfg.protocol())
        .set("message.max.bytes", (cfg.message_max_bytes + 64 * 1024).to_string())
        .set_log_level(RDKafkaLogLevel::Warning);
    if let Some(tls) = &cfg.security.tls {
        if let Some(ca) = &tls.ca_file {
            c.set("ssl.ca.location", ca.to_string_lossy());
        }
        if let Some(cert) = &tls.cert_file {
            c.set("ssl.certificate.location", cert.to_string_lossy());
        }
        if let Some(key) = &tls.key_file {
            c.set("ssl.key.location", key.to_string_lossy());
        }
        if let Some(file) = &tls.key_password_file {
            c.set("ssl.key.password", read_secret_file(file, "kafka.security.tls.key_password_file")?);
        }
        c.set("ssl.endpoint.identification.algorithm", if tls.verify_hostname { "https" } else { "none" });
    }
    if let Some(sasl) = &cfg.security.sasl {
        let password = match (&sasl.password_file, &sasl.password_env) {
            (Some(file), _) => read_secret_file(file, "kafka.security.sasl.password_file")?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                KafkaTransportError::Config(format!(
                    "kafka.security.sasl.password_env: the environment variable {var} is not set"
                ))
            })?,
            (None, None) => unreachable!("validated: one of password_file and password_env"),
        };
        c.set("sasl.mechanisms", &sasl.mechanism).set("sasl.username", &sasl.username).set("sasl.password", password);
    }
    match role {
        Role::FrameProducer | Role::RecordProducer => {
            c.set("enable.idempotence", "true")
                .set("acks", "all")
                .set("compression.type", if role == Role::FrameProducer { "none" } else { cfg.compression.as_str() })
                .set("linger.ms", cfg.linger_ms.to_string())
                .set("batch.size", cfg.batch_bytes.min(cfg.message_max_bytes * 4).to_string())
                // Java's partitioner: the same key lands in the same partition whoever produces it.
                .set("partitioner", "murmur2_random")
                .set("message.timeout.ms", "120000");
            if role == Role::FrameProducer && cfg.compression != "lz4" && cfg.compression != "none" {
                // JPEG does not compress: honour an explicit choice anyway.
                c.set("compression.type", &cfg.compression);
            }
        }
        Role::Consumer => {
            c.set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", "500")
                // Only what the stage marks done is committed: at-least-once.
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                .set("partition.assignment.strategy", "cooperative-sticky")
                .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
                .set("heartbeat.interval.ms", (cfg.session_timeout_ms / 4).max(250).to_string())
                .set("fetch.max.bytes", (cfg.message_max_bytes * 8).to_string())
                .set("max.partition.fetch.bytes", (cfg.message_max_bytes * 2).to_string());
        }
        Role::Admin => {}
    }
    for (k, v) in &cfg.extra {
        c.set(k, v);
    }
    Ok(c)
}

fn read_secret_file(path: &std::path::Path, field: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KafkaTransportError::Config(format!("{field}: cannot read {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or_default().trim_end().to_owned())
}

// ---------------------------------------------------------------------------
// Producer

/// An idempotent producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Producer")
    }
}

/// Where a message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// A message on its way; resolves when durable (or failed for good).
pub struct Pending {
    topic: String,
    fut: DeliveryFuture,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").field("topic", &self.topic).finish()
    }
}

impl Pending {
    /// Waits until the broker has the message.
    pub async fn durable(self) -> Result<Delivered> {
        match self.fut.await {
            Ok(Ok(d)) => Ok(Delivered { partition: d.partition, offset: d.offset }),
            Ok(Err((source, _))) => Err(KafkaTransportError::Delivery { topic: self.topic, source }),
            Err(_) => Err(KafkaTransportError::Delivery { topic: self.topic, source: KafkaError::Canceled }),
        }
    }
}

impl Producer {
    /// A producer tuned for `role` ([`Role::FrameProducer`] or [`Role::RecordProducer`]).
    pub fn new(cfg: &KafkaConfig, role: Role) -> Result<Self> {
        let inner: FutureProducer = client_config(cfg, role)?
            .create()
            .map_err(|source| KafkaTransportError::Client { role: "producer", source })?;
        Ok(Self { inner })
    }

    /// Queues one message (`value` None: a tombstone). Waits only when
    /// librdkafka's own queue is full (back-pressure), then returns the pending
    /// delivery.
    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<Pending> {
        self.send_at(topic, key, value, headers, None).await
    }

    /// [`Producer::send`] with the message's timestamp set (ms since the Unix
    /// epoch; None: the time of sending). The result records are stamped with
    /// their event time, so that readers find a time range by Kafka's
    /// offsets-for-times lookup ([`read_log_between`]).
    pub async fn send_at(
        &self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        timestamp_ms: Option<i64>,
    ) -> Result<Pending> {
        let mut h = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            h = h.insert(Header { key: k, value: Some(*v) });
        }
        let mut record = FutureRecord::<str, [u8]>::to(topic).key(key).headers(h);
        if let Some(v) = value {
            record = record.payload(v);
        }
        if let Some(t) = timestamp_ms {
            record = record.timestamp(t);
        }
        loop {
            match self.inner.send_result(record) {
                Ok(fut) => return Ok(Pending { topic: topic.to_owned(), fut }),
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((source, _)) => return Err(KafkaTransportError::Delivery { topic: topic.to_owned(), source }),
            }
        }
    }

    /// Sends and waits until durable.
    pub async fn send_durable(
        &self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<Delivered> {
        self.send(topic, key, value, headers).await?.durable().await
    }

    /// Waits until everything queued is delivered (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.inner.flush(timeout).map_err(|source| KafkaTransportError::Broker { what: "flush".into(), source })
    }
}

// ---------------------------------------------------------------------------
// Group consumer

/// A change of this member's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// These (topic, partition) pairs are now ours.
    Assigned(Vec<(String, i32)>),
    /// These are no longer ours (after offsets marked done were committed).
    Revoked(Vec<(String, i32)>),
}

/// What a group consumer yields.
#[derive(Debug)]
pub enum Incoming {
    /// A message.
    Message(OwnedMessage),
    /// A rebalance touched this member.
    Rebalance(Assignment),
}

/// Collects rebalance events in librdkafka's poll thread for the stream to hand out.
#[derive(Debug, Default)]
pub struct GroupContext {
    events: Mutex<VecDeque<Assignment>>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Commit what was marked done before the partitions move on.
            if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                if !matches!(e, KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) {
                    tracing::warn!(error = %e, "commit before revocation failed; the next owner replays from the last commit");
                }
            }
            let parts = list(tpl);
            if !parts.is_empty() {
                self.events.lock().unwrap_or_else(|p| p.into_inner()).push_back(Assignment::Revoked(parts));
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = list(tpl);
            if !parts.is_empty() {
                self.events.lock().unwrap_or_else(|p| p.into_inner()).push_back(Assignment::Assigned(parts));
            }
        }
    }
}

fn list(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect()
}

/// A member of a consumer group.
pub struct GroupConsumer {
    inner: StreamConsumer<GroupContext>,
    group: String,
    /// A message fetched in the same poll as a rebalance, handed out after it.
    stash: Mutex<Option<OwnedMessage>>,
}

impl fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupConsumer").field("group", &self.group).finish()
    }
}

impl GroupConsumer {
    /// Joins `group` and subscribes to `topics`.
    pub fn new(cfg: &KafkaConfig, group: &str, topics: &[&str]) -> Result<Self> {
        Self::with_instance_id(cfg, group, topics, None)
    }

    /// [`GroupConsumer::new`] as a static member (`group.instance.id`, KIP-345)
    /// when `instance` is given: a member that restarts under the same id
    /// within the session timeout gets its partitions back without a rebalance
    /// (a rolling update does not move an ingest pod's cameras to the others).
    pub fn with_instance_id(cfg: &KafkaConfig, group: &str, topics: &[&str], instance: Option<&str>) -> Result<Self> {
        let mut c = client_config(cfg, Role::Consumer)?;
        c.set("group.id", group);
        if let Some(id) = instance {
            c.set("group.instance.id", id);
        }
        let inner: StreamConsumer<GroupContext> = c
            .create_with_context(GroupContext::default())
            .map_err(|source| KafkaTransportError::Client { role: "consumer", source })?;
        inner
            .subscribe(topics)
            .map_err(|source| KafkaTransportError::Broker { what: format!("subscribe to {topics:?}"), source })?;
        Ok(Self { inner, group: group.to_owned(), stash: Mutex::new(None) })
    }

    /// The next message or rebalance event. A rebalance is reported before any
    /// message fetched after it, so a stage sets up a partition's state before it
    /// sees the partition's messages. Transient broker errors are logged and
    /// retried; the stream never ends while the consumer lives.
    pub async fn next(&self) -> Incoming {
        loop {
            if let Some(ev) = self.take_event() {
                return Incoming::Rebalance(ev);
            }
            if let Some(m) = self.stash.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Incoming::Message(m);
            }
            match tokio::time::timeout(Duration::from_millis(200), self.inner.recv()).await {
                Ok(Ok(m)) => {
                    let m = m.detach();
                    if self.inner.context().events.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                        return Incoming::Message(m);
                    }
                    *self.stash.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                }
                Ok(Err(e)) => {
                    tracing::warn!(group = %self.group, error = %e, "consumer error; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => {}
            }
        }
    }

    fn take_event(&self) -> Option<Assignment> {
        self.inner.context().events.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    /// Marks everything up to and including `offset` of a partition as done:
    /// it is committed within half a second, and before the partition is revoked.
    pub fn mark_done(&self, topic: &str, partition: i32, offset: i64) {
        // librdkafka stores `offset + 1`: the next message to read.
        if let Err(e) = self.inner.store_offset(topic, partition, offset) {
            // A partition revoked meanwhile: its next owner replays (duplicates are dropped downstream).
            tracing::debug!(topic, partition, offset, error = %e, "offset not stored");
        }
    }

    /// Commits what was marked done now, and waits.
    pub fn commit_now(&self) -> Result<()> {
        match self.inner.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(source) => {
                Err(KafkaTransportError::Broker { what: format!("commit for group {}", self.group), source })
            }
        }
    }

    /// Lag of each assigned partition: high watermark minus position.
    pub fn lag(&self) -> Vec<((String, i32), i64)> {
        let Ok(pos) = self.inner.position() else { return Vec::new() };
        pos.elements()
            .iter()
            .filter_map(|e| {
                let (_, high) = self.inner.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(2)).ok()?;
                let at = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                Some(((e.topic().to_owned(), e.partition()), (high - at).max(0)))
            })
            .collect()
    }

    /// Leaves the group cleanly: commits what was marked done first.
    pub fn close(self) {
        let _ = self.commit_now();
        self.inner.unsubscribe();
    }
}

/// Reads a consumer group's lag the way KEDA's Kafka scaler does: per
/// partition of the topics, the high watermark minus the group's committed
/// offset (minus the low watermark where nothing is committed yet: the group
/// starts at the earliest offset). A separate client that never joins the
/// group, so sampling it never touches the stage's own consumer.
pub struct LagProbe {
    inner: BaseConsumer,
    topics: Vec<String>,
}

impl fmt::Debug for LagProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LagProbe").field("topics", &self.topics).finish()
    }
}

/// The lag of one partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
}

impl From<PartitionLag> for (String, i32, i64) {
    fn from(l: PartitionLag) -> Self {
        (l.topic, l.partition, l.lag)
    }
}

impl LagProbe {
    pub fn new(cfg: &KafkaConfig, group: &str, topics: &[&str]) -> Result<Self> {
        let mut c = client_config(cfg, Role::Admin)?;
        c.set("group.id", group).set("enable.auto.commit", "false");
        let inner: BaseConsumer =
            c.create().map_err(|source| KafkaTransportError::Client { role: "lag probe", source })?;
        Ok(Self { inner, topics: topics.iter().map(|t| (*t).to_owned()).collect() })
    }

    /// Every partition's lag now (blocking, at most a few seconds); None when
    /// the broker did not answer.
    pub fn lag(&self) -> Option<Vec<PartitionLag>> {
        let timeout = Duration::from_secs(2);
        let mut tpl = TopicPartitionList::new();
        for topic in &self.topics {
            let md = self.inner.fetch_metadata(Some(topic), timeout).ok()?;
            for t in md.topics() {
                for p in t.partitions() {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
        let committed = self.inner.committed_offsets(tpl, timeout).ok()?;
        let mut out = Vec::new();
        for e in committed.elements() {
            let (low, high) = self.inner.fetch_watermarks(e.topic(), e.partition(), timeout).ok()?;
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            out.push(PartitionLag { topic: e.topic().to_owned(), partition: e.partition(), lag: (high - at).max(0) });
        }
        Some(out)
    }
}

// ---------------------------------------------------------------------------
// Reading a message

pub use rdkafka::message::OwnedMessage;

/// The message's value (empty for a tombstone).
pub fn payload(msg: &OwnedMessage) -> &[u8] {
    msg.payload().unwrap_or_default()
}

/// The message's key as text (lossy), empty when it has none.
pub fn key(msg: &OwnedMessage) -> std::borrow::Cow<'_, str> {
    msg.key().map(String::from_utf8_lossy).unwrap_or_default()
}

/// Whether the message is a tombstone (a key with no value).
pub fn is_tombstone(msg: &OwnedMessage) -> bool {
    msg.payload().is_none()
}

/// The value of header `name`, if present.
pub fn header<'m>(msg: &'m OwnedMessage, name: &str) -> Option<&'m [u8]> {
    let h = msg.headers()?;
    h.iter().find(|h| h.key == name).and_then(|h| h.value)
}

/// Where a message came from, for logs and dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl Origin {
    /// The origin of `msg`.
    pub fn of(msg: &OwnedMessage) -> Self {
        Self { topic: msg.topic().to_owned(), partition: msg.partition(), offset: msg.offset() }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

// ---------------------------------------------------------------------------
// Dead letters

/// Header names on dead letters.
pub mod dlq_headers {
    /// Why the message was refused.
    pub const REASON: &str = "streetscope.dlq.reason";
    /// The stage that refused it.
    pub const STAGE: &str = "streetscope.dlq.stage";
    /// Topic it was read from.
    pub const TOPIC: &str = "streetscope.dlq.topic";
    /// Partition it was read from.
    pub const PARTITION: &str = "streetscope.dlq.partition";
    /// Offset it was read from.
    pub const OFFSET: &str = "streetscope.dlq.offset";
}

/// Sends undecodable messages to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    producer: Producer,
    topic: String,
    stage: &'static str,
}

impl DeadLetters {
    /// Dead letters of `stage` go to `topic` through `producer`.
    pub fn new(producer: Producer, topic: &str, stage: &'static str) -> Self {
        Self { producer, topic: topic.to_owned(), stage }
    }

    /// Copies `msg` (key, value, headers) to the dead-letter topic with `reason`
    /// and its origin in headers, and waits until durable; counts it in
    /// `streetscope_dead_letters_total{stage,reason=label}` (`label`: a short
    /// fixed name of the reason, e.g. `frame_envelope`; `reason` is the text).
    /// The caller then marks the message done and goes on.
    pub async fn send(&self, msg: &OwnedMessage, label: &'static str, reason: &str) -> Result<()> {
        let origin = Origin::of(msg);
        tracing::warn!(stage = self.stage, origin = %origin, reason, "message sent to the dead-letter topic");
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let mut headers: Vec<(&str, &[u8])> = vec![
            (dlq_headers::REASON, reason.as_bytes()),
            (dlq_headers::STAGE, self.stage.as_bytes()),
            (dlq_headers::TOPIC, origin.topic.as_bytes()),
            (dlq_headers::PARTITION, partition.as_bytes()),
            (dlq_headers::OFFSET, offset.as_bytes()),
        ];
        if let Some(h) = msg.headers() {
            for h in h.iter() {
                if let Some(v) = h.value {
                    headers.push((h.key, v));
                }
            }
        }
        let key = msg.key().map(String::from_utf8_lossy).unwrap_or_default();
        self.producer.send_durable(&self.topic, &key, Some(msg.payload().unwrap_or_default()), &headers).await?;
        streetscope_telemetry::metrics::dead_letter(self.stage, label);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Tables

/// A compacted topic read as a table.
#[derive(Clone)]
pub struct KafkaTable {
    cfg: Arc<KafkaConfig>,
    topic: String,
    producer: Producer,
}

impl fmt::Debug for KafkaTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTable").field("topic", &self.topic).finish()
    }
}

impl KafkaTable {
    /// The table kept in `topic`.
    pub fn new(cfg: &KafkaConfig, topic: &str) -> Result<Self> {
        Ok(Self {
            cfg: Arc::new(cfg.clone()),
            topic: topic.to_owned(),
            producer: Producer::new(cfg, Role::RecordProducer)?,
        })
    }

    fn err(&self, e: impl fmt::Display) -> TableError {
        TableError { table: self.topic.clone(), message: e.to_string() }
    }
}

impl TableLog for KafkaTable {
    fn name(&self) -> &str {
        &self.topic
    }

    async fn write(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), TableError> {
        self.producer.send_durable(&self.topic, key, value.as_deref(), &[]).await.map(|_| ()).map_err(|e| self.err(e))
    }

    async fn read_all(&self) -> Result<BTreeMap<String, Vec<u8>>, TableError> {
        let cfg = self.cfg.clone();
        let topic = self.topic.clone();
        let rows = tokio::task::spawn_blocking(move || read_table(&cfg, &topic, None))
            .await
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }
}

/// Reads `topic` (or only `partitions` of it) from the beginning to its current
/// end: the latest value of each key (None for a tombstone). Blocking.
pub fn read_table(
    cfg: &KafkaConfig,
    topic: &str,
    partitions: Option<&[i32]>,
) -> Result<BTreeMap<String, Option<Vec<u8>>>> {
    Ok(read_log(cfg, topic, partitions)?.into_iter().map(|r| (r.key, r.value)).collect())
}

/// One message read back by [`read_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Partition and offset.
    pub partition: i32,
    pub offset: i64,
    /// Key (lossy UTF-8; empty when none).
    pub key: String,
    /// Value; None for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The message's timestamp (producer's create time), ms since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl LogRecord {
    /// The value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads `topic` (or only `partitions` of it) from the beginning to its end as
/// it is now: every message as (partition, key, value), in order per partition.
/// Blocking; for tables, tools and tests — stages consume in groups.
pub fn read_log(cfg: &KafkaConfig, topic: &str, partitions: Option<&[i32]>) -> Result<Vec<LogRecord>> {
    let consumer: BaseConsumer = client_config(cfg, Role::Admin)?
        .set("group.id", format!("{}-log-reader", cfg.client_id))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", (cfg.message_max_bytes * 8).to_string())
        .create()
        .map_err(|source| KafkaTransportError::Client { role: "log reader", source })?;
    let parts: Vec<i32> = match partitions {
        Some(p) => p.to_vec(),
        None => partition_ids(&consumer, topic)?,
    };
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for &p in &parts {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|source| KafkaTransportError::Broker { what: format!("watermarks of {topic}[{p}]"), source })?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|source| KafkaTransportError::Broker { what: format!("assign {topic}[{p}]"), source })?;
        }
    }
    let mut rows = Vec::new();
    if ends.is_empty() {
        return Ok(rows);
    }
    consumer.assign(&tpl).map_err(|source| KafkaTransportError::Broker { what: format!("assign {topic}"), source })?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(KafkaTransportError::Timeout(format!("reading {topic} to its end")));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                let headers = m
                    .headers()
                    .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                    .unwrap_or_default();
                rows.push(LogRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key,
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                    timestamp_ms: m.timestamp().to_millis(),
                });
                if ends.get(&m.partition()).is_some_and(|&end| m.offset() + 1 >= end) {
                    ends.remove(&m.partition());
                }
            }
            Some(Err(e)) => tracing::warn!(topic, error = %e, "reading the log; retrying"),
            None => {}
        }
    }
    Ok(rows)
}

/// Reads the part of `topic` that a time range needs, without scanning the rest:
/// per partition, from the first message stamped at or after `from_ms`
/// (Kafka's offsets-for-times lookup: nothing before it is fetched) up to the
/// first message stamped at or after `until_ms` (not returned), or the
/// partition's end as it is now. Message timestamps are the producer's
/// (`CreateTime`): the result stages stamp each record with its event time
/// ([`Producer::send_at`]). Blocking; for tools and tests.
pub fn read_log_between(cfg: &KafkaConfig, topic: &str, from_ms: i64, until_ms: i64) -> Result<Vec<LogRecord>> {
    let consumer: BaseConsumer = client_config(cfg, Role::Admin)?
        .set("group.id", format!("{}-range-reader", cfg.client_id))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", (cfg.message_max_bytes * 8).to_string())
        .create()
        .map_err(|source| KafkaTransportError::Client { role: "range reader", source })?;
    let broker = |what: String| move |source| KafkaTransportError::Broker { what, source };
    let mut times = TopicPartitionList::new();
    for p in partition_ids(&consumer, topic)? {
        times.add_partition_offset(topic, p, Offset::Offset(from_ms)).map_err(broker(format!("{topic}[{p}]")))?;
    }
    let starts = consumer
        .offsets_for_times(times, Duration::from_secs(10))
        .map_err(broker(format!("offsets of {topic} for {from_ms} ms")))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for e in starts.elements() {
        let p = e.partition();
        let Offset::Offset(start) = e.offset() else { continue }; // nothing stamped that late
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(broker(format!("watermarks of {topic}[{p}]")))?;
        if start < high {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(broker(format!("assign {topic}[{p}]")))?;
        }
    }
    let mut rows = Vec::new();
    if ends.is_empty() {
        return Ok(rows);
    }
    consumer.assign(&tpl).map_err(broker(format!("assign {topic}")))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(KafkaTransportError::Timeout(format!("reading {topic} from {from_ms} to {until_ms} ms")));
        }
        let m = match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(topic, error = %e, "reading a time range; retrying");
                continue;
            }
            None => continue,
        };
        let p = m.partition();
        let Some(&end) = ends.get(&p) else { continue }; // already done: paused
        let timestamp_ms = m.timestamp().to_millis();
        let done = m.offset() + 1 >= end || timestamp_ms.is_some_and(|t| t >= until_ms);
        if timestamp_ms.is_none_or(|t| t < until_ms) {
            let headers = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                .unwrap_or_default();
            rows.push(LogRecord {
                partition: p,
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp_ms,
            });
        }
        if done {
            ends.remove(&p);
            let mut one = TopicPartitionList::new();
            one.add_partition(topic, p);
            // Stop fetching it; a failure only costs messages read and dropped.
            let _ = consumer.pause(&one);
        }
    }
    Ok(rows)
}

fn partition_ids<C: ConsumerContext, K: Consumer<C>>(consumer: &K, topic: &str) -> Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|source| KafkaTransportError::Broker { what: format!("metadata of {topic}"), source })?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    match t {
        Some(t) if t.error().is_none() => Ok(t.partitions().iter().map(|p| p.id()).collect()),
        _ => Err(KafkaTransportError::Config(format!(
            "topic {topic} does not exist: run `streetscope topics create` first"
        ))),
    }
}

/// Number of partitions of `topic`.
pub fn partition_count(cfg: &KafkaConfig, topic: &str) -> Result<usize> {
    let consumer: BaseConsumer = client_config(cfg, Role::Admin)?
        .create()
        .map_err(|source| KafkaTransportError::Client { role: "metadata reader", source })?;
    Ok(partition_ids(&consumer, topic)?.len())
}

// ---------------------------------------------------------------------------
// Topics

/// What `ensure_topics` did to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    /// Created with this many partitions.
    Created { topic: String, partitions: u32 },
    /// Existed and matched.
    Unchanged { topic: String },
    /// Partitions added (never removed: Kafka cannot).
    PartitionsAdded { topic: String, from: usize, to: u32 },
    /// Configs set to the wanted values.
    ConfigsAltered { topic: String, settings: Vec<(String, String)> },
    /// Has more partitions than asked; left alone.
    MorePartitions { topic: String, has: usize, wanted: u32 },
    /// Could not be checked or changed; the reason.
    Failed { topic: String, reason: String },
}

impl fmt::Display for TopicChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created { topic, partitions } => write!(f, "created    {topic} ({partitions} partitions)"),
            Self::Unchanged { topic } => write!(f, "unchanged  {topic}"),
            Self::PartitionsAdded { topic, from, to } => write!(f, "partitions {topic}: {from} -> {to}"),
            Self::ConfigsAltered { topic, settings } => {
                let s: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "configured {topic}: {}", s.join(", "))
            }
            Self::MorePartitions { topic, has, wanted } => {
                write!(
                    f,
                    "kept       {topic}: has {has} partitions, config asks {wanted} (Kafka cannot remove partitions)"
                )
            }
            Self::Failed { topic, reason } => write!(f, "FAILED     {topic}: {reason}"),
        }
    }
}

fn topic_settings(t: &TopicSpec) -> Vec<(String, String)> {
    let mut s = vec![("cleanup.policy".to_owned(), t.cleanup_policy.clone())];
    if let Some(h) = t.retention_hours {
        s.push(("retention.ms".to_owned(), (u64::from(h) * 3_600_000).to_string()));
    }
    s
}

/// Creates the topics of `cfg` that are missing, adds partitions where fewer
/// than configured, and sets cleanup policy and retention where they differ.
/// Idempotent: a second run reports every topic unchanged.
pub async fn ensure_topics(cfg: &KafkaConfig) -> Result<Vec<TopicChange>> {
    let admin: AdminClient<DefaultClientContext> = client_config(cfg, Role::Admin)?
        .create()
        .map_err(|source| KafkaTransportError::Client { role: "admin client", source })?;
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(30)))
        .operation_timeout(Some(Duration::from_secs(30)));
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(15))
        .map_err(|source| KafkaTransportError::Broker { what: "cluster metadata".into(), source })?;
    let existing: HashMap<String, usize> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    let mut changes = Vec::new();
    for (_, t) in cfg.topics.all() {
        let settings = topic_settings(t);
        match existing.get(&t.name) {
            None => {
                let mut nt =
                    NewTopic::new(&t.name, t.partitions as i32, TopicReplication::Fixed(i32::from(t.replication)));
                for (k, v) in &settings {
                    nt = nt.set(k, v);
                }
                let res = admin
                    .create_topics([&nt], &opts)
                    .await
                    .map_err(|source| KafkaTransportError::Broker { what: format!("create {}", t.name), source })?;
                changes.push(match res.into_iter().next() {
                    Some(Ok(_)) | None => TopicChange::Created { topic: t.name.clone(), partitions: t.partitions },
                    Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => {
                        TopicChange::Unchanged { topic: t.name.clone() }
                    }
                    Some(Err((_, code))) => TopicChange::Failed { topic: t.name.clone(), reason: code.to_string() },
                });
            }
            Some(&has) => {
                let mut changed = false;
                if has < t.partitions as usize {
                    let np = NewPartitions::new(&t.name, t.partitions as usize);
                    match admin.create_partitions([&np], &opts).await {
                        Ok(r) if r.iter().all(|r| r.is_ok()) => {
                            changes.push(TopicChange::PartitionsAdded {
                                topic: t.name.clone(),
                                from: has,
                                to: t.partitions,
                            });
                        }
                        Ok(r) => changes.push(TopicChange::Failed {
                            topic: t.name.clone(),
                            reason: format!(
                                "adding partitions: {:?}",
                                r.into_iter().filter_map(|r| r.err()).collect::<Vec<_>>()
                            ),
                        }),
                        Err(e) => changes.push(TopicChange::Failed {
                            topic: t.name.clone(),
                            reason: format!("adding partitions: {e}"),
                        }),
                    }
                    changed = true;
                } else if has > t.partitions as usize {
                    changes.push(TopicChange::MorePartitions { topic: t.name.clone(), has, wanted: t.partitions });
                    changed = true;
                }
                match differing_configs(&admin, &opts, &t.name, &settings).await {
                    Ok(diff) if diff.is_empty() => {}
                    Ok(diff) => {
                        let mut ac = AlterConfig::new(ResourceSpecifier::Topic(&t.name));
                        for (k, v) in &settings {
                            ac = ac.set(k, v);
                        }
                        match admin.alter_configs([&ac], &opts).await {
                            Ok(r) if r.iter().all(|r| r.is_ok()) => {
                                changes.push(TopicChange::ConfigsAltered { topic: t.name.clone(), settings: diff })
                            }
                            Ok(_) | Err(_) => changes.push(TopicChange::Failed {
                                topic: t.name.clone(),
                                reason: format!("setting {diff:?} was refused by the broker"),
                            }),
                        }
                        changed = true;
                    }
                    Err(reason) => {
                        // Some brokers do not describe topic configs; say so rather than guess.
                        tracing::warn!(topic = %t.name, %reason, "cannot read the topic's configs; left as they are");
                    }
                }
                if !changed {
                    changes.push(TopicChange::Unchanged { topic: t.name.clone() });
                }
            }
        }
    }
    Ok(changes)
}

async fn differing_configs(
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    topic: &str,
    wanted: &[(String, String)],
) -> std::result::Result<Vec<(String, String)>, String> {
    let res = admin.describe_configs([&ResourceSpecifier::Topic(topic)], opts).await.map_err(|e| e.to_string())?;
    let Some(Ok(resource)) = res.into_iter().next() else { return Err("no description returned".into()) };
    let map = resource.entry_map();
    Ok(wanted
        .iter()
        .filter(|(k, v)| map.get(k.as_str()).and_then(|e| e.value.as_deref()) != Some(v.as_str()))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use streetscope_contracts::kafka::SaslConfig;

    #[test]
    fn secrets_come_from_files_and_never_show_in_errors() {
        let dir = std::env::temp_dir().join(format!("streetscope-kafka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("password");
        std::fs::write(&pw, "s3cr3t-pw\n").unwrap();
        let mut cfg = KafkaConfig::with_brokers("127.0.0.1:9092");
        cfg.security.sasl = Some(SaslConfig {
            mechanism: "SCRAM-SHA-256".into(),
            username: "ingest".into(),
            password_file: Some(pw.clone()),
            password_env: None,
        });
        let c = client_config(&cfg, Role::Consumer).unwrap();
        assert_eq!(c.get("sasl.password"), Some("s3cr3t-pw"));
        assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));

        cfg.security.sasl.as_mut().unwrap().password_file = Some(dir.join("missing"));
        let e = client_config(&cfg, Role::Consumer).unwrap_err().to_string();
        assert!(e.contains("password_file") && e.contains("missing"), "{e}");
        cfg.security.sasl.as_mut().unwrap().password_file = None;
        cfg.security.sasl.as_mut().unwrap().password_env = Some("STREETSCOPE_TEST_UNSET_VAR".into());
        let e = client_config(&cfg, Role::Consumer).unwrap_err().to_string();
        assert!(e.contains("STREETSCOPE_TEST_UNSET_VAR") && !e.contains("s3cr3t"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn producers_are_idempotent_and_key_partitioned_like_java() {
        let cfg = KafkaConfig::with_brokers("127.0.0.1:9092");
        let c = client_config(&cfg, Role::FrameProducer).unwrap();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("partitioner"), Some("murmur2_random"));
        assert_eq!(c.get("compression.type"), Some("none"));
        let c = client_config(&cfg, Role::RecordProducer).unwrap();
        assert_eq!(c.get("compression.type"), Some("lz4"));
    }
}

// ---------------------------------------------------------------------------
// Frames through Kafka, behind the same contract as the in-process channel

/// Frames produced and lost by a [`FramePublisher`], shared with whoever reports them.
#[derive(Debug, Default)]
pub struct FrameStats {
    /// Frames the broker has (durable).
    pub produced: std::sync::atomic::AtomicU64,
    /// Frames lost: refused by the producer, or not durable in the end.
    pub failed: std::sync::atomic::AtomicU64,
}

/// Publishes frames to the frames topic — versioned envelope, key = camera id,
/// a new W3C trace per frame — behind the [`crate::Publish`] contract of the
/// in-process channel, so an ingest pod and `streetscope run` feed their
/// cameras' queues into either with the same code. A frame the producer
/// refuses or cannot make durable is logged and counted in [`FrameStats`], and
/// the camera goes on: the aggregator sees the gap.
#[derive(Clone)]
pub struct FramePublisher {
    producer: Producer,
    topic: Arc<str>,
    random: fn() -> [u8; 24],
    stats: Arc<FrameStats>,
}

impl fmt::Debug for FramePublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramePublisher").field("topic", &self.topic).finish()
    }
}

impl FramePublisher {
    /// Frames to `topic`; `random` gives the 24 random bytes of each new trace.
    pub fn new(producer: Producer, topic: &str, random: fn() -> [u8; 24]) -> Self {
        Self { producer, topic: topic.into(), random, stats: Arc::default() }
    }

    /// What was produced and lost so far.
    pub fn stats(&self) -> Arc<FrameStats> {
        self.stats.clone()
    }
}

impl crate::Publish<streetscope_contracts::Frame> for FramePublisher {
    async fn publish(
        &self,
        frame: streetscope_contracts::Frame,
    ) -> std::result::Result<crate::Published, crate::TransportError> {
        use std::sync::atomic::Ordering::Relaxed;
        use streetscope_contracts::trace::{TraceContext, TRACEPARENT};
        let trace = TraceContext::root((self.random)()).to_string();
        let bytes = frame.to_envelope();
        let (camera, seq) = (frame.camera_id.clone(), frame.seq);
        match self.producer.send(&self.topic, &camera, Some(&bytes), &[(TRACEPARENT, trace.as_bytes())]).await {
            Ok(p) => {
                // The ingest span: from the frame's capture to the producer's queue.
                let captured = std::time::UNIX_EPOCH + Duration::from_millis(frame.capture_time_ms.max(0) as u64);
                streetscope_telemetry::spans::record("ingest", &trace, None, captured, &camera, seq);
                let stats = self.stats.clone();
                tokio::spawn(async move {
                    match p.durable().await {
                        Ok(_) => stats.produced.fetch_add(1, Relaxed),
                        Err(e) => {
                            tracing::warn!(%camera, seq, "frame lost: {e}");
                            stats.failed.fetch_add(1, Relaxed)
                        }
                    };
                });
            }
            Err(e) => {
                tracing::warn!(%camera, seq, "frame lost: {e}");
                self.stats.failed.fetch_add(1, Relaxed);
            }
        }
        Ok(crate::Published::Queued)
    }
}

// ---------------------------------------------------------------------------
// Following tables

/// One message of a followed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRecord {
    pub topic: String,
    pub key: String,
    /// None: a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Follows compacted topics (the registry's tables) from their beginning, for
/// as long as it lives: every message as it comes, with one long-lived consumer
/// outside any group. [`TableFollower::caught_up`] says when everything that
/// was in the topics at the start has been read, so a stage can wait for the
/// whole table before it works, then apply changes live.
pub struct TableFollower {
    inner: StreamConsumer,
    /// Per (topic, partition): the end offset at the start, until reached.
    ends: Mutex<HashMap<(String, i32), i64>>,
}

impl fmt::Debug for TableFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableFollower").finish()
    }
}

impl TableFollower {
    /// Follows every partition of `topics`. Blocking (reads metadata).
    pub fn new(cfg: &KafkaConfig, topics: &[&str]) -> Result<Self> {
        Self::open(cfg, topics, None)
    }

    /// Follows every partition of `topics` from the first message stamped at
    /// or after `since_ms` (ms since the Unix epoch; Kafka's offsets-for-times):
    /// for a topic whose history is not needed, only its recent messages (the
    /// dashboard's camera snapshots). Blocking (reads metadata).
    pub fn since(cfg: &KafkaConfig, topics: &[&str], since_ms: i64) -> Result<Self> {
        Self::open(cfg, topics, Some(since_ms))
    }

    fn open(cfg: &KafkaConfig, topics: &[&str], since_ms: Option<i64>) -> Result<Self> {
        let inner: StreamConsumer = client_config(cfg, Role::Admin)?
            .set("group.id", format!("{}-table-follower", cfg.client_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(|source| KafkaTransportError::Client { role: "table follower", source })?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for &topic in topics {
            for p in partition_ids(&inner, topic)? {
                let (low, high) = inner.fetch_watermarks(topic, p, Duration::from_secs(10)).map_err(|source| {
                    KafkaTransportError::Broker { what: format!("watermarks of {topic}[{p}]"), source }
                })?;
                let start = match since_ms {
                    None => Offset::Beginning,
                    Some(ms) => {
                        let mut times = TopicPartitionList::new();
                        times
                            .add_partition_offset(topic, p, Offset::Offset(ms))
                            .map_err(|source| KafkaTransportError::Broker { what: format!("{topic}[{p}]"), source })?;
                        let found = inner.offsets_for_times(times, Duration::from_secs(10)).map_err(|source| {
                            KafkaTransportError::Broker { what: format!("offsets for times of {topic}[{p}]"), source }
                        })?;
                        // Nothing stamped that late: from the end.
                        match found.elements().first().map(|e| e.offset()) {
                            Some(Offset::Offset(o)) => Offset::Offset(o),
                            _ => Offset::Offset(high),
                        }
                    }
                };
                let first = match start {
                    Offset::Offset(o) => o.max(low),
                    _ => low,
                };
                if high > first {
                    ends.insert((topic.to_owned(), p), high);
                }
                tpl.add_partition_offset(topic, p, start)
                    .map_err(|source| KafkaTransportError::Broker { what: format!("assign {topic}[{p}]"), source })?;
            }
        }
        inner
            .assign(&tpl)
            .map_err(|source| KafkaTransportError::Broker { what: format!("assign {topics:?}"), source })?;
        Ok(Self { inner, ends: Mutex::new(ends) })
    }

    /// Whether every message that was in the topics at the start has been read.
    pub fn caught_up(&self) -> bool {
        self.ends.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// The next message; waits for one. Transient errors are logged and retried.
    pub async fn next(&self) -> TableRecord {
        loop {
            match self.inner.recv().await {
                Ok(m) => {
                    let topic = m.topic().to_owned();
                    {
                        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
                        let at = (topic.clone(), m.partition());
                        if ends.get(&at).is_some_and(|&end| m.offset() + 1 >= end) {
                            ends.remove(&at);
                        }
                    }
                    let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                    return TableRecord { topic, key, value: m.payload().map(<[u8]>::to_vec) };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "following the registry's tables; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
