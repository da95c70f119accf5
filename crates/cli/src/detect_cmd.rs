//! `streetscope detect`: the model on still images, the Rust counterpart of
//! Ultralytics' `model("bus.jpg")`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use streetscope_contracts::config::Provider;
use streetscope_contracts::Detection;
use streetscope_detect::preprocess::letterbox_image;
use streetscope_detect::{Detector, DetectorOptions};

use crate::draw;

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Images (JPEG, PNG) or folders of images.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The ONNX model (default: the set-up script's vehicle model, or $STREETSCOPE_MODEL).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Minimum class score.
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.7)]
    pub iou: f32,
    /// Suppress overlapping boxes only within a class (Ultralytics' default).
    #[arg(long)]
    pub class_aware_nms: bool,
    /// Class names replacing the model's, comma-separated in id order.
    #[arg(long, value_delimiter = ',')]
    pub class_names: Option<Vec<String>>,
    /// Execution providers in order of preference, comma-separated: tensorrt, cuda, cpu.
    #[arg(long, value_delimiter = ',', value_parser = parse_provider)]
    pub providers: Option<Vec<Provider>>,
    /// Write annotated images: a file for one image, a folder for several.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Print results as JSON Lines instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_provider(s: &str) -> Result<Provider, String> {
    match s.trim() {
        "tensorrt" => Ok(Provider::Tensorrt),
        "cuda" => Ok(Provider::Cuda),
        "cpu" => Ok(Provider::Cpu),
        other => Err(format!("unknown provider {other:?}: use tensorrt, cuda or cpu")),
    }
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
    let images = collect_images(&args.sources)?;
    let model = args.model.clone().unwrap_or_else(crate::paths::default_model);
    let opts = DetectorOptions {
        confidence: args.conf,
        iou: args.iou,
        class_agnostic: !args.class_aware_nms,
        class_names: args.class_names.clone(),
        providers: args.providers.clone().unwrap_or_else(|| DetectorOptions::default().providers),
        ..DetectorOptions::default()
    };
    let mut detector = Detector::load(&model, opts)?;
    let (w, h) = detector.input_size();
    if let Some(dir) = args.save.as_ref().filter(|_| images.len() > 1) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut failed = 0;
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
    for d in dets {
        let c = draw::class_colour(d.class_id);
        let b = d.bbox;
        draw::rect(&mut img, b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64, 2 * scale, c);
        draw::label(&mut img, b.x1 as i64, b.y1 as i64, &format!("{} {:.2}", d.class_name, d.score), scale, c);
    }
    img
}
