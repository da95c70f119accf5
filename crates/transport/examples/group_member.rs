//! A consumer-group member that prints its assignments: for trying a broker's
//! group coordination by hand (kill -9 one, start another, watch).
//!
//! `cargo run --example group_member --features kafka -- BROKERS GROUP TOPIC`

use streetscope_contracts::kafka::KafkaConfig;
use streetscope_transport::kafka::{GroupConsumer, Incoming};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, group, topic] = &args[..] else {
        eprintln!("usage: group_member BROKERS GROUP TOPIC");
        std::process::exit(2);
    };
    streetscope_telemetry::init_logging("info");
    let mut cfg = KafkaConfig::with_brokers(brokers);
    if let Ok(d) = std::env::var("RDKAFKA_DEBUG") {
        cfg.extra.insert("debug".into(), d);
    }
    let c = GroupConsumer::new(&cfg, group, &[topic.as_str()]).expect("consumer");
    loop {
        match c.next().await {
            Incoming::Rebalance(a) => println!("{:?} {a:?}", std::time::SystemTime::now()),
            Incoming::Message(_) => {}
        }
    }
}
