//! Frames through Kafka (envelope, trace header, group consumer, decode)
//! against bare rdkafka produce+consume of payloads of the same size,
//! alternating, in the same run; [`sides`] says what each side does. A
//! benchmark target, not part of the release binary:
//!
//! ```text
//! cargo bench -p streetscope-transport --features kafka --bench kafka -- --frames 2000 --repeat 5 [--brokers HOST:PORT]
//! ```
//!
//! Without `--brokers` it starts the test broker (tansu, from
//! scripts/install-broker.sh) on 127.0.0.1 for the run.

mod sides;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use streetscope_contracts::kafka::KafkaConfig;
use streetscope_contracts::Frame;
use streetscope_ingest::bench::process_cpu_seconds;
use streetscope_testbroker::TestBroker;
use streetscope_transport::kafka::ensure_topics;

#[derive(Debug, Parser)]
#[command(about = "Frames through Kafka against bare rdkafka, same size, same run")]
struct KafkaBench {
    /// Brokers to measure against. Default: a test broker (tansu, from
    /// scripts/install-broker.sh) started on 127.0.0.1 for the run.
    #[arg(long)]
    brokers: Option<String>,
    /// Frames per measurement.
    #[arg(long, default_value_t = 2000)]
    frames: usize,
    /// Measurements of each kind, alternating; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Clip the frames are taken from (letterboxed to 640x640, JPEG).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-videos/out/two_way.mp4"))]
    clip: PathBuf,
    /// JPEG quality of the frames.
    #[arg(long, default_value_t = 85)]
    quality: u8,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<ExitCode> {
    let args = KafkaBench::parse();
    let frames = sample_frames(&args)?;
    let size = frames.iter().map(|f| f.payload.len()).sum::<usize>() / frames.len();
    eprintln!("{} distinct 640x640 JPEG frames from {}, {size} bytes on average", frames.len(), args.clip.display());
    let dir = tempfile::tempdir()?;
    let _broker;
    let brokers = match &args.brokers {
        Some(b) => b.clone(),
        None => {
            let b = TestBroker::start(dir.path());
            let s = b.brokers();
            _broker = b;
            s
        }
    };
    let mut cfg = KafkaConfig::with_brokers(&brokers);
    cfg.topics.frames.partitions = 4;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // A fresh topic for every measurement, so that no consumer reads another's messages.
    let mut fresh_topic = |side: &str, i: usize| -> anyhow::Result<KafkaConfig> {
        cfg.topics.frames.name = format!("streetscope.bench-{}-{side}-{i}", std::process::id());
        rt.block_on(ensure_topics(&cfg)).context("creating the bench topic")?;
        Ok(cfg.clone())
    };
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    // Client CPU (producer + consumer, this process; the broker is another) per message.
    let (mut bare_cpu, mut ours_cpu) = (Vec::new(), Vec::new());
    for i in 0..args.repeat {
        let c = fresh_topic("bare", i)?;
        let cpu = process_cpu_seconds();
        let b = rt.block_on(sides::bare(&c, &c.topics.frames.name, size, args.frames))?;
        let b_cpu = (process_cpu_seconds() - cpu) * 1e3 / args.frames as f64;
        let c = fresh_topic("streetscope", i)?;
        let cpu = process_cpu_seconds();
        let s =
            rt.block_on(sides::streetscope(&c, &c.topics.frames.name, &frames, args.frames, &format!("bench-{i}")))?;
        let s_cpu = (process_cpu_seconds() - cpu) * 1e3 / args.frames as f64;
        eprintln!(
            "run {}: bare {:.0} msg/s ({:.1} MB/s, {b_cpu:.3} client CPU-ms/msg), streetscope {:.0} frames/s \
             ({} B/frame with envelope, {s_cpu:.3} client CPU-ms/frame) — ratio {:.3}",
            i + 1,
            b.rate(),
            b.rate() * size as f64 / 1e6,
            s.rate(),
            s.bytes_per_message,
            s.rate() / b.rate()
        );
        bare_cpu.push(b_cpu);
        ours_cpu.push(s_cpu);
        bare.push(b.rate());
        ours.push(s.rate());
    }
    let ratios: Vec<f64> = ours.iter().zip(&bare).map(|(s, b)| s / b).collect();
    println!("| | bare rdkafka | streetscope | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| median of {} (msg/s) | {:.0} | {:.0} | **{:.3}** |",
        args.repeat,
        median(bare),
        median(ours),
        median(ratios)
    );
    println!(
        "| median client CPU-ms per message | {:.3} | {:.3} | {:.2}x |",
        median(bare_cpu.clone()),
        median(ours_cpu.clone()),
        median(ours_cpu) / median(bare_cpu)
    );
    Ok(ExitCode::SUCCESS)
}

/// Up to 64 frames of the clip as the ingest stage makes them for Kafka.
fn sample_frames(args: &KafkaBench) -> anyhow::Result<Vec<Frame>> {
    anyhow::ensure!(args.clip.exists(), "{} is missing: scripts/setup.sh generates the clips", args.clip.display());
    let spec: streetscope_contracts::config::CameraConfig = serde_json::from_value(serde_json::json!({
        "id": "bench-cam",
        "intersection": "bench-x",
        "source": args.clip.display().to_string(),
        "sample_fps": 5.0,
        "jpeg_quality": args.quality,
    }))?;
    let settings = streetscope_ingest::reconcile::IngestSettings {
        width: 640,
        height: 640,
        stall_timeout: Duration::from_secs(30),
        policy: Default::default(),
        default_jpeg_quality: None,
    };
    let cam = settings.source(&spec);
    let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let frames = frames.clone();
        move |f: Frame| {
            let mut v = frames.lock().expect("poisoned");
            v.push(f);
            v.len() < 64
        }
    };
    let _ = streetscope_ingest::source::run_camera(&cam, sink, &Default::default());
    let v = std::mem::take(&mut *frames.lock().expect("poisoned"));
    anyhow::ensure!(!v.is_empty(), "no frames from {}", args.clip.display());
    Ok(v)
}
