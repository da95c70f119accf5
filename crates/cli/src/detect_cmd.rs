//! `streetscope detect`: the model on still images, the Rust counterpart of
//! Ultralytics' `model("bus.jpg")`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use streetscope_contracts::config::{DetectorConfig, OpenVinoConfig, OpenVinoPrecision, Provider};
use streetscope_contracts::Detection;
use streetscope_detect::preprocess::letterbox_image;
use streetscope_detect::{Detector, DetectorOptions};

use streetscope_dashboard::draw;

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Images (JPEG, PNG), folders of images, or videos (files or rtsp:// and
    /// http(s):// URLs).
    #[arg(required_unless_present = "cluster")]
    pub sources: Vec<String>,
    /// Run as the detect stage of a distributed deployment instead: consume
    /// frames from Kafka in the `detectors` group, publish detections. The file
    /// is the cluster configuration (`[kafka]`, `[detector]`, ...).
    #[arg(long, env = "STREETSCOPE_CLUSTER_CONFIG", conflicts_with = "sources")]
    pub cluster: Option<PathBuf>,
    /// With --cluster: overrides `kafka.brokers`.
    #[arg(long, env = "STREETSCOPE_BROKERS", requires = "cluster")]
    pub brokers: Option<String>,
    /// With --cluster: serve /healthz, /status and /metrics on this address.
    #[arg(long, env = "STREETSCOPE_STATUS_ADDR", requires = "cluster")]
    pub status_addr: Option<std::net::SocketAddr>,
    /// With --cluster: once asked to stop (SIGTERM), how long to finish the
    /// frames in flight, commit and leave the group, in seconds.
    #[arg(long, env = "STREETSCOPE_STOP_TIMEOUT", default_value_t = crate::cluster::DEFAULT_STOP_TIMEOUT_S)]
    pub stop_timeout: f64,
    /// Take the detector's settings from this cluster configuration's
    /// `[detector]` (model, providers, thresholds, OpenVINO, TensorRT's engine
    /// cache and batch profile), as its detector pods run them; flags given
    /// here override them. The TensorRT engine cache's warm-up Job runs this,
    /// so that it builds the very engine the pool's detectors load.
    #[arg(long, conflicts_with = "cluster")]
    pub config: Option<PathBuf>,
    /// Frames per second to sample from videos.
    #[arg(long, default_value_t = 5.0)]
    pub fps: f64,
    /// The ONNX model (default: the set-up script's vehicle model, or $STREETSCOPE_MODEL).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Minimum class score [default: 0.25, or --config's].
    #[arg(long)]
    pub conf: Option<f32>,
    /// NMS IoU threshold [default: 0.7, or --config's].
    #[arg(long)]
    pub iou: Option<f32>,
    /// Suppress overlapping boxes only within a class (Ultralytics' default).
    #[arg(long)]
    pub class_aware_nms: bool,
    /// Class names replacing the model's, comma-separated in id order.
    #[arg(long, value_delimiter = ',')]
    pub class_names: Option<Vec<String>>,
    /// Execution providers in order of preference, comma-separated: tensorrt, cuda, openvino, cpu.
    #[arg(long, value_delimiter = ',')]
    pub providers: Option<Vec<Provider>>,
    /// The OpenVINO provider's precision on the CPU: f32 (the CPU provider's
    /// detections) or bf16 (faster on CPUs with bfloat16 units; check counts)
    /// [default: f32, or --config's].
    #[arg(long)]
    pub openvino_precision: Option<OpenVinoPrecision>,
    /// Write annotated images: a file for one image, a folder for several.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Print results as JSON Lines instead of text.
    #[arg(long)]
    pub json: bool,
}

fn is_video(s: &str) -> bool {
    s.contains("://")
        || Path::new(s).extension().and_then(|e| e.to_str()).is_some_and(|e| {
            matches!(e.to_ascii_lowercase().as_str(), "mp4" | "mkv" | "mov" | "avi" | "webm" | "ts" | "h264" | "h265")
        })
}

fn collect_images(sources: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    };
    let mut out = Vec::new();
    for s in sources {
        if s.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(s)
                .with_context(|| format!("reading folder {}", s.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_image(p))
                .collect();
            entries.sort();
            out.extend(entries);
        } else if s.exists() {
            out.push(s.clone());
        } else {
            bail!("{}: no such file or folder", s.display());
        }
    }
    if out.is_empty() {
        bail!("no images found in {:?}", sources);
    }
    Ok(out)
}

pub fn detect(args: DetectArgs) -> anyhow::Result<ExitCode> {
    if let Some(cluster) = &args.cluster {
        let c = crate::cluster::ClusterArgs {
            cluster: cluster.clone(),
            brokers: args.brokers.clone(),
            status_addr: args.status_addr,
            stop_timeout: args.stop_timeout,
            group_instance_id: None,
        };
        return crate::cluster::detect::detect_stage(&c);
    }
    let (videos, stills): (Vec<&String>, Vec<&String>) = args.sources.iter().partition(|s| is_video(s));
    let stills: Vec<PathBuf> = stills.into_iter().map(PathBuf::from).collect();
    let images = if stills.is_empty() { Vec::new() } else { collect_images(&stills)? };
    let base = match &args.config {
        Some(path) => crate::cluster::read_cluster_config(path)?.detector,
        None => DetectorConfig::default(),
    };
    let model = args.model.clone().or_else(|| base.model.clone()).unwrap_or_else(crate::paths::default_model);
    let mut opts = DetectorOptions::from_config(&base);
    opts.confidence = args.conf.unwrap_or(opts.confidence);
    opts.iou = args.iou.unwrap_or(opts.iou);
    opts.class_agnostic &= !args.class_aware_nms;
    if let Some(names) = &args.class_names {
        opts.class_names = Some(names.clone());
    }
    if let Some(providers) = &args.providers {
        opts.providers = providers.clone();
    }
    if let Some(precision) = args.openvino_precision {
        opts.openvino = OpenVinoConfig { precision, ..opts.openvino };
    }
    let mut detector = Detector::load(&model, opts)?;
    let (w, h) = detector.input_size();
    let mut failed = 0;
    for video in videos {
        if let Err(e) = detect_video(&mut detector, video, &args) {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    if let Some(dir) = args.save.as_ref().filter(|_| images.len() > 1) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for path in &images {
        let img = match image::open(path) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                eprintln!("error: {}: not a readable image: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let t = Instant::now();
        let (rgb, lb) = letterbox_image(&img, w, h);
        let dets = detector.detect_rgb(&rgb, &lb)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if args.json {
            let line = serde_json::json!({ "image": path.display().to_string(), "width": img.width(),
                "height": img.height(), "detections": dets, "ms": ms });
            println!("{line}");
        } else {
            print_text(path, &img, &dets, ms);
        }
        if let Some(save) = &args.save {
            let out = if images.len() > 1 { save.join(path.file_name().expect("a file")) } else { save.clone() };
            annotate(img, &dets).save(&out).with_context(|| format!("writing {}", out.display()))?;
            if !args.json {
                println!("saved {}", out.display());
            }
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Decodes a video with the ingest pipeline (sampled, letterboxed) and detects on
/// each frame; `--save` names a folder for annotated frames.
fn detect_video(detector: &mut Detector, source: &str, args: &DetectArgs) -> anyhow::Result<()> {
    let (w, h) = detector.input_size();
    let cam = streetscope_ingest::CameraSource {
        camera_id: "detect".into(),
        intersection_id: "detect".into(),
        source: source.to_owned(),
        sample_fps: args.fps,
        width: w,
        height: h,
        stall_timeout: std::time::Duration::from_secs(10),
        keyframes_only: false,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: None,
    };
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<streetscope_contracts::Frame>(4);
    let stop = streetscope_ingest::StopHandle::default();
    let ingest = {
        let stop = stop.clone();
        std::thread::spawn(move || streetscope_ingest::run_camera(&cam, move |f| tx.send(f).is_ok(), &stop))
    };
    let name = streetscope_contracts::config::redact_url(source);
    for frame in rx {
        let t = Instant::now();
        let dets = detector.detect_frame(&frame)?.detections;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if args.json {
            let line = serde_json::json!({ "source": name, "frame": frame.seq, "time_s": frame.pts_seconds(),
                "width": frame.letterbox.src_w, "height": frame.letterbox.src_h, "detections": dets, "ms": ms });
            println!("{line}");
        } else {
            println!(
                "{name} frame {} ({:.2} s): {} object{} in {ms:.1} ms",
                frame.seq,
                frame.pts_seconds(),
                dets.len(),
                if dets.len() == 1 { "" } else { "s" }
            );
            for d in &dets {
                let b = d.bbox;
                println!("  {:<10} {:.3}  [{:.0}, {:.0}, {:.0}, {:.0}]", d.class_name, d.score, b.x1, b.y1, b.x2, b.y2);
            }
        }
        if let Some(dir) = &args.save {
            // Frames arrive letterboxed: draw the boxes in the letterboxed picture.
            let img = image::RgbImage::from_raw(w, h, frame.payload.to_vec()).context("an RGB frame")?;
            let in_frame: Vec<Detection> =
                dets.iter().map(|d| Detection { bbox: frame.letterbox.to_model(&d.bbox), ..d.clone() }).collect();
            let out = dir.join(format!("frame_{:06}.jpg", frame.seq));
            annotate(img, &in_frame).save(&out).with_context(|| format!("writing {}", out.display()))?;
        }
    }
    ingest.join().map_err(|_| anyhow::anyhow!("the decoding thread panicked"))??;
    Ok(())
}

fn print_text(path: &Path, img: &image::RgbImage, dets: &[Detection], ms: f64) {
    println!(
        "{} ({}x{}): {} object{} in {ms:.1} ms",
        path.display(),
        img.width(),
        img.height(),
        dets.len(),
        if dets.len() == 1 { "" } else { "s" }
    );
    for d in dets {
        let b = d.bbox;
        println!("  {:<10} {:.3}  [{:.0}, {:.0}, {:.0}, {:.0}]", d.class_name, d.score, b.x1, b.y1, b.x2, b.y2);
    }
}

fn annotate(mut img: image::RgbImage, dets: &[Detection]) -> image::RgbImage {
    let scale = i64::from((img.width().max(img.height()) / 640).max(1));
    // The same drawing as the dashboard's snapshots.
    let white = image::Rgb([255, 255, 255]);
    for d in dets {
        let c = draw::class_colour(&d.class_name);
        let b = d.bbox;
        draw::rect(&mut img, b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64, 2 * scale, c);
        let text = format!("{} {:.2}", d.class_name, d.score);
        draw::label(&mut img, b.x1 as i64, b.y1 as i64, &text, scale, c, white);
    }
    img
}
