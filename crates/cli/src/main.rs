//! `streetscope`: one binary for every stage of the pipeline.
//!
//! - `run`: the whole pipeline in one process (ingest → detect → aggregate).
//! - `detect`: the model on images, Ultralytics-style.
//! - `clips`: generates the test clips of `test-videos/`.
//! - `bench`: benchmarks against the limit that matters, in the same run.
//! - `simulate`: simulated traffic, detections and ground truth.
//! - `registry`: the camera registry's API; `cameras`, `intersections`: its clients.
//! - `schema`: writes the documents generated from the types (JSON Schemas, config reference).

mod bench;
mod bench_cameras;
mod clips;
mod cluster;
mod dashboard_cmd;
mod detect_cmd;
mod memory;
mod paths;
mod progress;
mod registry_cmd;
mod report_cmd;
mod run;
mod schema;
mod simulate;
mod status;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Streetscope: streaming video analytics for smart-city traffic.
#[derive(Debug, Parser)]
#[command(name = "streetscope", version, about, propagate_version = true)]
struct Cli {
    /// Log level when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the whole pipeline in one process: decode, detect, track, count.
    Run(run::RunArgs),
    /// Runs the model on images and prints what it found.
    Detect(detect_cmd::DetectArgs),
    /// Benchmarks of the hot paths against their limits (bare ONNX Runtime, ...).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Test clips: generate them, with their ground truth.
    #[command(subcommand)]
    Clips(clips::ClipsCommand),
    /// Simulates traffic through a junction: detections with noise, and the ground truth.
    Simulate(simulate::SimulateArgs),
    /// Ingest pod of a distributed deployment: runs the cameras of its share of
    /// the registry and publishes their frames to Kafka.
    Ingest(cluster::ClusterArgs),
    /// Aggregator of a distributed deployment: tracks, counts and publishes
    /// results per intersection from the detections on Kafka.
    Aggregate(cluster::ClusterArgs),
    /// Kafka topics of a distributed deployment.
    #[command(subcommand)]
    Topics(cluster::topics::TopicsCommand),
    /// The camera registry's REST API: cameras and intersections, kept in the
    /// compacted Kafka topics (docs/registry.md).
    Registry(registry_cmd::RegistryArgs),
    /// Cameras in the registry: add, update, rm, list, get (a client of its API).
    Cameras(registry_cmd::CamerasArgs),
    /// Intersections in the registry: add, update, rm, list, get (a client of its API).
    Intersections(registry_cmd::IntersectionsArgs),
    /// Writes (or checks) the JSON Schemas and the configuration reference under docs/.
    Schema(schema::SchemaArgs),
    /// The traffic dashboard of a distributed deployment: the result topics and
    /// the registry, live in a browser (docs/dashboard.md).
    Dashboard(dashboard_cmd::DashboardArgs),
    /// The deliverables of a traffic study from the results of `run`: turning-movement
    /// counts per 15 minutes, peak hours with PHF, UTDF, queues, GEH validation (docs/report.md).
    Report(report_cmd::ReportArgs),
}

fn main() -> ExitCode {
    memory::limit_malloc_arenas();
    let cli = Cli::parse();
    streetscope_telemetry::init_logging(&cli.log_level);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Detect(args) => detect_cmd::detect(args),
        Command::Clips(cmd) => clips::clips(cmd),
        Command::Bench(cmd) => bench::bench(cmd),
        Command::Schema(args) => schema::schema(args),
        Command::Dashboard(args) => dashboard_cmd::dashboard(args),
        Command::Report(args) => report_cmd::report(args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Ingest(args) => cluster::ingest::ingest_stage(&args),
        Command::Aggregate(args) => cluster::aggregate::aggregate_stage(&args),
        Command::Topics(cmd) => cluster::topics::topics(cmd),
        Command::Registry(args) => registry_cmd::registry(args),
        Command::Cameras(args) => registry_cmd::cameras(args),
        Command::Intersections(args) => registry_cmd::intersections(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
