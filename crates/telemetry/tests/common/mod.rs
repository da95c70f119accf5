//! What the OTLP/gRPC tests share: a collector (the `TraceService/Export` of
//! an OpenTelemetry collector, served by tonic on 127.0.0.1, plaintext or
//! TLS) that keeps the spans it receives, one frame's spans recorded as the
//! stages record them, and the check that they arrived whole and linked.
//! Each test stays a binary of its own (`mod common;`): tracing is set up once
//! per process, from the process's environment.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use streetscope_contracts::trace::TraceContext;
use streetscope_telemetry::spans;
use tonic::transport::ServerTlsConfig;

/// One span as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `service.name` of its resource.
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// Empty for a root span.
    pub parent: Vec<u8>,
    pub attributes: Vec<(String, String)>,
}

/// The receiving end; clones share what it received.
#[derive(Debug, Default, Clone)]
pub struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
    /// Refuse exports whose client showed no certificate (mutual TLS).
    client_certificate: bool,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        // Mutual TLS: the client showed a certificate of the test's CA.
        if self.client_certificate && req.peer_certs().is_none_or(|c| c.is_empty()) {
            return Err(tonic::Status::unauthenticated("no client certificate"));
        }
        let text = |v: &Option<AnyValue>| match v.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        };
        let mut out = self.spans.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                out.push(Received {
                    service: service.clone(),
                    attributes: s.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                    name: s.name,
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent: s.parent_span_id,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves a collector on 127.0.0.1 from `rt`: over TLS demanding a client
    /// certificate when `tls` is given, plaintext HTTP/2 otherwise.
    pub fn serve(rt: &tokio::runtime::Runtime, tls: Option<ServerTlsConfig>) -> (Self, SocketAddr) {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector { client_certificate: tls.is_some(), ..Default::default() };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let server = builder
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        rt.spawn(server);
        (collector, addr)
    }

    /// Waits (20 s at most) until `n` spans have come; how long that took.
    pub fn wait_for(&self, n: usize, how: &str) -> Duration {
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs(20);
        while self.spans.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "spans received{how}: {:#?}", self.spans.lock().unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
        sent.elapsed()
    }

    /// What came so far.
    pub fn received(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

/// One frame of camera `cam-1` through the stages: ingest starts its trace,
/// detect is ingest's child (with an inference span under it), aggregate is
/// detect's child.
pub struct Frame {
    pub ingest: TraceContext,
    pub detect: TraceContext,
    pub aggregate: TraceContext,
    pub seq: u64,
}

impl Frame {
    pub fn new(root: [u8; 24], detect: [u8; 8], aggregate: [u8; 8], seq: u64) -> Self {
        let ingest = TraceContext::root(root);
        let detect = ingest.child(detect);
        let aggregate = detect.child(aggregate);
        Self { ingest, detect, aggregate, seq }
    }

    /// Records the frame's four spans as the stages call these functions.
    pub fn record(&self) {
        let seq = self.seq;
        let (ingest_h, detect_h) = (self.ingest.to_string(), self.detect.to_string());
        spans::record("ingest", &ingest_h, None, SystemTime::now(), "cam-1", seq);
        spans::begin("detect", "cam-1", seq, &detect_h, Some(ingest_h.as_bytes()));
        spans::inference([("cam-1", seq)], "cpu", Duration::from_millis(3));
        spans::end("detect", "cam-1", seq);
        spans::record(
            "aggregate",
            &self.aggregate.to_string(),
            Some(detect_h.as_bytes()),
            SystemTime::now(),
            "cam-1",
            seq,
        );
    }

    /// The four spans in `got` are this frame's, of `service`, one trace,
    /// each linked to its parent.
    pub fn check(&self, got: &[Received], service: &str) {
        let span =
            |name: &str| got.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name} span: {got:#?}"));
        let (i, d, f, a) = (span("ingest"), span("detect"), span("inference"), span("aggregate"));
        let seq = self.seq.to_string();
        for s in [i, d, f, a] {
            assert_eq!(s.service, service, "{s:?}");
            assert_eq!(s.trace_id, self.ingest.trace_id.to_vec(), "one trace: {s:?}");
            assert!(s.attributes.contains(&("streetscope.camera".into(), "cam-1".into())), "{s:?}");
            assert!(s.attributes.contains(&("streetscope.seq".into(), seq.clone())), "{s:?}");
        }
        assert_eq!(
            (i.span_id.as_slice(), i.parent.as_slice()),
            (&self.ingest.span_id[..], &[][..]),
            "ingest starts the trace"
        );
        assert_eq!((d.span_id.as_slice(), d.parent.as_slice()), (&self.detect.span_id[..], &self.ingest.span_id[..]));
        assert_eq!(f.parent, self.detect.span_id.to_vec(), "inference is the detect span's child");
        assert_eq!(
            (a.span_id.as_slice(), a.parent.as_slice()),
            (&self.aggregate.span_id[..], &self.detect.span_id[..])
        );
    }
}
