//! The Rust half of the side-by-side tracker benchmark (`scripts/bench-trackers.sh`).
//!
//! For each noise level it simulates the default junction, writes the detections
//! (JSON Lines of `FrameDetections`, as `streetscope simulate` does) and the
//! ground truth for the Python pair to read, then runs Streetscope's aggregator
//! (tracker and line counter) over the same frames `--repeat` times and writes
//! its throughput and every crossing event with the frame at which it was
//! emitted. `tools/python/bench_trackers.py` runs the Python pair on the same
//! files and compares.
//!
//! ```sh
//! cargo run --release -p streetscope-aggregate --example side_by_side -- \
//!     --out DIR [--minutes 30] [--seed 1] [--repeat 5] [--levels none,typical,heavy]
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{CameraConfig, TrackerConfig};
use streetscope_contracts::Direction;
use streetscope_simulator::{scenario, NoiseSpec, Simulation};

#[derive(Serialize)]
struct Event {
    line: String,
    direction: Direction,
    class_name: String,
    /// The frame the crossing is stamped with.
    frame_seq: u64,
    /// The frame whose processing returned it.
    emitted_seq: u64,
}

#[derive(Serialize)]
struct Report {
    frames: usize,
    detections: usize,
    /// Detections per second of each run (one thread).
    rates: Vec<f64>,
    events: Vec<Event>,
}

fn noise(level: &str) -> NoiseSpec {
    match level {
        "none" => NoiseSpec::none(),
        "typical" => NoiseSpec::typical(),
        "heavy" => NoiseSpec { miss_rate: 0.2, false_positive_rate: 0.05, jitter_px: 4.0, ..NoiseSpec::none() },
        other => panic!("unknown noise level {other:?}: none, typical or heavy"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = PathBuf::from("target/side-by-side");
    let (mut minutes, mut seed, mut repeat) = (30.0, 1u64, 5usize);
    let mut levels = "none,typical,heavy".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = PathBuf::from(val()?),
            "--minutes" => minutes = val()?.parse()?,
            "--seed" => seed = val()?.parse()?,
            "--repeat" => repeat = val()?.parse()?,
            "--levels" => levels = val()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    std::fs::create_dir_all(&out)?;
    for level in levels.split(',') {
        let mut spec = scenario::default_four_way();
        spec.duration_s = minutes * 60.0;
        let sim = Simulation::new(spec, noise(level), seed).map_err(|e| e.to_string())?;
        // Through serde, so that fields added later take their defaults.
        let camera: CameraConfig = serde_json::from_value(serde_json::json!({
            "id": sim.spec().camera_id,
            "intersection": sim.spec().intersection_id,
            "source": "file:///simulated.mp4",
            "sample_fps": sim.spec().fps,
            "lines": sim.counting_lines(),
        }))
        .expect("a valid camera");
        let (frames, truth) = sim.run_to_end();
        let mut w = std::io::BufWriter::new(std::fs::File::create(out.join(format!("{level}.detections.jsonl")))?);
        for f in &frames {
            serde_json::to_writer(&mut w, f)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        std::fs::write(out.join(format!("{level}.truth.json")), serde_json::to_string(&truth)?)?;

        let detections: usize = frames.iter().map(|f| f.detections.len()).sum();
        let mut rates = Vec::new();
        let mut events = Vec::new();
        for _ in 0..repeat.max(1) {
            let mut agg = Aggregator::new(std::slice::from_ref(&camera), &TrackerConfig::default());
            let mut emitted = Vec::with_capacity(4096);
            let start = Instant::now();
            for f in &frames {
                for e in agg.process(f)? {
                    emitted.push((e, f.seq));
                }
            }
            let last = frames.last().map_or(0, |f| f.seq);
            emitted.extend(agg.finish().into_iter().map(|e| (e, last)));
            rates.push(detections as f64 / start.elapsed().as_secs_f64());
            events = emitted
                .into_iter()
                .map(|(e, at)| Event {
                    line: e.line,
                    direction: e.direction,
                    class_name: e.class_name,
                    frame_seq: e.frame_seq,
                    emitted_seq: at,
                })
                .collect();
        }
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        eprintln!(
            "{level}: {} frames, {detections} detections, {} crossings; median {:.0} detections/s",
            frames.len(),
            events.len(),
            sorted[sorted.len() / 2]
        );
        let report = Report { frames: frames.len(), detections, rates, events };
        std::fs::write(out.join(format!("{level}.streetscope.json")), serde_json::to_string(&report)?)?;
    }
    Ok(())
}
