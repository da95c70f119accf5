//! `streetscope topics create`: the topics of DESIGN.md, made or brought in
//! line with the configuration, idempotently; prints what it changed.

use std::process::ExitCode;

use clap::Subcommand;
use streetscope_transport::kafka::{ensure_topics, TopicChange};

use super::ClusterArgs;

/// Topic administration.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Creates missing topics, adds partitions and sets cleanup policy and
    /// retention where they differ from the configuration. Safe to run again.
    Create(ClusterArgs),
}

pub fn topics(cmd: TopicsCommand) -> anyhow::Result<ExitCode> {
    let TopicsCommand::Create(args) = cmd;
    let cfg = args.load()?;
    let changes = super::runtime("streetscope-topics")?.block_on(ensure_topics(&cfg.kafka))?;
    let mut failed = false;
    for c in &changes {
        failed |= matches!(c, TopicChange::Failed { .. });
        println!("{c}");
    }
    let changed = changes.iter().filter(|c| !matches!(c, TopicChange::Unchanged { .. })).count();
    println!("{} topics, {changed} changed", changes.len());
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
