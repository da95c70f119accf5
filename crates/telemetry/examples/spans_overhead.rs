//! What a frame's spans cost the stages, with tracing off and on: the calls
//! every frame makes (ingest's `record`, detect's `begin`, `inference`, `end`,
//! the aggregator's `record`), timed in a loop.
//!
//! ```text
//! cargo run --release -p streetscope-telemetry --features otlp --example spans_overhead -- off
//! cargo run --release -p streetscope-telemetry --features otlp --example spans_overhead -- on [RATIO]
//! ```
//! `on` exports over OTLP/HTTP to a sink this program serves on 127.0.0.1
//! (it answers 200 to every request), so the SDK's batch thread really
//! encodes and sends what it keeps. `grpc [RATIO]` does the same over
//! OTLP/gRPC, to a `TraceService` served by tonic on 127.0.0.1 (plaintext
//! HTTP/2), and `grpc-tls [RATIO]` over TLS (a CA and server certificate made
//! with openssl for the run; the exporter trusts the CA through
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use streetscope_telemetry::spans;

/// An OTLP/HTTP endpoint that accepts everything; counts requests and bytes.
fn sink() -> (String, Arc<(AtomicU64, AtomicU64)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<(AtomicU64, AtomicU64)> = Arc::default();
    let counts = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counts = counts.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    counts.0.fetch_add(1, Ordering::Relaxed);
                    counts.1.fetch_add(len as u64, Ordering::Relaxed);
                    let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if w.write_all(ok.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// An OTLP/gRPC `TraceService` that accepts everything, on a runtime of its
/// own; counts requests and spans. With `tls`, a certificate for 127.0.0.1
/// from a CA made in `dir` (returned as the CA's path).
fn grpc_sink(tls: Option<&std::path::Path>) -> (String, Arc<(AtomicU64, AtomicU64)>, tokio::runtime::Runtime) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    struct Sink(Arc<(AtomicU64, AtomicU64)>);
    #[tonic::async_trait]
    impl TraceService for Sink {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let spans: usize =
                req.get_ref().resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
            self.0 .0.fetch_add(1, Ordering::Relaxed);
            self.0 .1.fetch_add(spans as u64, Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<(AtomicU64, AtomicU64)> = Arc::default();
    let mut server = tonic::transport::Server::builder();
    if let Some(dir) = tls {
        streetscope_hostile::abuse::certificates(dir);
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        let id = tonic::transport::Identity::from_pem(read("server.pem"), read("server.key"));
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(id)).unwrap();
    }
    let serve = server
        .add_service(TraceServiceServer::new(Sink(seen.clone())))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    rt.spawn(serve);
    let scheme = if tls.is_some() { "https" } else { "http" };
    (format!("{scheme}://{addr}"), seen, rt)
}

/// User and system CPU time of the whole process so far (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the name), in ticks of 1/100 s.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// One frame through the three stages' span calls (`at`: the start times,
/// taken once per batch so that only the calls are timed).
fn frame(i: u64, ids: &[(String, String, String)], at: SystemTime) {
    let (ingest, detect, aggregate) = &ids[(i as usize) % ids.len()];
    let seq = i;
    spans::record("ingest", ingest, None, at, "cam-1", seq);
    spans::begin("detect", "cam-1", seq, detect, Some(ingest.as_bytes()));
    spans::inference([("cam-1", seq)], "cpu", Duration::from_millis(1));
    spans::end("detect", "cam-1", seq);
    spans::record("aggregate", aggregate, Some(detect.as_bytes()), at, "cam-1", seq);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "off".into());
    let ratio = args.next().unwrap_or_else(|| "1".into());
    let mut sink_counts = None;
    let mut grpc_rt = None;
    let certs = tempfile::tempdir().unwrap();
    let on = mode != "off";
    let _guard = if on {
        let endpoint = match mode.as_str() {
            "on" => {
                let (endpoint, counts) = sink();
                sink_counts = Some(counts);
                endpoint
            }
            "grpc" | "grpc-tls" => {
                let tls = (mode == "grpc-tls").then(|| certs.path());
                let (endpoint, counts, rt) = grpc_sink(tls);
                (sink_counts, grpc_rt) = (Some(counts), Some(rt));
                std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
                if tls.is_some() {
                    std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", certs.path().join("ca.pem"));
                }
                endpoint
            }
            other => panic!("mode {other:?}: off, on, grpc or grpc-tls"),
        };
        // The variables a deployment sets (see docs/metrics.md).
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        std::env::set_var("OTEL_TRACES_SAMPLER", "traceidratio");
        std::env::set_var("OTEL_TRACES_SAMPLER_ARG", &ratio);
        let g = spans::init_from_env("spans-overhead");
        assert!(spans::enabled(), "tracing did not turn on");
        Some(g)
    } else {
        None
    };
    // Distinct traces, parent → child; the trace ids' low half (which the
    // ratio sampler reads) spread as ingest's random ids are.
    let hex = |n: u64, w: usize| format!("{n:0w$x}");
    let ids: Vec<(String, String, String)> = (1..=4096u64)
        .map(|i| {
            let t = hex(i, 16) + &hex(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), 16);
            let s = |k: u64| hex(i * 8 + k, 16);
            (format!("00-{t}-{}-01", s(1)), format!("00-{t}-{}-01", s(2)), format!("00-{t}-{}-01", s(3)))
        })
        .collect();
    // Frames at a pace the exporter can follow (a pipeline makes tens to
    // hundreds per second, not millions): bursts of 200 frames (1,000 spans,
    // under the SDK's queue of 2,048), then a pause.
    let (batches, per_batch) = if on { (200u64, 200u64) } else { (1000, 1000) };
    let cpu_before = cpu_seconds();
    let mut busy = Duration::ZERO;
    for b in 0..batches {
        let at = SystemTime::now();
        let start = Instant::now();
        for i in 0..per_batch {
            frame(b * per_batch + i, &ids, at);
        }
        busy += start.elapsed();
        if on {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let frames = batches * per_batch;
    drop(_guard); // flushes: the exporter's work is in the process's CPU time below
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "tracing {mode}{}: {:.0} ns per frame (5 span calls) over {frames} frames",
        if on { format!(" (ratio {ratio})") } else { String::new() },
        busy.as_nanos() as f64 / frames as f64
    );
    println!("process CPU (all threads, export included): {:.0} ns per frame", cpu * 1e9 / frames as f64);
    match (sink_counts, grpc_rt) {
        (Some(c), None) => println!(
            "exported: {} requests, {:.1} MB",
            c.0.load(Ordering::Relaxed),
            c.1.load(Ordering::Relaxed) as f64 / 1e6
        ),
        // The sink's runtime is this process's too: its CPU is in the figure above.
        (Some(c), Some(_rt)) => {
            println!("exported: {} requests, {} spans", c.0.load(Ordering::Relaxed), c.1.load(Ordering::Relaxed))
        }
        _ => {}
    }
}
