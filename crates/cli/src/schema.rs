//! JSON Schemas of the record formats, generated from the Rust types so they
//! cannot drift: `streetscope schema --out docs/schemas` writes them and
//! `--check` fails when the files differ.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use streetscope_contracts::config::PipelineConfig;
use streetscope_contracts::records::ResultRecord;
use streetscope_contracts::FrameDetections;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Folder of the schema files.
    #[arg(long, default_value = "docs/schemas")]
    out: PathBuf,
    /// Compare instead of writing; fail when a file is missing or differs.
    #[arg(long)]
    check: bool,
}

/// The schemas: file name and text.
pub fn schemas() -> Vec<(&'static str, String)> {
    let text =
        |s: schemars::Schema| serde_json::to_string_pretty(&s).expect("schemas serialise") + "\n";
    vec![
        (
            "result-record.schema.json",
            text(schemars::schema_for!(ResultRecord)),
        ),
        (
            "detections.schema.json",
            text(schemars::schema_for!(FrameDetections)),
        ),
        (
            "pipeline-config.schema.json",
            text(schemars::schema_for!(PipelineConfig)),
        ),
    ]
}

pub fn schema(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let mut stale = Vec::new();
    for (name, text) in schemas() {
        let path = args.out.join(name);
        if args.check {
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            if on_disk != text {
                stale.push(path.display().to_string());
            }
        } else {
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "schemas differ from the code: {} (run `streetscope schema`)",
            stale.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
