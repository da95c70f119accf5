//! OTLP over gRPC with TLS (`https://` endpoint, `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`):
//! a frame's spans reach the collector's `TraceService/Export`, served here by
//! tonic on 127.0.0.1 over TLS only, with a CA of the test's own given by
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` and the client certificate the collector
//! demands (mutual TLS) by `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
//! `OTEL_EXPORTER_OTLP_CLIENT_KEY`. A file of its own: tracing is set up once
//! per process, from the environment.

mod common;

use common::{Collector, Frame};
use streetscope_telemetry::spans;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

#[test]
fn a_frames_spans_reach_a_tls_grpc_collector_linked() {
    let dir = tempfile::tempdir().unwrap();
    streetscope_hostile::abuse::certificates(dir.path());
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read("server.pem"), read("server.key")))
        .client_ca_root(Certificate::from_pem(read("ca.pem")));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (collector, addr) = Collector::serve(&rt, Some(tls));

    // The standard variables, as an operator sets them. The server's
    // certificate (for 127.0.0.1, from the test CA) doubles as the client's.
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("https://{addr}"));
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", path("ca.pem"));
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", path("server.pem"));
    std::env::set_var("OTEL_EXPORTER_OTLP_CLIENT_KEY", path("server.key"));
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let guard = spans::init_from_env("streetscope-grpc-tls-test");
    assert!(spans::enabled(), "tracing on with protocol grpc over TLS");

    let frame = Frame::new([9; 24], [4; 8], [5; 8], 7);
    frame.record();
    let took = collector.wait_for(4, " over TLS");
    drop(guard);
    frame.check(&collector.received(), "streetscope-grpc-tls-test");
    eprintln!(
        "4 spans of one frame received over OTLP/gRPC with mutual TLS on {addr}, {took:?} after the last was recorded"
    );
}
