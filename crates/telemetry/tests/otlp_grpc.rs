//! OTLP over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`): a frame's spans, as
//! the stages record them, reach the collector's `TraceService/Export`
//! served here by tonic on 127.0.0.1, whole and linked. (The HTTP transport
//! is tested end to end by the distributed run in
//! `crates/cli/tests/observability`.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use streetscope_contracts::trace::TraceContext;
use streetscope_telemetry::spans;

/// One span as received: (service, name, trace id, span id, parent span id, attributes).
type Received = (String, String, Vec<u8>, Vec<u8>, Vec<u8>, Vec<(String, String)>);

#[derive(Debug, Default, Clone)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
            .as_ref()
            .and_then(|v| v.value.as_ref())
        {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        };
        let mut out = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                let attrs = s.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect();
                out.push((service.clone(), s.name, s.trace_id, s.span_id, s.parent_span_id, attrs));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[test]
fn a_frames_spans_reach_a_grpc_collector_linked() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    rt.spawn(server);

    // The standard variables, as an operator sets them (this test is its binary's only one).
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let guard = spans::init_from_env("streetscope-grpc-test");
    assert!(spans::enabled(), "tracing on with protocol grpc");

    // One frame through the stages, as they call these functions.
    let ingest = TraceContext::root([7; 24]);
    let detect = ingest.child([2; 8]);
    let aggregate = detect.child([3; 8]);
    let (ingest_h, detect_h) = (ingest.to_string(), detect.to_string());
    spans::record("ingest", &ingest_h, None, SystemTime::now(), "cam-1", 42);
    spans::begin("detect", "cam-1", 42, &detect_h, Some(ingest_h.as_bytes()));
    spans::inference([("cam-1", 42)], "cpu", Duration::from_millis(3));
    spans::end("detect", "cam-1", 42);
    spans::record("aggregate", &aggregate.to_string(), Some(detect_h.as_bytes()), SystemTime::now(), "cam-1", 42);

    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(20);
    while collector.0.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "spans received: {:#?}", collector.0.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = sent.elapsed();
    drop(guard);
    let got = collector.0.lock().unwrap().clone();
    let span =
        |name: &str| got.iter().find(|s| s.1 == name).unwrap_or_else(|| panic!("no {name} span: {got:#?}")).clone();
    let (i, d, f, a) = (span("ingest"), span("detect"), span("inference"), span("aggregate"));
    for s in [&i, &d, &f, &a] {
        assert_eq!(s.0, "streetscope-grpc-test", "{s:?}");
        assert_eq!(s.2, ingest.trace_id.to_vec(), "one trace: {s:?}");
        assert!(s.5.contains(&("streetscope.camera".into(), "cam-1".into())), "{s:?}");
        assert!(s.5.contains(&("streetscope.seq".into(), "42".into())), "{s:?}");
    }
    assert_eq!((i.3.as_slice(), i.4.as_slice()), (&ingest.span_id[..], &[][..]), "ingest starts the trace");
    assert_eq!((d.3.as_slice(), d.4.as_slice()), (&detect.span_id[..], &ingest.span_id[..]));
    assert_eq!(f.4, detect.span_id.to_vec(), "inference is the detect span's child");
    assert_eq!((a.3.as_slice(), a.4.as_slice()), (&aggregate.span_id[..], &detect.span_id[..]));
    eprintln!("4 spans of one frame received over OTLP/gRPC on {addr}, {took:?} after the last was recorded");
}
