//! The Kafka transport against a real Kafka-protocol broker on 127.0.0.1
//! (tansu, started per test in its own folder; see `testbroker`): topics,
//! producing and consuming in groups with offsets committed only when marked
//! done, rebalancing, dead letters, tables, TLS and SASL/SCRAM.

use std::time::{Duration, Instant};

use streetscope_contracts::kafka::{KafkaConfig, SaslConfig, TlsConfig};
use streetscope_testbroker::TestBroker;
use streetscope_transport::kafka::KafkaTable;
use streetscope_transport::kafka::{
    dlq_headers, ensure_topics, header, payload, read_log, Assignment, DeadLetters, GroupConsumer, Incoming, Origin,
    Producer, Role, TopicChange,
};
use streetscope_transport::TableLog;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn config(b: &TestBroker) -> KafkaConfig {
    let mut k = KafkaConfig::with_brokers(&b.brokers());
    k.session_timeout_ms = 6000;
    for t in [
        &mut k.topics.cameras,
        &mut k.topics.intersections,
        &mut k.topics.frames,
        &mut k.topics.detections,
        &mut k.topics.events,
        &mut k.topics.counts,
        &mut k.topics.alerts,
        &mut k.topics.snapshots,
        &mut k.topics.camera_snapshots,
        &mut k.topics.dlq,
    ] {
        t.partitions = t.partitions.min(2);
    }
    k
}

/// The next message of `c` within `limit`, skipping rebalance events.
async fn next_message(c: &GroupConsumer, limit: Duration) -> Option<streetscope_transport::kafka::OwnedMessage> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Incoming::Message(m)) = tokio::time::timeout(deadline - Instant::now(), c.next()).await {
            return Some(m);
        }
    }
    None
}

#[test]
fn topics_are_created_once_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path());
    let k = config(&b);
    let rt = rt();
    let first = rt.block_on(ensure_topics(&k)).unwrap();
    assert_eq!(first.len(), 10, "every topic of the design: {first:?}");
    assert!(first.iter().all(|c| matches!(c, TopicChange::Created { .. })), "{first:?}");
    let second = rt.block_on(ensure_topics(&k)).unwrap();
    assert!(second.iter().all(|c| matches!(c, TopicChange::Unchanged { .. })), "{second:?}");
    // More partitions asked for: added, and reported.
    let mut more = k.clone();
    more.topics.frames.partitions = 3;
    let third = rt.block_on(ensure_topics(&more)).unwrap();
    assert!(
        third.iter().any(
            |c| matches!(c, TopicChange::PartitionsAdded { topic, from: 2, to: 3 } if topic == "streetscope.frames")
                || matches!(c, TopicChange::Failed { .. })
        ),
        "{third:?}"
    );
}

#[test]
fn offsets_are_committed_only_when_marked_done() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path());
    let k = config(&b);
    let rt = rt();
    rt.block_on(async {
        ensure_topics(&k).await.unwrap();
        let p = Producer::new(&k, Role::RecordProducer).unwrap();
        for i in 0..10 {
            let v = format!("m{i}");
            p.send_durable("streetscope.events", "x-1", Some(v.as_bytes()), &[("traceparent", b"t")]).await.unwrap();
        }
        let c = GroupConsumer::new(&k, "g-commit", &["streetscope.events"]).unwrap();
        let mut seen = Vec::new();
        for _ in 0..10 {
            let m = next_message(&c, Duration::from_secs(30)).await.expect("a message");
            assert_eq!(header(&m, "traceparent"), Some(&b"t"[..]));
            seen.push(String::from_utf8(payload(&m).to_vec()).unwrap());
            // Only the first four are done.
            if seen.len() <= 4 {
                let o = Origin::of(&m);
                c.mark_done(&o.topic, o.partition, o.offset);
            }
        }
        assert_eq!(seen, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
        c.close();
        // A new member of the group resumes after the last message marked done.
        let c = GroupConsumer::new(&k, "g-commit", &["streetscope.events"]).unwrap();
        let m = next_message(&c, Duration::from_secs(30)).await.expect("a message");
        assert_eq!(payload(&m), b"m4", "the first message not marked done is delivered again");
        c.close();
    });
}

#[test]
fn a_second_member_takes_partitions_from_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path());
    let k = config(&b);
    let rt = rt();
    rt.block_on(async {
        ensure_topics(&k).await.unwrap();
        let first = GroupConsumer::new(&k, "g-rebalance", &["streetscope.frames"]).unwrap();
        let mut first_parts = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while first_parts.len() < 2 && Instant::now() < deadline {
            if let Ok(Incoming::Rebalance(Assignment::Assigned(p))) =
                tokio::time::timeout(Duration::from_secs(1), first.next()).await
            {
                first_parts.extend(p);
            }
        }
        assert_eq!(first_parts.len(), 2, "the only member gets both partitions");
        let second = GroupConsumer::new(&k, "g-rebalance", &["streetscope.frames"]).unwrap();
        let (mut revoked, mut assigned) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(40);
        while (revoked.is_empty() || assigned.is_empty()) && Instant::now() < deadline {
            tokio::select! {
                e = first.next() => if let Incoming::Rebalance(Assignment::Revoked(p)) = e { revoked.extend(p) },
                e = second.next() => if let Incoming::Rebalance(Assignment::Assigned(p)) = e { assigned.extend(p) },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        assert_eq!(revoked.len(), 1, "cooperative rebalancing moves one partition: revoked {revoked:?}");
        assert_eq!(assigned, revoked, "the second member gets what the first gave up");
    });
}

#[test]
fn dead_letters_carry_the_reason_and_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path());
    let k = config(&b);
    let rt = rt();
    rt.block_on(async {
        ensure_topics(&k).await.unwrap();
        let p = Producer::new(&k, Role::RecordProducer).unwrap();
        p.send_durable("streetscope.frames", "cam-1", Some(b"garbage"), &[("traceparent", b"tp")]).await.unwrap();
        let c = GroupConsumer::new(&k, "g-dlq", &["streetscope.frames"]).unwrap();
        let m = next_message(&c, Duration::from_secs(30)).await.expect("the poison message");
        DeadLetters::new(p.clone(), "streetscope.dlq", "detect")
            .send(&m, "frame_envelope", "frame envelope: bad magic")
            .await
            .unwrap();
        c.close();
    });
    let dlq = read_log(&k, "streetscope.dlq", None).unwrap();
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(d.key, "cam-1");
    assert_eq!(d.value.as_deref(), Some(&b"garbage"[..]));
    assert_eq!(d.header(dlq_headers::REASON).as_deref(), Some("frame envelope: bad magic"));
    assert_eq!(d.header(dlq_headers::STAGE).as_deref(), Some("detect"));
    assert_eq!(d.header(dlq_headers::TOPIC).as_deref(), Some("streetscope.frames"));
    assert_eq!(d.header(dlq_headers::OFFSET).as_deref(), Some("0"));
    assert!(d.header(dlq_headers::PARTITION).is_some());
    assert_eq!(d.header("traceparent").as_deref(), Some("tp"), "the original headers travel along");
    // Counted by stage and the reason's label (not its text) on /metrics.
    let metrics = streetscope_telemetry::metrics::render(&[], &[]);
    let line = "streetscope_dead_letters_total{stage=\"detect\",reason=\"frame_envelope\"} 1";
    assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
}

#[test]
fn a_table_survives_a_broker_restart_and_tombstones_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = TestBroker::start(dir.path());
    let k = config(&b);
    let rt = rt();
    rt.block_on(async {
        ensure_topics(&k).await.unwrap();
        let t = KafkaTable::new(&k, "streetscope.cameras").unwrap();
        t.write("cam-a", Some(b"1".to_vec())).await.unwrap();
        t.write("cam-b", Some(b"2".to_vec())).await.unwrap();
        t.write("cam-a", Some(b"3".to_vec())).await.unwrap();
        t.write("cam-b", None).await.unwrap();
    });
    b.restart();
    let rows = rt.block_on(KafkaTable::new(&k, "streetscope.cameras").unwrap().read_all()).unwrap();
    assert_eq!(rows.into_iter().collect::<Vec<_>>(), vec![("cam-a".to_owned(), b"3".to_vec())]);
}

/// TLS settings of a client that trusts the test CA and presents its client
/// certificate (the key's password read from its file).
fn mutual_tls(b: &TestBroker) -> TlsConfig {
    let t = b.tls().unwrap();
    TlsConfig {
        ca_file: Some(t.ca.clone()),
        cert_file: Some(t.client_cert.clone()),
        key_file: Some(t.client_key.clone()),
        key_password_file: Some(t.client_key_password.clone()),
        ..TlsConfig::default()
    }
}

#[test]
fn mutual_tls_with_a_throwaway_ca_works_and_clients_without_the_ca_or_a_certificate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), true, false);
    let mut k = config(&b);
    k.security.tls = Some(mutual_tls(&b));
    let rt = rt();
    rt.block_on(async {
        ensure_topics(&k).await.unwrap();
        let t = KafkaTable::new(&k, "streetscope.cameras").unwrap();
        t.write("cam-tls", Some(b"over TLS".to_vec())).await.unwrap();
        assert_eq!(t.read_all().await.unwrap().get("cam-tls").map(Vec::as_slice), Some(&b"over TLS"[..]));
    });
    let refused = |tls: TlsConfig| {
        let mut c = k.clone();
        c.security.tls = Some(tls);
        c.extra.insert("socket.timeout.ms".into(), "4000".into());
        read_log(&c, "streetscope.cameras", None).map(|rows| rows.len())
    };
    // Trusting only the system's CAs, the broker's certificate is refused.
    assert!(refused(TlsConfig { ca_file: None, ..mutual_tls(&b) }).is_err(), "a client without the CA got in");
    // Without a client certificate, the broker refuses the client.
    let anonymous = TlsConfig { cert_file: None, key_file: None, key_password_file: None, ..mutual_tls(&b) };
    assert!(refused(anonymous).is_err(), "a client without a certificate got in");
    // A wrong key password is a clear configuration error that does not show the password.
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password").unwrap();
    let err = refused(TlsConfig { key_password_file: Some(wrong), ..mutual_tls(&b) }).unwrap_err().to_string();
    assert!(!err.contains("not-the-password") && !err.contains("client-key-pa55"), "{err}");
}

#[test]
fn sasl_scram_over_tls_authenticates_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = TestBroker::start_with(dir.path(), true, true);
    b.add_user("ingest", "pa55-w0rd-xyz", "SCRAM-SHA-256");
    let pw = dir.path().join("kafka-password");
    std::fs::write(&pw, "pa55-w0rd-xyz\n").unwrap();
    let mut k = config(&b);
    k.security.tls = Some(mutual_tls(&b));
    k.security.sasl = Some(SaslConfig {
        mechanism: "SCRAM-SHA-256".into(),
        username: "ingest".into(),
        password_file: Some(pw.clone()),
        password_env: None,
    });
    assert_eq!(k.protocol(), "sasl_ssl");
    let rt = rt();
    rt.block_on(async {
        ensure_topics(&k).await.unwrap();
        let t = KafkaTable::new(&k, "streetscope.cameras").unwrap();
        t.write("cam-sasl", Some(b"authenticated".to_vec())).await.unwrap();
        assert!(t.read_all().await.unwrap().contains_key("cam-sasl"));
    });
    // A wrong password is refused, and no error or debug output holds either password.
    std::fs::write(&pw, "wrong-secret-123\n").unwrap();
    k.extra.insert("socket.timeout.ms".into(), "4000".into());
    let err = read_log(&k, "streetscope.cameras", None).unwrap_err().to_string();
    assert!(!err.contains("wrong-secret-123") && !err.contains("pa55-w0rd-xyz"), "{err}");
    let debug = format!("{:?}", KafkaTable::new(&k, "streetscope.cameras").unwrap());
    assert!(!debug.contains("wrong-secret-123"), "{debug}");
}
