//! Frames through Kafka against bare rdkafka, in the same run (the two sides
//! of the `kafka` bench target).
//!
//! - **bare**: rdkafka's `FutureProducer` sends opaque payloads of the frames'
//!   size; a consumer assigned to every partition reads them back. No
//!   envelope, no headers, no group.
//! - **streetscope**: what the ingest and detect stages do — each frame encoded
//!   to its envelope, sent by [`Producer`] with a W3C `traceparent` header, read
//!   by a [`GroupConsumer`] member (group joined before the clock starts),
//!   decoded back to a frame, and marked done.
//!
//! Both use the same client settings ([`client_config`] with the frame
//! producer's tuning) and run produce and consume concurrently; the time runs
//! from the first send to the last message read.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use streetscope_contracts::kafka::KafkaConfig;
use streetscope_contracts::trace::{TraceContext, TRACEPARENT};
use streetscope_contracts::Frame;

use streetscope_transport::kafka::{
    client_config, payload, GroupConsumer, Incoming, KafkaTransportError, Producer, Role,
};

/// One timed round trip.
#[derive(Debug, Clone, Copy)]
pub struct RoundTrip {
    /// Messages produced and consumed.
    pub messages: usize,
    /// Payload bytes per message (mean).
    pub bytes_per_message: usize,
    /// Seconds from the first send to the last message read.
    pub seconds: f64,
}

impl RoundTrip {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
}

type Result<T> = std::result::Result<T, KafkaTransportError>;

fn broker_err(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> KafkaTransportError + '_ {
    move |source| KafkaTransportError::Broker { what: what.to_owned(), source }
}

/// Bare rdkafka: `n` payloads of `size` bytes to `topic` and back.
pub async fn bare(cfg: &KafkaConfig, topic: &str, size: usize, n: usize) -> Result<RoundTrip> {
    let producer: FutureProducer = client_config(cfg, Role::FrameProducer)?
        .create()
        .map_err(|source| KafkaTransportError::Client { role: "producer", source })?;
    let consumer = assigned_consumer(cfg, topic)?;
    let payload = vec![0xA5u8; size];
    let start = Instant::now();
    let read = tokio::task::spawn_blocking(move || {
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(300);
        while got < n && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                got += usize::from(m.payload().is_some());
            }
        }
        (got, Instant::now())
    });
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("bench-{}", i % 16);
        let mut record = FutureRecord::<str, [u8]>::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send_result(record) {
                Ok(d) => break deliveries.push(d),
                Err((_, r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }
    for d in deliveries {
        d.await
            .map_err(|_| KafkaTransportError::Timeout("bare delivery".into()))?
            .map_err(|(e, _)| broker_err("bare send")(e))?;
    }
    let (got, done) = read.await.map_err(|_| KafkaTransportError::Timeout("bare consumer".into()))?;
    if got < n {
        return Err(KafkaTransportError::Timeout(format!("bare: read {got} of {n} messages")));
    }
    Ok(RoundTrip { messages: n, bytes_per_message: size, seconds: (done - start).as_secs_f64() })
}

/// A consumer assigned to every partition of `topic` at its current end.
fn assigned_consumer(cfg: &KafkaConfig, topic: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = client_config(cfg, Role::Consumer)?
        .set("group.id", "streetscope-bench-bare")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|source| KafkaTransportError::Client { role: "consumer", source })?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(broker_err("metadata"))?;
    let parts: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        let (_, high) =
            consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).map_err(broker_err("watermarks"))?;
        tpl.add_partition_offset(topic, p, Offset::Offset(high)).map_err(broker_err("assign"))?;
    }
    consumer.assign(&tpl).map_err(broker_err("assign"))?;
    Ok(consumer)
}

/// Streetscope's path: `frames` (cycled to `n`) encoded, sent with trace
/// context, consumed in a group, decoded and marked done.
pub async fn streetscope(cfg: &KafkaConfig, topic: &str, frames: &[Frame], n: usize, group: &str) -> Result<RoundTrip> {
    let producer = Producer::new(cfg, Role::FrameProducer)?;
    let consumer = GroupConsumer::new(cfg, group, &[topic])?;
    // Join the group (and skip what is already there) before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout(Duration::from_millis(500), consumer.next()).await {
            Ok(Incoming::Rebalance(_)) => break,
            Ok(Incoming::Message(m)) => {
                let o = streetscope_transport::kafka::Origin::of(&m);
                consumer.mark_done(&o.topic, o.partition, o.offset);
            }
            Err(_) if Instant::now() > deadline => {
                return Err(KafkaTransportError::Timeout("joining the group".into()))
            }
            Err(_) => {}
        }
    }
    let bytes: usize = frames.iter().map(|f| f.to_envelope().len()).sum::<usize>() / frames.len().max(1);
    let start = Instant::now();
    let send = async {
        let mut pending = Vec::with_capacity(n);
        for i in 0..n {
            // The same 16 keys as the bare side (16 cameras), so both spread
            // over the same partitions.
            let mut f = frames[i % frames.len()].clone();
            f.camera_id = format!("bench-{}", i % 16).into();
            f.seq = (i / 16) as u64;
            let trace = TraceContext::root([(i % 251) as u8 + 1; 24]).to_string();
            let env = f.to_envelope();
            pending.push(producer.send(topic, &f.camera_id, Some(&env), &[(TRACEPARENT, trace.as_bytes())]).await?);
        }
        for p in pending {
            p.durable().await?;
        }
        Ok::<(), KafkaTransportError>(())
    };
    let receive = async {
        let mut got = 0;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(60), consumer.next()).await {
                Ok(Incoming::Message(m)) => {
                    let frame = Frame::from_envelope(payload(&m))
                        .map_err(|e| KafkaTransportError::Config(format!("bench frame did not decode: {e}")))?;
                    std::hint::black_box(frame);
                    let o = streetscope_transport::kafka::Origin::of(&m);
                    consumer.mark_done(&o.topic, o.partition, o.offset);
                    got += 1;
                }
                Ok(Incoming::Rebalance(_)) => {}
                Err(_) => return Err(KafkaTransportError::Timeout(format!("streetscope: read {got} of {n} messages"))),
            }
        }
        Ok(Instant::now())
    };
    let (sent, done) = tokio::join!(send, receive);
    sent?;
    let done = done?;
    consumer.close();
    Ok(RoundTrip { messages: n, bytes_per_message: bytes, seconds: (done - start).as_secs_f64() })
}
