//! OTLP over gRPC with TLS (`https://` endpoint, `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`):
//! a frame's spans reach the collector's `TraceService/Export`, served here by
//! tonic on 127.0.0.1 over TLS only, with a CA of the test's own given by
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` and the client certificate the collector
//! demands (mutual TLS) by `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
//! `OTEL_EXPORTER_OTLP_CLIENT_KEY`. A file of its own: tracing is set up once
//! per process, from the environment.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use streetscope_contracts::trace::TraceContext;
use streetscope_telemetry::spans;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// One span as received: (name, trace id, span id, parent span id).
type Received = (String, Vec<u8>, Vec<u8>, Vec<u8>);

#[derive(Debug, Default, Clone)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        // Mutual TLS: the client showed a certificate of the test's CA.
        if req.peer_certs().is_none_or(|c| c.is_empty()) {
            return Err(tonic::Status::unauthenticated("no client certificate"));
        }
        let mut out = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                out.push((s.name, s.trace_id, s.span_id, s.parent_span_id));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[test]
fn a_frames_spans_reach_a_tls_grpc_collector_linked() {
    let dir = tempfile::tempdir().unwrap();
    streetscope_hostile::abuse::certificates(dir.path());
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read("server.pem"), read("server.key")))
        .client_ca_root(Certificate::from_pem(read("ca.pem")));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    rt.spawn(server);

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

    let ingest = TraceContext::root([9; 24]);
    let detect = ingest.child([4; 8]);
    let aggregate = detect.child([5; 8]);
    let (ingest_h, detect_h) = (ingest.to_string(), detect.to_string());
    spans::record("ingest", &ingest_h, None, SystemTime::now(), "cam-1", 7);
    spans::begin("detect", "cam-1", 7, &detect_h, Some(ingest_h.as_bytes()));
    spans::inference([("cam-1", 7)], "cpu", Duration::from_millis(3));
    spans::end("detect", "cam-1", 7);
    spans::record("aggregate", &aggregate.to_string(), Some(detect_h.as_bytes()), SystemTime::now(), "cam-1", 7);

    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(20);
    while collector.0.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "spans received over TLS: {:#?}", collector.0.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = sent.elapsed();
    drop(guard);
    let got = collector.0.lock().unwrap().clone();
    let span =
        |name: &str| got.iter().find(|s| s.0 == name).unwrap_or_else(|| panic!("no {name} span: {got:#?}")).clone();
    let (i, d, f, a) = (span("ingest"), span("detect"), span("inference"), span("aggregate"));
    for s in [&i, &d, &f, &a] {
        assert_eq!(s.1, ingest.trace_id.to_vec(), "one trace: {s:?}");
    }
    assert_eq!((i.2.as_slice(), i.3.as_slice()), (&ingest.span_id[..], &[][..]));
    assert_eq!((d.2.as_slice(), d.3.as_slice()), (&detect.span_id[..], &ingest.span_id[..]));
    assert_eq!(f.3, detect.span_id.to_vec(), "inference is the detect span's child");
    assert_eq!((a.2.as_slice(), a.3.as_slice()), (&aggregate.span_id[..], &detect.span_id[..]));
    eprintln!(
        "4 spans of one frame received over OTLP/gRPC with mutual TLS on {addr}, {took:?} after the last was recorded"
    );
}
