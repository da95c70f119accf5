//! The pipeline configuration: cameras with their counting lines, the detector,
//! the tracker and the output. Parsed from TOML with unknown fields rejected,
//! then [`PipelineConfig::validate`]d; every error names the field and the value.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::http::HttpServerConfig;
use crate::lines::{CountingLine, Direction};
use crate::zones::{validate_calibration, validate_zones};
pub use crate::zones::{CalibrationConfig, ZoneConfig, ZoneKind};

/// The whole configuration of a `streetscope run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The cameras to process; at least one.
    pub cameras: Vec<CameraConfig>,
    /// The object detector (model, thresholds).
    #[serde(default)]
    pub detector: DetectorConfig,
    /// The tracker that follows vehicles from frame to frame.
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// How cameras are kept running: stall watchdog and reconnection backoff.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Turning movements (approaches) and event-time windows.
    #[serde(default)]
    pub analytics: AnalyticsConfig,
    /// Where the result records go.
    #[serde(default)]
    pub output: OutputConfig,
    /// The HTTP server of `--status-addr` (`/healthz`, `/readyz`, `/status`,
    /// `/metrics`): request limits, connection bound and TLS.
    #[serde(default)]
    pub status: HttpServerConfig,
    /// The HTTP server of `--ui` (the dashboard): request limits, connection
    /// bound and TLS.
    #[serde(default)]
    pub dashboard: HttpServerConfig,
}

/// One camera at one intersection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique id of the camera, e.g. `"cam-5th-main-ne"`.
    pub id: String,
    /// Id of the intersection the camera watches.
    pub intersection: String,
    /// A file path (relative paths are taken from the config file's folder) or a
    /// URL: `file://`, `rtsp://`, `rtsps://` (H.264, H.265), `http://`,
    /// `https://` (MJPEG), or `v4l2:///dev/video0` (a V4L2 device).
    pub source: String,
    /// Frames per second to sample from the source, by timestamp.
    #[serde(default = "default_sample_fps")]
    pub sample_fps: f64,
    /// Counting lines in normalised image coordinates.
    #[serde(default)]
    pub lines: Vec<CountingLine>,
    /// Decode keyframes only (drop the others before the decoder): for
    /// `sample_fps` at or below the camera's keyframe rate, it saves most of the
    /// decoding cost. See docs/benchmarks.md.
    #[serde(default)]
    pub keyframes_only: bool,
    /// Encode frames as JPEG of this quality (1-100) instead of handing over raw
    /// RGB. Raw is best in one process; JPEG cuts what crosses Kafka about 25
    /// times (47 kB for a 1080p camera at quality 85 against 1.2 MB), and the
    /// detector decodes it. A JPEG frame is the letterbox's picture alone
    /// (640x360 of a 16:9 camera), in JPEG's colours (full range, BT.601); the
    /// detector puts it between the letterbox's bars.
    #[serde(default)]
    pub jpeg_quality: Option<u8>,
    /// How an RTSP camera's media travels: `auto` (UDP, falling back to TCP
    /// where UDP does not get through), `tcp` (inside the RTSP connection:
    /// through NAT and firewalls, and no loss) or `udp` (lowest latency).
    /// Ignored for other sources.
    #[serde(default)]
    pub rtsp_transport: RtspTransport,
    /// A pipeline template of the operator's own for this camera, replacing the
    /// built-in one of its source kind (`pipelines/templates/`): a file in the same
    /// format, with the same placeholders (`pipelines/templates/uri.pipeline`
    /// says what each one is; relative paths are taken from the config file's
    /// folder). Checked when the camera starts: a missing file or an
    /// unknown placeholder is an error that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
    /// How frames are numbered: `sequence` (one after another, continued across
    /// reconnections: live cameras) or `media` (by sampling slot of the
    /// position in the media: recordings — files, or recorded footage served
    /// over RTSP — which then play once, and whose replay after a reconnection
    /// or a failover to another ingest pod is recognised downstream as
    /// duplicates). Default: `media` for files, `sequence` for live sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_ids: Option<FrameIds>,
    /// Zones in normalised image coordinates: occupancy, dwell time and (kind
    /// `queue`) the queue of a lane.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Ground-plane calibration (four image points and their positions in metres),
    /// for speeds in km/h. None: no speeds.
    #[serde(default)]
    pub calibration: Option<Box<CalibrationConfig>>,
}

/// How a camera's frames are numbered (see `CameraConfig::frame_ids`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameIds {
    /// One after another, continued across reconnections.
    Sequence,
    /// By sampling slot of the position in the media.
    Media,
}

/// The transport of an RTSP camera's media (see `CameraConfig::rtsp_transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransport {
    /// UDP, falling back to TCP.
    #[default]
    Auto,
    /// RTP interleaved in the RTSP (TCP) connection.
    Tcp,
    /// RTP over UDP only.
    Udp,
}

/// How cameras are kept running. Live cameras (RTSP, HTTP) that fail, stall or
/// end are reconnected with exponential backoff and jitter, forever; files run once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// No decoded frame for this many seconds and the camera's pipeline is torn
    /// down and restarted (the stall watchdog).
    #[serde(default = "default_stall_timeout_s")]
    pub stall_timeout_s: f64,
    /// Delay before the first reconnection, in milliseconds.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest delay between two reconnections, in seconds (the backoff's cap).
    #[serde(default = "default_max_backoff_s")]
    pub max_backoff_s: f64,
    /// Growth of the delay per failed attempt (at least 1).
    #[serde(default = "default_backoff_multiplier")]
    pub backoff_multiplier: f64,
    /// Fraction of each delay, in [0, 1], randomly taken off it, so that cameras
    /// behind one failed switch do not all reconnect at the same instant.
    #[serde(default = "default_backoff_jitter")]
    pub backoff_jitter: f64,
    /// A connection that streamed this many seconds was healthy: the next failure
    /// starts the backoff over. So was one whose stream ended normally (end of
    /// stream, not an error) after giving frames, however soon: a camera that
    /// ends its sessions every few seconds is reconnected after
    /// `initial_backoff_ms` each time.
    #[serde(default = "default_healthy_after_s")]
    pub healthy_after_s: f64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            stall_timeout_s: default_stall_timeout_s(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_s: default_max_backoff_s(),
            backoff_multiplier: default_backoff_multiplier(),
            backoff_jitter: default_backoff_jitter(),
            healthy_after_s: default_healthy_after_s(),
        }
    }
}

fn default_stall_timeout_s() -> f64 {
    10.0
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_s() -> f64 {
    30.0
}
fn default_backoff_multiplier() -> f64 {
    2.0
}
fn default_backoff_jitter() -> f64 {
    0.2
}
fn default_healthy_after_s() -> f64 {
    30.0
}

/// The object detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Path of the ONNX model. When absent, the `STREETSCOPE_MODEL` variable, else
    /// the model that the set-up script makes
    /// (`~/.cache/streetscope/models/yolo11n_det_u8.onnx`: the vehicle model cut to
    /// boxes and classes and taking the decoded image's bytes, same detections,
    /// faster); the original it is made from,
    /// `~/.cache/streetscope/models/yolo11n_seg_fp16.onnx`, can be named here.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Minimum class score of a detection.
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// IoU above which non-maximum suppression removes the weaker box.
    #[serde(default = "default_iou")]
    pub iou: f32,
    /// Suppress overlapping boxes across classes. On by default: a vehicle whose
    /// class flickers (bus/tuktuk) would otherwise leave two boxes and split its track.
    #[serde(default = "default_true")]
    pub class_agnostic_nms: bool,
    /// Class names, replacing those of the model's metadata (in class-id order).
    #[serde(default)]
    pub class_names: Option<Vec<String>>,
    /// Model input `[width, height]`, replacing the model's `imgsz` metadata
    /// (for models exported with a dynamic size). Must match a fixed-size model.
    #[serde(default)]
    pub input_size: Option<[u32; 2]>,
    /// Runs of the model at once, each on its own copy of the model (its own
    /// session) and its own threads, each on a batch of its own. 0 (the
    /// default): on a CPU (ONNX Runtime's CPU provider, OpenVINO on the `CPU`
    /// device) the cores this process may use, at most 4; on a GPU 1. On two
    /// cores two single-thread runs gave 1.0-1.2x the frames/s of one run on
    /// both cores with OpenVINO (never less) and 1.4-1.6x with the CPU
    /// provider, and the JPEG decode then costs only its own time
    /// (docs/benchmarks.md); a frame takes one core's time, about twice as long.
    /// Each run holds the model's memory (about 55 MB for the default model on
    /// OpenVINO, 100 MB on the CPU provider). 1: one run on all the cores.
    #[serde(default)]
    pub streams: usize,
    /// Threads ONNX Runtime uses inside an operator, in each run (`streams`).
    /// 0 (the default): the cores this process may use divided among the runs
    /// (at least 1) — the CPUs of its scheduling affinity capped by its cgroup
    /// CPU quota rounded down (a pod's `limits.cpu`, cgroup v2 `cpu.max` or v1
    /// `cpu.cfs_quota_us`), not the host's cores.
    #[serde(default)]
    pub threads: usize,
    /// Whether ONNX Runtime's intra-op threads spin (busy-wait) for work
    /// instead of sleeping. Off by default (ONNX Runtime's own default is on):
    /// when anything else shares the cores (ingest and tracking in
    /// `streetscope run`, other pods on the node, a CPU quota that spinning
    /// uses up) the spinning threads take the CPU that work needs, and the
    /// detector ran 1.35-1.6x faster without (docs/benchmarks.md). Turn it on
    /// for a detector that has its cores to itself and no CPU quota: there the
    /// CPU provider measured about 15 % faster with it. OpenVINO, the default
    /// provider on x86-64, runs the model on its own threads: no measurable
    /// difference there.
    #[serde(default)]
    pub intra_op_spinning: bool,
    /// Largest batch of frames (across cameras) run through the model at once.
    /// Batches above 1 need a model with a dynamic batch: set-up and the
    /// images carry the default model with one,
    /// `models/yolo11n_det_u8_batch.onnx` (for GPUs; on a CPU it runs slower
    /// than the default, at any batch), and Ultralytics exports one with
    /// `dynamic=True`.
    #[serde(default = "default_one")]
    pub max_batch: u32,
    /// Longest time a frame waits for others to fill a batch, in milliseconds.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Threads decoding and converting frames while the model runs.
    #[serde(default = "default_one")]
    pub preprocess_threads: u32,
    /// Under overload, skip frames older than this many milliseconds instead of
    /// processing them late; each is counted. Age is taken from the capture time
    /// for live cameras, and from arrival at the detector for files. 0 processes all.
    #[serde(default)]
    pub shed_stale_ms: u64,
    /// Execution providers in order of preference. Each one that this build of
    /// ONNX Runtime lacks, or that fails to start, is skipped with a log line
    /// saying why; `cpu` always works.
    #[serde(default = "default_providers")]
    pub providers: Vec<Provider>,
    /// Settings of the TensorRT provider.
    #[serde(default)]
    pub tensorrt: TensorRtConfig,
    /// Settings of the CUDA provider.
    #[serde(default)]
    pub cuda: CudaConfig,
    /// Settings of the OpenVINO provider.
    #[serde(default)]
    pub openvino: OpenVinoConfig,
}

/// An ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// NVIDIA TensorRT: fastest on NVIDIA GPUs; builds an engine per model and shape.
    Tensorrt,
    /// NVIDIA CUDA.
    Cuda,
    /// Intel OpenVINO: compiles the model for the CPU (any x86-64 with AVX2; it
    /// uses AVX-512 and AMX where the CPU has them). 1.17x (Intel Xeon) to 1.27x
    /// (AMD EPYC Zen 5) ONNX Runtime's own CPU provider on the vehicle model,
    /// with the same detections (docs/benchmarks.md). Needs ONNX Runtime's OpenVINO build, which
    /// `scripts/setup.sh` installs on x86-64.
    Openvino,
    /// The CPU, with ONNX Runtime's own kernels.
    Cpu,
}

impl Provider {
    /// Every provider, in the default order of preference.
    pub const ALL: [Provider; 4] = [Provider::Tensorrt, Provider::Cuda, Provider::Openvino, Provider::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Tensorrt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Openvino => "openvino",
            Provider::Cpu => "cpu",
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Provider::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<_> = Provider::ALL.iter().map(|p| p.name()).collect();
            format!("unknown provider {s:?}: use {}", names.join(", "))
        })
    }
}

/// The TensorRT execution provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorRtConfig {
    /// GPU to run on.
    #[serde(default)]
    pub device_id: u32,
    /// Build FP16 engines (about twice the speed of FP32 on recent GPUs).
    #[serde(default = "default_true")]
    pub fp16: bool,
    /// Where built engines are kept and looked for. Put it on a volume so that a
    /// restarted or new pod loads the engine instead of rebuilding it (minutes).
    /// Default: `engines/` in the cache folder (`~/.cache/streetscope`).
    #[serde(default)]
    pub engine_cache_dir: Option<PathBuf>,
    /// Scratch GPU memory TensorRT may use while building, in bytes.
    #[serde(default = "default_trt_workspace")]
    pub workspace_bytes: u64,
    /// Smallest batch the engine is built for (models with a dynamic batch).
    #[serde(default = "default_one")]
    pub min_batch: u32,
    /// The batch TensorRT optimises for.
    #[serde(default = "default_one")]
    pub opt_batch: u32,
    /// Largest batch the engine accepts.
    #[serde(default = "default_one")]
    pub max_batch: u32,
}

/// The CUDA execution provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CudaConfig {
    /// GPU to run on.
    #[serde(default)]
    pub device_id: u32,
}

/// The OpenVINO execution provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenVinoConfig {
    /// OpenVINO device: `CPU` (the default), or `GPU` / `GPU.0` for an Intel GPU
    /// where the image ships OpenVINO's GPU plugin (the CPU image does not).
    #[serde(default = "default_openvino_device")]
    pub device: String,
    /// Arithmetic precision: `f32` (the default) keeps the detections of ONNX
    /// Runtime's CPU provider; `bf16` runs on the bfloat16 units of CPUs that
    /// have them (AVX512-BF16, AMX) — several times faster, with small numeric
    /// differences: check your counts before choosing it (docs/benchmarks.md).
    #[serde(default)]
    pub precision: OpenVinoPrecision,
}

/// Arithmetic precision of the OpenVINO provider on the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpenVinoPrecision {
    /// 32-bit floating point, as ONNX Runtime's CPU provider computes.
    #[default]
    F32,
    /// bfloat16 where the CPU has bfloat16 instructions (f32 elsewhere).
    Bf16,
}

impl OpenVinoPrecision {
    /// The name in configuration files, and OpenVINO's for the CPU plugin's
    /// inference precision hint.
    pub fn name(self) -> &'static str {
        match self {
            OpenVinoPrecision::F32 => "f32",
            OpenVinoPrecision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for OpenVinoPrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [OpenVinoPrecision::F32, OpenVinoPrecision::Bf16]
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| format!("unknown precision {s:?}: use f32 or bf16"))
    }
}

impl Default for OpenVinoConfig {
    fn default() -> Self {
        Self { device: default_openvino_device(), precision: OpenVinoPrecision::default() }
    }
}

impl OpenVinoConfig {
    /// Whether the device is the CPU (`CPU`, or a `CPU`-led name such as
    /// `CPU.0`): the model then runs on the process's cores.
    pub fn on_cpu(&self) -> bool {
        self.device.starts_with("CPU")
    }
}

fn default_openvino_device() -> String {
    "CPU".to_owned()
}

impl Default for TensorRtConfig {
    fn default() -> Self {
        Self {
            device_id: 0,
            fp16: true,
            engine_cache_dir: None,
            workspace_bytes: default_trt_workspace(),
            min_batch: 1,
            opt_batch: 1,
            max_batch: 1,
        }
    }
}

fn default_providers() -> Vec<Provider> {
    Provider::ALL.to_vec()
}
fn default_trt_workspace() -> u64 {
    2 << 30
}
fn default_max_wait_ms() -> u64 {
    5
}
fn default_one() -> u32 {
    1
}

/// The tracker that links detections of consecutive frames: ByteTrack, with a
/// Kalman motion model. Detections are matched to tracks in two stages, the
/// high-score ones first and then the low-score ones, so that a vehicle whose
/// score drops for a few frames (half hidden, blurred) keeps its track while a
/// low-score box alone never starts one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// Minimum IoU between a track's predicted box and a high-score detection to
    /// match them (also for tracks not yet confirmed).
    #[serde(default = "default_match_iou")]
    pub match_iou: f32,
    /// The lost-track buffer: a confirmed track without a matching detection
    /// moves on by its velocity and ends after twice this many frames (a
    /// vehicle hidden in view: an occlusion, a run of misses), or at once when
    /// its vehicle has left the picture by an edge.
    #[serde(default = "default_max_missed")]
    pub max_missed: u32,
    /// Matches in a row before a track is confirmed and may count; a track not
    /// yet confirmed ends at its first frame without a match.
    #[serde(default = "default_min_hits")]
    pub min_hits: u32,
    /// Detections scoring at least this are matched in the first stage and may
    /// start tracks.
    #[serde(default = "default_high_score")]
    pub high_score: f32,
    /// Detections scoring at least this (and less than `high_score`) are matched,
    /// in the second stage, only to tracks seen in the previous frame; lower
    /// ones are ignored. Set the detector's `confidence` this low or lower for
    /// the second stage to see them.
    #[serde(default = "default_low_score")]
    pub low_score: f32,
    /// A high-score detection that matches no track starts a new one only if it
    /// scores at least this (the birth threshold; at least `high_score`).
    #[serde(default = "default_new_track_score")]
    pub new_track_score: f32,
    /// Minimum IoU between a track's predicted box and a low-score detection to
    /// match them (stricter than `match_iou`: low scores are less trustworthy).
    #[serde(default = "default_low_match_iou")]
    pub low_match_iou: f32,
    /// Detections of the whole vehicle (box not touching the image edge) a track
    /// needs before its class vote is trusted and its crossings are reported;
    /// a track that ends sooner reports them when it ends. Vehicles half out of
    /// the picture are often misclassified.
    #[serde(default = "default_settle_views")]
    pub settle_views: u32,
    /// Half-width of the dead band around each counting line, in normalised image
    /// units perpendicular to the line (0.01 is about 7 px across a horizontal line
    /// at 720p). A crossing counts only when a track's reference point, last seen
    /// beyond the band on one side, is seen beyond it on the other, so the jitter
    /// of a box that stands on a line never counts. 0 counts every change of side.
    #[serde(default = "default_line_hysteresis")]
    pub line_hysteresis: f64,
}

/// Where results go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// JSON Lines file for the result records. None: `streetscope-results.jsonl`
    /// in the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl OutputConfig {
    /// The results file: the configuration's, else the default.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(DEFAULT_OUTPUT))
    }
}

/// Per-intersection analytics beyond line counts: turning movements and
/// event-time windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// The approaches of each camera's intersection, each tied to one of the
    /// camera's counting lines or to one of its zones. A vehicle that crosses one
    /// approach's line in its entering direction and another's in its exiting
    /// direction makes a turning movement from the first to the second; with
    /// zones, a vehicle first seen in one approach's zone that then keeps to
    /// another's. None: no turning movements.
    #[serde(default)]
    pub approaches: Vec<ApproachConfig>,
    /// Lengths of the event-time tumbling windows, seconds. Each window is
    /// aligned to the Unix epoch and files records by their frame's capture time.
    /// Empty: no windows.
    #[serde(default = "default_window_lengths_s")]
    pub window_lengths_s: Vec<u32>,
    /// How long after a window's end, in capture time, records may still come for
    /// it, seconds. A window closes once every camera of its intersection has
    /// seen a frame captured this long after its end; what comes for it later is
    /// counted as late. Cover the delay of crossings held until a track is
    /// confirmed and its class settled (a few frames) or until the track ends.
    #[serde(default = "default_allowed_lateness_s")]
    pub allowed_lateness_s: f64,
    /// Speeds of tracks, and what counts as standing still in a queue.
    #[serde(default)]
    pub speed: SpeedConfig,
    /// Alerts: stale cameras, long queues, counts off their recent baseline.
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// How track speeds are measured, and what counts as standing still.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeedConfig {
    /// A track's speed is the slope of a straight line fitted (least squares) to
    /// its positions over this many seconds: longer is smoother and lags more.
    #[serde(default = "default_smoothing_s")]
    pub smoothing_s: f64,
    /// A vehicle in a queue zone slower than this is queued, km/h (cameras with a
    /// calibration).
    #[serde(default = "default_queue_max_kmh")]
    pub queue_max_kmh: f64,
    /// The same for cameras without a calibration, in image heights per second.
    #[serde(default = "default_queue_max_image_speed")]
    pub queue_max_image_speed: f64,
}

impl Default for SpeedConfig {
    fn default() -> Self {
        Self {
            smoothing_s: default_smoothing_s(),
            queue_max_kmh: default_queue_max_kmh(),
            queue_max_image_speed: default_queue_max_image_speed(),
        }
    }
}

fn default_smoothing_s() -> f64 {
    1.0
}
fn default_queue_max_kmh() -> f64 {
    5.0
}
fn default_queue_max_image_speed() -> f64 {
    0.02
}

/// When alerts are raised and cleared. Time is event time (capture times), as
/// everywhere in the analytics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// A camera that has delivered no frame for this many seconds, while other
    /// cameras (or the stage's clock) moved on, is stale: an alert is raised, and
    /// its watermark no longer holds its intersection's windows open (they close
    /// without it, marked incomplete). Its next frame clears the alert. 0: never stale.
    #[serde(default = "default_camera_stale_s")]
    pub camera_stale_s: f64,
    /// Queue alert: raised when a lane's queue has been at least this many
    /// vehicles for `queue_for_s`. 0: no queue alerts.
    #[serde(default = "default_queue_length")]
    pub queue_length: u32,
    /// How long the queue must stay at or over `queue_length`, seconds; dips under
    /// it shorter than `queue_clear_s` (a queue moving up on a green) do not end it.
    #[serde(default = "default_queue_for_s")]
    pub queue_for_s: f64,
    /// A raised queue alert clears once the queue has stayed under `queue_length`
    /// this long, seconds; set it longer than a green.
    #[serde(default = "default_queue_clear_s")]
    pub queue_clear_s: f64,
    /// Count anomalies are judged on windows of this length (one of
    /// `window_lengths_s`); default the shortest. 0: no count anomalies.
    #[serde(default)]
    pub anomaly_window_s: Option<u32>,
    /// The baseline of a count is its median over this many previous windows (not
    /// anomalous, camera not stale); an anomaly lasting this many windows becomes
    /// the new baseline.
    #[serde(default = "default_anomaly_baseline_windows")]
    pub anomaly_baseline_windows: u32,
    /// Counts whose baseline is below this are not judged (too few to tell).
    #[serde(default = "default_anomaly_min_baseline")]
    pub anomaly_min_baseline: u64,
    /// A window's count at or below this fraction of its baseline is an anomaly (a drop).
    #[serde(default = "default_anomaly_low_ratio")]
    pub anomaly_low_ratio: f64,
    /// A window's count at or above this multiple of its baseline is an anomaly (a surge).
    #[serde(default = "default_anomaly_high_ratio")]
    pub anomaly_high_ratio: f64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            camera_stale_s: default_camera_stale_s(),
            queue_length: default_queue_length(),
            queue_for_s: default_queue_for_s(),
            queue_clear_s: default_queue_clear_s(),
            anomaly_window_s: None,
            anomaly_baseline_windows: default_anomaly_baseline_windows(),
            anomaly_min_baseline: default_anomaly_min_baseline(),
            anomaly_low_ratio: default_anomaly_low_ratio(),
            anomaly_high_ratio: default_anomaly_high_ratio(),
        }
    }
}

fn default_camera_stale_s() -> f64 {
    30.0
}
fn default_queue_length() -> u32 {
    10
}
fn default_queue_for_s() -> f64 {
    60.0
}
fn default_queue_clear_s() -> f64 {
    30.0
}
fn default_anomaly_baseline_windows() -> u32 {
    6
}
fn default_anomaly_min_baseline() -> u64 {
    10
}
fn default_anomaly_low_ratio() -> f64 {
    0.5
}
fn default_anomaly_high_ratio() -> f64 {
    2.0
}

impl AlertsConfig {
    /// The window length count anomalies are judged on, if any.
    pub fn anomaly_window(&self, window_lengths_s: &[u32]) -> Option<u32> {
        match self.anomaly_window_s {
            Some(0) => None,
            Some(l) => Some(l),
            None => window_lengths_s.iter().copied().min(),
        }
    }
}

/// One approach of an intersection as one camera sees it: a counting line
/// across it (`line`) or a zone over it (`zone`), exactly one of the two.
///
/// With a line, a vehicle enters by crossing the line in the `entering`
/// direction and leaves by crossing another approach's line the other way.
/// With a zone (the approach's road, drawn from the junction outwards, not
/// overlapping another approach's zone), a vehicle entered from the approach
/// whose zone holds the first of its positions that lie in any approach's zone,
/// and left by another approach once it has kept to that one's zone for three
/// positions in a row (or was last seen there when its track ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproachConfig {
    /// Id of the camera.
    pub camera: String,
    /// Name of the approach, e.g. `"north"`: the `from` and `to` of turning movements.
    pub name: String,
    /// Name of the camera's counting line across the approach (or set `zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Name of the camera's zone (`cameras.zones`) over the approach (or set `line`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The direction of a crossing of `line` that enters the intersection; the
    /// other direction leaves it (default `forward`). Only for a line: a zone
    /// approach refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entering: Option<Direction>,
    /// The intersection's leg this approach is, by the compass: `n`, `s`, `e`
    /// or `w` (a leg of a skewed junction by its nearest point). Turning-movement
    /// reports (`streetscope report`) derive U/L/T/R and the travel direction
    /// (NB enters on the south leg) from it. None: the approach is left out of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<CompassLeg>,
}

/// A leg of an intersection by the compass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompassLeg {
    N,
    E,
    S,
    W,
}

impl CompassLeg {
    /// All four, clockwise from north.
    pub const ALL: [CompassLeg; 4] = [CompassLeg::N, CompassLeg::E, CompassLeg::S, CompassLeg::W];

    /// `"N"`, `"E"`, `"S"` or `"W"`.
    pub fn letter(self) -> &'static str {
        match self {
            CompassLeg::N => "N",
            CompassLeg::E => "E",
            CompassLeg::S => "S",
            CompassLeg::W => "W",
        }
    }

    /// Quarter turns clockwise from north (N 0, E 1, S 2, W 3).
    pub fn quarter(self) -> u8 {
        match self {
            CompassLeg::N => 0,
            CompassLeg::E => 1,
            CompassLeg::S => 2,
            CompassLeg::W => 3,
        }
    }
}

/// What the approaches checked so far have taken, to check the next against:
/// lines and zones (an approach each), and the polygons of zone approaches
/// (which must not overlap).
#[derive(Debug, Default)]
pub struct ApproachTargets<'a> {
    taken: std::collections::HashSet<(&'a str, &'static str, &'a str)>,
    /// (camera, approach, zone, polygon) of zone approaches.
    zones: Vec<(&'a str, &'a str, &'a str, &'a [[f64; 2]])>,
    /// (camera, leg) of approaches with a compass leg.
    legs: std::collections::HashSet<(&'a str, CompassLeg)>,
}

impl ApproachConfig {
    /// An approach across counting line `line`, entered by crossing it `entering`.
    pub fn line(camera: &str, name: &str, line: &str, entering: Direction) -> Self {
        Self {
            camera: camera.into(),
            name: name.into(),
            line: Some(line.into()),
            zone: None,
            entering: Some(entering),
            leg: None,
        }
    }

    /// The direction of a crossing of the approach's line that enters the
    /// intersection (`forward` unless set).
    pub fn entering(&self) -> Direction {
        self.entering.unwrap_or(Direction::Forward)
    }

    /// An approach over zone `zone`.
    pub fn zone(camera: &str, name: &str, zone: &str) -> Self {
        Self {
            camera: camera.into(),
            name: name.into(),
            line: None,
            zone: Some(zone.into()),
            entering: None,
            leg: None,
        }
    }

    /// Checks that the approach names exactly one of a line and a zone, that
    /// camera `cam` (the approach's) has it, that no approach before it took
    /// it, that a zone approach's zone overlaps no other approach's zone and
    /// that it sets no `entering`; `taken` holds what the approaches before it
    /// took. Reports each problem once, to `bad(field, value, reason)` with the
    /// field's name (`"line"`, `"zone"` or `"entering"`).
    pub fn check_target<'a>(
        &'a self,
        cam: &'a CameraConfig,
        taken: &mut ApproachTargets<'a>,
        mut bad: impl FnMut(&str, String, &str),
    ) {
        if let Some(leg) = self.leg {
            if !taken.legs.insert((&self.camera, leg)) {
                bad(
                    "leg",
                    leg.letter().to_lowercase(),
                    "another approach of this camera is this leg: one approach per leg, or a vehicle's movement \
                     would be ambiguous",
                );
            }
        }
        let taken_lines_and_zones = &mut taken.taken;
        match (&self.line, &self.zone) {
            (None, None) => bad("line", "none".into(), "an approach needs a counting line (`line`) or a zone (`zone`)"),
            (Some(_), Some(zone)) => {
                bad("zone", format!("{zone:?}"), "an approach has a line or a zone, not both: remove one")
            }
            (Some(line), None) => {
                if !cam.lines.iter().any(|l| &l.name == line) {
                    bad("line", format!("{line:?}"), "the camera has no counting line of this name");
                } else if !taken_lines_and_zones.insert((&self.camera, "line", line)) {
                    bad("line", format!("{line:?}"), "a line can belong to one approach only");
                }
            }
            (None, Some(zone)) => {
                if let Some(entering) = self.entering {
                    bad(
                        "entering",
                        format!("{entering:?}").to_lowercase(),
                        "only a line approach has an entering direction; a zone approach's vehicles enter \
                         from its zone: remove it",
                    );
                }
                let Some(z) = cam.zones.iter().find(|z| &z.name == zone) else {
                    bad("zone", format!("{zone:?}"), "the camera has no zone of this name");
                    return;
                };
                if !taken_lines_and_zones.insert((&self.camera, "zone", zone)) {
                    bad("zone", format!("{zone:?}"), "a zone can belong to one approach only");
                    return;
                }
                let overlapping = taken.zones.iter().find(|(camera, _, _, polygon)| {
                    *camera == self.camera && crate::zones::polygons_overlap(polygon, &z.polygon)
                });
                // Only zones that passed are checked against: one problem, one report.
                if let Some((_, approach, other, _)) = overlapping {
                    bad(
                        "zone",
                        format!("{zone:?}"),
                        &format!(
                            "overlaps zone {other:?} of approach {approach:?}: a vehicle in both could have come \
                             from either; approach zones may touch but not overlap"
                        ),
                    );
                    return;
                }
                taken.zones.push((&self.camera, &self.name, zone, &z.polygon));
            }
        }
    }
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            approaches: Vec::new(),
            window_lengths_s: default_window_lengths_s(),
            allowed_lateness_s: default_allowed_lateness_s(),
            speed: SpeedConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

fn default_window_lengths_s() -> Vec<u32> {
    vec![60, 300, 900]
}
fn default_allowed_lateness_s() -> f64 {
    10.0
}

impl AnalyticsConfig {
    /// Checks every field against the cameras; returns all the problems found,
    /// each naming its field (under `analytics.`) and value.
    pub fn validate(&self, cameras: &[CameraConfig]) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut bad = |field: String, value: String, reason: &str| {
            errs.push(FieldError { field, value, reason: reason.to_owned() })
        };
        let mut names = std::collections::HashSet::new();
        let mut taken = ApproachTargets::default();
        for (i, a) in self.approaches.iter().enumerate() {
            let at = |f: &str| format!("analytics.approaches[{i}].{f}");
            let Some(cam) = cameras.iter().find(|c| c.id == a.camera) else {
                bad(at("camera"), format!("{:?}", a.camera), "no camera has this id");
                continue;
            };
            if a.name.trim().is_empty() {
                bad(at("name"), format!("{:?}", a.name), "must not be empty");
            } else if !names.insert((a.camera.as_str(), a.name.as_str())) {
                bad(at("name"), format!("{:?}", a.name), "approach names must be unique per camera");
            }
            a.check_target(cam, &mut taken, |f, v, r| bad(at(f), v, r));
        }
        for (i, &len) in self.window_lengths_s.iter().enumerate() {
            if !(1..=86_400).contains(&len) {
                bad(format!("analytics.window_lengths_s[{i}]"), len.to_string(), "must be in [1, 86400] seconds");
            } else if self.window_lengths_s[..i].contains(&len) {
                bad(format!("analytics.window_lengths_s[{i}]"), len.to_string(), "listed twice");
            }
        }
        if !(self.allowed_lateness_s.is_finite() && (0.0..=3600.0).contains(&self.allowed_lateness_s)) {
            bad(
                "analytics.allowed_lateness_s".into(),
                self.allowed_lateness_s.to_string(),
                "must be in [0, 3600] seconds",
            );
        }
        let mut range = |field: &str, v: f64, lo: f64, hi: f64| {
            if !(v.is_finite() && v >= lo && v <= hi) {
                bad(format!("analytics.{field}"), v.to_string(), &format!("must be in [{lo}, {hi}]"));
            }
        };
        let (sp, al) = (&self.speed, &self.alerts);
        range("speed.smoothing_s", sp.smoothing_s, 0.2, 10.0);
        range("speed.queue_max_kmh", sp.queue_max_kmh, 0.0, 50.0);
        range("speed.queue_max_image_speed", sp.queue_max_image_speed, 0.0, 1.0);
        range("alerts.camera_stale_s", al.camera_stale_s, 0.0, 86_400.0);
        range("alerts.queue_for_s", al.queue_for_s, 0.0, 86_400.0);
        range("alerts.queue_clear_s", al.queue_clear_s, 0.0, 86_400.0);
        range("alerts.anomaly_low_ratio", al.anomaly_low_ratio, 0.0, 1.0);
        range("alerts.anomaly_high_ratio", al.anomaly_high_ratio, 1.0, 1000.0);
        if let Some(l) = al.anomaly_window_s.filter(|&l| l != 0 && !self.window_lengths_s.contains(&l)) {
            bad(
                "analytics.alerts.anomaly_window_s".into(),
                l.to_string(),
                &format!("must be one of window_lengths_s {:?}, or 0 for no count anomalies", self.window_lengths_s),
            );
        }
        if !(1..=1000).contains(&al.anomaly_baseline_windows) {
            bad(
                "analytics.alerts.anomaly_baseline_windows".into(),
                al.anomaly_baseline_windows.to_string(),
                "must be in [1, 1000]",
            );
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

fn default_sample_fps() -> f64 {
    10.0
}
fn default_confidence() -> f32 {
    0.25
}
fn default_iou() -> f32 {
    0.7
}
fn default_true() -> bool {
    true
}
fn default_match_iou() -> f32 {
    0.3
}
fn default_max_missed() -> u32 {
    5
}
fn default_min_hits() -> u32 {
    3
}
fn default_settle_views() -> u32 {
    5
}
fn default_line_hysteresis() -> f64 {
    0.01
}
// ByteTrack's own thresholds: track_thresh 0.5, det_thresh = track_thresh + 0.1,
// low boxes from 0.1, second-stage match at IoU 0.5.
fn default_high_score() -> f32 {
    0.5
}
fn default_low_score() -> f32 {
    0.1
}
fn default_new_track_score() -> f32 {
    0.6
}
fn default_low_match_iou() -> f32 {
    0.5
}
/// The results file when the configuration names none (in the working directory).
const DEFAULT_OUTPUT: &str = "streetscope-results.jsonl";

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            model: None,
            confidence: default_confidence(),
            iou: default_iou(),
            class_agnostic_nms: true,
            class_names: None,
            input_size: None,
            streams: 0,
            threads: 0,
            intra_op_spinning: false,
            max_batch: 1,
            max_wait_ms: default_max_wait_ms(),
            preprocess_threads: 1,
            shed_stale_ms: 0,
            providers: default_providers(),
            tensorrt: TensorRtConfig::default(),
            cuda: CudaConfig::default(),
            openvino: OpenVinoConfig::default(),
        }
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            match_iou: default_match_iou(),
            max_missed: default_max_missed(),
            min_hits: default_min_hits(),
            high_score: default_high_score(),
            low_score: default_low_score(),
            new_track_score: default_new_track_score(),
            low_match_iou: default_low_match_iou(),
            settle_views: default_settle_views(),
            line_hysteresis: default_line_hysteresis(),
        }
    }
}

/// A configuration field with a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `cameras[0].lines[1].start`.
    pub field: String,
    /// The offending value as written.
    pub value: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.field, self.value, self.reason)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: invalid configuration:\n{}", .errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid { origin: String, errors: Vec<FieldError> },
}

/// URL schemes a camera source may use.
pub const SOURCE_SCHEMES: &[&str] = &["file", "rtsp", "rtsps", "http", "https", "v4l2"];

impl PipelineConfig {
    /// Parses TOML text; `origin` names it in errors (usually the file path).
    /// Every relative path in it is taken from `base_dir`, the file's folder
    /// ([`crate::paths`]).
    pub fn from_toml_str(text: &str, origin: &str, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg: PipelineConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if let Some(base) = base_dir {
            cfg.resolve_relative(base);
        }
        cfg.validate().map_err(|errors| ConfigError::Invalid { origin: origin.to_owned(), errors })?;
        Ok(cfg)
    }

    /// Checks every field; returns all the problems found, each naming its field and value.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        if self.cameras.is_empty() {
            errs.push(FieldError::new("cameras", "[]", "at least one camera is required"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, cam) in self.cameras.iter().enumerate() {
            errs.extend(cam.validate(&format!("cameras[{i}]")));
            if valid_id(&cam.id) && !seen.insert(cam.id.as_str()) {
                errs.push(FieldError::new(
                    format!("cameras[{i}].id"),
                    format!("{:?}", cam.id),
                    "camera ids must be unique",
                ));
            }
        }
        let mut bad = |field: String, value: String, reason: &str| {
            errs.push(FieldError { field, value, reason: reason.to_owned() })
        };
        let d = &self.detector;
        if !(d.confidence > 0.0 && d.confidence < 1.0) {
            bad("detector.confidence".into(), d.confidence.to_string(), "must be in (0, 1)");
        }
        if !(d.iou > 0.0 && d.iou <= 1.0) {
            bad("detector.iou".into(), d.iou.to_string(), "must be in (0, 1]");
        }
        if let Some(names) = &d.class_names {
            if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
                bad("detector.class_names".into(), format!("{names:?}"), "names must be non-empty");
            }
        }
        if let Some([w, h]) = d.input_size {
            if !(32..=4096).contains(&w) || !(32..=4096).contains(&h) || w % 32 != 0 || h % 32 != 0 {
                bad(
                    "detector.input_size".into(),
                    format!("[{w}, {h}]"),
                    "width and height: multiples of 32 in [32, 4096]",
                );
            }
        }
        if d.streams > 64 {
            bad("detector.streams".into(), d.streams.to_string(), "at most 64 (0: as many as the cores, at most 4)");
        }
        if !(1..=64).contains(&d.max_batch) {
            bad("detector.max_batch".into(), d.max_batch.to_string(), "must be in [1, 64]");
        }
        if !(1..=16).contains(&d.preprocess_threads) {
            bad("detector.preprocess_threads".into(), d.preprocess_threads.to_string(), "must be in [1, 16]");
        }
        if d.max_wait_ms > 1000 {
            bad("detector.max_wait_ms".into(), d.max_wait_ms.to_string(), "at most 1000 (a second)");
        }
        if d.providers.is_empty() {
            bad("detector.providers".into(), "[]".into(), "name at least one of tensorrt, cuda, openvino, cpu");
        }
        for (i, p) in d.providers.iter().enumerate() {
            if d.providers[..i].contains(p) {
                bad(format!("detector.providers[{i}]"), format!("{:?}", p.name()), "listed twice");
            }
        }
        let ov = &d.openvino.device;
        if ov.is_empty() || ov.len() > 64 || !ov.chars().all(|c| c.is_ascii_alphanumeric() || "._:,".contains(c)) {
            bad(
                "detector.openvino.device".into(),
                format!("{ov:?}"),
                "an OpenVINO device name such as CPU, GPU or GPU.0 (letters, digits and . _ : ,)",
            );
        }
        let trt = &d.tensorrt;
        if !(1 <= trt.min_batch && trt.min_batch <= trt.opt_batch && trt.opt_batch <= trt.max_batch) {
            bad(
                "detector.tensorrt".into(),
                format!("min_batch {} opt_batch {} max_batch {}", trt.min_batch, trt.opt_batch, trt.max_batch),
                "need 1 <= min_batch <= opt_batch <= max_batch",
            );
        }
        let t = &self.tracker;
        if !(t.match_iou > 0.0 && t.match_iou < 1.0) {
            bad("tracker.match_iou".into(), t.match_iou.to_string(), "must be in (0, 1)");
        }
        if t.min_hits == 0 {
            bad("tracker.min_hits".into(), "0".into(), "must be at least 1");
        }
        if !(t.low_match_iou > 0.0 && t.low_match_iou < 1.0) {
            bad("tracker.low_match_iou".into(), t.low_match_iou.to_string(), "must be in (0, 1)");
        }
        if !(t.high_score > 0.0 && t.high_score <= 1.0) {
            bad("tracker.high_score".into(), t.high_score.to_string(), "must be in (0, 1]");
        }
        if !(t.low_score >= 0.0 && t.low_score <= t.high_score) {
            bad("tracker.low_score".into(), t.low_score.to_string(), "must be in [0, high_score]");
        }
        if !(t.new_track_score >= t.high_score && t.new_track_score <= 1.0) {
            bad("tracker.new_track_score".into(), t.new_track_score.to_string(), "must be in [high_score, 1]");
        }
        if !(t.line_hysteresis.is_finite() && (0.0..=0.1).contains(&t.line_hysteresis)) {
            bad(
                "tracker.line_hysteresis".into(),
                t.line_hysteresis.to_string(),
                "must be in [0, 0.1] (normalised image units)",
            );
        }
        let i = &self.ingest;
        let mut range = |field: &str, v: f64, lo: f64, hi: f64| {
            if !(v.is_finite() && v >= lo && v <= hi) {
                bad(format!("ingest.{field}"), v.to_string(), &format!("must be in [{lo}, {hi}]"));
            }
        };
        range("stall_timeout_s", i.stall_timeout_s, 0.5, 3600.0);
        range("initial_backoff_ms", i.initial_backoff_ms as f64, 10.0, 600_000.0);
        range("max_backoff_s", i.max_backoff_s, 0.1, 3600.0);
        range("backoff_multiplier", i.backoff_multiplier, 1.0, 10.0);
        range("backoff_jitter", i.backoff_jitter, 0.0, 1.0);
        range("healthy_after_s", i.healthy_after_s, 0.0, 86_400.0);
        if (i.initial_backoff_ms as f64) > i.max_backoff_s * 1000.0 {
            bad("ingest.initial_backoff_ms".into(), i.initial_backoff_ms.to_string(), "must not exceed max_backoff_s");
        }
        if let Err(e) = self.analytics.validate(&self.cameras) {
            errs.extend(e);
        }
        errs.extend(self.status.validate("status"));
        errs.extend(self.dashboard.validate("dashboard"));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

impl CameraConfig {
    /// Checks the camera's own fields (not what depends on other cameras, such as
    /// unique ids); returns every problem found. Field paths start with `prefix`
    /// (e.g. `cameras[2]`; empty for the camera's own fields, e.g. `sample_fps`).
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}.") };
        let mut more = Vec::new();
        let mut bad = |field: String, value: String, reason: &str| {
            more.push(FieldError { field, value, reason: reason.to_owned() })
        };
        let at = |f: &str| format!("{prefix}{f}");
        if !valid_id(&self.id) {
            bad(at("id"), format!("{:?}", self.id), "use 1-64 characters of letters, digits, '-', '_' or '.'");
        }
        if !valid_id(&self.intersection) {
            bad(
                at("intersection"),
                format!("{:?}", self.intersection),
                "use 1-64 characters of letters, digits, '-', '_' or '.'",
            );
        }
        if let Err(reason) = check_source(&self.source) {
            bad(at("source"), format!("{:?}", redact_url(&self.source)), &reason);
        }
        if let Some(q) = self.jpeg_quality.filter(|q| !(1..=100).contains(q)) {
            bad(at("jpeg_quality"), q.to_string(), "must be in [1, 100]");
        }
        if !(self.sample_fps.is_finite() && self.sample_fps > 0.0 && self.sample_fps <= 120.0) {
            bad(at("sample_fps"), self.sample_fps.to_string(), "must be in (0, 120]");
        }
        let mut names = std::collections::HashSet::new();
        for (j, line) in self.lines.iter().enumerate() {
            let at = |f: &str| format!("{prefix}lines[{j}].{f}");
            if line.name.trim().is_empty() {
                bad(at("name"), format!("{:?}", line.name), "must not be empty");
            } else if !names.insert(line.name.as_str()) {
                bad(at("name"), format!("{:?}", line.name), "line names must be unique per camera");
            }
            for (f, p) in [("start", line.start), ("end", line.end)] {
                if !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)) {
                    bad(at(f), format!("{p:?}"), "coordinates are normalised: each in [0, 1]");
                }
            }
            if (line.start[0] - line.end[0]).hypot(line.start[1] - line.end[1]) < 1e-3 {
                bad(at("end"), format!("{:?}", line.end), "the line's start and end must differ");
            }
            if line.forward == line.backward {
                bad(at("backward"), format!("{:?}", line.backward), "must differ from `forward`");
            }
            for (f, label) in [("name", &line.name), ("forward", &line.forward), ("backward", &line.backward)] {
                if label.chars().count() > MAX_LABEL_CHARS {
                    bad(at(f), format!("{} characters", label.chars().count()), "at most 64 characters");
                }
            }
        }
        validate_zones(&self.zones, &format!("{prefix}zones"), &mut more);
        if let Some(c) = &self.calibration {
            validate_calibration(c, &format!("{prefix}calibration"), &mut more);
        }
        more
    }
}

impl FieldError {
    /// A field error; `value` as the user wrote it (redact secrets first).
    pub fn new(field: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), value: value.into(), reason: reason.into() }
    }
}

/// The longest name or label of a line, zone or lane, in characters: they
/// travel in every record and metric label.
pub const MAX_LABEL_CHARS: usize = 64;

/// Whether `id` is a valid id of a camera or intersection: 1-64 letters, digits, `-`, `_` or `.`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn check_source(source: &str) -> Result<(), String> {
    if source.trim().is_empty() {
        return Err("must name a file or a URL".into());
    }
    // Ingest quotes the source in its pipeline: these would end or escape the quoting.
    if source.contains(['"', '\\']) {
        return Err("no double quotes or backslashes (in a URL, percent-encode them: %22, %5C)".into());
    }
    if let Some((scheme, rest)) = source.split_once("://") {
        if !SOURCE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
            return Err(format!("unsupported scheme {scheme:?}; use one of {}", SOURCE_SCHEMES.join(", ")));
        }
        if rest.is_empty() {
            return Err("the URL has nothing after the scheme".into());
        }
    }
    Ok(())
}

pub use crate::redact::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[cameras]]
        id = "cam-1"
        intersection = "main-and-5th"
        source = "clip.mp4"
        sample_fps = 10
        [[cameras.lines]]
        name = "west"
        start = [0.3, 1.0]
        end = [0.3, 0.1]
        forward = "eastbound"
        backward = "westbound"
    "#;

    #[test]
    fn parses_and_resolves_relative_sources() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "demo.toml", Some(Path::new("/etc/ss"))).unwrap();
        assert_eq!(cfg.cameras[0].source, "/etc/ss/clip.mp4");
        assert_eq!(cfg.detector, DetectorConfig::default());
        assert_eq!(cfg.cameras[0].lines[0].forward, "eastbound");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let text = GOOD.replace("sample_fps = 10", "sample_fsp = 10");
        let err = PipelineConfig::from_toml_str(&text, "demo.toml", None).unwrap_err().to_string();
        assert!(err.contains("sample_fsp"), "{err}");
        assert!(err.starts_with("demo.toml"), "{err}");
    }

    #[test]
    fn bad_values_name_the_field_and_the_value() {
        let text = GOOD
            .replace("start = [0.3, 1.0]", "start = [1.3, 1.0]")
            .replace("sample_fps = 10", "sample_fps = 0")
            .replace("clip.mp4", "ftp://host/clip");
        let err = PipelineConfig::from_toml_str(&text, "demo.toml", None).unwrap_err().to_string();
        assert!(err.contains("cameras[0].lines[0].start = [1.3, 1.0]"), "{err}");
        assert!(err.contains("cameras[0].sample_fps = 0"), "{err}");
        assert!(err.contains("cameras[0].source = \"ftp://host/clip\": unsupported scheme"), "{err}");
    }

    #[test]
    fn providers_default_to_gpu_first_and_are_checked() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        assert_eq!(cfg.detector.providers, [Provider::Tensorrt, Provider::Cuda, Provider::Openvino, Provider::Cpu]);
        let text = format!("{GOOD}\n[detector]\nproviders = [\"cpu\", \"cpu\"]\n[detector.tensorrt]\nmax_batch = 0\n");
        let err = PipelineConfig::from_toml_str(&text, "x", None).unwrap_err().to_string();
        assert!(err.contains("detector.providers[1] = \"cpu\": listed twice"), "{err}");
        assert!(err.contains("detector.tensorrt = min_batch 1 opt_batch 1 max_batch 0"), "{err}");
        let text = format!("{GOOD}\n[detector]\nproviders = [\"gpu\"]\n");
        let err = PipelineConfig::from_toml_str(&text, "x", None).unwrap_err().to_string();
        assert!(err.contains("gpu"), "{err}");
    }

    #[test]
    fn runs_of_the_model_at_once_default_to_the_cores_and_are_checked() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        assert_eq!((cfg.detector.streams, cfg.detector.threads), (0, 0), "both chosen from the cores");
        let text = format!("{GOOD}\n[detector]\nstreams = 2\nthreads = 1\n");
        let d = PipelineConfig::from_toml_str(&text, "x", None).unwrap().detector;
        assert_eq!((d.streams, d.threads), (2, 1));
        let text = format!("{GOOD}\n[detector]\nstreams = 65\n");
        let err = PipelineConfig::from_toml_str(&text, "x", None).unwrap_err().to_string();
        assert!(err.contains("detector.streams = 65: at most 64"), "{err}");
    }

    #[test]
    fn tracker_score_thresholds_default_to_bytetrack_and_are_checked() {
        let t = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap().tracker;
        assert_eq!((t.high_score, t.low_score, t.new_track_score, t.low_match_iou), (0.5, 0.1, 0.6, 0.5));
        for (bad, field, reason) in [
            ("low_score = 0.7", "tracker.low_score = 0.7", "must be in [0, high_score]"),
            ("new_track_score = 0.4", "tracker.new_track_score = 0.4", "must be in [high_score, 1]"),
            ("high_score = 0", "tracker.high_score = 0", "must be in (0, 1]"),
            ("low_match_iou = 1.5", "tracker.low_match_iou = 1.5", "must be in (0, 1)"),
        ] {
            let text = format!("{GOOD}\n[tracker]\n{bad}\n");
            let err = PipelineConfig::from_toml_str(&text, "x", None).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(reason), "{bad}: {err}");
        }
        let text = format!("{GOOD}\n[tracker]\nbirth_score = 0.5\n");
        assert!(PipelineConfig::from_toml_str(&text, "x", None).is_err(), "unknown fields are refused");
    }

    #[test]
    fn line_hysteresis_defaults_and_is_checked() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        assert_eq!(cfg.tracker.line_hysteresis, 0.01);
        let text = format!("{GOOD}\n[tracker]\nline_hysteresis = 0.0\n");
        assert_eq!(PipelineConfig::from_toml_str(&text, "x", None).unwrap().tracker.line_hysteresis, 0.0);
        for bad in ["-0.01", "0.5", "nan"] {
            let text = format!("{GOOD}\n[tracker]\nline_hysteresis = {bad}\n");
            let err = PipelineConfig::from_toml_str(&text, "x", None).unwrap_err().to_string();
            assert!(err.contains("tracker.line_hysteresis = "), "{err}");
            assert!(err.contains("must be in [0, 0.1]"), "{err}");
        }
    }

    #[test]
    fn analytics_defaults_and_is_checked() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        let text = r#"
            window_lengths_s = [60, 0, 60]
            allowed_lateness_s = -1
            [[approaches]]
            camera = "cam-1"
            name = "west"
            line = "west"
            [[approaches]]
            camera = "cam-1"
            name = "west"
            line = "east"
            entering = "backward"
            [[approaches]]
            camera = "cam-9"
            name = "x"
            line = "x"
        "#;
        let a: AnalyticsConfig = toml::from_str(text).unwrap();
        assert_eq!(a.approaches[0].entering(), Direction::Forward);
        let errs: Vec<String> = a.validate(&cfg.cameras).unwrap_err().iter().map(|e| e.to_string()).collect();
        let want = [
            "analytics.approaches[1].name = \"west\": approach names must be unique per camera",
            "analytics.approaches[1].line = \"east\": the camera has no counting line of this name",
            "analytics.approaches[2].camera = \"cam-9\": no camera has this id",
            "analytics.window_lengths_s[1] = 0: must be in [1, 86400] seconds",
            "analytics.window_lengths_s[2] = 60: listed twice",
            "analytics.allowed_lateness_s = -1: must be in [0, 3600] seconds",
        ];
        assert_eq!(errs, want);
        let d = AnalyticsConfig::default();
        assert_eq!((d.window_lengths_s.as_slice(), d.allowed_lateness_s), ([60, 300, 900].as_slice(), 10.0));
        assert!(d.validate(&cfg.cameras).is_ok());
        assert!(toml::from_str::<AnalyticsConfig>("window_length = [60]").is_err());
    }

    #[test]
    fn an_approach_names_its_compass_leg_once_per_camera() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        let text = r#"
            [[approaches]]
            camera = "cam-1"
            name = "west"
            line = "west"
            leg = "w"
            [[approaches]]
            camera = "cam-1"
            name = "east"
            line = "east"
            leg = "w"
        "#;
        let a: AnalyticsConfig = toml::from_str(text).unwrap();
        assert_eq!(a.approaches[0].leg, Some(CompassLeg::W));
        let errs: Vec<String> = a.validate(&cfg.cameras).unwrap_err().iter().map(|e| e.to_string()).collect();
        assert!(errs.iter().any(|e| e.starts_with("analytics.approaches[1].leg = w: another approach")), "{errs:?}");
        assert!(!errs.iter().any(|e| e.contains("approaches[0]")), "{errs:?}");
        assert!(toml::from_str::<AnalyticsConfig>("[[approaches]]\ncamera='c'\nname='n'\nleg='north'").is_err());
    }

    #[test]
    fn an_approach_has_a_line_or_a_zone_of_its_camera() {
        let text = format!(
            "{GOOD}{}",
            r#"
            [[cameras.zones]]
            name = "north_arm"
            polygon = [[0.4, 0.0], [0.6, 0.0], [0.6, 0.3], [0.4, 0.3]]
            [[cameras.zones]]
            name = "east_arm"
            polygon = [[0.7, 0.4], [1.0, 0.4], [1.0, 0.6], [0.7, 0.6]]
            [[cameras.zones]]
            name = "north_wide"
            polygon = [[0.3, 0.1], [0.7, 0.1], [0.7, 0.2], [0.3, 0.2]]
            [[cameras.zones]]
            name = "north_inner"
            polygon = [[0.45, 0.05], [0.55, 0.05], [0.55, 0.25], [0.45, 0.25]]
            [[cameras.zones]]
            name = "beside_north"
            polygon = [[0.6, 0.0], [0.7, 0.0], [0.7, 0.3], [0.6, 0.3]]
            [[analytics.approaches]]
            camera = "cam-1"
            name = "north"
            zone = "north_arm"
            [[analytics.approaches]]
            camera = "cam-1"
            name = "west"
            line = "west"
            "#
        );
        let cfg = PipelineConfig::from_toml_str(&text, "x", None).unwrap();
        let a = &cfg.analytics.approaches;
        assert_eq!(a[0], ApproachConfig::zone("cam-1", "north", "north_arm"));
        // `entering` left out: forward, and serialised as it was written.
        assert_eq!(
            a[1],
            ApproachConfig { entering: None, ..ApproachConfig::line("cam-1", "west", "west", Direction::Forward) }
        );
        assert_eq!(a[1].entering(), Direction::Forward);
        let bad = r#"
            [[approaches]]
            camera = "cam-1"
            name = "nothing"
            [[approaches]]
            camera = "cam-1"
            name = "both"
            line = "west"
            zone = "east_arm"
            [[approaches]]
            camera = "cam-1"
            name = "south"
            zone = "south_arm"
            [[approaches]]
            camera = "cam-1"
            name = "north"
            zone = "north_arm"
            [[approaches]]
            camera = "cam-1"
            name = "north_again"
            zone = "north_arm"
            [[approaches]]
            camera = "cam-1"
            name = "wide"
            zone = "north_wide"
            [[approaches]]
            camera = "cam-1"
            name = "inner"
            zone = "north_inner"
            [[approaches]]
            camera = "cam-1"
            name = "beside"
            zone = "beside_north"
            entering = "backward"
        "#;
        let a: AnalyticsConfig = toml::from_str(bad).unwrap();
        let errs: Vec<String> = a.validate(&cfg.cameras).unwrap_err().iter().map(|e| e.to_string()).collect();
        let want = [
            "analytics.approaches[0].line = none: an approach needs a counting line (`line`) or a zone (`zone`)",
            "analytics.approaches[1].zone = \"east_arm\": an approach has a line or a zone, not both: remove one",
            "analytics.approaches[2].zone = \"south_arm\": the camera has no zone of this name",
            "analytics.approaches[4].zone = \"north_arm\": a zone can belong to one approach only",
            "analytics.approaches[5].zone = \"north_wide\": overlaps zone \"north_arm\" of approach \"north\": a vehicle \
             in both could have come from either; approach zones may touch but not overlap",
            "analytics.approaches[6].zone = \"north_inner\": overlaps zone \"north_arm\" of approach \"north\": a \
             vehicle in both could have come from either; approach zones may touch but not overlap",
            // Touching north_arm along x = 0.6 is fine; `entering` is not.
            "analytics.approaches[7].entering = backward: only a line approach has an entering direction; a zone \
             approach's vehicles enter from its zone: remove it",
        ];
        assert_eq!(errs, want);
        // A line approach serialises without a zone, and the other way round.
        let json = serde_json::to_value(&cfg.analytics.approaches).unwrap();
        assert_eq!(json[0].get("line"), None);
        assert_eq!(json[1].get("zone"), None);
    }

    #[test]
    fn speed_and_alert_settings_default_and_are_checked() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        let a = &cfg.analytics;
        assert_eq!((a.speed.smoothing_s, a.speed.queue_max_kmh, a.alerts.camera_stale_s), (1.0, 5.0, 30.0));
        assert_eq!(a.alerts.anomaly_window(&a.window_lengths_s), Some(60));
        let text = r#"
            window_lengths_s = [60, 300]
            [speed]
            smoothing_s = 0
            [alerts]
            anomaly_window_s = 900
            anomaly_low_ratio = 1.5
            anomaly_baseline_windows = 0
        "#;
        let a: AnalyticsConfig = toml::from_str(text).unwrap();
        let errs: Vec<String> = a.validate(&cfg.cameras).unwrap_err().iter().map(|e| e.to_string()).collect();
        let want = [
            "analytics.speed.smoothing_s = 0: must be in [0.2, 10]",
            "analytics.alerts.anomaly_low_ratio = 1.5: must be in [0, 1]",
            "analytics.alerts.anomaly_window_s = 900: must be one of window_lengths_s [60, 300], or 0 for no count anomalies",
            "analytics.alerts.anomaly_baseline_windows = 0: must be in [1, 1000]",
        ];
        assert_eq!(errs, want);
        let off = AlertsConfig { anomaly_window_s: Some(0), ..AlertsConfig::default() };
        assert_eq!(off.anomaly_window(&[60]), None);
        assert!(toml::from_str::<AnalyticsConfig>("[alerts]\nstale_s = 3").is_err());
    }

    #[test]
    fn ingest_backoff_settings_are_checked() {
        let cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        assert_eq!(cfg.ingest, IngestConfig::default());
        let text = format!("{GOOD}\n[ingest]\nmax_backoff_s = 0.2\nbackoff_jitter = 1.5\n");
        let err = PipelineConfig::from_toml_str(&text, "x", None).unwrap_err().to_string();
        assert!(err.contains("ingest.backoff_jitter = 1.5: must be in [0, 1]"), "{err}");
        assert!(err.contains("ingest.initial_backoff_ms = 500: must not exceed max_backoff_s"), "{err}");
    }

    #[test]
    fn duplicate_camera_ids_are_refused() {
        let mut cfg = PipelineConfig::from_toml_str(GOOD, "x", None).unwrap();
        cfg.cameras.push(cfg.cameras[0].clone());
        let errs = cfg.validate().unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "cameras[1].id");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("rtsp://admin:s3cret@10.0.0.5:554/stream1"), "rtsp://admin:***@10.0.0.5:554/stream1");
        assert_eq!(redact_url("rtsp://admin@cam/x"), "rtsp://admin@cam/x");
        assert_eq!(redact_url("rtsp://cam/x?a=b@c"), "rtsp://cam/x?a=b@c");
        assert_eq!(redact_url("/tmp/a.mp4"), "/tmp/a.mp4");
    }

    #[test]
    fn bad_source_is_redacted_in_errors() {
        let text = GOOD.replace("clip.mp4", "gopher://u:pw@host/x");
        let err = PipelineConfig::from_toml_str(&text, "demo.toml", None).unwrap_err().to_string();
        assert!(!err.contains("pw@"), "{err}");
    }
}
