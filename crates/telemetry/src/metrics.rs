//! Prometheus metrics: the one place that defines each metric's name, type, help
//! and labels. Values are read from the stages' own counters at scrape time and
//! rendered in the Prometheus text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use crate::StageStats;

/// The states a camera can be in, as the `state` label values.
pub const CAMERA_STATES: &[&str] = &["connecting", "streaming", "backing_off", "stopped", "failed"];

/// What the metrics need to know about one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraSample {
    pub camera: String,
    /// One of [`CAMERA_STATES`].
    pub state: &'static str,
    pub frames: u64,
    pub reconnects: u64,
    /// Frames dropped because the pipeline downstream was behind.
    pub dropped_backpressure: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CameraLabels {
    camera: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    camera: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    camera: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

/// What reached an aggregator of one camera (see `Aggregator::delivery`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverySample {
    pub camera: String,
    /// Frames taken.
    pub frames: u64,
    /// Frames dropped as duplicates (replays after a crash or a rebalance).
    pub duplicates: u64,
    /// Frames that never arrived (numbers skipped, and restarts' estimates).
    pub missing: u64,
    /// Restarts of the camera's ingest seen (new runs of its frame identity).
    pub restarts: u64,
}

/// The latest [`DeliverySample`]s of a stage, shared with the metrics
/// endpoint. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DeliveryBoard(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, DeliverySample>>>);

impl DeliveryBoard {
    /// Replaces the samples of the cameras in `samples` (others are kept: an
    /// aggregator holds several intersections).
    pub fn update(&self, samples: impl IntoIterator<Item = DeliverySample>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            m.insert(s.camera.clone(), s);
        }
    }

    /// Every camera's latest sample, by camera id.
    pub fn samples(&self) -> Vec<DeliverySample> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}

// ---------------------------------------------------------------------------
// Process-wide recorders
//
// What a stage records from deep inside (a frame shed by the detector, one
// inference, the group's lag) goes through these one-line functions instead of
// a handle threaded through every stage: the status endpoint renders them with
// the rest in `render_with`. Each costs one short lock or a few atomics.

/// Why a frame is dropped: `backpressure` (a live camera's queue in ingest),
/// `stale` (shed by the detector, older than `detector.shed_stale_ms`),
/// `failed` (did not decode or run in the detector).
pub const DROP_REASONS: &[&str] = &["backpressure", "stale", "failed"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrossingLabels {
    intersection: String,
    camera: String,
    line: String,
    direction: String,
    class: String,
}

/// One row of an intersection's running counts: crossings of one camera's
/// line in one direction (its label) by one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossingCount {
    pub camera: String,
    pub line: String,
    pub direction: String,
    pub class: String,
    pub count: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    stage: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InferenceLabels {
    provider: String,
    batch: String,
}

type LagMap = BTreeMap<(String, String, i32), i64>;

struct Recorded {
    /// (camera, reason) -> frames.
    dropped: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (group, topic, partition) -> lag, as last sampled.
    lag: Mutex<LagMap>,
    /// (stage, reason) -> records sent to the dead-letter topic.
    dead_letters: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// intersection -> its running counts, as last published.
    crossings: Mutex<BTreeMap<String, Vec<CrossingCount>>>,
    inference: Family<InferenceLabels, Histogram, fn() -> Histogram>,
}

fn inference_histogram() -> Histogram {
    // 2.5 ms .. 2.6 s: a GPU batch to a slow CPU's large batch.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0025, 2.0, 11))
}

fn recorded() -> &'static Recorded {
    static R: OnceLock<Recorded> = OnceLock::new();
    R.get_or_init(|| Recorded {
        dropped: Mutex::default(),
        lag: Mutex::default(),
        dead_letters: Mutex::default(),
        crossings: Mutex::default(),
        inference: Family::new_with_constructor(inference_histogram),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One frame of `camera` dropped for `reason` (one of [`DROP_REASONS`]):
/// `streetscope_frames_dropped_total{camera,reason}`.
pub fn frame_dropped(camera: &str, reason: &'static str) {
    *lock(&recorded().dropped).entry((camera.to_owned(), reason)).or_default() += 1;
}

/// One record `stage` sent to the dead-letter topic, for `reason` (a short
/// fixed label such as `frame_envelope` or `PoisonReason::label`'s, never
/// the message's own text: labels stay few):
/// `streetscope_dead_letters_total{stage,reason}`.
pub fn dead_letter(stage: &'static str, reason: &'static str) {
    *lock(&recorded().dead_letters).entry((stage, reason)).or_default() += 1;
}

/// The running counts of `intersection` an aggregator has just published
/// (they replace its earlier ones):
/// `streetscope_crossings_total{intersection,camera,line,direction,class}`.
pub fn set_crossings(intersection: &str, rows: impl IntoIterator<Item = CrossingCount>) {
    lock(&recorded().crossings).insert(intersection.to_owned(), rows.into_iter().collect());
}

/// A result record an aggregator published: its running counts (a `counts`
/// record) become [`set_crossings`]; other records are not metrics.
pub fn record_published(r: &streetscope_contracts::records::ResultRecord) {
    if let streetscope_contracts::records::ResultRecord::Counts(c) = r {
        set_crossings(
            &c.intersection_id,
            c.counts.iter().map(|row| CrossingCount {
                camera: row.camera_id.clone(),
                line: row.line.clone(),
                direction: row.direction_label.clone(),
                class: row.class_name.clone(),
                count: row.count,
            }),
        );
    }
}

/// One inference of a batch of `batch` frames on `provider` took `seconds`:
/// `streetscope_inference_seconds{provider,batch}`.
pub fn observe_inference(provider: &str, batch: usize, seconds: f64) {
    recorded()
        .inference
        .get_or_create(&InferenceLabels { provider: provider.to_owned(), batch: batch.to_string() })
        .observe(seconds);
}

/// Replaces `group`'s lag samples: (topic, partition, lag) for every partition
/// of the topics it consumes. `streetscope_consumer_lag{group,topic,partition}`.
pub fn set_consumer_lag<T: Into<(String, i32, i64)>>(group: &str, samples: impl IntoIterator<Item = T>) {
    let mut m = lock(&recorded().lag);
    m.retain(|(g, _, _), _| g != group);
    for (topic, partition, lag) in samples.into_iter().map(Into::into) {
        m.insert((group.to_owned(), topic, partition), lag);
    }
}

/// Samples `group`'s lag with `sample` every five seconds on a thread of its
/// own (the sample blocks on the broker) for as long as the process lives;
/// a failed sample (None) keeps the last one.
pub fn watch_consumer_lag<S, I, T>(group: &str, mut sample: S)
where
    S: FnMut() -> Option<I> + Send + 'static,
    I: IntoIterator<Item = T>,
    T: Into<(String, i32, i64)>,
{
    let group = group.to_owned();
    let spawned = std::thread::Builder::new().name("consumer-lag".into()).spawn(move || loop {
        if let Some(s) = sample() {
            set_consumer_lag(&group, s);
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    if let Err(e) = spawned {
        tracing::warn!("consumer lag not exported: {e}");
    }
}

/// Renders the metrics of `cameras` and `stages` in the Prometheus text format.
pub fn render(cameras: &[CameraSample], stages: &[StageStats]) -> String {
    render_with(cameras, stages, &[])
}

/// [`render`], with what reached an aggregator per camera.
pub fn render_with(cameras: &[CameraSample], stages: &[StageStats], delivery: &[DeliverySample]) -> String {
    let mut registry = Registry::with_prefix("streetscope");
    if !delivery.is_empty() {
        let frames = Family::<CameraLabels, Counter>::default();
        let dups = Family::<CameraLabels, Counter>::default();
        let missing = Family::<CameraLabels, Counter>::default();
        let restarts = Family::<CameraLabels, Counter>::default();
        registry.register("aggregate_frames", "Frames an aggregator took, by camera", frames.clone());
        registry.register(
            "aggregate_duplicates",
            "Frames an aggregator dropped as duplicates (replays after a crash or a rebalance), by camera",
            dups.clone(),
        );
        registry.register(
            "aggregate_frames_missing",
            "Frames that never reached the aggregator (numbers skipped, and the frames a restart of the camera's ingest cost, estimated), by camera",
            missing.clone(),
        );
        registry.register(
            "aggregate_ingest_restarts",
            "Restarts of a camera's ingest the aggregator saw (new runs of its frame identity), by camera",
            restarts.clone(),
        );
        for d in delivery {
            let l = CameraLabels { camera: d.camera.clone() };
            frames.get_or_create(&l).inc_by(d.frames);
            dups.get_or_create(&l).inc_by(d.duplicates);
            missing.get_or_create(&l).inc_by(d.missing);
            restarts.get_or_create(&l).inc_by(d.restarts);
        }
    }
    let frames = Family::<CameraLabels, Counter>::default();
    let reconnects = Family::<CameraLabels, Counter>::default();
    let dropped = Family::<DropLabels, Counter>::default();
    let state = Family::<StateLabels, Gauge>::default();
    let items = Family::<StageLabels, Counter>::default();
    let errors = Family::<StageLabels, Counter>::default();
    let busy = Family::<StageLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    registry.register("camera_frames", "Frames a camera handed downstream, over all its connections", frames.clone());
    registry.register("camera_reconnects", "Connections a camera made after its first", reconnects.clone());
    registry.register("frames_dropped", "Frames dropped, by camera and reason", dropped.clone());
    registry.register("camera_state", "1 for the state a camera is in, 0 for the others", state.clone());
    registry.register("stage_items", "Items a stage turned into outputs", items.clone());
    registry.register("stage_errors", "Items a stage skipped because they failed", errors.clone());
    registry.register("stage_busy_seconds", "Seconds a stage spent working (not waiting)", busy.clone());
    for c in cameras {
        let l = CameraLabels { camera: c.camera.clone() };
        frames.get_or_create(&l).inc_by(c.frames);
        reconnects.get_or_create(&l).inc_by(c.reconnects);
        dropped
            .get_or_create(&DropLabels { camera: c.camera.clone(), reason: "backpressure".into() })
            .inc_by(c.dropped_backpressure);

        for s in CAMERA_STATES {
            let v = i64::from(*s == c.state);
            state.get_or_create(&StateLabels { camera: c.camera.clone(), state: (*s).into() }).set(v);
        }
    }
    for ((camera, reason), n) in lock(&recorded().dropped).iter() {
        dropped.get_or_create(&DropLabels { camera: camera.clone(), reason: (*reason).into() }).inc_by(*n);
    }
    let dead = Family::<DeadLetterLabels, Counter>::default();
    registry.register(
        "dead_letters",
        "Records a stage sent to the dead-letter topic (they did not decode or cannot be true), by stage and reason",
        dead.clone(),
    );
    for ((stage, reason), n) in lock(&recorded().dead_letters).iter() {
        dead.get_or_create(&DeadLetterLabels { stage: (*stage).into(), reason: (*reason).into() }).inc_by(*n);
    }
    let crossings = lock(&recorded().crossings);
    if !crossings.is_empty() {
        let family = Family::<CrossingLabels, Counter>::default();
        registry.register(
            "crossings",
            "Crossings counted by the aggregator, by intersection, camera, line, direction and class (its running totals, restored after a restart or a rebalance)",
            family.clone(),
        );
        for (intersection, rows) in crossings.iter() {
            for r in rows {
                let l = CrossingLabels {
                    intersection: intersection.clone(),
                    camera: r.camera.clone(),
                    line: r.line.clone(),
                    direction: r.direction.clone(),
                    class: r.class.clone(),
                };
                family.get_or_create(&l).inc_by(r.count);
            }
        }
    }
    drop(crossings);
    let lag = lock(&recorded().lag).clone();
    if !lag.is_empty() {
        let family = Family::<LagLabels, Gauge>::default();
        registry.register(
            "consumer_lag",
            "Messages of a partition the consumer group has not committed yet (high watermark minus committed offset, as KEDA computes it)",
            family.clone(),
        );
        for ((group, topic, partition), n) in lag {
            family.get_or_create(&LagLabels { group, topic, partition: partition.to_string() }).set(n);
        }
    }
    registry.register_with_unit(
        "inference",
        "Time one run of the model took on a batch (preprocessed input to decoded detections), by execution provider and batch size",
        prometheus_client::registry::Unit::Seconds,
        recorded().inference.clone(),
    );
    for s in stages {
        let l = StageLabels { stage: s.name.clone() };
        items.get_or_create(&l).inc_by(s.items);
        errors.get_or_create(&l).inc_by(s.errors);
        busy.get_or_create(&l).inc_by(s.busy_s);
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// What the camera registry's metrics need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySample {
    pub cameras: u64,
    pub cameras_enabled: u64,
    pub intersections: u64,
    /// Records in the tables that did not parse when the registry loaded them.
    pub skipped_records: u64,
    pub requests: Vec<RequestSample>,
}

/// Requests the registry answered with one status on one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSample {
    pub method: String,
    /// The route pattern, e.g. `/v1/cameras/{id}` (never the id itself).
    pub route: String,
    pub status: u16,
    pub count: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

/// Renders the camera registry's metrics in the Prometheus text format.
pub fn render_registry(s: &RegistrySample) -> String {
    let mut registry = Registry::with_prefix("streetscope_registry");
    let gauge = |v: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    registry.register("cameras", "Cameras in the registry", gauge(s.cameras));
    registry.register("cameras_enabled", "Cameras in the registry that ingest runs", gauge(s.cameras_enabled));
    registry.register("intersections", "Intersections in the registry", gauge(s.intersections));
    registry.register(
        "skipped_records",
        "Records of the registry's tables that did not parse at load and were skipped",
        gauge(s.skipped_records),
    );
    let requests = Family::<RequestLabels, Counter>::default();
    registry.register("requests", "API requests answered, by method, route and status", requests.clone());
    for r in &s.requests {
        let l = RequestLabels { method: r.method.clone(), route: r.route.clone(), status: r.status.to_string() };
        requests.get_or_create(&l).inc_by(r.count);
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_camera_and_stage_metrics() {
        let cams = [CameraSample {
            camera: "cam-1".into(),
            state: "streaming",
            frames: 42,
            reconnects: 2,
            dropped_backpressure: 5,
        }];
        let stages = [StageStats { name: "detect".into(), items: 40, errors: 1, busy_s: 3.5 }];
        let text = render(&cams, &stages);
        for line in [
            "streetscope_camera_frames_total{camera=\"cam-1\"} 42",
            "streetscope_camera_reconnects_total{camera=\"cam-1\"} 2",
            "streetscope_frames_dropped_total{camera=\"cam-1\",reason=\"backpressure\"} 5",
            "streetscope_camera_state{camera=\"cam-1\",state=\"streaming\"} 1",
            "streetscope_camera_state{camera=\"cam-1\",state=\"failed\"} 0",
            "streetscope_stage_items_total{stage=\"detect\"} 40",
            "streetscope_stage_busy_seconds_total{stage=\"detect\"} 3.5",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn renders_what_the_stages_recorded() {
        frame_dropped("cam-9", "stale");
        frame_dropped("cam-9", "stale");
        frame_dropped("cam-9", "failed");
        dead_letter("detect", "frame_envelope");
        dead_letter("detect", "frame_envelope");
        dead_letter("aggregate", "box_outside_frame");
        let row = |class: &str, count| CrossingCount {
            camera: "cam-9".into(),
            line: "stop".into(),
            direction: "northbound".into(),
            class: class.into(),
            count,
        };
        set_crossings("x-9", [row("car", 3), row("bus", 1)]);
        set_crossings("x-9", [row("car", 4)]);
        observe_inference("cpu", 4, 0.004);
        observe_inference("cpu", 4, 0.3);
        set_consumer_lag(
            "detectors",
            [("streetscope.frames".to_owned(), 0, 7), ("streetscope.frames".to_owned(), 1, 0)],
        );
        set_consumer_lag("aggregators", [("streetscope.detections".to_owned(), 2, 3)]);
        // A new sample of a group replaces its old one (a partition gone stays gone).
        set_consumer_lag("detectors", [("streetscope.frames".to_owned(), 0, 5)]);
        let text = render(&[], &[]);
        for line in [
            "streetscope_frames_dropped_total{camera=\"cam-9\",reason=\"stale\"} 2",
            "streetscope_frames_dropped_total{camera=\"cam-9\",reason=\"failed\"} 1",
            "streetscope_dead_letters_total{stage=\"detect\",reason=\"frame_envelope\"} 2",
            "streetscope_dead_letters_total{stage=\"aggregate\",reason=\"box_outside_frame\"} 1",
            "streetscope_crossings_total{intersection=\"x-9\",camera=\"cam-9\",line=\"stop\",direction=\"northbound\",class=\"car\"} 4",
            "streetscope_consumer_lag{group=\"detectors\",topic=\"streetscope.frames\",partition=\"0\"} 5",
            "streetscope_consumer_lag{group=\"aggregators\",topic=\"streetscope.detections\",partition=\"2\"} 3",
            "streetscope_inference_seconds_bucket{le=\"0.005\",provider=\"cpu\",batch=\"4\"} 1",
            "streetscope_inference_seconds_bucket{le=\"+Inf\",provider=\"cpu\",batch=\"4\"} 2",
            "streetscope_inference_seconds_count{provider=\"cpu\",batch=\"4\"} 2",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("partition=\"1\""), "{text}");
        assert!(!text.contains("class=\"bus\""), "the latest counts replace the earlier: {text}");
    }

    #[test]
    fn renders_registry_metrics() {
        let text = render_registry(&RegistrySample {
            cameras: 3,
            cameras_enabled: 2,
            intersections: 1,
            skipped_records: 0,
            requests: vec![RequestSample {
                method: "GET".into(),
                route: "/v1/cameras/{id}".into(),
                status: 404,
                count: 7,
            }],
        });
        for line in [
            "streetscope_registry_cameras 3",
            "streetscope_registry_cameras_enabled 2",
            "streetscope_registry_intersections 1",
            "streetscope_registry_requests_total{method=\"GET\",route=\"/v1/cameras/{id}\",status=\"404\"} 7",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
