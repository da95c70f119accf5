//! `streetscope bench`: benchmarks of the hot paths against the limit that
//! matters, in the same run.
//!
//! `bench detect` compares the detect stage (JPEG frames in, detections out:
//! decode, convert, infer, decode outputs, NMS, with preprocessing overlapped and
//! batching, and on a CPU several runs of the model at once) with the limit:
//! bare ONNX Runtime `run` on a prepared tensor of the same model and batch,
//! configured as fast as the runtime allows — one session on all the cores,
//! and as many sessions at once as the stage runs, each with its share, both
//! in this process and in ONNX Runtime's Python binding (same library version,
//! model and input) run as other processes; the best of them in each round.
//! Runs alternate between the kinds and the medians are reported.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use streetscope_contracts::config::{OpenVinoConfig, OpenVinoPrecision, Provider};
use streetscope_contracts::{Frame, FrameDetections};
use streetscope_detect::stage::{DetectStage, StageOptions};
use streetscope_detect::{Detector, DetectorOptions, InputBuf, Precision};
use streetscope_telemetry::StageMeter;
use streetscope_transport::{channel, FullPolicy, Subscribe};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The detect stage against bare ONNX Runtime on the same model and threads.
    Detect(DetectBench),
    /// Tracking and line counting on simulated detections, one core.
    Aggregate(AggregateBench),
    /// Ingest (decode, sample, letterbox) against bare GStreamer decode, per core.
    Ingest(IngestBench),
    /// Live RTSP cameras through ingest (sampled, letterboxed, JPEG): cameras per core.
    Cameras(crate::bench_cameras::CamerasBench),
}

#[derive(Debug, Args)]
pub struct IngestBench {
    /// An H.264 MP4 (default: the two_way clip re-encoded at 1920x1080, 25 fps,
    /// a keyframe a second, made once into the cache).
    #[arg(long)]
    clip: Option<PathBuf>,
    /// Measurements of each kind; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Cameras run at once for the memory figure.
    #[arg(long, default_value_t = 8)]
    cameras: usize,
    /// A pipeline template to measure instead of the built-in one for files
    /// (as a camera's `template`; e.g. one that letterboxes with GStreamer's
    /// `videoconvertscale`, to compare).
    #[arg(long)]
    template: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AggregateBench {
    /// Simulated minutes of the default junction (about 26 vehicles a minute).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Measurements; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Simulation seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
pub struct DetectBench {
    /// The ONNX model (default: the set-up script's vehicle model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Frames per measurement.
    #[arg(long, default_value_t = 60)]
    frames: usize,
    /// Frames per model run (needs a model with a dynamic batch above 1).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// ONNX Runtime intra-op threads of each run (0: the detector's default,
    /// the cores this process may use divided among the runs).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Runs of the model at once in the stage (`detector.streams`; 0: the
    /// detector's default, on a CPU the cores this process may use, at most
    /// 4). The bare sides are measured both as one session on all the cores
    /// and as this many at once; the limit is the best of them.
    #[arg(long, default_value_t = 0)]
    streams: usize,
    /// Let ONNX Runtime's intra-op threads spin (`detector.intra_op_spinning`;
    /// off by default).
    #[arg(long)]
    spin: bool,
    /// Turn off ONNX Runtime's CPU memory arena (what ort does by default).
    #[arg(long)]
    no_arena: bool,
    /// Do not run ONNX Runtime's Python binding as bare sides too (it needs
    /// the venv of scripts/python-env.sh).
    #[arg(long)]
    no_python: bool,
    /// Preprocessing threads of the stage.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Measurements of each kind; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// JPEG quality of the frames, encoded by ingest's own path (default: the
    /// ingest pods' quality).
    #[arg(long, default_value_t = crate::cluster::ingest::DEFAULT_JPEG_QUALITY)]
    quality: u8,
    /// Frames as raw RGB instead of JPEG: what `streetscope run` passes from
    /// ingest to the detector in one process (the pods send JPEG over Kafka).
    #[arg(long)]
    raw: bool,
    /// TensorRT engine cache folder (default: `engines/` in the cache folder).
    #[arg(long)]
    engine_cache: Option<PathBuf>,
    /// Execution providers, comma-separated (default: the detector's,
    /// tensorrt,cuda,openvino,cpu: the first this machine has runs).
    #[arg(long, value_delimiter = ',', default_value = "tensorrt,cuda,openvino,cpu")]
    providers: Vec<Provider>,
    /// The OpenVINO provider's precision on the CPU: f32 or bf16.
    #[arg(long, default_value = "f32")]
    openvino_precision: OpenVinoPrecision,
}

pub fn bench(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Detect(args) => bench_detect(args),
        BenchCommand::Aggregate(args) => bench_aggregate(args),
        BenchCommand::Ingest(args) => bench_ingest(args),
        BenchCommand::Cameras(args) => crate::bench_cameras::bench_cameras(args),
    }
}

fn ingest_camera(
    clip: &std::path::Path,
    fps: f64,
    keyframes_only: bool,
    template: Option<&std::path::Path>,
) -> streetscope_ingest::CameraSource {
    streetscope_ingest::CameraSource {
        camera_id: "bench".into(),
        intersection_id: "bench".into(),
        source: clip.display().to_string(),
        sample_fps: fps,
        width: 640,
        height: 640,
        stall_timeout: Duration::from_secs(30),
        keyframes_only,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: template.map(std::path::Path::to_path_buf),
    }
}

/// One camera through ingest: frames out, wall and CPU seconds, frames decoded,
/// and the frames' payloads' mean size in bytes.
fn measure_ingest(
    cam: &streetscope_ingest::CameraSource,
) -> anyhow::Result<(streetscope_ingest::bench::Measured, u64, f64)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use streetscope_ingest::bench::{process_cpu_seconds, Measured};
    let bytes = Arc::new(AtomicU64::new(0));
    let sink = {
        let bytes = bytes.clone();
        move |f: Frame| {
            bytes.fetch_add(f.payload.len() as u64, Ordering::Relaxed);
            true
        }
    };
    let (t, c) = (Instant::now(), process_cpu_seconds());
    let report = streetscope_ingest::run_camera(cam, sink, &streetscope_ingest::StopHandle::default())?;
    let m = Measured { frames: report.frames, wall_s: t.elapsed().as_secs_f64(), cpu_s: process_cpu_seconds() - c };
    let mean_bytes = bytes.load(Ordering::Relaxed) as f64 / report.frames.max(1) as f64;
    Ok((m, report.decoded, mean_bytes))
}

/// The two_way clip re-encoded at 1920x1080, 25 fps, H.264 with a keyframe a
/// second: made once into the cache, the camera-like input of the ingest benches.
pub(crate) fn clip_1080p25() -> anyhow::Result<PathBuf> {
    let dst = crate::paths::cache_dir().join("bench").join("two_way_1080p25.mp4");
    if !dst.is_file() {
        let src = PathBuf::from("test-videos/out/two_way.mp4");
        anyhow::ensure!(src.is_file(), "{} is missing: run scripts/setup.sh", src.display());
        std::fs::create_dir_all(dst.parent().expect("a folder"))?;
        let partial = dst.with_extension("partial.mp4");
        streetscope_ingest::bench::transcode(&src, &partial, 1920, 1080, 25)?;
        std::fs::rename(&partial, &dst)?;
    }
    Ok(dst)
}

fn bench_ingest(args: IngestBench) -> anyhow::Result<ExitCode> {
    use streetscope_ingest::bench::{decode_only, resident_bytes};
    const FPS: f64 = 25.0;
    // What the ingest pods of the distributed mode encode with by default.
    const JPEG_QUALITY: u8 = crate::cluster::ingest::DEFAULT_JPEG_QUALITY;
    let clip = match args.clip {
        Some(c) => c,
        None => clip_1080p25()?,
    };
    eprintln!("clip {} (H.264; each measurement decodes all of it)", clip.display());
    let template = args.template.as_deref();
    if let Some(t) = template {
        eprintln!("template {}", t.display());
    }
    let (mut ratio, mut cams_5, mut cams_key, mut bare_core, mut full_core) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut jpeg_core, mut jpeg_ratio, mut jpeg_bytes) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..args.repeat {
        let bare = decode_only(&clip)?;
        let (full, decoded, _) = measure_ingest(&ingest_camera(&clip, FPS, false, template))?;
        let jpeg_cam = streetscope_ingest::CameraSource {
            jpeg_quality: Some(JPEG_QUALITY),
            ..ingest_camera(&clip, FPS, false, template)
        };
        let (jpeg, _, jpeg_size) = measure_ingest(&jpeg_cam)?;
        let video_s = decoded as f64 / FPS;
        let (s5, _, _) = measure_ingest(&ingest_camera(&clip, 5.0, false, template))?;
        let (k1, _, _) = measure_ingest(&ingest_camera(&clip, 1.0, true, template))?;
        eprintln!(
            "run {}: bare decode {:.0} frames/CPU-s; ingest at {FPS} fps {:.0} frames/CPU-s (ratio {:.3}), \
             JPEG {:.0} (ratio {:.3}); 5 fps: {:.2} CPU-s for {video_s:.0} s of video; keyframes only (1 fps): {:.2} CPU-s",
            r + 1,
            bare.per_core(),
            full.per_core(),
            full.per_core() / bare.per_core(),
            jpeg.per_core(),
            jpeg.per_core() / bare.per_core(),
            s5.cpu_s,
            k1.cpu_s
        );
        bare_core.push(bare.per_core());
        full_core.push(full.per_core());
        ratio.push(full.per_core() / bare.per_core());
        jpeg_core.push(jpeg.per_core());
        jpeg_ratio.push(jpeg.per_core() / bare.per_core());
        jpeg_bytes.push(jpeg_size);
        cams_5.push(video_s / s5.cpu_s);
        cams_key.push(video_s / k1.cpu_s);
    }
    // Memory: several cameras at once, peak resident memory above the baseline.
    let baseline = resident_bytes();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let cams: Vec<_> = (0..args.cameras)
        .map(|i| streetscope_ingest::CameraSource {
            camera_id: format!("mem-{i}"),
            ..ingest_camera(&clip, 5.0, false, template)
        })
        .collect();
    let results = streetscope_ingest::stage::run_cameras(
        &cams,
        |_f| true,
        &streetscope_ingest::StopHandle::default(),
        &StageMeter::new("ingest"),
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("the memory sampler");
    for r in results {
        r?;
    }
    let per_camera_mib = (peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(baseline)) as f64
        / args.cameras as f64
        / (1 << 20) as f64;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(["measure", "median"]);
    t.add_row(vec!["bare GStreamer decode (frames per CPU-second)".to_owned(), format!("{:.0}", median(bare_core))]);
    t.add_row(vec![
        format!("ingest at full rate ({FPS} fps: decode, letterbox 640x640 RGB) (frames per CPU-second)"),
        format!("{:.0}", median(full_core)),
    ]);
    t.add_row(vec!["ratio ingest / bare decode (median of runs)".to_owned(), format!("{:.3}", median(ratio))]);
    t.add_row(vec![
        format!("ingest at full rate, JPEG quality {JPEG_QUALITY} (frames per CPU-second)"),
        format!("{:.0}", median(jpeg_core)),
    ]);
    t.add_row(vec![
        "ratio ingest JPEG / bare decode (median of runs)".to_owned(),
        format!("{:.3}", median(jpeg_ratio)),
    ]);
    t.add_row(vec![
        format!("JPEG frame, mean size on the frames topic (kB, quality {JPEG_QUALITY})"),
        format!("{:.1}", median(jpeg_bytes) / 1000.0),
    ]);
    t.add_row(vec!["cameras per core, sampled to 5 fps".to_owned(), format!("{:.1}", median(cams_5))]);
    t.add_row(vec!["cameras per core, keyframes only (1 fps)".to_owned(), format!("{:.1}", median(cams_key))]);
    t.add_row(vec![
        format!("resident memory per camera ({} at once, MiB)", args.cameras),
        format!("{per_camera_mib:.1}"),
    ]);
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn bench_aggregate(args: AggregateBench) -> anyhow::Result<ExitCode> {
    use streetscope_contracts::config::{CameraConfig, TrackerConfig};
    let mut spec = streetscope_simulator::scenario::default_four_way();
    spec.duration_s = args.minutes * 60.0;
    let sim = streetscope_simulator::Simulation::new(spec, streetscope_simulator::NoiseSpec::typical(), args.seed)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let camera = CameraConfig {
        id: sim.spec().camera_id.clone(),
        intersection: sim.spec().intersection_id.clone(),
        source: "simulated".into(),
        sample_fps: sim.spec().fps,
        lines: sim.counting_lines().to_vec(),
        keyframes_only: false,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: None,
        frame_ids: None,
        zones: Vec::new(),
        calibration: None,
    };
    let (frames, _) = sim.run_to_end();
    let detections: usize = frames.iter().map(|f| f.detections.len()).sum();
    eprintln!(
        "{} frames, {detections} detections ({:.1} per frame), {} lines, typical noise",
        frames.len(),
        detections as f64 / frames.len() as f64,
        camera.lines.len()
    );
    let mut rates = Vec::new();
    for r in 0..args.repeat {
        let mut agg = streetscope_aggregate::Aggregator::new(std::slice::from_ref(&camera), &TrackerConfig::default());
        let start = Instant::now();
        let mut events = 0usize;
        for f in &frames {
            events += agg.process(f)?.len();
        }
        events += agg.finish().len();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "run {}: {:.0} detections/s, {:.0} frames/s, {events} crossings",
            r + 1,
            detections as f64 / secs,
            frames.len() as f64 / secs
        );
        rates.push(detections as f64 / secs);
    }
    let med = median(rates);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(["measure", "median"]);
    t.add_row(vec!["detections/s through tracking and counting (one core)".to_owned(), format!("{med:.0}")]);
    t.add_row(vec![
        "frames/s of one camera".to_owned(),
        format!("{:.0}", med * frames.len() as f64 / detections as f64),
    ]);
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// JPEG frames (RGB frames when `quality` is `None`) of the two_way test clip,
/// letterboxed to the model's size.
fn frames(n: usize, w: u32, h: u32, quality: Option<u8>) -> anyhow::Result<Vec<Frame>> {
    // Ingest's own path on the two_way clip (1280x720, 25 fps): decode, the
    // letterbox element, jpegenc (4:2:0) at `quality`, sampled evenly over the
    // clip, so that the stage decodes what it gets from a camera.
    let clip = PathBuf::from("test-videos/out/two_way.mp4");
    anyhow::ensure!(clip.is_file(), "{} is missing: run scripts/setup.sh", clip.display());
    let spec = streetscope_testclips::builtin_clip("two_way").expect("a built-in clip");
    let rate = (n.max(1) as f64 / spec.duration_s * 1.05).min(f64::from(spec.fps));
    let cam = streetscope_ingest::CameraSource {
        width: w,
        height: h,
        jpeg_quality: quality,
        ..ingest_camera(&clip, rate, false, None)
    };
    let got = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let sink = {
        let got = got.clone();
        move |f: Frame| {
            let mut got = got.lock().expect("poisoned");
            if got.len() < n {
                got.push(f);
            }
            got.len() < n
        }
    };
    streetscope_ingest::run_camera(&cam, sink, &streetscope_ingest::StopHandle::default())?;
    let mut frames = std::mem::take(&mut *got.lock().expect("poisoned"));
    anyhow::ensure!(!frames.is_empty(), "ingest gave no frame of {}", clip.display());
    // Loop over them when more are asked than the clip has.
    let mut i = 0;
    while frames.len() < n {
        frames.push(frames[i].clone());
        i += 1;
    }
    for (i, f) in frames.iter_mut().enumerate() {
        f.camera_id = Arc::from(format!("bench-{}", i % 4));
        f.seq = i as u64;
    }
    Ok(frames)
}

fn openvino_config(args: &DetectBench) -> OpenVinoConfig {
    OpenVinoConfig { precision: args.openvino_precision, ..OpenVinoConfig::default() }
}

/// What `bench detect` runs, all warmed up.
struct Loaded {
    /// One session on all the cores: the bare run as a user would start it.
    alone: Detector,
    /// The stage's runs of the model ([`Detector::load_streams`]).
    runs: Vec<Detector>,
    /// Where the stage runs one session on a CPU of several cores: the
    /// sessions the detector runs there by default, for the bare side of
    /// several at once (the best bare configuration is not the stage's to
    /// choose). Empty otherwise.
    bare_at_once: Vec<Detector>,
    /// Seconds the first session took to load and warm up (for TensorRT the
    /// engine's build with an empty cache: the others load it from the cache).
    load_s: f64,
}

fn load(args: &DetectBench) -> anyhow::Result<Loaded> {
    let model = args.model.clone().unwrap_or_else(crate::paths::default_model);
    let opts = detector_options(args);
    let started = Instant::now();
    let mut alone = Detector::load(&model, opts.clone())?;
    alone.warm_up()?;
    let load_s = started.elapsed().as_secs_f64();
    let warm = |mut dets: Vec<Detector>| -> anyhow::Result<Vec<Detector>> {
        for d in &mut dets {
            d.warm_up()?;
        }
        Ok(dets)
    };
    let runs = warm(Detector::load_streams(&model, opts.clone())?)?;
    let auto = DetectorOptions { streams: 0, threads: 0, ..opts };
    let bare_at_once = if runs.len() == 1 && runs[0].runs_on_cpu() && auto.cpu_streams() > 1 {
        warm(Detector::load_streams(&model, auto)?)?
    } else {
        Vec::new()
    };
    Ok(Loaded { alone, runs, bare_at_once, load_s })
}

fn detector_options(args: &DetectBench) -> DetectorOptions {
    let mut opts = DetectorOptions {
        streams: args.streams,
        threads: args.threads,
        intra_op_spinning: args.spin,
        cpu_arena: !args.no_arena,
        providers: args.providers.clone(),
        ..DetectorOptions::default()
    };
    opts.openvino = openvino_config(args);
    opts.tensorrt.engine_cache_dir = args.engine_cache.clone();
    opts.tensorrt.max_batch = args.batch as u32;
    opts.tensorrt.opt_batch = args.batch as u32;
    opts
}

/// Frames per second of bare `session.run` on several sessions at once, each
/// on its own thread with its share of the frames.
fn bare_at_once(dets: &mut [Detector], frames: &[Frame], batch: usize) -> anyhow::Result<f64> {
    if let [det] = dets {
        return bare(det, frames, batch);
    }
    let n = dets.len();
    let start = Instant::now();
    let counted = std::thread::scope(|s| {
        let handles: Vec<_> = dets
            .iter_mut()
            .enumerate()
            .map(|(i, det)| {
                let share: Vec<Frame> = frames.iter().skip(i).step_by(n).cloned().collect();
                s.spawn(move || bare_runs(det, &share, batch))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a bare run panicked")).sum::<anyhow::Result<usize>>()
    })?;
    Ok(counted as f64 / start.elapsed().as_secs_f64())
}

/// Frames per second of bare `session.run` on one prepared batch.
fn bare(det: &mut Detector, frames: &[Frame], batch: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let n = bare_runs(det, frames, batch)?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs the model bare on one prepared batch as many times as `frames` fill;
/// the frames run.
fn bare_runs(det: &mut Detector, frames: &[Frame], batch: usize) -> anyhow::Result<usize> {
    let pre = det.preprocessor();
    let mut input = pre.buffer_for(batch);
    for i in 0..batch {
        pre.prepare_nth(&frames[i % frames.len()], &mut input, i)?;
    }
    let runs = frames.len().div_ceil(batch);
    for _ in 0..runs {
        det.run_bare(input.as_input(), batch)?;
    }
    Ok(runs * batch)
}

/// ONNX Runtime's Python binding running the same model on the same prepared
/// input (tools/python/ort_bare.py --serve), asked for timed runs between the
/// other measurements.
struct PythonBare {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    _input: tempfile::NamedTempFile,
}

impl PythonBare {
    fn start(
        det: &Detector,
        frame: &Frame,
        threads: usize,
        streams: usize,
        ov: &OpenVinoConfig,
    ) -> anyhow::Result<PythonBare> {
        use std::io::{BufRead, Write};
        let python = crate::paths::cache_dir().join("venv").join("bin").join("python");
        anyhow::ensure!(python.is_file(), "{} is missing: run scripts/python-env.sh", python.display());
        let script = [
            PathBuf::from("tools/python/ort_bare.py"),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/python/ort_bare.py"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .context("tools/python/ort_bare.py not found: run from the repository")?;
        let pre = det.preprocessor();
        let mut tensor = pre.buffer();
        pre.prepare(frame, &mut tensor)?;
        let mut input = tempfile::NamedTempFile::new()?;
        match &tensor {
            InputBuf::F32(v) => {
                for v in v {
                    input.write_all(&v.to_le_bytes())?;
                }
            }
            InputBuf::U8(v) => input.write_all(v)?,
        }
        input.flush()?;
        let mut cmd = std::process::Command::new(&python);
        cmd.arg(&script)
            .arg("--model")
            .arg(&det.info().path)
            .args(["--threads", &threads.to_string(), "--streams", &streams.to_string(), "--serve", "--input"])
            .arg(input.path());
        if det.provider() == Provider::Openvino {
            // The same OpenVINO build's Python binding, configured as the detector is.
            cmd.env("PYTHONPATH", streetscope_detect::runtime::openvino_wheel()).args([
                "--provider",
                "openvino",
                "--device",
                &ov.device,
            ]);
            cmd.args(["--precision", ov.precision.name()]);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", python.display()))?;
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line)?;
        let ready: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("ort_bare.py said {line:?}"))?;
        anyhow::ensure!(ready["ready"] == true, "ort_bare.py said {line:?}");
        eprintln!(
            "bare side: ONNX Runtime {} Python binding on {}, {streams} session(s) of {threads} threads, input {}",
            ready["onnxruntime"].as_str().unwrap_or("?"),
            ready["providers"][0].as_str().unwrap_or("?"),
            ready["input"].as_str().unwrap_or("?")
        );
        Ok(PythonBare { child, out, _input: input })
    }

    /// Frames per second of `runs` timed runs.
    fn measure(&mut self, runs: usize) -> anyhow::Result<f64> {
        use std::io::{BufRead, Write};
        writeln!(self.child.stdin.as_mut().expect("piped"), "{runs}")?;
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("ort_bare.py said {line:?}"))?;
        v["fps"].as_f64().with_context(|| format!("ort_bare.py said {line:?}"))
    }
}

impl Drop for PythonBare {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Frames per second of the stage, all frames queued at once (throughput), and
/// the milliseconds a frame during which a run of the model was running (its
/// `infer`: the model and the decoding of its output): the rest of a frame's
/// cycle is time when none was.
async fn stage_throughput(
    det: Vec<Detector>,
    frames: &[Frame],
    opts: StageOptions,
) -> anyhow::Result<(Vec<Detector>, f64, f64)> {
    let (tx, rx) = channel::<Frame>("frames", frames.len(), FullPolicy::Block);
    let (out_tx, mut out_rx) = channel::<FrameDetections>("detections", frames.len(), FullPolicy::Block);
    let start = Instant::now();
    for f in frames {
        tx.publish_blocking(f.clone())?;
    }
    drop(tx);
    let meter = StageMeter::new("detect");
    let stage = tokio::spawn(DetectStage::with_streams(det, meter.clone(), opts).run(rx, out_tx));
    let mut n = 0;
    while out_rx.next().await.is_some() {
        n += 1;
    }
    let fps = n as f64 / start.elapsed().as_secs_f64();
    let (det, _) = stage.await??;
    anyhow::ensure!(n == frames.len(), "{} of {} frames came out", n, frames.len());
    let infer_ms = meter.stats().busy_s * 1e3 / n as f64;
    Ok((det, fps, infer_ms))
}

/// The stage's preprocessing of one frame on one thread (what each worker does
/// beside the model's threads): median ms over five passes of every frame.
fn preprocess_cost(det: &Detector, frames: &[Frame]) -> anyhow::Result<f64> {
    let pre = det.preprocessor();
    let mut out = pre.buffer();
    let mut passes = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for f in frames {
            pre.prepare(f, &mut out)?;
        }
        passes.push(t.elapsed().as_secs_f64() * 1e3 / frames.len() as f64);
    }
    Ok(median(passes))
}

/// Per-frame latency of the stage with one frame in flight (ms, sorted).
async fn stage_latency(
    det: Vec<Detector>,
    frames: &[Frame],
    opts: StageOptions,
) -> anyhow::Result<(Vec<Detector>, Vec<f64>)> {
    let (tx, rx) = channel::<Frame>("frames", 1, FullPolicy::Block);
    let (out_tx, mut out_rx) = channel::<FrameDetections>("detections", 1, FullPolicy::Block);
    let stage = tokio::spawn(DetectStage::with_streams(det, StageMeter::new("detect"), opts).run(rx, out_tx));
    let mut lat = Vec::with_capacity(frames.len());
    for f in frames {
        let t = Instant::now();
        tx.publish_blocking(f.clone())?;
        out_rx.next().await.context("the stage stopped")?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(tx);
    let (det, _) = stage.await??;
    lat.sort_by(f64::total_cmp);
    Ok((det, lat))
}

fn bench_detect(args: DetectBench) -> anyhow::Result<ExitCode> {
    // For TensorRT this is the engine build (empty cache) or load (cached engine).
    let Loaded { alone: mut det, mut runs, bare_at_once: mut extra, load_s } = load(&args)?;
    let streams = runs.len();
    let dopts = detector_options(&args);
    let (threads, run_threads) = (dopts.intra_threads(), dopts.intra_threads_for(streams));
    // The bare side of several sessions at once: the stage's, or the default's.
    let (at_once, at_once_threads) = if streams > 1 {
        (streams, run_threads)
    } else {
        (extra.len(), DetectorOptions::default().intra_threads_for(extra.len()))
    };
    let (w, h) = det.input_size();
    let frames = frames(args.frames, w, h, (!args.raw).then_some(args.quality))?;
    let what = if args.raw { "RGB".to_owned() } else { format!("JPEG (quality {})", args.quality) };
    let prep = match (args.raw, det.info().input_precision) {
        (false, Precision::U8) => "JPEG decode into the tensor",
        (false, _) => "JPEG decode + tensor fill",
        (true, Precision::U8) => "copy of the RGB frame",
        (true, _) => "tensor fill",
    };
    let opts = StageOptions {
        max_batch: args.batch,
        max_wait: Duration::from_millis(5),
        workers: args.workers,
        shed_stale_after: None,
    };
    let cores = streetscope_detect::cores::available();
    eprintln!(
        "model {} on {}, {} {what} frames of {w}x{h}, batch {}, the stage's runs at once {streams} of {run_threads} \
         intra-op threads, one session alone {threads} (cores: {} in affinity, quota {}), spinning {}, arena {}, \
         workers {}",
        det.info().path,
        det.provider().name(),
        frames.len(),
        args.batch,
        cores.affinity,
        cores.quota.map_or("none".to_owned(), |q| format!("{q:.2} CPUs")),
        args.spin,
        !args.no_arena,
        args.workers
    );
    let det_provider = det.provider().name();
    // The Python binding of the same build runs the CPU and OpenVINO providers:
    // more bare sides there, one session alone and the stage's runs at once.
    let python = |sessions: usize, threads: usize| match (args.no_python, det.provider(), args.batch) {
        (false, Provider::Cpu | Provider::Openvino, 1) => {
            match PythonBare::start(&det, &frames[0], threads, sessions, &openvino_config(&args)) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("warning: no Python bare side ({e:#}); the limit is this process's bare runs only");
                    None
                }
            }
        }
        _ => None,
    };
    let mut python_alone = python(1, threads);
    let mut python_at_once = if at_once > 1 { python(at_once, at_once_threads) } else { None };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    // Per kind of bare run, its frames/s in each round.
    let mut bares: Vec<(String, Vec<f64>)> =
        vec![(format!("bare ONNX Runtime run, one session of {threads} threads"), vec![])];
    if at_once > 1 {
        bares.push((format!("bare ONNX Runtime runs, {at_once} sessions of {at_once_threads} at once"), vec![]));
    }
    if python_alone.is_some() {
        bares.push((format!("bare run, ONNX Runtime's Python binding, one session of {threads}"), vec![]));
    }
    if python_at_once.is_some() {
        bares.push((format!("bare runs, Python binding, {at_once} sessions of {at_once_threads} at once"), vec![]));
    }
    let (mut stage_fps, mut ratios, mut infer_ms) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..args.repeat {
        let mut round = vec![bare(&mut det, &frames, args.batch)?];
        if at_once > 1 {
            let sessions = if streams > 1 { &mut runs } else { &mut extra };
            round.push(bare_at_once(sessions, &frames, args.batch)?);
        }
        for p in [&mut python_alone, &mut python_at_once].into_iter().flatten() {
            round.push(p.measure(frames.len())?);
        }
        let (d, s, inf) = rt.block_on(stage_throughput(runs, &frames, opts.clone()))?;
        runs = d;
        infer_ms.push(inf);
        let best = round.iter().copied().fold(0.0, f64::max);
        eprintln!(
            "run {}: bare {} frames/s; stage {s:.2} frames/s, ratio to the best bare {:.3}",
            r + 1,
            round.iter().map(|f| format!("{f:.2}")).collect::<Vec<_>>().join(" / "),
            s / best
        );
        for ((_, all), f) in bares.iter_mut().zip(round) {
            all.push(f);
        }
        stage_fps.push(s);
        ratios.push(s / best);
    }
    drop((python_alone, python_at_once));
    let (runs, lat) = rt.block_on(stage_latency(runs, &frames, opts.clone()))?;
    let pre = preprocess_cost(&runs[0], &frames)?;
    drop((runs, det, extra));
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(["measure", "median"]);
    t.add_row(vec![format!("model load + warm-up on {}, the first session (s)", det_provider), format!("{load_s:.2}")]);
    let mut best_bare = 0.0f64;
    for (name, all) in bares {
        let m = median(all);
        best_bare = best_bare.max(m);
        t.add_row(vec![format!("{name} (frames/s)"), format!("{m:.2}")]);
    }
    let stage_med = median(stage_fps);
    let input = if args.raw { "RGB" } else { "JPEG" };
    t.add_row(vec![
        format!("detect stage, {input} in → detections, {streams} run(s) at once (frames/s)"),
        format!("{stage_med:.2}"),
    ]);
    t.add_row(vec!["ratio stage / best bare run (median of runs)".to_owned(), format!("{:.3}", median(ratios))]);
    // Where the stage's cycle goes, against the best bare run's: the model
    // slower inside the stage (cores shared with the worker), or time between
    // runs (with several runs at once, the time none is running).
    let (bare_ms, cycle_ms, inf_ms) = (1e3 / best_bare, 1e3 / stage_med, median(infer_ms));
    t.add_row(vec!["best bare run (ms/frame)".to_owned(), format!("{bare_ms:.2}")]);
    t.add_row(vec!["stage: model running + output decoding (ms/frame)".to_owned(), format!("{inf_ms:.2}")]);
    t.add_row(vec![
        "stage: no run of the model running (ms/frame)".to_owned(),
        format!("{:.2}", (cycle_ms - inf_ms).max(0.0)),
    ]);
    t.add_row(vec![format!("preprocess on one thread: {prep} (ms/frame)"), format!("{pre:.2}")]);
    t.add_row(vec!["latency p50, one frame in flight (ms)".to_owned(), format!("{:.1}", percentile(&lat, 0.5))]);
    t.add_row(vec!["latency p99, one frame in flight (ms)".to_owned(), format!("{:.1}", percentile(&lat, 0.99))]);
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}
