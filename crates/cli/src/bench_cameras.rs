//! `streetscope bench cameras`: live RTSP cameras through ingest, per core.
//!
//! Starts N RTSP servers on 127.0.0.1 (the `rtsp_server` example of the ingest
//! crate, gst-rtsp-server, each playing an H.264 clip in real time) as separate
//! processes, runs N cameras through ingest in this process as `streetscope
//! ingest` does (sampled by timestamp, letterboxed, JPEG-encoded as the frames
//! topic carries them; frames are counted and dropped), and measures this
//! process's CPU time (user + system, every thread, `/proc/self/stat`) over a
//! window in which every camera streams. The servers' CPU is theirs, not
//! counted. The figure is CPU seconds per camera-second of video delivered
//! (sampled frames / sampling rate), and its inverse, cameras per core. Over
//! UDP a machine too loaded to keep up loses packets, and with them frames it
//! never decodes: the decoded rate printed with each run shows it (25 a second
//! for the default clip when nothing is lost); `--tcp` loses nothing.
//!
//! Several `--template`s are measured in turn within each repeat (side by
//! side, so the machine's load falls on each alike); medians are reported.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use streetscope_contracts::config::RtspTransport;
use streetscope_ingest::bench::process_cpu_seconds;
use streetscope_ingest::{CameraSource, StopHandle};
use streetscope_telemetry::StageMeter;

#[derive(Debug, Args)]
pub struct CamerasBench {
    /// Live cameras at once (one RTSP server each).
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// Seconds measured, once every camera delivers frames. The servers play
    /// the clip once per connection, so this must fit in the clip (21 s for the
    /// default) with a few seconds to connect.
    #[arg(long, default_value_t = 12.0)]
    seconds: f64,
    /// Frames per second sampled from each camera.
    #[arg(long, default_value_t = 5.0)]
    sample_fps: f64,
    /// JPEG quality of the frames (as the frames topic carries them); 0 hands
    /// over raw RGB instead, as `streetscope run` does.
    #[arg(long, default_value_t = streetscope_ingest::reconcile::DEFAULT_JPEG_QUALITY)]
    jpeg_quality: u8,
    /// The H.264 MP4 every server plays (default: the two_way clip re-encoded at
    /// 1920x1080, 25 fps, a keyframe a second, made once into the cache).
    #[arg(long)]
    clip: Option<PathBuf>,
    /// The RTSP server binary (default: `examples/rtsp_server` next to this
    /// binary; `cargo build --release -p streetscope-ingest --example rtsp_server`).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Templates to measure in turn (a camera's `template`); `builtin` is the
    /// built-in RTSP template. Default: the built-in one alone.
    #[arg(long)]
    template: Vec<String>,
    /// Decode keyframes only (`keyframes_only`), for every template.
    #[arg(long)]
    keyframes_only: bool,
    /// Media over TCP (in the RTSP connection) instead of the default (auto: UDP first).
    #[arg(long)]
    tcp: bool,
    /// Measurements of each template; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

/// A running RTSP server; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(bin: &Path, clip: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(bin)
            .args(["--port", "0", "--file"])
            .arg(clip)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let url = line.trim().to_owned();
        if !url.starts_with("rtsp://127.0.0.1:") {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{} said {url:?} instead of its URL", bin.display());
        }
        Ok(Server { child, url })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One window of N cameras: CPU seconds of this process per camera-second of
/// video delivered, sampled frames per camera per wall-clock second, and frames decoded per camera-second (over
/// the whole run, connection included: what the decoder handed the sampler).
struct Window {
    cpu_per_camera_s: f64,
    frames_per_camera_s: f64,
    decoded_per_camera_s: f64,
}

fn measure(cams: &[CameraSource], seconds: f64, sample_fps: f64) -> anyhow::Result<Window> {
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..cams.len()).map(|_| AtomicU64::new(0)).collect());
    let stop = StopHandle::default();
    let started = Instant::now();
    let runner = {
        let (cams, counts, stop) = (cams.to_vec(), counts.clone(), stop.clone());
        std::thread::spawn(move || {
            streetscope_ingest::stage::run_cameras(
                &cams,
                move |f| {
                    // Camera ids are `cam-<index>`.
                    if let Some(i) = f.camera_id.strip_prefix("cam-").and_then(|i| i.parse::<usize>().ok()) {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    }
                    true
                },
                &stop,
                &StageMeter::new("ingest"),
            )
        })
    };
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while counts.iter().any(|c| c.load(Ordering::Relaxed) == 0) {
            anyhow::ensure!(Instant::now() < deadline, "not every camera delivered a frame within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Past the start (caps, the first keyframe, buffers filling).
        std::thread::sleep(Duration::from_secs(1));
        let f0: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let (t0, c0) = (Instant::now(), process_cpu_seconds());
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let (c1, wall) = (process_cpu_seconds(), t0.elapsed().as_secs_f64());
        let f1: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let camera_s = cams.len() as f64 * wall;
        // Seconds of video the cameras delivered (frames are sampled on a grid
        // of stream time): on a loaded machine a camera falls behind real time
        // (over TCP the server is held back), and per wall-second would flatter it.
        let video_s = (f1 - f0) as f64 / sample_fps;
        anyhow::ensure!(video_s > 0.0, "no frame in the window");
        Ok(Window {
            cpu_per_camera_s: (c1 - c0) / video_s,
            frames_per_camera_s: (f1 - f0) as f64 / camera_s,
            decoded_per_camera_s: 0.0,
        })
    })();
    stop.stop();
    let reports = runner.join().map_err(|_| anyhow::anyhow!("the ingest thread panicked"))?;
    let run_s = started.elapsed().as_secs_f64() * cams.len() as f64;
    let mut decoded = 0;
    for r in reports {
        decoded += r?.decoded;
    }
    result.map(|w| Window { decoded_per_camera_s: decoded as f64 / run_s, ..w })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn bench_cameras(args: CamerasBench) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.cameras > 0 && args.repeat > 0, "--cameras and --repeat must be at least 1");
    let clip = match args.clip {
        Some(c) => c,
        None => crate::bench::clip_1080p25()?,
    };
    let server = match args.server {
        Some(s) => s,
        None => std::env::current_exe()?
            .parent()
            .context("the binary's folder")?
            .join("examples")
            .join(format!("rtsp_server{}", std::env::consts::EXE_SUFFIX)),
    };
    anyhow::ensure!(
        server.is_file(),
        "{} is missing: cargo build --release -p streetscope-ingest --example rtsp_server (or --server PATH)",
        server.display()
    );
    let templates = if args.template.is_empty() { vec!["builtin".to_owned()] } else { args.template.clone() };
    eprintln!(
        "{} cameras of {} over RTSP ({}), sampled to {} fps, {}; {} s windows; load {}",
        args.cameras,
        clip.display(),
        if args.tcp { "media over TCP" } else { "transport auto: UDP first" },
        args.sample_fps,
        if args.jpeg_quality == 0 { "raw RGB".to_owned() } else { format!("JPEG quality {}", args.jpeg_quality) },
        args.seconds,
        loadavg()
    );
    let servers = (0..args.cameras).map(|_| Server::start(&server, &clip)).collect::<anyhow::Result<Vec<_>>>()?;
    let cameras = |template: &str| -> Vec<CameraSource> {
        servers
            .iter()
            .enumerate()
            .map(|(i, s)| CameraSource {
                camera_id: format!("cam-{i}"),
                intersection_id: "bench".into(),
                source: s.url.clone(),
                sample_fps: args.sample_fps,
                width: 640,
                height: 640,
                stall_timeout: Duration::from_secs(10),
                keyframes_only: args.keyframes_only,
                jpeg_quality: (args.jpeg_quality > 0).then_some(args.jpeg_quality),
                rtsp_transport: if args.tcp { RtspTransport::Tcp } else { RtspTransport::Auto },
                template: (template != "builtin").then(|| PathBuf::from(template)),
            })
            .collect()
    };
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); templates.len()];
    let mut fps: Vec<Vec<f64>> = vec![Vec::new(); templates.len()];
    for r in 0..args.repeat {
        for (k, t) in templates.iter().enumerate() {
            let w = measure(&cameras(t), args.seconds, args.sample_fps)?;
            eprintln!(
                "run {} {t}: {:.4} CPU-s per camera-second ({:.1} cameras per core), {:.2} frames/s per camera \
                 sampled, {:.1} decoded; load {}",
                r + 1,
                w.cpu_per_camera_s,
                1.0 / w.cpu_per_camera_s,
                w.frames_per_camera_s,
                w.decoded_per_camera_s,
                loadavg()
            );
            cpu[k].push(w.cpu_per_camera_s);
            fps[k].push(w.frames_per_camera_s);
        }
    }
    drop(servers);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "template",
        "CPU-s per camera-second (runs)",
        "median",
        "cameras per core",
        "frames/s per camera",
    ]);
    for (k, name) in templates.iter().enumerate() {
        let runs = cpu[k].iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ");
        let med = crate::bench::median(cpu[k].clone());
        t.add_row(vec![
            name.clone(),
            runs,
            format!("{med:.4}"),
            format!("{:.1}", 1.0 / med),
            format!("{:.2}", crate::bench::median(fps[k].clone())),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}
