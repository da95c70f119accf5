//! The Grafana dashboard shipped by the chart queries only metrics that the
//! stages export: every `streetscope_…` name in its PromQL appears in what
//! `metrics::render_with` and `metrics::render_registry` render.

use streetscope_telemetry::metrics::{
    dead_letter, frame_dropped, observe_inference, render_registry, render_with, set_consumer_lag, set_crossings,
    CameraSample, CrossingCount, DeliverySample, RegistrySample, RequestSample,
};
use streetscope_telemetry::StageStats;

#[test]
fn every_metric_of_the_grafana_dashboard_is_exported() {
    let path = manifest_dir().join("../../helm/streetscope/dashboards/streetscope.json");
    let dashboard = std::fs::read_to_string(path).unwrap();
    let cameras =
        [CameraSample { camera: "c".into(), state: "streaming", frames: 1, reconnects: 1, dropped_backpressure: 1 }];
    let stages = [StageStats { name: "detect".into(), items: 1, errors: 1, busy_s: 1.0 }];
    let delivery = [DeliverySample { camera: "c".into(), frames: 1, duplicates: 1, missing: 1, restarts: 1 }];
    let registry = RegistrySample {
        requests: vec![RequestSample { method: "GET".into(), route: "/v1/cameras".into(), status: 200, count: 1 }],
        ..RegistrySample::default()
    };
    // What the detector and the consuming stages record as they run.
    frame_dropped("c", "stale");
    dead_letter("detect", "frame_envelope");
    set_crossings(
        "x",
        [CrossingCount { camera: "c".into(), line: "l".into(), direction: "d".into(), class: "car".into(), count: 1 }],
    );
    observe_inference("cpu", 1, 0.1);
    set_consumer_lag("detectors", [("streetscope.frames".to_owned(), 0, 1)]);
    let exported = render_with(&cameras, &stages, &delivery) + &render_registry(&registry);
    let mut names: Vec<&str> = dashboard
        .match_indices("streetscope_")
        .map(|(i, _)| {
            let rest = &dashboard[i..];
            &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())]
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        assert!(
            exported.lines().any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "the dashboard queries {name}, which no stage exports:\n{exported}"
        );
    }
}

/// This package's folder as the test runner gives it at run time: a test binary built from another checkout (the build cache is shared) reads this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()).into()
}
