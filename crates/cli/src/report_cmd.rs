//! `streetscope report`: the deliverables of a traffic study (turning-movement
//! counts, peak hours with PHF, UTDF, queues, validation against a manual count)
//! from the results of `streetscope run`. The logic is `streetscope-report`;
//! this reads the files it is given and writes the outputs (docs/report.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use streetscope_contracts::PipelineConfig;
use streetscope_report::{read_results, Scope, StudyConfig};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results of `streetscope run` (JSON Lines).
    #[arg(long)]
    results: PathBuf,
    /// The pipeline configuration the results were made with: its
    /// `[[analytics.approaches]]` give each approach's compass `leg`.
    #[arg(long)]
    config: PathBuf,
    /// The study's settings (TOML: time zone, sites, class groups, peak periods,
    /// thresholds, lane storage; docs/report.md).
    #[arg(long)]
    study: Option<PathBuf>,
    /// The site's time zone (IANA name, e.g. America/New_York); overrides the study's.
    #[arg(long)]
    time_zone: Option<String>,
    /// Only this intersection.
    #[arg(long)]
    intersection: Option<String>,
    /// Start of the period: ISO 8601 with offset, or local time in the site's zone
    /// (2026-01-01T07:00). Default: the start of the results' windows.
    #[arg(long)]
    from: Option<String>,
    /// End of the period (exclusive), as `--from`. Default: the end of the results' windows.
    #[arg(long)]
    to: Option<String>,
    /// A manual count (CSV) to validate against: bin_start, direction, movement, count
    /// (and optionally intersection_id, approach_leg, class_group).
    #[arg(long)]
    manual: Option<PathBuf>,
    /// Folder for the outputs (created if needed; files in it are replaced whole).
    #[arg(long, default_value = "report")]
    out: PathBuf,
}

fn read(p: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let origin = |p: &PathBuf| p.display().to_string();
    let study_text = args.study.as_ref().map(read).transpose()?;
    let study_origin = args.study.as_ref().map_or("--time-zone".to_owned(), origin);
    let study = StudyConfig::from_toml_with_zone(study_text.as_deref(), &study_origin, args.time_zone.as_deref())?;
    let tz = streetscope_report::time::zone(&study.time_zone)?;
    let at = |flag: &str, s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|s| streetscope_report::time::parse(s, &tz).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
            .transpose()
    };
    let scope = Scope {
        intersection: args.intersection.clone(),
        from_ms: at("--from", &args.from)?,
        to_ms: at("--to", &args.to)?,
    };
    let config = PipelineConfig::from_toml_str(&read(&args.config)?, &origin(&args.config), args.config.parent())?;
    let results = read_results(&origin(&args.results), &read(&args.results)?)?;
    let manual = args.manual.as_ref().map(|p| read(p).map(|t| (origin(p), t))).transpose()?;
    let names = streetscope_report::report_to_dir(
        &results,
        &config.analytics.approaches,
        &study,
        &scope,
        manual.as_ref().map(|(o, t)| (o.as_str(), t.as_str())),
        &args.out,
    )?;
    for n in &names {
        println!("{}", args.out.join(n).display());
    }
    if let Ok(notes) = std::fs::read_to_string(args.out.join("notes.txt")) {
        eprint!("{notes}");
    }
    Ok(ExitCode::SUCCESS)
}
