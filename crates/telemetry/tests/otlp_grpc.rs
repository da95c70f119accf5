//! OTLP over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`): a frame's spans, as
//! the stages record them, reach the collector's `TraceService/Export`
//! served here by tonic on 127.0.0.1, whole and linked. (The HTTP transport
//! is tested end to end by the distributed run in
//! `crates/cli/tests/observability`.)

mod common;

use common::{Collector, Frame};
use streetscope_telemetry::spans;

#[test]
fn a_frames_spans_reach_a_grpc_collector_linked() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (collector, addr) = Collector::serve(&rt, None);

    // The standard variables, as an operator sets them (this test is its binary's only one).
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let guard = spans::init_from_env("streetscope-grpc-test");
    assert!(spans::enabled(), "tracing on with protocol grpc");

    let frame = Frame::new([7; 24], [2; 8], [3; 8], 42);
    frame.record();
    let took = collector.wait_for(4, "");
    drop(guard);
    frame.check(&collector.received(), "streetscope-grpc-test");
    eprintln!("4 spans of one frame received over OTLP/gRPC on {addr}, {took:?} after the last was recorded");
}
