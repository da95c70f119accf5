//! A stage connected to Kafka through the relay, against the real test broker
//! on 127.0.0.1: outputs in order with markers in their place, poison to the
//! dead-letter topic, offsets committed only for inputs whose outputs are
//! durable — so a new member of the group resumes at the first input that
//! never came out, and nothing before it is read again; an input the stage
//! says it dropped is settled in its place.

use std::time::Duration;

use streetscope_contracts::kafka::KafkaConfig;
use streetscope_testbroker::TestBroker;
use streetscope_transport::kafka::{
    dlq_headers, ensure_topics, payload, read_log, DeadLetters, GroupConsumer, OwnedMessage, Producer, Role,
};
use streetscope_transport::relay::{relay, Codec, Decoded, Encoded, RelayControl, RelayInput, RelayOutput};
use streetscope_transport::{Publish, Subscribe};

const IN: &str = "streetscope.events";
const OUT: &str = "streetscope.counts";

fn config(b: &TestBroker) -> KafkaConfig {
    let mut k = KafkaConfig::with_brokers(&b.brokers());
    k.session_timeout_ms = 6000;
    k
}

/// `item:N` is an input known by N, `marker:X` a marker, anything else poison.
struct Numbers;

impl Codec for Numbers {
    type In = u64;
    type Out = u64;
    type Key = u64;
    type Marker = String;

    fn decode(&self, m: &OwnedMessage) -> Decoded<u64, u64, String> {
        let text = String::from_utf8_lossy(payload(m)).into_owned();
        if let Some(n) = text.strip_prefix("item:").and_then(|n| n.parse().ok()) {
            return Decoded::Item { item: n, key: n, tag: format!("trace-{n}") };
        }
        match text.strip_prefix("marker:") {
            Some(x) => Decoded::Marker(x.to_owned()),
            None => Decoded::Poison { label: "test_poison", reason: format!("not a number: {text:?}") },
        }
    }

    fn key_of(&self, out: &u64) -> u64 {
        *out
    }

    fn encode(&self, out: &u64, tag: &str) -> Result<Encoded, String> {
        Ok(Encoded { key: "x-1".into(), value: format!("out:{out}").into_bytes(), headers: vec![("tag", tag.into())] })
    }

    fn encode_marker(&self, marker: &String) -> Result<Encoded, String> {
        Ok(Encoded { key: "x-1".into(), value: format!("marker:{marker}").into_bytes(), headers: Vec::new() })
    }
}

async fn produce(p: &Producer, values: &[&str]) {
    for v in values {
        p.send_durable(IN, "x-1", Some(v.as_bytes()), &[]).await.unwrap();
    }
}

fn start(k: &KafkaConfig, group: &str) -> (RelayInput<Numbers>, RelayOutput<Numbers>, RelayControl<Numbers>) {
    let consumer = std::sync::Arc::new(GroupConsumer::new(k, group, &[IN]).unwrap());
    let producer = Producer::new(k, Role::RecordProducer).unwrap();
    let dlq = DeadLetters::new(producer.clone(), &k.topics.dlq.name, "test");
    relay(consumer, producer, dlq, OUT, Numbers, |_| {})
}

/// The first input a new member of `group` is given.
async fn first_input(k: &KafkaConfig, group: &str) -> Option<u64> {
    let (mut input, _output, control) = start(k, group);
    let first = tokio::time::timeout(Duration::from_secs(40), input.next()).await.ok().flatten();
    control.stop();
    drop((input, _output));
    control.finish(Duration::from_secs(10)).await.unwrap();
    first
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn outputs_keep_input_order_markers_their_place_and_poison_goes_to_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path());
    let k = config(&b);
    rt().block_on(async {
        ensure_topics(&k).await.unwrap();
        let p = Producer::new(&k, Role::RecordProducer).unwrap();
        produce(
            &p,
            &[
                "item:0",
                "item:1",
                "item:2",
                "item:3",
                "item:4",
                "marker:a",
                "item:5",
                "item:6",
                "{poison",
                "item:7",
                "item:8",
                "item:9",
                "item:10",
                "marker:end",
            ],
        )
        .await;
        // A stage that sheds odd inputs (no output), as a detector sheds or
        // fails frames, and keeps order.
        let (mut input, output, control) = start(&k, "g-relay");
        let mut taken = Vec::new();
        while let Some(n) = tokio::time::timeout(Duration::from_secs(40), input.next()).await.expect("inputs") {
            taken.push(n);
            if n % 2 == 0 {
                output.publish(n).await.unwrap();
            }
            if n == 10 {
                break;
            }
        }
        assert_eq!(taken, (0..=10).collect::<Vec<_>>(), "the stage sees items only");
        // The stage asks for more: the relay reads the last marker, which
        // waits for no output and is released by the sweep.
        assert!(tokio::time::timeout(Duration::from_secs(3), input.next()).await.is_err(), "no input after 10");
        control.stop();
        drop((input, output));
        control.finish(Duration::from_secs(10)).await.unwrap();

        let out: Vec<String> = read_log(&k, OUT, None)
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
            .collect();
        assert_eq!(
            out,
            ["out:0", "out:2", "out:4", "marker:a", "out:6", "out:8", "out:10", "marker:end"],
            "outputs in input order, each marker after the outputs of the inputs before it"
        );
        let tags: Vec<String> = read_log(&k, OUT, None)
            .unwrap()
            .into_iter()
            .filter_map(|r| r.header("tag"))
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(tags, ["trace-0", "trace-2", "trace-4", "trace-6", "trace-8", "trace-10"]);
        let dead = read_log(&k, &k.topics.dlq.name, None).unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].value.as_deref(), Some(&b"{poison"[..]));
        assert!(dead[0].header(dlq_headers::REASON).unwrap().contains("not a number"), "{dead:?}");

        // Everything was settled (shed inputs, the poison and the markers
        // too): a new member starts after it.
        produce(&p, &["item:11"]).await;
        assert_eq!(first_input(&k, "g-relay").await, Some(11));
    });
}

#[test]
fn an_input_taken_but_never_output_is_read_again_by_the_next_member() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path());
    let k = config(&b);
    rt().block_on(async {
        ensure_topics(&k).await.unwrap();
        let p = Producer::new(&k, Role::RecordProducer).unwrap();
        produce(&p, &["item:0", "item:1", "item:2", "item:3", "item:4"]).await;
        // The stage outputs 0 and 1, then holds 2 and 3 when it is stopped
        // (a pod killed with frames inside the stage).
        let (mut input, output, control) = start(&k, "g-replay");
        for want in 0..4 {
            let n = tokio::time::timeout(Duration::from_secs(40), input.next()).await.unwrap().unwrap();
            assert_eq!(n, want);
            if n < 2 {
                output.publish(n).await.unwrap();
            }
        }
        assert_eq!(control.in_flight(), 2, "2 and 3 are inside the stage");
        control.stop();
        assert_eq!(input.next().await, None, "a stopped relay takes no more input");
        drop((input, output));
        control.finish(Duration::from_secs(10)).await.unwrap();
        // Committed: 0 and 1, whose outputs are durable; not 2 and 3.
        assert_eq!(first_input(&k, "g-replay").await, Some(2), "the next member resumes at the first input not out");
        let out: Vec<Option<Vec<u8>>> = read_log(&k, OUT, None).unwrap().into_iter().map(|r| r.value).collect();
        assert_eq!(out, [Some(b"out:0".to_vec()), Some(b"out:1".to_vec())]);
    });
}

#[test]
fn a_dropped_last_input_releases_the_end_of_stream_marker_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path());
    let k = config(&b);
    rt().block_on(async {
        ensure_topics(&k).await.unwrap();
        let p = Producer::new(&k, Role::RecordProducer).unwrap();
        // A recording whose last frame fails in the stage.
        produce(&p, &["item:0", "item:1", "marker:end"]).await;
        let (mut input, output, control) = start(&k, "g-dropped");
        let zero = tokio::time::timeout(Duration::from_secs(40), input.next()).await.unwrap();
        assert_eq!(zero, Some(0));
        output.publish(0).await.unwrap();
        assert_eq!(input.next().await, Some(1));
        // The stage says 1 produced nothing; it then waits for more input
        // (and the relay reads the marker meanwhile).
        output.nothing_for(1).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(2), input.next()).await.is_err(), "no input after 1");
        // The marker went on while the stage runs, not only at its stop.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let out = loop {
            let out: Vec<String> = read_log(&k, OUT, None)
                .unwrap()
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
                .collect();
            if out.len() >= 2 || std::time::Instant::now() > deadline {
                break out;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(out, ["out:0", "marker:end"]);
        assert_eq!(control.in_flight(), 0, "nothing left in flight");
        control.stop();
        drop((input, output));
        control.finish(Duration::from_secs(10)).await.unwrap();
        // 1 and the marker were committed: a new member starts after them.
        produce(&p, &["item:2"]).await;
        assert_eq!(first_input(&k, "g-dropped").await, Some(2));
    });
}
