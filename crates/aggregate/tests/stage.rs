//! The aggregate stage publishes every result record with `run`.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use common::*;
use streetscope_aggregate::stage::AggregateStage;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::TrackerConfig;
use streetscope_contracts::records::ResultRecord;
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};
use streetscope_telemetry::StageMeter;
use streetscope_transport::{channel, FullPolicy};

/// Polls to completion a future that never really waits (queues large enough).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[test]
fn run_publishes_crossings_turning_movements_and_windows() {
    let spec = IntersectionSpec { duration_s: 300.0, ..scenario::default_four_way() };
    let (cam, frames, _) = simulate(spec, NoiseSpec::none(), 5);
    let agg = || Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &approaches(&cam));

    let (in_tx, in_rx) = channel("detections", frames.len(), FullPolicy::Block);
    for f in &frames {
        in_tx.publish_blocking(f.clone()).unwrap();
    }
    in_tx.close();
    drop(in_tx);
    let (out_tx, mut out_rx) = channel("results", 100_000, FullPolicy::Block);
    let stage = AggregateStage::new(agg(), StageMeter::new("aggregate"));
    let done = block_on(stage.run(in_rx, out_tx)).unwrap();
    let mut records = Vec::new();
    while let Some(r) = out_rx.next_blocking() {
        records.push(r);
    }
    let n = |f: fn(&ResultRecord) -> bool| records.iter().filter(|r| f(r)).count() as u64;
    let crossings = n(|r| matches!(r, ResultRecord::Crossing(_)));
    let turns = n(|r| matches!(r, ResultRecord::TurningMovement(_)));
    let windows = n(|r| matches!(r, ResultRecord::Window(_)));
    assert_eq!(crossings, done.counts().iter().map(|c| c.count).sum::<u64>());
    assert_eq!(turns, done.turning_movements().iter().map(|c| c.count).sum::<u64>());
    assert!(turns > 50);
    // 5 minutes: 5 + 1 + 1 (the 15-minute window flushed, incomplete).
    assert_eq!(windows, 7);
}
