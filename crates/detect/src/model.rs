//! A loaded model: its head, class names and input size, read from the model's
//! outputs and Ultralytics' metadata.

use std::path::Path;

use std::time::Instant;

use ort::ep::{self, ArbitrarilyConfigurableExecutionProvider, ExecutionProvider};
use ort::logging::LogLevel;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};
use streetscope_contracts::config::Provider;

use crate::detector::DetectorOptions;
use crate::metadata::{parse_imgsz, parse_names};
use crate::DetectError;

/// Which kind of YOLO head the model ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// YOLOv8/YOLO11 detect: `[B, 4 + nc, N]`, boxes as centre/size, NMS needed.
    Detect,
    /// YOLOv8/YOLO11 segment: `[B, 4 + nc + nm, N]` plus prototypes `[B, nm, h, w]`.
    /// Boxes are decoded as for detect; masks are not used yet.
    Segment { masks: usize },
    /// YOLOv10/YOLO26 end-to-end: `[B, K, 6]` of `x1, y1, x2, y2, score, class`, no NMS.
    EndToEnd,
}

/// Element type of the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `[batch, 3, height, width]` floats in [0, 1], planar RGB.
    F32,
    /// As `F32`, in half precision.
    F16,
    /// `[batch, height, width, 3]` bytes: the letterboxed RGB image as decoded, with
    /// the scaling to [0, 1] and the transpose to planes inside the graph (the
    /// `det_u8` variant of set-up). The stage hands the decoder's output over as it is.
    U8,
}

impl Precision {
    /// The input's layout in words, for errors and logs.
    pub fn layout(self) -> &'static str {
        match self {
            Precision::F32 => "float32 [batch, 3, height, width]",
            Precision::F16 => "float16 [batch, 3, height, width]",
            Precision::U8 => "uint8 [batch, height, width, 3]",
        }
    }

    /// The input's shape for a batch of `n` images of `h` x `w`.
    pub fn shape(self, n: usize, h: usize, w: usize) -> [usize; 4] {
        match self {
            Precision::F32 | Precision::F16 => [n, 3, h, w],
            Precision::U8 => [n, h, w, 3],
        }
    }
}

/// What the rest of the detector needs to know about a model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: String,
    pub head: HeadKind,
    pub input_name: String,
    pub input_precision: Precision,
    /// Input height and width.
    pub input_hw: (u32, u32),
    /// Class names in id order (from metadata, or overridden in config).
    pub names: Vec<String>,
    /// Task as written in the metadata (`detect`, `segment`), if any.
    pub task: Option<String>,
    /// Whether the batch dimension is dynamic (else it is 1).
    pub dynamic_batch: bool,
}

/// A model ready to run.
#[derive(Debug)]
pub struct Model {
    pub session: Session,
    pub info: ModelInfo,
    /// The execution provider that runs the model (the first that started).
    pub provider: Provider,
}

fn shape_of(t: &ValueType) -> Vec<i64> {
    t.tensor_shape().map(|s| s.to_vec()).unwrap_or_default()
}

fn precision(t: &ValueType) -> Option<Precision> {
    match t.tensor_type()? {
        TensorElementType::Float32 => Some(Precision::F32),
        TensorElementType::Float16 => Some(Precision::F16),
        TensorElementType::Uint8 => Some(Precision::U8),
        _ => None,
    }
}

impl Model {
    /// Loads `path` with the execution providers of `opts`, in order, falling back
    /// past any that this ONNX Runtime lacks or that fails to start.
    /// `runs` sessions of it run at once: each gets its share of the cores.
    pub fn load(path: &Path, opts: &DetectorOptions, runs: usize) -> Result<Model, DetectError> {
        let env = crate::runtime::environment(&opts.providers)?;
        let p = path.display().to_string();
        let merr = |reason: String| DetectError::Model { path: p.clone(), reason };
        if !path.is_file() {
            return Err(merr("no such file (scripts/setup.sh fetches the default model)".into()));
        }
        let threads = opts.intra_threads_for(runs);
        let new_builder = || -> Result<SessionBuilder, DetectError> {
            session_builder(env, opts, threads).map_err(|e| merr(e.to_string()))
        };
        // TensorRT's optimisation profile needs the input's name and size: read them
        // from a CPU session first (a fraction of a second for YOLO models).
        let wants_trt = opts.providers.iter().take_while(|p| **p != Provider::Cpu).any(|p| *p == Provider::Tensorrt);
        let probe = if !(wants_trt && ep::TensorRT::is_available().unwrap_or(false)) {
            None
        } else {
            let s = new_builder()?.commit_from_file(path).map_err(|e| merr(e.to_string()))?;
            Some(inspect(&s, &p, opts)?)
        };
        let started = Instant::now();
        let mut builder = new_builder()?;
        let mut chosen = None;
        for &provider in &opts.providers {
            let result = match (provider, &probe) {
                (Provider::Tensorrt, Some(info)) => register(|| tensorrt(opts, info), &mut builder),
                (Provider::Tensorrt, None) => register::<ep::TensorRT>(|| unreachable!("no probe"), &mut builder),
                (Provider::Cuda, _) => {
                    register(|| ep::CUDA::default().with_device_id(opts.cuda.device_id as i32), &mut builder)
                }
                // OpenVINO checks its device here: one that is not there is skipped.
                (Provider::Openvino, _) => register(|| openvino(opts, threads, runs), &mut builder),
                // ort's CPU provider turns ONNX Runtime's memory arena off unless asked;
                // the Python binding (and the C API by default) keep it on. Without it every
                // intermediate tensor is a malloc/free: 1.3x slower on the vehicle model.
                (Provider::Cpu, _) => {
                    register(|| ep::CPU::default().with_arena_allocator(opts.cpu_arena), &mut builder)
                }
            };
            match result {
                Ok(()) => {
                    chosen.get_or_insert(provider);
                    if provider == Provider::Cpu {
                        break;
                    }
                }
                Err(why) => tracing::info!(model = %p, "execution provider {} skipped: {why}", provider.name()),
            }
        }
        let provider = chosen.unwrap_or(Provider::Cpu);
        if provider != opts.providers[0] {
            let gpu_here = NVIDIA_DEVICES.iter().any(|d| Path::new(d).exists());
            let text = format!(
                "running on {} instead of {}: the preferred providers are not available here",
                provider.name(),
                opts.providers[0].name()
            );
            if fallback_is_news(&opts.providers, provider, gpu_here) {
                tracing::warn!(model = %p, "{text}");
            } else {
                // A machine without a GPU running the default list: the expected case.
                tracing::info!(model = %p, "{text} (no GPU on this machine)");
            }
        }
        let session = builder.commit_from_file(path).map_err(|e| merr(e.to_string()))?;
        let info = match probe {
            Some(info) => info,
            None => inspect(&session, &p, opts)?,
        };
        // Where the provider has settings of its own, say which it runs with.
        let on = match provider {
            Provider::Openvino => {
                format!("openvino ({}, {})", opts.openvino.device, opts.openvino.precision.name())
            }
            other => other.name().to_owned(),
        };
        tracing::info!(
            model = %p,
            head = ?info.head,
            input = info.input_precision.layout(),
            intra_threads = threads,
            "model loaded on {on} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Model { session, info, provider })
    }
}

/// A session builder with the detector's settings, before providers. Each one
/// that differs from ort's defaults says why; docs/benchmarks.md has what each
/// was worth.
fn session_builder(
    env: &ort::environment::Environment,
    opts: &DetectorOptions,
    threads: usize,
) -> Result<SessionBuilder, ort::Error> {
    let b = Session::builder(env)?
        // One model, run operator after operator: inter-op threads would only idle.
        .with_parallel_execution(false)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_intra_threads(threads)?
        .with_intra_op_spinning(opts.intra_op_spinning)?
        // ort builds its environment at the verbose level for its `tracing` bridge and
        // sessions inherit it; warnings and errors are what the detector logs.
        .with_log_level(LogLevel::Warning)?;
    Ok(b)
}

/// Device files of an NVIDIA GPU (what the device plugin mounts into a pod
/// given a GPU).
const NVIDIA_DEVICES: [&str; 2] = ["/dev/nvidiactl", "/dev/nvidia0"];

/// Whether running on `chosen` rather than the first of `wanted` is worth a
/// warning: unless every provider passed over is a GPU one and there is no GPU
/// here (a CPU-only machine with the default list, the expected case), the
/// operator expected something this machine did not give.
fn fallback_is_news(wanted: &[Provider], chosen: Provider, gpu_here: bool) -> bool {
    gpu_here || wanted.iter().take_while(|p| **p != chosen).any(|p| !matches!(p, Provider::Tensorrt | Provider::Cuda))
}

/// Registers the provider that `make` builds if this ONNX Runtime has it; the
/// reason otherwise. (`make` runs only when the provider is there.)
fn register<E: ExecutionProvider>(make: impl FnOnce() -> E, builder: &mut SessionBuilder) -> Result<(), String> {
    match E::is_available() {
        Ok(true) => make().register(builder).map_err(|e| e.to_string()),
        Ok(false) => Err(format!(
            "not in this ONNX Runtime build ({}); {}",
            crate::runtime::library_path().display(),
            if E::NAME == "OpenVINOExecutionProvider" {
                "a detector naming openvino loads ONNX Runtime's OpenVINO build where there is one \
                 (scripts/setup.sh installs it on x86-64; ORT_OPENVINO_DYLIB_PATH names another)"
            } else {
                "the GPU images ship one that has it"
            }
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The OpenVINO provider on the configured device, with the session's thread
/// count (its share of the cores this process may use, one of `runs`) and
/// precision.
fn openvino(opts: &DetectorOptions, threads: usize, runs: usize) -> ep::OpenVINO {
    let o = &opts.openvino;
    let hint = o.precision.name();
    let ov = ep::OpenVINO::default().with_device_type(&o.device).with_num_threads(threads);
    if o.on_cpu() {
        // The provider's own `precision` option knows FP32, FP16 and ACCURACY; bf16
        // is the CPU plugin's inference precision hint, so both go that way.
        // The CPU plugin pins its threads to cores, counting from the first for
        // each session: several runs at once would all share one core (two
        // single-thread runs gave 30 frames/s together against 60 unpinned).
        let pinning = if runs > 1 { r#","ENABLE_CPU_PINNING":"NO""# } else { "" };
        ov.with_arbitrary_config(
            "load_config",
            format!(r#"{{"CPU":{{"INFERENCE_PRECISION_HINT":"{hint}"{pinning}}}}}"#),
        )
    } else {
        ov
    }
}

/// The TensorRT provider with an engine cache and an optimisation profile for the
/// configured batch range.
fn tensorrt(opts: &DetectorOptions, info: &ModelInfo) -> ep::TensorRT {
    let t = &opts.tensorrt;
    let dir = t.engine_cache_dir.clone().unwrap_or_else(|| crate::runtime::cache_dir().join("engines"));
    let cached = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    tracing::info!(
        "TensorRT engine cache {} ({})",
        dir.display(),
        if cached > 0 { "has engines: a matching one is loaded" } else { "empty: the first start builds the engine" }
    );
    let (h, w) = info.input_hw;
    let shape = |b: u32| {
        let dims = info.input_precision.shape(b as usize, h as usize, w as usize).map(|d| d.to_string());
        format!("{}:{}", info.input_name, dims.join("x"))
    };
    ep::TensorRT::default()
        .with_device_id(t.device_id as i32)
        .with_fp16(t.fp16)
        .with_engine_cache(true)
        .with_engine_cache_path(dir.display())
        .with_timing_cache(true)
        .with_timing_cache_path(dir.display())
        .with_max_workspace_size(t.workspace_bytes as usize)
        .with_profile_min_shapes(shape(t.min_batch))
        .with_profile_opt_shapes(shape(t.opt_batch))
        .with_profile_max_shapes(shape(t.max_batch))
}

/// Recognises the head from the output shapes and reads the metadata.
fn inspect(session: &Session, path: &str, opts: &DetectorOptions) -> Result<ModelInfo, DetectError> {
    let names_override = opts.class_names.clone();
    let shapes: Vec<Vec<i64>> = session.outputs().iter().map(|o| shape_of(o.dtype())).collect();
    let shapes_text =
        session.outputs().iter().zip(&shapes).map(|(o, s)| format!("{}{s:?}", o.name())).collect::<Vec<_>>().join(", ");
    let unsupported = |reason: &str| DetectError::UnsupportedModel {
        path: path.to_owned(),
        shapes: shapes_text.clone(),
        reason: reason.to_owned(),
    };

    let [input] = session.inputs() else {
        return Err(unsupported("the model must have exactly one input (an image batch)"));
    };
    let in_shape = shape_of(input.dtype());
    let input_precision = precision(input.dtype()).ok_or_else(|| {
        unsupported(
            "the input must be float32 or float16 [batch, 3, height, width], or uint8 [batch, height, width, 3]",
        )
    })?;
    // Height and width as [batch, 3, height, width] would have them.
    let in_shape = match (input_precision, in_shape.as_slice()) {
        (Precision::U8, &[b, h, w, 3]) => vec![b, 3, h, w],
        (Precision::F32 | Precision::F16, &[_, 3, _, _]) => in_shape,
        _ => Vec::new(),
    };
    if in_shape.len() != 4 || in_shape[0] == 0 || in_shape[0] > 1 {
        return Err(unsupported(&format!(
            "the input must be {} with a batch of 1 or dynamic, not {:?}",
            input_precision.layout(),
            shape_of(input.dtype())
        )));
    }

    let meta = session.metadata().ok();
    let custom = |k: &str| meta.as_ref().and_then(|m| m.custom(k));
    let input_hw = match ((in_shape[2], in_shape[3]), opts.input_size) {
        ((h, w), Some([cw, ch])) if h > 0 && w > 0 && (h as u32, w as u32) != (ch, cw) => {
            return Err(unsupported(&format!(
                "detector.input_size [{cw}, {ch}] does not match the model's fixed input {w}x{h}"
            )))
        }
        (_, Some([cw, ch])) => (ch, cw),
        ((h, w), None) if h > 0 && w > 0 => (h as u32, w as u32),
        _ => custom("imgsz")
            .and_then(|s| parse_imgsz(&s))
            .ok_or_else(|| unsupported("dynamic input size and no `imgsz` in the metadata: set detector.input_size"))?,
    };
    let meta_names = custom("names").and_then(|s| parse_names(&s));
    let end2end_meta = custom("end2end").is_some_and(|s| s.eq_ignore_ascii_case("true"));
    let task = custom("task");

    let first = shapes.first().ok_or_else(|| unsupported("the model has no outputs"))?;
    if first.len() != 3 {
        return Err(unsupported("the first output must have three dimensions"));
    }
    // `[B, K, 6]` is end to end unless the class names say it is a detect head
    // with six anchors (`4 + nc` channels).
    let looks_like_detect =
        meta_names.as_ref().or(names_override.as_ref()).is_some_and(|n| first[1] == 4 + n.len() as i64);
    let head = if end2end_meta || (shapes.len() == 1 && first[2] == 6 && first[1] > 6 && !looks_like_detect) {
        HeadKind::EndToEnd
    } else if shapes.len() >= 2 && shapes[1].len() == 4 {
        let masks = usize::try_from(shapes[1][1]).map_err(|_| unsupported("dynamic mask-prototype count"))?;
        HeadKind::Segment { masks }
    } else {
        HeadKind::Detect
    };
    let channels = first[1];
    let nc_from_shape = match head {
        HeadKind::Detect => channels - 4,
        HeadKind::Segment { masks } => channels - 4 - masks as i64,
        HeadKind::EndToEnd => -1,
    };
    if head != HeadKind::EndToEnd && nc_from_shape < 1 {
        return Err(unsupported("too few channels for 4 box coordinates and at least one class"));
    }
    let names = match (names_override, meta_names) {
        (Some(n), _) => n,
        (None, Some(n)) => n,
        (None, None) if nc_from_shape > 0 => (0..nc_from_shape).map(|i| format!("class{i}")).collect(),
        (None, None) => return Err(unsupported("an end-to-end model needs class names in metadata or config")),
    };
    if nc_from_shape > 0 && names.len() as i64 != nc_from_shape {
        return Err(unsupported(&format!(
            "the outputs have {nc_from_shape} classes but {} class names are given",
            names.len()
        )));
    }
    Ok(ModelInfo {
        path: path.to_owned(),
        head,
        input_name: input.name().to_owned(),
        input_precision,
        input_hw,
        names,
        task,
        dynamic_batch: in_shape[0] < 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Provider::*;

    #[test]
    fn a_fallback_warns_unless_only_gpu_providers_were_passed_over_on_a_machine_without_a_gpu() {
        let default = [Tensorrt, Cuda, Openvino, Cpu];
        // A CPU-only machine with the default list: expected, no warning.
        assert!(!fallback_is_news(&default, Openvino, false));
        // The same with a GPU here (a GPU pod whose library or driver is wrong): warned.
        assert!(fallback_is_news(&default, Openvino, true));
        assert!(fallback_is_news(&default, Cpu, true));
        // OpenVINO named and missing (no OpenVINO build): warned, GPU or not.
        assert!(fallback_is_news(&[Openvino, Cpu], Cpu, false));
        assert!(fallback_is_news(&default, Cpu, false), "openvino was passed over on the way to cpu");
        // GPU providers only, then the CPU: no GPU here, expected.
        assert!(!fallback_is_news(&[Cuda, Cpu], Cpu, false));
    }
}
