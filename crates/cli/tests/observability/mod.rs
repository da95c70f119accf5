//! Observability against a real deployment on 127.0.0.1 (a module of
//! `distributed.rs`, so it uses its `Cluster` and `Proc`):
//!
//! - Prometheus: Debian's `prometheus` (scripts/install-prometheus.sh) runs as a
//!   plain process with a configuration written here (scrape every second),
//!   scrapes every stage and the registry of a distributed run, and each PromQL
//!   expression of the Grafana dashboard shipped by the chart must return series.
//! - OpenTelemetry: the stages export their spans over OTLP/HTTP to a receiver
//!   this test serves on loopback; one crossing record's trace is rebuilt from
//!   ingest through detect (and its inference) to the aggregator that wrote it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use streetscope_transport::kafka::{read_log, Producer, Role};

use super::{free_port, repo, Cluster, Proc};

/// Debian's prometheus: the system's, or the one scripts/install-prometheus.sh unpacked.
fn prometheus_bin() -> PathBuf {
    let cache = std::env::var_os("STREETSCOPE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/streetscope"));
    [PathBuf::from("/usr/bin/prometheus"), cache.join("prometheus/usr/bin/prometheus")]
        .into_iter()
        .find(|p| p.exists())
        .expect("prometheus is not installed: run scripts/install-prometheus.sh")
}

/// Every PromQL expression of the Grafana dashboard, with its panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = repo().join("helm/streetscope/dashboards/streetscope.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((p["title"].as_str().unwrap().to_owned(), t["expr"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// A Prometheus server scraping `targets` (job name → addresses) every second.
struct Prometheus {
    proc: Proc,
    base: String,
}

impl Prometheus {
    fn start(dir: &Path, targets: &[(&str, Vec<String>)]) -> Self {
        let mut cfg = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, addrs) in targets {
            let list: Vec<String> = addrs.iter().map(|a| format!("'{a}'")).collect();
            cfg += &format!("  - job_name: '{job}'\n    static_configs:\n      - targets: [{}]\n", list.join(", "));
        }
        let cfg_path = dir.join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let port = free_port();
        let mut cmd = Command::new(prometheus_bin());
        cmd.arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", dir, cmd);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{base}/-/ready")).call().is_err() {
            assert!(Instant::now() < deadline, "prometheus did not start:\n{}", proc.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
        Self { proc, base }
    }

    /// The series an instant query returns now (an error answer fails the test).
    fn query(&self, expr: &str) -> Vec<Value> {
        let mut r = ureq::get(&format!("{}/api/v1/query", self.base)).query("query", expr).call().unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn prometheus_scrapes_every_stage_and_each_dashboard_query_returns_series() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 12, "{queries:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path());
    // One poison message for the detector and one for the aggregator: the
    // dead-letter panel needs series, and they are counted by stage and reason.
    let producer = Producer::new(&c.kafka, Role::RecordProducer).unwrap();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        producer.send_durable(&c.kafka.topics.frames.name, "cam-one_bus", Some(b"not a frame"), &[]).await.unwrap();
        producer.send_durable(&c.kafka.topics.detections.name, "x-one_bus", Some(b"{not json"), &[]).await.unwrap();
    });
    c.start_all();
    let stages: Vec<&Proc> = c.ingest.iter().chain(&c.detect).chain(&c.aggregate).collect();
    let pipeline: Vec<String> = stages.iter().map(|p| p.status_addr()).collect();
    let registry = c.registry_url.trim_start_matches("http://").to_owned();
    let prom =
        Prometheus::start(dir.path(), &[("streetscope", pipeline.clone()), ("streetscope-registry", vec![registry])]);
    let started = Instant::now();

    // Every target up, then every query with series: new targets appear after
    // about five seconds, rates need two scrapes, the histogram an inference.
    let deadline = started + Duration::from_secs(150);
    let mut empty: Vec<(String, String)>;
    loop {
        let up: usize = prom.query("up == 1").len();
        empty = if up == pipeline.len() + 1 {
            queries.iter().filter(|(_, e)| prom.query(e).is_empty()).cloned().collect()
        } else {
            vec![("targets up".into(), format!("{up} of {}", pipeline.len() + 1))]
        };
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let targets = ureq::get(&format!("{}/api/v1/targets", prom.base))
        .call()
        .map(|mut r| r.body_mut().read_to_string().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        empty.is_empty(),
        "dashboard queries without series after {:?}: {empty:#?}\ntargets: {targets}\nprometheus log:\n{}",
        started.elapsed(),
        prom.proc.log_text()
    );
    // What the new metrics say, read through Prometheus.
    let lag = prom.query("max by (group, topic, partition) (streetscope_consumer_lag)");
    let groups: std::collections::BTreeSet<&str> = lag.iter().filter_map(|s| s["metric"]["group"].as_str()).collect();
    assert!(groups.len() >= 2, "detectors' and aggregators' lag: {lag:#?}");
    let frames_partitions = lag.iter().filter(|s| s["metric"]["topic"] == "streetscope.frames").count();
    assert_eq!(frames_partitions, 4, "one series per partition of the frames topic: {lag:#?}");
    let dead = prom.query("sum by (stage, reason) (streetscope_dead_letters_total)");
    let dead: std::collections::BTreeMap<(String, String), String> = dead
        .iter()
        .map(|s| {
            let m = &s["metric"];
            let key = (m["stage"].as_str().unwrap().to_owned(), m["reason"].as_str().unwrap().to_owned());
            (key, s["value"][1].as_str().unwrap().to_owned())
        })
        .collect();
    let want: std::collections::BTreeMap<(String, String), String> = [
        (("aggregate".to_owned(), "detections_json".to_owned()), "1".to_owned()),
        (("detect".to_owned(), "frame_envelope".to_owned()), "1".to_owned()),
    ]
    .into();
    assert_eq!(dead, want, "each poison message counted once, by stage and reason");
    // Counts per intersection: what Prometheus holds equals the aggregator's
    // latest counts records on streetscope.counts (both move until the clips end).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (scraped, published) = loop {
        let scraped: std::collections::BTreeMap<String, u64> = prom
            .query("sum by (intersection) (max by (intersection, camera, line, direction, class) (streetscope_crossings_total))")
            .iter()
            .map(|s| (s["metric"]["intersection"].as_str().unwrap().to_owned(), s["value"][1].as_str().unwrap().parse().unwrap()))
            .collect();
        let published: std::collections::BTreeMap<String, u64> = c
            .latest_counts()
            .iter()
            .map(|(x, v)| {
                (x.clone(), v["counts"].as_array().unwrap().iter().map(|r| r["count"].as_u64().unwrap()).sum())
            })
            .collect();
        let complete = c.latest_counts().values().all(|v| v["complete"] == true);
        if (complete && scraped == published && !published.is_empty()) || Instant::now() > deadline {
            break (scraped, published);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(scraped, published, "crossings per intersection: Prometheus against the counts records");
    let p95 =
        prom.query("histogram_quantile(0.95, sum by (le, provider) (rate(streetscope_inference_seconds_bucket[5m])))");
    let v: f64 = p95[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(v > 0.0 && v < 10.0, "inference p95 {v} s: {p95:#?}");
    eprintln!(
        "all {} dashboard queries returned series {:.1} s after prometheus started; inference p95 {:.0} ms; lag series {}; dead letters {dead:?}; crossings {scraped:?}",
        queries.len(),
        started.elapsed().as_secs_f64(),
        v * 1e3,
        lag.len()
    );
}

// ---------------------------------------------------------------------------
// OpenTelemetry: an OTLP/HTTP receiver on loopback, served by this test.

mod otlp {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::routing::post;
    use axum::Router;
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use prost::Message;

    /// One span as received, with its resource's `service.name`.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub service: String,
        pub name: String,
        pub trace_id: Vec<u8>,
        pub span_id: Vec<u8>,
        pub parent_span_id: Vec<u8>,
        pub start_ns: u64,
        pub end_ns: u64,
        pub attributes: Vec<(String, String)>,
    }

    impl Received {
        pub fn attr(&self, key: &str) -> Option<&str> {
            self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        }
    }

    pub type Spans = Arc<Mutex<Vec<Received>>>;

    fn value(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        match v.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(i)) => i.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        }
    }

    async fn traces(State(spans): State<Spans>, body: Bytes) -> impl axum::response::IntoResponse {
        let Ok(req) = ExportTraceServiceRequest::decode(body) else {
            return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
        };
        let mut out = spans.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| value(&a.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Received {
                        service: service.clone(),
                        name: s.name,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        start_ns: s.start_time_unix_nano,
                        end_ns: s.end_time_unix_nano,
                        attributes: s.attributes.iter().map(|a| (a.key.clone(), value(&a.value))).collect(),
                    });
                }
            }
        }
        (axum::http::StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
    }

    /// Serves `POST /v1/traces` (OTLP/HTTP, protobuf) on 127.0.0.1 from its
    /// own runtime; returns the endpoint and what arrives.
    pub fn start(rt: &tokio::runtime::Runtime) -> (String, Spans) {
        let spans: Spans = Arc::default();
        let app = Router::new().route("/v1/traces", post(traces)).with_state(spans.clone());
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), spans)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn otlp_receives_each_frames_spans_linked_from_ingest_to_its_crossing_record() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (endpoint, spans) = otlp::start(&rt);
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path());
    // The stages as `start_all` starts them, with tracing on through the standard variables.
    let traced = |kind: &str, n: usize| {
        let mut cmd = Command::new(super::BIN);
        cmd.args([kind, "--cluster", c.cfg_path.to_str().unwrap(), "--status-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_TRACES_SAMPLER", "traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", "1")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200");
        Proc::spawn(&format!("{kind}-{n}"), &c.dir, cmd)
    };
    let (a, d, i0, i1) = (traced("aggregate", 0), traced("detect", 0), traced("ingest", 0), traced("ingest", 1));
    c.aggregate.push(a);
    c.detect.push(d);
    c.ingest.extend([i0, i1]);

    // A crossing record on the events topic: its traceparent names the
    // aggregator's span of the frame that made it.
    let deadline = Instant::now() + Duration::from_secs(180);
    let (event, ctx) = loop {
        let events =
            streetscope_transport::kafka::read_log(&c.kafka, &c.kafka.topics.events.name, None).unwrap_or_default();
        let found = events.iter().find_map(|r| {
            let v: Value = serde_json::from_slice(r.value.as_ref()?).ok()?;
            let tp = r.headers.iter().find(|(k, _)| k == "traceparent")?;
            (v["record"] == "crossing").then(|| (v, String::from_utf8_lossy(&tp.1).into_owned()))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "no crossing record in {:?}", deadline);
        std::thread::sleep(Duration::from_millis(500));
    };
    let parts: Vec<&str> = ctx.split('-').collect();
    let (trace_id, aggregate_id) = (parts[1].to_owned(), parts[2].to_owned());

    // Its whole trace: aggregate ← detect (← inference) ← ingest.
    let find = |id: &str| spans.lock().unwrap().iter().find(|s| hex(&s.span_id) == id).cloned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let chain = loop {
        let agg = find(&aggregate_id);
        let det = agg.as_ref().and_then(|a| find(&hex(&a.parent_span_id)));
        let ing = det.as_ref().and_then(|d| find(&hex(&d.parent_span_id)));
        let inf = det.as_ref().and_then(|d| {
            spans.lock().unwrap().iter().find(|s| s.name == "inference" && s.parent_span_id == d.span_id).cloned()
        });
        if let (Some(a), Some(d), Some(i), Some(f)) = (agg, det, ing, inf) {
            break (a, d, i, f);
        }
        let seen: Vec<(String, String, String)> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .map(|s| (s.name.clone(), hex(&s.span_id), hex(&s.parent_span_id)))
            .collect();
        assert!(
            Instant::now() < deadline,
            "the trace of {ctx} is incomplete: spans of it received {seen:#?} ({} spans in all)",
            spans.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let (agg, det, ing, inf) = chain;
    for (s, name, service) in [
        (&agg, "aggregate", "streetscope-aggregate"),
        (&det, "detect", "streetscope-detect"),
        (&inf, "inference", "streetscope-detect"),
        (&ing, "ingest", "streetscope-ingest"),
    ] {
        assert_eq!((s.name.as_str(), s.service.as_str()), (name, service), "{s:#?}");
        assert_eq!(hex(&s.trace_id), trace_id, "one trace: {s:#?}");
        assert_eq!(s.attr("streetscope.camera"), event["camera_id"].as_str(), "{s:#?}\n{event:#}");
        assert!(s.start_ns <= s.end_ns, "{s:#?}");
    }
    assert!(ing.parent_span_id.is_empty(), "ingest starts the trace: {ing:#?}");
    let seq = ing.attr("streetscope.seq");
    assert!(seq.is_some() && det.attr("streetscope.seq") == seq && agg.attr("streetscope.seq") == seq);
    // In time: captured and sent, taken by the detector, inferred, aggregated.
    assert!(ing.start_ns <= det.start_ns && det.start_ns <= inf.start_ns && inf.end_ns <= det.end_ns);
    assert!(det.start_ns <= agg.start_ns, "{det:#?}\n{agg:#?}");
    let ms = |s: &otlp::Received| (s.end_ns - s.start_ns) as f64 / 1e6;
    eprintln!(
        "trace {trace_id} of {} frame {}: ingest {:.1} ms, detect {:.1} ms (inference {:.1} ms), aggregate {:.1} ms; {} spans received in all",
        event["camera_id"],
        seq.unwrap(),
        ms(&ing),
        ms(&det),
        ms(&inf),
        ms(&agg),
        spans.lock().unwrap().len()
    );
}

// ---------------------------------------------------------------------------
// The camera page's snapshot in the distributed mode: the detector pods write
// one frame per camera every 5 s with its detections to
// `streetscope.camera-snapshots`; `streetscope dashboard` reads them and draws
// the registry's counting lines and the detections' boxes on the picture.

// The boxes carry the aggregator's track ids: the detector marks the
// detections of its snapshot frames, the aggregator answers each with an
// overlay message on the same topic, and the dashboard joins the two.
#[test]
fn the_dashboard_draws_the_snapshots_the_detectors_write() {
    use streetscope_contracts::snapshots::{decode_any, SnapshotMessage, SnapshotMeta};
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path());
    c.start_all();
    let port = free_port();
    let cfg = c.cfg_path.to_str().unwrap().to_owned();
    let dash = Proc::streetscope(
        "dashboard",
        &c.dir,
        &["dashboard", "--cluster", &cfg, "--listen", &format!("127.0.0.1:{port}")],
    );
    let base = format!("http://127.0.0.1:{port}");
    // two_way: a bus in view at most of its snapshots (every 5 s of its 21 s).
    let camera = "cam-two_way";
    let truth = super::truth_of("two_way");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    // Every labelled snapshot the page showed: frame and track ids.
    let mut labelled: Vec<(u64, Vec<u64>)> = Vec::new();
    let (meta, img, ids) = loop {
        let shown = ureq::get(&format!("{base}/snapshot/{camera}")).call().ok().and_then(|mut r| {
            let seq: u64 = r.headers().get("x-frame-seq")?.to_str().ok()?.parse().ok()?;
            let ids: Vec<u64> =
                r.headers().get("x-track-ids")?.to_str().ok()?.split(',').flat_map(str::parse).collect();
            Some((seq, ids, r.body_mut().with_config().limit(16 << 20).read_to_vec().ok()?))
        });
        if let Some((seq, ids, jpeg)) = shown {
            if !ids.is_empty() && labelled.last().is_none_or(|(s, _)| *s != seq) {
                labelled.push((seq, ids.clone()));
            }
            // What the detector wrote for that frame.
            let rows = read_log(&c.kafka, &c.kafka.topics.camera_snapshots.name, None).unwrap_or_default();
            let meta: Option<SnapshotMeta> = rows
                .iter()
                .filter(|r| r.key == camera)
                .filter_map(|r| match decode_any(r.value.as_ref()?) {
                    Ok(SnapshotMessage::Picture(m, _)) => Some(m),
                    _ => None,
                })
                .find(|m| m.frame_seq == seq);
            if let Some(m) = meta.filter(|m| !m.objects.is_empty() && !ids.is_empty()) {
                break (m, image::load_from_memory(&jpeg).unwrap().to_rgb8(), ids);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot of {camera} with a tracked vehicle drawn after {:?}\ndashboard log:\n{}\ndetect log:\n{}\naggregate log:\n{}",
            started.elapsed(),
            dash.log_text(),
            c.detect[0].log_text(),
            c.aggregate[0].log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The ids drawn are the aggregator's: its overlay of that frame says them,
    // box for box with the detector's boxes...
    let rows = read_log(&c.kafka, &c.kafka.topics.camera_snapshots.name, None).unwrap();
    let overlay = rows
        .iter()
        .filter(|r| r.key == camera)
        .filter_map(|r| match decode_any(r.value.as_ref()?) {
            Ok(SnapshotMessage::Overlay(o)) => Some(o),
            _ => None,
        })
        .find(|o| o.frame_seq == meta.frame_seq)
        .expect("the aggregator's overlay of the frame shown");
    assert_eq!(overlay.track_ids(), ids, "the ids drawn are the overlay's");
    let boxes = |o: &[streetscope_contracts::snapshots::SnapshotObject]| o.iter().map(|o| o.bbox).collect::<Vec<_>>();
    assert_eq!(boxes(&overlay.objects), boxes(&meta.objects), "the overlay labels the detector's boxes");
    // ...and the same vehicles' crossings on the events topic carry them (the
    // tracks end with the recording: wait for their crossings).
    let crossing_tracks = || -> std::collections::BTreeSet<u64> {
        read_log(&c.kafka, &c.kafka.topics.events.name, None)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(r.value.as_ref()?).ok())
            .filter(|v| v["camera_id"] == camera && v["track_id"].is_u64())
            .map(|v| v["track_id"].as_u64().unwrap())
            .collect()
    };
    let all_shown: std::collections::BTreeSet<u64> = labelled.iter().flat_map(|(_, ids)| ids.clone()).collect();
    loop {
        let crossed = crossing_tracks();
        if ids.iter().all(|id| crossed.contains(id)) {
            eprintln!(
                "snapshot of frame {} labels tracks {ids:?}; the events topic has crossings of tracks {crossed:?} of {camera}; labelled snapshots seen: {labelled:?} ({} of {} ids shown crossed)",
                meta.frame_seq,
                all_shown.intersection(&crossed).count(),
                all_shown.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tracks {ids:?} drawn on frame {} never crossed a line on the events topic ({crossed:?})",
            meta.frame_seq
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let lb = meta.letterbox.expect("frames are letterboxed");
    assert_eq!((img.width(), img.height()), (lb.scaled_w, lb.scaled_h), "the picture is cut out of its letterbox");
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    // Is any pixel within `r` of (x, y) of colour `c` (JPEG blurs thin strokes)?
    let near = |x: f64, y: f64, c: [u8; 3], r: i64| {
        (-r..=r).any(|dx| {
            (-r..=r).any(|dy| {
                let (px, py) = (x as i64 + dx, y as i64 + dy);
                px >= 0
                    && py >= 0
                    && (px as u32) < img.width()
                    && (py as u32) < img.height()
                    && img
                        .get_pixel(px as u32, py as u32)
                        .0
                        .iter()
                        .zip(c)
                        .all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() < 45)
            })
        })
    };
    let line_colour = streetscope_dashboard::snapshot::LINE_COLOUR.0;
    for l in &truth.lines {
        let (mx, my) = ((l.start[0] + l.end[0]) / 2.0 * w, (l.start[1] + l.end[1]) / 2.0 * h);
        assert!(near(mx, my, line_colour, 2), "line {} drawn at ({mx:.0}, {my:.0})", l.name);
    }
    // Each box's left edge in its class's colour, at a third and two thirds of its height.
    let (sx, sy) = (w / f64::from(meta.width), h / f64::from(meta.height));
    for o in &meta.objects {
        let colour = streetscope_dashboard::draw::class_colour(&o.class_name).0;
        let x = f64::from(o.bbox.x1) * sx;
        for f in [1.0 / 3.0, 2.0 / 3.0] {
            let y = (f64::from(o.bbox.y1) + f * f64::from(o.bbox.y2 - o.bbox.y1)) * sy;
            assert!(near(x, y, colour, 2), "the {} box's edge drawn at ({x:.0}, {y:.0}): {o:?}", o.class_name);
        }
    }
    // What they cost: messages of this camera and their size.
    let snaps = read_log(&c.kafka, &c.kafka.topics.camera_snapshots.name, None).unwrap();
    let (overlays, pictures): (Vec<_>, Vec<_>) = snaps
        .iter()
        .filter_map(|r| r.value.as_ref())
        .partition(|v| v.starts_with(streetscope_contracts::snapshots::OVERLAY_MAGIC));
    let per_camera = snaps.iter().filter(|r| r.key == camera).count();
    let avg = |v: &[&Vec<u8>]| v.iter().map(|v| v.len()).sum::<usize>() / v.len().max(1);
    eprintln!(
        "snapshot of {camera} frame {} with {} objects drawn {:.1} s after the stages started; {per_camera} messages of it on the topic; all cameras: {} pictures of {} bytes and {} overlays of {} bytes on average",
        meta.frame_seq,
        meta.objects.len(),
        started.elapsed().as_secs_f64(),
        pictures.len(),
        avg(&pictures),
        overlays.len(),
        avg(&overlays)
    );
    // One overlay at most per picture: the topic's rate stays the pictures'.
    assert!(overlays.len() <= pictures.len(), "{} overlays for {} pictures", overlays.len(), pictures.len());
}
