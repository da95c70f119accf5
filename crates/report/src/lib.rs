//! The deliverables of a traffic study from Streetscope's results: what a
//! traffic engineer signs.
//!
//! `streetscope report` reads the JSON Lines of `streetscope run` ([`input`],
//! strictly), the approaches with their compass legs (the pipeline
//! configuration) and the study's settings ([`config`]), builds the study
//! ([`study`]: per intersection, 15-minute bin, movement ([`movement`]) and class
//! group, with each bin's data quality) and renders the files:
//!
//! | file | module |
//! | --- | --- |
//! | `tmc.csv`, `tmc-totals.csv` | [`tmc`]: turning-movement counts (long), totals with HV % and bus % |
//! | `peak-hours.csv` | [`peak`]: AM / midday / PM peak hours, PHF per intersection and approach |
//! | `utdf-volume.csv`, `utdf-peak-*.csv` | [`utdf`]: Synchro's UTDF volumes |
//! | `queues.csv` | [`queues`]: queues per lane and bin |
//! | `validation.csv` | [`geh`]: against a manual count (GEH) |
//! | `atspm-events.csv` | [`atspm`]: zones as detectors, events 82 on / 81 off |
//! | `delay.csv` | [`delay`]: control delay and LOS per movement |
//! | `report.html` | [`html`]: the study on one self-contained, printable page |
//! | `notes.txt` | what was left out, flagged or not found |
//!
//! Everything is computed in memory first; [`write::write_files`] then writes
//! each file atomically. Pure: no IO but that last step.

use std::path::Path;

pub mod atspm;
pub mod config;
pub mod delay;
pub mod geh;
pub mod html;
pub mod input;
pub mod los;
pub mod movement;
pub mod peak;
pub mod queues;
pub mod study;
pub mod time;
pub mod tmc;
pub mod utdf;
pub mod write;

pub use config::StudyConfig;
pub use input::{read_results, read_topic_messages, Results, TopicMessage};
pub use study::{build, Scope, Study};

/// What went wrong, naming the file, line and field, or the setting.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A line of an input file (results or manual count).
    #[error("{path}:{line}: {field}: {reason}")]
    Input { path: String, line: usize, field: String, reason: String },
    /// A setting of the study.
    #[error("study configuration: {field} = {value}: {reason}")]
    Config { field: String, value: String, reason: String },
    /// The inputs do not make a study.
    #[error("{0}")]
    Study(String),
    #[error("writing {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Every output of a study: (file name, contents). `manual` is a manual count
/// (origin, CSV text) to validate against.
pub fn render(study: &Study, manual: Option<(&str, &str)>) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
    let mut files = vec![
        ("tmc.csv".to_owned(), tmc::tmc_csv(study)),
        ("tmc-totals.csv".to_owned(), tmc::totals_csv(study)),
        ("utdf-volume.csv".to_owned(), utdf::volume_csv(study)),
        ("queues.csv".to_owned(), queues::queues_csv(study)),
    ];
    let (peaks, mut notes) = peak::peak_hours(study);
    files.push(("peak-hours.csv".to_owned(), peak::peak_csv(study, &peaks)));
    for p in &peaks {
        files.push(utdf::peak_file(study, p));
    }
    let (atspm, atspm_notes) = atspm::atspm_csv(study);
    if !atspm_notes.is_empty() {
        files.push(("atspm-events.csv".to_owned(), atspm));
        notes.extend(atspm_notes);
    }
    let delays = (!study.config.delay_zones.is_empty()).then(|| delay::delays(study));
    if let Some(d) = &delays {
        files.push(("delay.csv".to_owned(), delay::delay_csv(study, d)));
    }
    if let Some((origin, text)) = manual {
        let rows = geh::read_manual(origin, text, study)?;
        let v = geh::validate(study, &rows);
        for (i, b) in &v.skipped_bins {
            let ic = &study.intersections[*i];
            notes.push(format!(
                "{}: the manual count's bin {} is left out of the validation: the study's bin is flagged ({})",
                ic.site,
                time::iso(ic.bins[*b].start_ms, &study.tz),
                ic.bins[*b].flag_text()
            ));
        }
        notes.push(format!(
            "validation: {:.1} % of {} movement and class rows have GEH < {}: {} (threshold {:.0} %)",
            100.0 * v.share,
            v.rows.len(),
            study.config.validation.geh_limit,
            if v.pass { "PASS" } else { "FAIL" },
            100.0 * study.config.validation.pass_share
        ));
        files.push(("validation.csv".to_owned(), geh::validation_csv(study, &v)));
    }
    for ic in &study.intersections {
        let flagged = ic.bins.iter().filter(|b| !b.ok()).count();
        notes.push(format!(
            "{} ({}): {} bins from {} to {}, {} flagged (count empty, never zero)",
            ic.site,
            ic.intersection_id,
            ic.bins.len(),
            time::iso(study.from_ms, &study.tz),
            time::iso(study.to_ms, &study.tz),
            flagged
        ));
        let kept: Vec<String> = ic
            .bins
            .iter()
            .filter(|b| b.ok() && !b.flags.is_empty())
            .map(|b| time::iso(b.start_ms, &study.tz))
            .collect();
        if !kept.is_empty() {
            notes.push(format!(
                "{}: {} bins counted with frames lost in short runs (each at most max_gap_s = {} s), flagged \
                 dropped_frames in tmc.csv, tmc-totals.csv, queues.csv and delay.csv; the UTDF files have no flags \
                 column and give their counts as they are: {}",
                ic.site,
                kept.len(),
                study.config.max_gap_s,
                kept.join(", ")
            ));
        }
        notes.extend(ic.notes.iter().map(|n| format!("{}: {n}", ic.site)));
    }
    files.push(("report.html".to_owned(), html::report_html(study, &peaks, delays.as_ref(), &notes).into_bytes()));
    let mut text = notes.join("\n");
    text.push('\n');
    files.push(("notes.txt".to_owned(), text.into_bytes()));
    Ok(files)
}

/// Reads, builds, renders and writes a study: the whole of `streetscope report`
/// but the parsing of its arguments. Returns the files written.
pub fn report_to_dir(
    results: &Results,
    approaches: &[streetscope_contracts::config::ApproachConfig],
    config: &StudyConfig,
    scope: &Scope,
    manual: Option<(&str, &str)>,
    dir: &Path,
) -> Result<Vec<String>, ReportError> {
    let study = build(results, approaches, config, scope)?;
    let files = render(&study, manual)?;
    write::write_files(dir, &files)?;
    Ok(files.into_iter().map(|(n, _)| n).collect())
}
