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
//!
//! `--cameras` takes a list (`6,8,10,12`): a sweep, each N measured in turn.
//! With `--brokers` the frames go where an ingest pod sends them: each camera's
//! bounded queue (the pod's size, dropping the oldest when full) forwarded by
//! the same [`FramePublisher`] to the frames topic, awaited durable; the CPU is
//! then the whole pod's (rdkafka's threads included). Each window also counts
//! what the sampler owed (sampling rate x cameras x wall-clock seconds: a live
//! camera does not wait) against what reached the sink (without Kafka) or the
//! broker (with it), the frames dropped from the queues and the frames the
//! producer lost; an N is *sustained* in a window when nothing was dropped or
//! lost and at most one frame per camera is missing (the window's two edges
//! fall between frames). Pinned to one core (`taskset -c 1 streetscope bench
//! cameras ... --server-cpus 0`, the servers kept off that core), the largest N
//! sustained in every window is what one core carries.

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
use streetscope_contracts::kafka::KafkaConfig;
use streetscope_ingest::bench::process_cpu_seconds;
use streetscope_ingest::{CameraSource, StopHandle};
use streetscope_pipeline::cameras::camera_queue;
use streetscope_telemetry::StageMeter;
use streetscope_transport::kafka::{ensure_topics, FramePublisher, FrameStats, Producer, Role, TopicChange};

#[derive(Debug, Args)]
pub struct CamerasBench {
    /// Live cameras at once (one RTSP server each); a comma-separated list
    /// measures each N in turn (a sweep).
    #[arg(long, value_delimiter = ',', default_value = "4")]
    cameras: Vec<usize>,
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
    /// Kafka brokers (`host:port,...`): publish the frames to the frames topic
    /// as an ingest pod does (its camera queues and frames publisher; topics
    /// made if missing). Without it frames are counted and dropped.
    #[arg(long)]
    brokers: Option<String>,
    /// CPUs the RTSP servers run on (`taskset -c LIST`), to keep them off the
    /// core this process is pinned to.
    #[arg(long)]
    server_cpus: Option<String>,
}

/// A running RTSP server; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(bin: &Path, clip: &Path, cpus: Option<&str>) -> anyhow::Result<Server> {
        let mut cmd = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.args(["-c", list]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
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

/// Where the frames go with `--brokers`: the ingest pod's producer and frames
/// publisher, on a runtime like the pod's.
struct Kafka {
    rt: tokio::runtime::Runtime,
    producer: Producer,
    frames: FramePublisher,
    stats: Arc<FrameStats>,
}

impl Kafka {
    fn connect(brokers: &str) -> anyhow::Result<Kafka> {
        let cfg = KafkaConfig::with_brokers(brokers);
        let rt = crate::cluster::runtime("streetscope-bench")?;
        let changes = rt.block_on(ensure_topics(&cfg)).with_context(|| format!("the topics at {brokers}"))?;
        if let Some(failed) = changes.iter().find(|c| matches!(c, TopicChange::Failed { .. })) {
            anyhow::bail!("{failed}");
        }
        let producer = Producer::new(&cfg, Role::FrameProducer)?;
        let frames = FramePublisher::new(producer.clone(), &cfg.topics.frames.name, crate::cluster::random_bytes);
        let stats = frames.stats();
        eprintln!("publishing to {} at {brokers} (queues of {} frames)", cfg.topics.frames.name, QUEUE_FRAMES);
        Ok(Kafka { rt, producer, frames, stats })
    }

    /// (durable, lost) so far.
    fn counts(&self) -> (u64, u64) {
        (self.stats.produced.load(Ordering::Relaxed), self.stats.failed.load(Ordering::Relaxed))
    }
}

/// An ingest pod's camera queue.
const QUEUE_FRAMES: usize = crate::cluster::ingest::POD_QUEUE_FRAMES;

/// One window of N cameras: CPU seconds of this process per camera-second of
/// video delivered, sampled frames per camera per wall-clock second, frames
/// decoded per camera-second (over the whole run, connection included: what
/// the decoder handed the sampler), and what the sampler owed against what
/// was published.
struct Window {
    cpu_per_camera_s: f64,
    frames_per_camera_s: f64,
    decoded_per_camera_s: f64,
    /// Frames the sampler owed in the window (rate x cameras x seconds).
    owed: f64,
    /// Frames that reached the sink (without Kafka) or the broker (with it).
    published: u64,
    /// Frames dropped from the cameras' queues (the broker too slow).
    dropped: u64,
    /// Frames the producer lost.
    lost: u64,
}

impl Window {
    /// Owed frames that were not published, less one a camera (the window's edges).
    fn missing(&self, cameras: usize) -> u64 {
        (self.owed - self.published as f64 - cameras as f64).max(0.0).ceil() as u64
    }

    fn sustained(&self, cameras: usize) -> bool {
        self.missing(cameras) == 0 && self.dropped == 0 && self.lost == 0
    }
}

fn measure(cams: &[CameraSource], seconds: f64, sample_fps: f64, kafka: Option<&Kafka>) -> anyhow::Result<Window> {
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..cams.len()).map(|_| AtomicU64::new(0)).collect());
    // With Kafka: each camera's queue into the frames publisher, as in a pod.
    let meter = StageMeter::new("ingest");
    let mut drops = Vec::new();
    let mut forwarders = Vec::new();
    let mut sinks = Vec::new();
    if let Some(k) = kafka {
        for cam in cams {
            let q = camera_queue(cam, QUEUE_FRAMES, k.frames.clone(), &meter, k.rt.handle());
            drops.push(q.drops);
            forwarders.push(q.forwarder);
            sinks.push(q.sink);
        }
    }
    let sinks = Arc::new(sinks);
    let dropped = || drops.iter().map(|d| d.get()).sum::<u64>();
    let stop = StopHandle::default();
    let started = Instant::now();
    let runner = {
        let (cams, counts, stop, sinks) = (cams.to_vec(), counts.clone(), stop.clone(), sinks.clone());
        std::thread::spawn(move || {
            // The sinks go with the cameras (when this returns): the forwarders
            // then drain their queues and end.
            streetscope_ingest::stage::run_cameras(
                &cams,
                move |f| {
                    // Camera ids are `cam-<index>`.
                    let Some(i) = f.camera_id.strip_prefix("cam-").and_then(|i| i.parse::<usize>().ok()) else {
                        return true;
                    };
                    counts[i].fetch_add(1, Ordering::Relaxed);
                    sinks.get(i).is_none_or(|sink| sink(f))
                },
                &stop,
                &meter,
            )
        })
    };
    drop(sinks);
    let delivered = |kafka: Option<&Kafka>| match kafka {
        Some(k) => k.counts(),
        None => (counts.iter().map(|c| c.load(Ordering::Relaxed)).sum(), 0),
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
        let ((p0, l0), d0) = (delivered(kafka), dropped());
        let (t0, c0) = (Instant::now(), process_cpu_seconds());
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let (c1, wall) = (process_cpu_seconds(), t0.elapsed().as_secs_f64());
        let f1: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let ((p1, l1), d1) = (delivered(kafka), dropped());
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
            owed: sample_fps * camera_s,
            published: p1 - p0,
            dropped: d1 - d0,
            lost: l1 - l0,
        })
    })();
    stop.stop();
    let reports = runner.join().map_err(|_| anyhow::anyhow!("the ingest thread panicked"))?;
    if let Some(k) = kafka {
        // Everything queued reaches the broker before the next window.
        for f in forwarders {
            let _ = k.rt.block_on(f);
        }
        k.producer.flush(Duration::from_secs(30))?;
    }
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

/// The CPUs this process may run on (`Cpus_allowed_list`).
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_owned())))
        .unwrap_or_else(|| "?".into())
}

pub fn bench_cameras(args: CamerasBench) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.cameras.is_empty() && args.cameras.iter().all(|&n| n > 0) && args.repeat > 0,
        "--cameras and --repeat must be at least 1"
    );
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
    let most = args.cameras.iter().copied().max().unwrap_or(1);
    eprintln!(
        "{:?} cameras of {} over RTSP ({}), sampled to {} fps, {}; {} s windows; this process on CPUs {}, \
         the servers on {}; load {}",
        args.cameras,
        clip.display(),
        if args.tcp { "media over TCP" } else { "transport auto: UDP first" },
        args.sample_fps,
        if args.jpeg_quality == 0 { "raw RGB".to_owned() } else { format!("JPEG quality {}", args.jpeg_quality) },
        args.seconds,
        allowed_cpus(),
        args.server_cpus.as_deref().unwrap_or("any"),
        loadavg()
    );
    let kafka = args.brokers.as_deref().map(Kafka::connect).transpose()?;
    let servers = (0..most)
        .map(|_| Server::start(&server, &clip, args.server_cpus.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cameras = |template: &str, n: usize| -> Vec<CameraSource> {
        servers
            .iter()
            .take(n)
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
    // Per (N, template): the windows measured.
    let mut runs: Vec<Vec<Vec<Window>>> =
        args.cameras.iter().map(|_| templates.iter().map(|_| Vec::new()).collect()).collect();
    for r in 0..args.repeat {
        for (j, &n) in args.cameras.iter().enumerate() {
            for (k, t) in templates.iter().enumerate() {
                let w = measure(&cameras(t, n), args.seconds, args.sample_fps, kafka.as_ref())?;
                eprintln!(
                    "run {} N={n} {t}: {:.4} CPU-s per camera-second ({:.1} cameras per core), {:.2} frames/s per \
                     camera sampled, {:.1} decoded; owed {:.0}, {} {}, {} dropped, {} lost: {}; load {}",
                    r + 1,
                    w.cpu_per_camera_s,
                    1.0 / w.cpu_per_camera_s,
                    w.frames_per_camera_s,
                    w.decoded_per_camera_s,
                    w.owed,
                    w.published,
                    if kafka.is_some() { "durable in Kafka" } else { "delivered" },
                    w.dropped,
                    w.lost,
                    if w.sustained(n) { "sustained".to_owned() } else { format!("{} missing", w.missing(n)) },
                    loadavg()
                );
                runs[j][k].push(w);
            }
        }
    }
    drop(servers);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "N",
        "template",
        "CPU-s per camera-second (runs)",
        "median",
        "cameras per core",
        "frames/s per camera",
        "owed / published, dropped, lost (all runs)",
        "sustained",
    ]);
    let mut largest: Vec<Option<usize>> = vec![None; templates.len()];
    for (j, &n) in args.cameras.iter().enumerate() {
        for (k, name) in templates.iter().enumerate() {
            let ws = &runs[j][k];
            let cpu: Vec<f64> = ws.iter().map(|w| w.cpu_per_camera_s).collect();
            let med = crate::bench::median(cpu.clone());
            let ok = ws.iter().filter(|w| w.sustained(n)).count();
            if ok == ws.len() {
                largest[k] = Some(largest[k].map_or(n, |l: usize| l.max(n)));
            }
            t.add_row(vec![
                n.to_string(),
                name.clone(),
                cpu.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", "),
                format!("{med:.4}"),
                format!("{:.1}", 1.0 / med),
                format!("{:.2}", crate::bench::median(ws.iter().map(|w| w.frames_per_camera_s).collect())),
                format!(
                    "{:.0} / {}, {}, {}",
                    ws.iter().map(|w| w.owed).sum::<f64>(),
                    ws.iter().map(|w| w.published).sum::<u64>(),
                    ws.iter().map(|w| w.dropped).sum::<u64>(),
                    ws.iter().map(|w| w.lost).sum::<u64>()
                ),
                format!("{ok} of {}", ws.len()),
            ]);
        }
    }
    println!("{t}");
    for (k, name) in templates.iter().enumerate() {
        match largest[k] {
            Some(n) => println!("{name}: largest N sustained in every window on CPUs {}: {n}", allowed_cpus()),
            None => println!("{name}: no N sustained in every window on CPUs {}", allowed_cpus()),
        }
    }
    drop(kafka);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(owed: f64, published: u64, dropped: u64, lost: u64) -> Window {
        Window {
            cpu_per_camera_s: 0.1,
            frames_per_camera_s: 5.0,
            decoded_per_camera_s: 25.0,
            owed,
            published,
            dropped,
            lost,
        }
    }

    #[test]
    fn a_window_is_sustained_when_at_most_one_frame_a_camera_is_short_and_nothing_dropped_or_lost() {
        // Ten cameras owed 500 frames: the window's edges may cost each one frame.
        assert!(window(500.0, 490, 0, 0).sustained(10));
        assert_eq!(window(500.0, 489, 0, 0).missing(10), 1);
        assert!(!window(500.0, 489, 0, 0).sustained(10));
        // Confirmations of the last window's frames can land in this one.
        assert!(window(500.0, 512, 0, 0).sustained(10));
        // A frame dropped from a queue or lost by the producer is never allowed.
        assert!(!window(500.0, 500, 1, 0).sustained(10));
        assert!(!window(500.0, 500, 0, 1).sustained(10));
        // A camera falling behind real time shows as frames owed and not published.
        assert_eq!(window(500.0, 202, 0, 0).missing(10), 288);
    }
}
