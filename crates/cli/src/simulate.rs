//! `streetscope simulate`: simulated traffic through a junction, as the detections
//! a camera would yield (JSON Lines of `FrameDetections`, the detect stage's
//! output) and the exact ground truth (JSON). For accuracy tests, benchmarks and
//! load tests without cameras.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec, Simulation};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Scenario {
    /// A four-way junction, two lanes each way, fixed-time signals.
    FourWay,
    /// Stop-and-go traffic: a queue standing on a counting line.
    StopAndGo,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Noise {
    /// Perfect detections.
    None,
    /// 10 % missed, 2 % false positives, 2 px jitter, 5 % class flips,
    /// occlusions of 4 frames (0.02 a second per vehicle), 0.5 % of frames lost.
    Typical,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[arg(long, value_enum, default_value = "four-way")]
    scenario: Scenario,
    /// A junction spec (JSON, the simulator's `IntersectionSpec`) instead of a scenario.
    #[arg(long, conflicts_with = "scenario")]
    spec: Option<PathBuf>,
    /// Simulated minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    #[arg(long, value_enum, default_value = "typical")]
    noise: Noise,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// JSON Lines file of detections, one frame a line.
    #[arg(long, default_value = "simulated-detections.jsonl")]
    out: PathBuf,
    /// Ground-truth JSON file.
    #[arg(long, default_value = "simulated-truth.json")]
    truth: PathBuf,
}

pub fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let mut spec: IntersectionSpec = match &args.spec {
        Some(p) => {
            serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("{}: not a junction spec", p.display()))?
        }
        None => match args.scenario {
            Scenario::FourWay => scenario::default_four_way(),
            Scenario::StopAndGo => scenario::stop_and_go(),
        },
    };
    spec.duration_s = args.minutes * 60.0;
    let noise = match args.noise {
        Noise::None => NoiseSpec::none(),
        Noise::Typical => NoiseSpec::typical(),
    };
    let sim = Simulation::new(spec, noise, args.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (frames, truth) = sim.run_to_end();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?,
    );
    for f in &frames {
        serde_json::to_writer(&mut out, f)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    std::fs::write(&args.truth, serde_json::to_string_pretty(&truth)?)
        .with_context(|| format!("writing {}", args.truth.display()))?;
    println!(
        "{} frames, {} vehicles, {} line crossings: detections in {}, ground truth in {}",
        frames.len(),
        truth.vehicles.len(),
        truth.crossings.len(),
        args.out.display(),
        args.truth.display()
    );
    Ok(ExitCode::SUCCESS)
}
