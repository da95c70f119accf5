//! OpenTelemetry traces of frames: one span per frame per stage (`ingest`,
//! `detect` with an `inference` child, `aggregate`), exported over OTLP —
//! HTTP (protobuf) or gRPC — and configured by the standard `OTEL_*` variables.
//!
//! The spans reuse the W3C `traceparent` the Kafka headers already carry
//! (`streetscope_contracts::trace`): a stage's span has the id of the context
//! it sends on, and the context it received as its parent, so one trace runs
//! from a frame's capture to the count records it caused, across processes,
//! with no other change to what travels.
//!
//! Off unless an OTLP endpoint is configured ([`Settings::from_env`]); while
//! off every function here returns after one atomic load. Sampling is by trace
//! id (`traceidratio`), so every stage keeps or drops the same frames.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use streetscope_contracts::trace::TraceContext;

/// What the `OTEL_*` variables ask for, when they turn tracing on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Fraction of traces kept, 0..=1, decided by trace id.
    pub ratio: f64,
    /// How spans travel to the collector.
    pub protocol: Protocol,
    /// TLS of the gRPC channel: for an `https://` endpoint with protocol `grpc`
    /// (OTLP/HTTP takes its TLS from the endpoint's scheme by itself).
    pub grpc_tls: Option<GrpcTls>,
}

/// TLS of the OTLP/gRPC exporter (rustls): whom to trust, and who we are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrpcTls {
    /// PEM file of the CA certificate(s) the collector's certificate must chain
    /// to (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` or
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`); None: the Mozilla roots built in
    /// (webpki-roots; a closed network has its own CA: give it).
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key, PEM files, for a collector that asks for
    /// mutual TLS (`OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE` and
    /// `..._CLIENT_KEY`, both or neither).
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf` (the specification's default; port 4318, `/v1/traces`).
    HttpProtobuf,
    /// `grpc` (port 4317; the collector's `TraceService/Export`): plaintext
    /// HTTP/2 for `http://` endpoints, TLS (rustls, [`GrpcTls`]) for `https://`.
    Grpc,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "OTLP/HTTP",
            Self::Grpc => "OTLP/gRPC",
        }
    }
}

impl Settings {
    /// Reads the standard variables through `var`:
    /// - on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
    ///   is set, or `OTEL_TRACES_EXPORTER=otlp` (default endpoint
    ///   `http://localhost:4318`); off when `OTEL_SDK_DISABLED=true` or
    ///   `OTEL_TRACES_EXPORTER=none`, and by default;
    /// - `OTEL_TRACES_SAMPLER`: `always_on`, `always_off`, `traceidratio` with
    ///   `OTEL_TRACES_SAMPLER_ARG` (the ratio; 1 when absent), and their
    ///   `parentbased_` forms, which here mean the same (every frame's parent
    ///   context comes from Streetscope's own previous stage, which made the
    ///   same decision by trace id);
    /// - `OTEL_EXPORTER_OTLP_PROTOCOL` (or `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`):
    ///   `http/protobuf` (default) or `grpc`; with `grpc` an `https://`
    ///   endpoint is TLS, trusting the CA of `OTEL_EXPORTER_OTLP_CERTIFICATE`
    ///   (a PEM file; the Mozilla roots when unset), with the client
    ///   certificate of `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
    ///   `OTEL_EXPORTER_OTLP_CLIENT_KEY` when set (each also in its `TRACES_` form).
    ///
    /// The exporter reads the endpoint, headers and timeout itself; the batch
    /// processor `OTEL_BSP_*`; the resource `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES`. Err says what is wrong with a variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
        match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            Some("none") => return Ok(None),
            Some("otlp") => {}
            None | Some("") if endpoint.is_some() => {}
            None | Some("") => return Ok(None),
            Some(other) => {
                return Err(format!("OTEL_TRACES_EXPORTER={other:?}: only \"otlp\" and \"none\" are supported"))
            }
        }
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let protocol = match protocol.as_deref().map(str::trim) {
            None | Some("") | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(p) => {
                return Err(format!("OTEL_EXPORTER_OTLP_PROTOCOL={p:?}: \"http/protobuf\" and \"grpc\" are supported"))
            }
        };
        let mut grpc_tls = None;
        if protocol == Protocol::Grpc {
            match endpoint.as_deref().map(str::trim_start) {
                // The exporter's default, http://localhost:4317.
                None => {}
                Some(e) if e.starts_with("http://") => {}
                Some(e) if e.starts_with("https://") => {
                    let traces_or = |name: &str| {
                        var(&format!("OTEL_EXPORTER_OTLP_TRACES_{name}"))
                            .or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{name}")))
                            .filter(|v| !v.trim().is_empty())
                            .map(|v| std::path::PathBuf::from(v.trim()))
                    };
                    let client = match (traces_or("CLIENT_CERTIFICATE"), traces_or("CLIENT_KEY")) {
                        (Some(c), Some(k)) => Some((c, k)),
                        (None, None) => None,
                        _ => {
                            return Err("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY: \
                                        give both (mutual TLS) or neither"
                                .into())
                        }
                    };
                    grpc_tls = Some(GrpcTls { ca_file: traces_or("CERTIFICATE"), client });
                }
                Some(e) => {
                    return Err(format!(
                        "OTLP endpoint {e:?} with protocol grpc: an http:// (plaintext) or https:// (TLS) URL"
                    ))
                }
            }
        }
        let arg = || -> Result<f64, String> {
            match var("OTEL_TRACES_SAMPLER_ARG") {
                None => Ok(1.0),
                Some(a) => match a.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(format!("OTEL_TRACES_SAMPLER_ARG={a:?}: a ratio from 0 to 1")),
                },
            }
        };
        let ratio = match var("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            None | Some("") | Some("always_on") | Some("parentbased_always_on") => 1.0,
            Some("always_off") | Some("parentbased_always_off") => 0.0,
            Some("traceidratio") | Some("parentbased_traceidratio") => arg()?,
            Some(other) => return Err(format!("OTEL_TRACES_SAMPLER={other:?} is not supported")),
        };
        Ok(Some(Self { ratio, protocol, grpc_tls }))
    }
}

/// The gRPC exporter's runtime (none without the `otlp` feature).
#[cfg(feature = "otlp")]
type Runtime = tokio::runtime::Runtime;
#[cfg(not(feature = "otlp"))]
type Runtime = std::convert::Infallible;

static ON: AtomicBool = AtomicBool::new(false);
static STATE: OnceLock<State> = OnceLock::new();

/// Spans begun and not yet ended, kept at most this many (the oldest are
/// forgotten first: a frame shed or failed never ends its span).
const OPEN_MAX: usize = 4096;
const OPEN_MAX_AGE: Duration = Duration::from_secs(60);

struct State {
    provider: SdkTracerProvider,
    /// The gRPC exporter's runtime (tonic needs one), kept while tracing is on.
    #[allow(dead_code)]
    runtime: Option<Runtime>,
    tracer: Tracer,
    open: Mutex<HashMap<(&'static str, String, u64), Open>>,
}

struct Open {
    ctx: TraceContext,
    parent: Option<[u8; 8]>,
    start: SystemTime,
    /// The inference that ran this frame: start, end, provider, batch size.
    inference: Option<(SystemTime, SystemTime, String, usize)>,
}

/// Whether spans are being recorded (one atomic load).
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Flushes and stops the exporter when dropped (the end of a stage's `main`).
#[derive(Debug)]
#[must_use = "spans are flushed when the guard is dropped"]
pub struct Guard(bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0 {
            if let Some(s) = STATE.get() {
                ON.store(false, Ordering::Relaxed);
                if let Err(e) = s.provider.shutdown() {
                    tracing::warn!("OpenTelemetry: last spans not exported: {e}");
                }
            }
        }
    }
}

/// Turns tracing on when the `OTEL_*` variables ask for it ([`Settings::from_env`]),
/// as service `service` unless `OTEL_SERVICE_NAME` names it. Call it before
/// the stage's async runtime starts (the HTTP exporter has a blocking client of
/// its own) and keep the guard until the stage ends. A bad variable is logged
/// and leaves tracing off: it never stops a stage.
pub fn init_from_env(service: &str) -> Guard {
    let settings = match Settings::from_env(|k| std::env::var(k).ok()) {
        Ok(Some(s)) => s,
        Ok(None) => return Guard(false),
        Err(e) => {
            tracing::warn!("OpenTelemetry tracing off: {e}");
            return Guard(false);
        }
    };
    let (provider, runtime) = match provider(&settings, service) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("OpenTelemetry tracing off: {e}");
            return Guard(false);
        }
    };
    let tracer = provider.tracer("streetscope");
    if STATE.set(State { provider, runtime, tracer, open: Mutex::default() }).is_err() {
        return Guard(false); // already on in this process
    }
    ON.store(true, Ordering::Relaxed);
    tracing::info!(ratio = settings.ratio, "OpenTelemetry tracing on ({})", settings.protocol.name());
    Guard(true)
}

/// A span of `stage` that is over now, which began at `start`: `ctx` is the
/// `traceparent` the stage sent on (its own span id), `parent` the one it
/// received (None for a root: ingest).
pub fn record(stage: &'static str, ctx: &str, parent: Option<&[u8]>, start: SystemTime, camera: &str, seq: u64) {
    let Some(s) = state() else { return };
    let Some(ctx) = TraceContext::parse(ctx) else { return };
    emit(s, stage, &ctx, parent_id(parent), start, SystemTime::now(), attributes(stage, camera, seq));
}

/// A span of `stage` for frame (`camera`, `seq`) begins now; [`end`] ends it.
pub fn begin(stage: &'static str, camera: &str, seq: u64, ctx: &str, parent: Option<&[u8]>) {
    let Some(s) = state() else { return };
    let Some(ctx) = TraceContext::parse(ctx) else { return };
    let start = SystemTime::now();
    let mut open = lock(&s.open);
    if open.len() >= OPEN_MAX {
        open.retain(|_, o| start.duration_since(o.start).unwrap_or_default() < OPEN_MAX_AGE);
        if open.len() >= OPEN_MAX {
            return;
        }
    }
    open.insert((stage, camera.to_owned(), seq), Open { ctx, parent: parent_id(parent), start, inference: None });
}

/// The model ran on these frames (camera, seq) for `took`, ending now: each
/// one's open `detect` span gets an `inference` child.
pub fn inference<'a>(frames: impl IntoIterator<Item = (&'a str, u64)>, provider: &str, took: Duration) {
    let Some(s) = state() else { return };
    let end = SystemTime::now();
    let start = end - took;
    let mut open = lock(&s.open);
    let frames: Vec<_> = frames.into_iter().collect();
    for (camera, seq) in &frames {
        if let Some(o) = open.get_mut(&("detect", (*camera).to_owned(), *seq)) {
            o.inference = Some((start, end, provider.to_owned(), frames.len()));
        }
    }
}

/// Ends the span [`begin`] began (and its inference child).
pub fn end(stage: &'static str, camera: &str, seq: u64) {
    let Some(s) = state() else { return };
    let Some(o) = lock(&s.open).remove(&(stage, camera.to_owned(), seq)) else { return };
    let now = SystemTime::now();
    emit(s, stage, &o.ctx, o.parent, o.start, now, attributes(stage, camera, seq));
    if let Some((start, end, provider, batch)) = o.inference {
        let child = o.ctx.child(random_span_id(&o.ctx, seq));
        let mut attrs = attributes("inference", camera, seq);
        attrs.push(KeyValue::new("streetscope.provider", provider));
        attrs.push(KeyValue::new("streetscope.batch", batch as i64));
        emit(s, "inference", &child, Some(o.ctx.span_id), start, end, attrs);
    }
}

/// The tracer provider exporting over OTLP (HTTP or gRPC): only in builds
/// with the `otlp` feature (the binary), so that the pure crates depending on
/// this one pull no HTTP client or runtime. For gRPC, tonic's channel lives on
/// a one-thread runtime of its own (the SDK's batch thread blocks on each
/// export; the channel's connection task runs there), returned to be kept.
#[cfg(feature = "otlp")]
fn provider(settings: &Settings, service: &str) -> Result<(SdkTracerProvider, Option<Runtime>), String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let (exporter, runtime) = match settings.protocol {
        Protocol::HttpProtobuf => (
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()
                .map_err(|e| format!("the OTLP exporter: {e}"))?,
            None,
        ),
        Protocol::Grpc => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-grpc")
                .enable_all()
                .build()
                .map_err(|e| format!("the OTLP/gRPC exporter's runtime: {e}"))?;
            let exporter = {
                use opentelemetry_otlp::WithTonicConfig as _;
                let _inside = rt.enter();
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_protocol(opentelemetry_otlp::Protocol::Grpc);
                if let Some(tls) = &settings.grpc_tls {
                    builder = builder.with_tls_config(client_tls(tls)?);
                }
                builder.build().map_err(|e| format!("the OTLP/gRPC exporter: {e}"))?
            };
            (exporter, Some(rt))
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(settings.ratio))
        .with_resource(resource.build())
        .build();
    Ok((provider, runtime))
}

/// The rustls client configuration of [`GrpcTls`]; Err names the file that
/// cannot be read.
#[cfg(feature = "otlp")]
fn client_tls(tls: &GrpcTls) -> Result<opentelemetry_otlp::tonic_types::transport::ClientTlsConfig, String> {
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("OTLP/gRPC TLS: reading the {what} {}: {e}", path.display()))
    };
    let mut cfg = ClientTlsConfig::new();
    cfg = match &tls.ca_file {
        Some(ca) => cfg.ca_certificate(Certificate::from_pem(read("CA certificate", ca)?)),
        None => cfg.with_webpki_roots(),
    };
    if let Some((cert, key)) = &tls.client {
        cfg = cfg.identity(Identity::from_pem(read("client certificate", cert)?, read("client key", key)?));
    }
    Ok(cfg)
}

#[cfg(not(feature = "otlp"))]
fn provider(_: &Settings, _: &str) -> Result<(SdkTracerProvider, Option<Runtime>), String> {
    Err("this build has no OTLP exporter (streetscope-telemetry's `otlp` feature)".into())
}

fn state() -> Option<&'static State> {
    if enabled() {
        STATE.get()
    } else {
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn parent_id(header: Option<&[u8]>) -> Option<[u8; 8]> {
    header.and_then(|h| std::str::from_utf8(h).ok()).and_then(TraceContext::parse).map(|t| t.span_id)
}

fn attributes(stage: &'static str, camera: &str, seq: u64) -> Vec<KeyValue> {
    vec![
        KeyValue::new("streetscope.stage", stage),
        KeyValue::new("streetscope.camera", camera.to_owned()),
        KeyValue::new("streetscope.seq", seq as i64),
    ]
}

/// A span id for a child no message carries: any id unique within the trace will do.
fn random_span_id(parent: &TraceContext, seq: u64) -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(&parent.span_id);
    h.write_u64(seq);
    h.finish().to_le_bytes()
}

fn emit(
    s: &State,
    name: &'static str,
    ctx: &TraceContext,
    parent: Option<[u8; 8]>,
    start: SystemTime,
    end: SystemTime,
    attrs: Vec<KeyValue>,
) {
    let trace_id = TraceId::from_bytes(ctx.trace_id);
    let mut b = SpanBuilder::from_name(name);
    b.trace_id = Some(trace_id);
    b.span_id = Some(SpanId::from_bytes(ctx.span_id));
    b.start_time = Some(start);
    b.span_kind = Some(match name {
        "ingest" => SpanKind::Producer,
        "inference" => SpanKind::Internal,
        _ => SpanKind::Consumer,
    });
    b.attributes = Some(attrs);
    let cx = match parent {
        Some(p) => Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            SpanId::from_bytes(p),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let mut span = s.tracer.build_with_context(b, &cx);
    span.end_with_timestamp(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn off_by_default_and_on_with_an_endpoint() {
        assert_eq!(Settings::from_env(env(&[])), Ok(None));
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert_eq!(
            Settings::from_env(env(&on)),
            Ok(Some(Settings { ratio: 1.0, protocol: Protocol::HttpProtobuf, grpc_tls: None }))
        );
        assert_eq!(
            Settings::from_env(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])),
            Ok(Some(Settings { ratio: 1.0, protocol: Protocol::HttpProtobuf, grpc_tls: None }))
        );
        assert_eq!(
            Settings::from_env(env(&[("OTEL_TRACES_EXPORTER", "otlp")])),
            Ok(Some(Settings { ratio: 1.0, protocol: Protocol::HttpProtobuf, grpc_tls: None }))
        );
        for off in [("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "none")] {
            assert_eq!(Settings::from_env(env(&[on[0], off])), Ok(None), "{off:?}");
        }
    }

    #[test]
    fn sampling_ratio_and_bad_values() {
        let with = |sampler: &str, arg: &str| {
            Settings::from_env(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_TRACES_SAMPLER", sampler),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ]))
        };
        assert_eq!(
            with("traceidratio", "0.25"),
            Ok(Some(Settings { ratio: 0.25, protocol: Protocol::HttpProtobuf, grpc_tls: None }))
        );
        assert_eq!(
            with("parentbased_traceidratio", "0.1"),
            Ok(Some(Settings { ratio: 0.1, protocol: Protocol::HttpProtobuf, grpc_tls: None }))
        );
        assert_eq!(
            with("always_off", "x"),
            Ok(Some(Settings { ratio: 0.0, protocol: Protocol::HttpProtobuf, grpc_tls: None }))
        );
        assert!(with("traceidratio", "1.5").unwrap_err().contains("OTEL_TRACES_SAMPLER_ARG"));
        assert!(with("jaeger_remote", "1").unwrap_err().contains("OTEL_TRACES_SAMPLER"));
        let protocol = |endpoint: &str, p: &str| {
            Settings::from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_EXPORTER_OTLP_PROTOCOL", p)]))
        };
        assert_eq!(
            protocol("http://127.0.0.1:4317", "grpc"),
            Ok(Some(Settings { ratio: 1.0, protocol: Protocol::Grpc, grpc_tls: None }))
        );
        assert_eq!(
            protocol("http://127.0.0.1:4318", "http/protobuf").unwrap().unwrap().protocol,
            Protocol::HttpProtobuf
        );
        // https:// with grpc: TLS, the built-in roots unless a CA is given.
        assert_eq!(protocol("https://c:4317", "grpc").unwrap().unwrap().grpc_tls, Some(GrpcTls::default()));
        assert!(protocol("c:4317", "grpc").unwrap_err().contains("https://"));
        let tls = |extra: &[(&str, &str)]| {
            let mut vars =
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
            vars.extend_from_slice(extra);
            Settings::from_env(env(&vars)).map(|s| s.unwrap().grpc_tls.unwrap())
        };
        assert_eq!(
            tls(&[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/t.pem")
            ]),
            Ok(GrpcTls { ca_file: Some("/t.pem".into()), client: None }),
            "the TRACES_ form first"
        );
        assert_eq!(
            tls(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "c.pem"), ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "k.pem")]),
            Ok(GrpcTls { ca_file: None, client: Some(("c.pem".into(), "k.pem".into())) })
        );
        assert!(tls(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "k.pem")]).unwrap_err().contains("both"));
        // The CA of a plaintext endpoint is not asked for.
        assert_eq!(protocol("http://c:4317", "grpc").unwrap().unwrap().grpc_tls, None);
        assert!(protocol("http://c:4318", "http/json").unwrap_err().contains("\"grpc\""));
        // The traces' own variable wins.
        let traces = Settings::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]));
        assert_eq!(traces.unwrap().unwrap().protocol, Protocol::Grpc);
    }

    #[test]
    fn off_costs_nothing_and_records_nothing() {
        assert!(!enabled());
        let ctx = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        begin("detect", "cam", 1, ctx, None);
        inference([("cam", 1)], "cpu", Duration::from_millis(3));
        end("detect", "cam", 1);
        record("ingest", ctx, None, SystemTime::now(), "cam", 1);
        assert!(STATE.get().is_none());
    }
}
