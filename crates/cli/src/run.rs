//! `streetscope run`: the whole pipeline in one process.
//!
//! ```text
//! ingest (a thread per camera) ─frames─► detect ─detections─► aggregate ─events─► JSON Lines + console
//! ```
//! Stages are connected by bounded in-process channels; the same stage code runs
//! over Kafka in the distributed mode.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use streetscope_aggregate::stage::{AggregateStage, EventClock, StageInput};
use streetscope_aggregate::Aggregator;
use streetscope_contracts::cameras::CameraChange;
use streetscope_contracts::config::{CameraConfig, PipelineConfig};
use streetscope_contracts::records::{ResultRecord, RunSummary, StageThroughput, SCHEMA_VERSION};
use streetscope_contracts::{CountingLine, Frame, FrameDetections};
use streetscope_detect::stage::{DetectStage, StageOptions};
use streetscope_detect::{Detector, DetectorOptions};
use streetscope_ingest::reconcile::{IngestSettings, Reconciler};
use streetscope_ingest::{CameraSource, RestartPolicy, StopHandle};
use streetscope_pipeline::cameras::{camera_queue, DropCounters, CAMERA_QUEUE_FRAMES};
use streetscope_telemetry::StageMeter;
use streetscope_transport::{channel, FullPolicy, InProcPublisher, Publish, Subscribe};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline configuration (TOML), e.g. pipelines/demo.toml.
    #[arg(long, short, conflicts_with = "source")]
    pub config: Option<PathBuf>,
    /// Quick look without a config file: a video file or URL (rtsp://, http://, file://).
    pub source: Option<String>,
    /// A counting line for the quick look: NAME=X1,Y1,X2,Y2 in normalised image
    /// coordinates, optionally followed by :FORWARD/BACKWARD direction labels,
    /// e.g. `--line stop=0.5,0.9,0.5,0.1:eastbound/westbound`. Repeatable.
    #[arg(long = "line", value_name = "LINE", requires = "source")]
    pub lines: Vec<String>,
    /// Frames per second to sample (quick look; default 10).
    #[arg(long, requires = "source")]
    pub sample_fps: Option<f64>,
    /// Camera id (quick look).
    #[arg(long, default_value = "camera-1", requires = "source")]
    pub camera_id: String,
    /// Intersection id (quick look).
    #[arg(long, default_value = "intersection-1", requires = "source")]
    pub intersection_id: String,
    /// JSON Lines file for the results (overrides the config's `output.path`).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The ONNX model (overrides the config's `detector.model`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Serve /status (JSON), /metrics (Prometheus) and /healthz on this address
    /// while running, e.g. 127.0.0.1:9464 (port 0 picks a free one).
    #[arg(long)]
    pub status_addr: Option<std::net::SocketAddr>,
    /// Serve the traffic dashboard on this address while running, and after
    /// the run until Ctrl-C, e.g. 127.0.0.1:8080 (docs/dashboard.md).
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<std::net::SocketAddr>,
    /// Once asked to stop (Ctrl-C, SIGTERM), how long to finish the frames in
    /// flight and write the summary before exiting anyway, in seconds.
    #[arg(long, env = "STREETSCOPE_STOP_TIMEOUT", default_value_t = crate::cluster::DEFAULT_STOP_TIMEOUT_S)]
    pub stop_timeout: f64,
}

/// Parses `NAME=X1,Y1,X2,Y2[:FORWARD/BACKWARD]`.
pub fn parse_line(spec: &str) -> anyhow::Result<CountingLine> {
    let bad = |why: &str| anyhow::anyhow!("--line {spec:?}: {why} (expected NAME=X1,Y1,X2,Y2[:FORWARD/BACKWARD])");
    let (name, rest) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
    let (coords, labels) = match rest.split_once(':') {
        Some((c, l)) => (c, Some(l)),
        None => (rest, None),
    };
    let v: Vec<f64> = coords
        .split(',')
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("coordinates must be numbers"))?;
    let [x1, y1, x2, y2] = v[..] else {
        return Err(bad("four coordinates are needed"));
    };
    let mut line = CountingLine::new(name.trim(), [x1, y1], [x2, y2]);
    if let Some(l) = labels {
        let (f, b) = l.split_once('/').ok_or_else(|| bad("labels are FORWARD/BACKWARD"))?;
        line.forward = f.trim().to_owned();
        line.backward = b.trim().to_owned();
    }
    Ok(line)
}

fn load_config(args: &RunArgs) -> anyhow::Result<PipelineConfig> {
    let mut cfg = if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        PipelineConfig::from_toml_str(&text, &path.display().to_string(), path.parent())?
    } else if let Some(source) = &args.source {
        let lines = args.lines.iter().map(|l| parse_line(l)).collect::<anyhow::Result<Vec<_>>>()?;
        // Built from JSON so that every other field takes its default.
        let mut camera: CameraConfig = serde_json::from_value(serde_json::json!({
            "id": args.camera_id,
            "intersection": args.intersection_id,
            "source": source,
        }))
        .context("building the camera of the quick look")?;
        camera.sample_fps = args.sample_fps.unwrap_or(10.0);
        camera.lines = lines;
        let cfg = PipelineConfig {
            cameras: vec![camera],
            detector: Default::default(),
            tracker: Default::default(),
            ingest: Default::default(),
            analytics: Default::default(),
            output: Default::default(),
            status: Default::default(),
            dashboard: Default::default(),
        };
        cfg.validate().map_err(|errs| {
            anyhow::anyhow!(
                "invalid arguments:\n{}",
                errs.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
            )
        })?;
        cfg
    } else {
        bail!("give a config file (--config pipelines/demo.toml) or a source (a video file or URL)");
    };
    if let Some(o) = &args.output {
        cfg.output.path = Some(o.clone());
    }
    if let Some(m) = &args.model {
        cfg.detector.model = Some(m.clone());
    }
    Ok(cfg)
}

/// The runs of the model a `[detector]` section asks for
/// ([`Detector::load_streams`]), each warmed up.
pub(crate) fn load_detectors(
    model: &std::path::Path,
    cfg: &streetscope_contracts::config::DetectorConfig,
) -> anyhow::Result<Vec<Detector>> {
    let mut detectors = Detector::load_streams(model, DetectorOptions::from_config(cfg))?;
    let mut warm = 0.0;
    for d in &mut detectors {
        warm += d.warm_up()?;
    }
    tracing::info!(
        "detector ready on {}, {} run(s) of the model at once (warm-up {warm:.2} s)",
        detectors[0].provider().name(),
        detectors.len()
    );
    Ok(detectors)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args)?;
    let model = cfg.detector.model.clone().unwrap_or_else(crate::paths::default_model);
    let detectors = load_detectors(&model, &cfg.detector)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("streetscope")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_pipeline(cfg, detectors, args.status_addr, args.ui, args.config.clone(), args.stop_timeout))
}

async fn run_pipeline(
    cfg: PipelineConfig,
    detectors: Vec<Detector>,
    status_addr: Option<std::net::SocketAddr>,
    ui_addr: Option<std::net::SocketAddr>,
    config_path: Option<PathBuf>,
    stop_timeout_s: f64,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (w, h) = detectors[0].input_size();
    let info = detectors[0].info();
    eprintln!("model {} ({:?}, input {w}x{h}, classes: {})", info.path, info.head, info.names.join(", "));
    let out_path = cfg.output.path().to_path_buf();
    // Each record reaches the file as it happens (written whole, then flushed):
    // a run stopped by a signal, or killed, loses none that was printed.
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?,
    );
    let write_record = |out: &mut std::io::BufWriter<std::fs::File>, rec: &ResultRecord| -> anyhow::Result<()> {
        serde_json::to_writer(&mut *out, rec)?;
        out.write_all(b"\n")?;
        out.flush().with_context(|| format!("writing {}", out_path.display()))
    };

    // One bounded queue per camera, so a slow detector costs each live camera its
    // own oldest frames and never another camera's. Files wait instead (nothing is
    // lost by waiting). The per-camera queues feed the detector's queue. A queue is
    // made each time a camera starts (the camera set changes while running).
    let (frames_tx, frames_rx) = channel::<Frame>("frames", 4, FullPolicy::Block);
    let drop_counters = DropCounters::default();
    let (dets_tx, dets_rx) = channel::<FrameDetections>("detections", 64, FullPolicy::Block);
    let (events_tx, mut events_rx) = channel::<ResultRecord>("results", 256, FullPolicy::Block);

    let meters = [StageMeter::new("ingest"), StageMeter::new("detect"), StageMeter::new("aggregate")];
    let stop = StopHandle::default();
    {
        // Ctrl-C or SIGTERM (`docker stop`, systemd, `timeout`): the cameras stop,
        // the frames in flight are detected and counted, the tracks end and the
        // summary is written. A second signal, or the grace period running out,
        // ends the process at once (every record so far is in the file already).
        let stop = stop.clone();
        let grace = Duration::from_secs_f64(stop_timeout_s);
        tokio::spawn(async move {
            crate::cluster::shutdown_signal().await;
            eprintln!("\nstopping: finishing the frames in flight (again to abort; at most {grace:?})");
            stop.stop();
            tokio::select! {
                _ = crate::cluster::shutdown_signal() => {}
                _ = tokio::time::sleep(grace) => eprintln!("stopping took longer than {grace:?}: aborting"),
            }
            std::process::exit(130);
        });
    }

    let restart = RestartPolicy::from_config(&cfg.ingest);
    let settings = IngestSettings {
        width: w,
        height: h,
        stall_timeout: Duration::from_secs_f64(cfg.ingest.stall_timeout_s),
        policy: restart,
        default_jpeg_quality: None,
    };
    let make_sink = {
        let (drops, meter, rt) = (drop_counters.clone(), meters[0].clone(), tokio::runtime::Handle::current());
        move |cam: &CameraSource| {
            let q = camera_queue(cam, CAMERA_QUEUE_FRAMES, frames_tx.clone(), &meter, &rt);
            drops.add(&cam.camera_id, q.drops);
            q.sink
        }
    };
    let mut reconciler = Reconciler::new(settings, make_sink);
    for c in &cfg.cameras {
        reconciler.apply(CameraChange::Upsert(c.clone())).context("starting a camera thread")?;
    }
    if let Some(addr) = status_addr {
        let sources = crate::status::StatusSources {
            cameras: reconciler.statuses(),
            drops: drop_counters.clone(),
            stages: meters.to_vec(),
            delivery: Default::default(),
        };
        let bound = crate::status::serve(addr, std::sync::Arc::new(sources), &cfg.status).await?;
        eprintln!("status: {bound}/status  metrics: {bound}/metrics");
    }
    let ui = match ui_addr {
        Some(a) => {
            Some(crate::dashboard_cmd::RunUi::start(a, &cfg.cameras, reconciler.statuses(), &cfg.dashboard).await?)
        }
        None => None,
    };
    // Changes to the camera set: to ingest (a thread that starts and stops
    // cameras) and to the aggregate stage (in line with the detections).
    let (ingest_changes, ingest_changes_rx) = std::sync::mpsc::channel::<CameraChange>();
    let (aggregate_changes, aggregate_changes_rx) = tokio::sync::mpsc::channel::<CameraChange>(64);
    let ingest = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || reconciler.run(ingest_changes_rx, &stop, true))
    };
    let watcher = config_path.map(|path| {
        tokio::spawn(crate::watch::watch_cameras(
            path,
            cfg.clone(),
            crate::watch::WATCH_INTERVAL,
            ingest_changes.clone(),
            aggregate_changes.clone(),
        ))
    });
    drop((ingest_changes, aggregate_changes));
    let stage_opts = StageOptions::from_config(&cfg.detector);
    let detect = tokio::spawn(
        DetectStage::with_streams(detectors, meters[1].clone(), stage_opts)
            .run(crate::dashboard_cmd::Tap::new(frames_rx, &ui), dets_tx),
    );
    let (aggregate_tx, aggregate_rx) = channel::<StageInput>("aggregate input", 64, FullPolicy::Block);
    tokio::spawn(merge_changes(crate::dashboard_cmd::Tap::new(dets_rx, &ui), aggregate_changes_rx, aggregate_tx));
    let mut aggregate_stage =
        AggregateStage::new(Aggregator::with_analytics(&cfg.cameras, &cfg.tracker, &cfg.analytics), meters[2].clone());
    if let Some(ui) = &ui {
        // The snapshots' track ids, from the tracks themselves.
        aggregate_stage = aggregate_stage.on_frame(ui.frame_hook());
    }
    let aggregate = tokio::spawn(aggregate_stage.run_with_changes(aggregate_rx, events_tx));

    // A bar with rate and time left when every source is a recording of known
    // length; the live line otherwise; plain lines when stderr is no terminal.
    let progress =
        crate::progress::Progress::new(recordings_total(&cfg.cameras).await, std::io::stderr().is_terminal());
    let mut tick = tokio::time::interval(progress.every());
    tick.tick().await;
    let (mut crossings, mut turns, mut windows) = (0u64, 0u64, 0u64);
    let frames_dropped = || drop_counters.total();
    loop {
        tokio::select! {
            rec = events_rx.next() => {
                let Some(rec) = rec else { break };
                if let Some(ui) = &ui { ui.record(&rec); }
                write_record(&mut out, &rec)?;
                progress.suspend(|| match &rec {
                    ResultRecord::Crossing(ev) => {
                        crossings += 1;
                        println!(
                            "{:>8.2}s  {}  {}  {:<10} {:<8} track {}",
                            ev.stream_time_s, ev.camera_id, ev.line, ev.direction_label, ev.class_name, ev.track_id
                        );
                    }
                    ResultRecord::TurningMovement(t) => {
                        turns += 1;
                        println!("  turn  {}  {} -> {}  {:<8} track {}", t.camera_id, t.from, t.to, t.class_name, t.track_id);
                    }
                    ResultRecord::Window(w) => {
                        windows += 1;
                        let n: u64 = w.counts.iter().map(|c| c.count).sum();
                        println!(
                            "  window {} {} s from {}: {n} crossings{}",
                            w.intersection_id, w.length_s, w.window_start_ms,
                            if w.complete { "" } else { " (incomplete)" }
                        );
                    }
                    ResultRecord::Alert(a) => {
                        println!("  alert {:?} {:?}  {}  {}: {}", a.alert, a.state, a.camera_id, a.subject, a.message);
                    }
                    ResultRecord::Summary(_) | ResultRecord::Counts(_) => {}
                });
            }
            _ = tick.tick() => progress.update(&crate::progress::Counts {
                ingested: meters[0].items(),
                detected: meters[1].items(),
                aggregated: meters[2].items(),
                crossings,
                dropped: frames_dropped(),
            }),
        }
    }
    progress.finish();

    let camera_results = ingest.await.context("the ingest stage panicked")?;
    if let Some(w) = watcher {
        w.abort();
    }
    let (detectors, detect_report) = detect.await.context("the detect stage panicked")??;
    let aggregator = aggregate.await.context("the aggregate stage panicked")??;
    tracing::debug!("detector ({} run(s)) on {} finished", detectors.len(), detectors[0].provider().name());

    let wall_s = started.elapsed().as_secs_f64();
    let stages: Vec<StageThroughput> = meters
        .iter()
        .map(|m| {
            let s = m.stats();
            StageThroughput { stage: s.name.clone(), items: s.items, busy_s: s.busy_s, items_per_s: s.items_per_s() }
        })
        .collect();
    let summary = RunSummary {
        schema_version: SCHEMA_VERSION,
        wall_s,
        frames: meters[2].items(),
        frames_dropped: frames_dropped(),
        frames_failed: detect_report.failed,
        frames_shed: detect_report.shed_stale,
        counts: aggregator.counts(),
        turning_movements: aggregator.turning_movements(),
        stages,
    };
    write_record(&mut out, &ResultRecord::Summary(summary.clone()))?;

    if let Some(ui) = &ui {
        ui.record(&ResultRecord::Summary(summary.clone()));
    }
    print_summary(&summary);
    for (camera, dropped) in drop_counters.per_camera() {
        if dropped > 0 {
            println!("camera {camera}: {dropped} frames dropped (oldest first) while the detector was behind");
        }
    }
    println!(
        "results: {} ({crossings} crossings, {turns} turning movements, {windows} windows and a summary, JSON Lines)",
        out_path.display()
    );

    // A run that ended by itself keeps its page up until asked to stop; one
    // that was asked to stop (SIGTERM, Ctrl-C) exits now, as asked.
    if let Some(ui) = ui.as_ref().filter(|_| !stop.is_stopped()) {
        ui.linger().await;
    }
    let failed: Vec<String> =
        camera_results.iter().filter_map(|(_, r)| r.as_ref().err().map(|e| e.to_string())).collect();
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("error: {f}");
        }
        bail!("{} of {} cameras failed", failed.len(), camera_results.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Feeds the aggregate stage: detections, the camera set's changes as they
/// come, and a tick every second with the event time reached (the latest capture
/// time plus the wall-clock time since it arrived: a backlog of frames never looks
/// like silence, a silent camera does). Ends with the detections.
async fn merge_changes(
    mut detections: impl Subscribe<FrameDetections>,
    mut changes: tokio::sync::mpsc::Receiver<CameraChange>,
    out: InProcPublisher<StageInput>,
) {
    let mut changes_open = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clock = EventClock::default();
    loop {
        tokio::select! {
            biased;
            change = changes.recv(), if changes_open => match change {
                Some(c) => {
                    if out.publish(StageInput::Camera(c)).await.is_err() {
                        break;
                    }
                }
                None => changes_open = false,
            },
            fd = detections.next() => match fd {
                Some(fd) => {
                    clock.observe(fd.capture_time_ms, Instant::now());
                    if out.publish(StageInput::Detections(fd)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if let Some(now) = clock.now(Instant::now()) {
                    if out.publish(StageInput::Tick(now)).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// A condensed table of `rows` under `header`.
fn table<R: IntoIterator<Item = Cell>>(header: [&str; 6], rows: impl Iterator<Item = R>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for r in rows {
        t.add_row(r.into_iter().collect::<Vec<_>>());
    }
    t
}

fn print_summary(s: &RunSummary) {
    let rows = s.counts.iter().map(|r| {
        [&r.intersection_id, &r.camera_id, &r.line, &r.direction_label, &r.class_name]
            .map(Cell::new)
            .to_vec()
            .into_iter()
            .chain([Cell::new(r.count).set_alignment(CellAlignment::Right)])
    });
    let mut counts = table(["Intersection", "Camera", "Line", "Direction", "Class", "Count"], rows);
    if s.counts.is_empty() {
        counts.add_row(vec!["(no crossings)", "", "", "", "", ""]);
    }
    println!("\nCounts\n{counts}");
    if !s.turning_movements.is_empty() {
        let rows = s.turning_movements.iter().map(|r| {
            [&r.intersection_id, &r.camera_id, &r.from, &r.to, &r.class_name]
                .map(Cell::new)
                .to_vec()
                .into_iter()
                .chain([Cell::new(r.count).set_alignment(CellAlignment::Right)])
        });
        println!("\nTurning movements\n{}", table(["Intersection", "Camera", "From", "To", "Class", "Count"], rows));
    }
    let mut stages = Table::new();
    stages.load_preset(UTF8_FULL_CONDENSED).set_header(["Stage", "Frames", "Busy s", "Frames/s"]);
    for st in &s.stages {
        stages.add_row(vec![
            Cell::new(&st.stage),
            Cell::new(st.items).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}", st.busy_s)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", st.items_per_s)).set_alignment(CellAlignment::Right),
        ]);
    }
    stages.add_row(vec![
        Cell::new("pipeline (wall clock)"),
        Cell::new(s.frames).set_alignment(CellAlignment::Right),
        Cell::new(format!("{:.2}", s.wall_s)).set_alignment(CellAlignment::Right),
        Cell::new(format!("{:.1}", s.frames as f64 / s.wall_s.max(1e-9))).set_alignment(CellAlignment::Right),
    ]);
    println!("\nThroughput\n{stages}");
    if s.frames_dropped + s.frames_failed + s.frames_shed > 0 {
        println!(
            "frames dropped under back-pressure: {}, failed in the detector: {}, shed as stale: {}",
            s.frames_dropped, s.frames_failed, s.frames_shed
        );
    }
}

/// The frames the cameras' recordings hold at their sample rates, for the
/// progress bar; None when a camera is live, samples keyframes only, or a
/// recording's length cannot be read (the live line is shown instead).
async fn recordings_total(cameras: &[streetscope_contracts::config::CameraConfig]) -> Option<u64> {
    if cameras.iter().any(|c| c.keyframes_only) {
        return None;
    }
    let sources: Vec<(String, f64)> = cameras.iter().map(|c| (c.source.clone(), c.sample_fps)).collect();
    tokio::task::spawn_blocking(move || {
        sources.iter().try_fold(0u64, |total, (source, fps)| {
            let d = streetscope_ingest::probe::duration(source, Duration::from_secs(5))?;
            Some(total + crate::progress::frames_in(d, *fps))
        })
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_and_without_labels() {
        let l = parse_line("stop=0.5,0.9,0.5,0.1:eastbound/westbound").unwrap();
        assert_eq!((l.name.as_str(), l.start, l.end), ("stop", [0.5, 0.9], [0.5, 0.1]));
        assert_eq!((l.forward.as_str(), l.backward.as_str()), ("eastbound", "westbound"));
        let l = parse_line("a=0,0.5,1,0.5").unwrap();
        assert_eq!(l.forward, "in");
    }

    #[test]
    fn bad_lines_name_the_value() {
        let e = parse_line("a=0,0.5,1").unwrap_err().to_string();
        assert!(e.contains("\"a=0,0.5,1\"") && e.contains("four coordinates"), "{e}");
        assert!(parse_line("nope").unwrap_err().to_string().contains("no '='"));
        assert!(parse_line("a=x,1,2,3").is_err());
    }
}
