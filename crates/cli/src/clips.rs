//! `streetscope clips generate`: renders the built-in test clips
//! (`streetscope-testclips`) and encodes them to H.264 MP4 with GStreamer.
//!
//! Idempotent: a clip whose video exists and whose ground truth beside it matches
//! the current specification is not generated again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Subcommand;
use streetscope_ingest::clipwriter::{write_mp4, ClipFormat};
use streetscope_testclips::{builtin_clips, ground_truth, truth_file_name, ClipRenderer, Sprite};

#[derive(Debug, Subcommand)]
pub enum ClipsCommand {
    /// Renders the built-in clips to MP4, each with its ground truth (JSON) beside it.
    Generate {
        /// Output folder.
        #[arg(long, default_value = "test-videos/out")]
        out: PathBuf,
        /// The vehicle photo (Ultralytics' bus.jpg; default: the set-up script's copy).
        #[arg(long)]
        bus: Option<PathBuf>,
        /// Only this clip (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Generate even when the clip is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Lists the built-in clips.
    List,
}

pub fn clips(cmd: ClipsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClipsCommand::List => {
            for c in builtin_clips() {
                let truth = ground_truth(&c);
                println!(
                    "{:<10} {}x{} {} fps {:>5.1} s  {} vehicles, {} crossings  {}",
                    c.name,
                    c.width,
                    c.height,
                    c.fps,
                    c.duration_s,
                    c.vehicles.len(),
                    truth.crossings.len(),
                    c.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ClipsCommand::Generate { out, bus, only, force } => {
            let clips: Vec<_> =
                builtin_clips().into_iter().filter(|c| only.is_empty() || only.contains(&c.name)).collect();
            if clips.is_empty() {
                bail!("no built-in clip is named {only:?} (see `streetscope clips list`)");
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let bus = bus.unwrap_or_else(streetscope_testclips::default_bus_image_path);
            let mut sprite = None;
            for spec in clips {
                let video = out.join(format!("{}.mp4", spec.name));
                let truth_path = out.join(truth_file_name(&spec.name));
                let truth = ground_truth(&spec).to_json();
                let current = video.is_file() && std::fs::read_to_string(&truth_path).is_ok_and(|t| t == truth);
                if current && !force {
                    eprintln!("{}: up to date", video.display());
                    continue;
                }
                if sprite.is_none() {
                    sprite = Some(
                        Sprite::load_bus(&bus).with_context(|| "loading the vehicle photo (run scripts/setup.sh)")?,
                    );
                }
                let started = Instant::now();
                let renderer = ClipRenderer::new(&spec, sprite.as_ref().expect("loaded above"));
                let format = ClipFormat {
                    width: spec.width,
                    height: spec.height,
                    fps: spec.fps,
                    keyframe_interval: 2 * spec.fps,
                };
                // Write to a temporary name first: an interrupted run never leaves a
                // half-written clip that looks up to date.
                let partial = out.join(format!(".{}.mp4.partial", spec.name));
                let n = write_mp4(&partial, format, (0..spec.frame_count()).map(|i| renderer.frame(i).into_raw()))?;
                std::fs::rename(&partial, &video).with_context(|| format!("renaming to {}", video.display()))?;
                std::fs::write(&truth_path, &truth).with_context(|| format!("writing {}", truth_path.display()))?;
                eprintln!(
                    "{}: {n} frames {}x{} @ {} fps in {:.1} s",
                    video.display(),
                    spec.width,
                    spec.height,
                    spec.fps,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
