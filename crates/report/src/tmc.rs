//! The turning-movement count as a long CSV: one row per bin, movement and
//! class group, zeros included; a flagged bin's count is empty.

use crate::study::{Study, BIN_MS};
use crate::time::iso;

/// Columns of `tmc.csv`.
pub const TMC_HEADER: [&str; 12] = [
    "site",
    "intersection_id",
    "bin_start",
    "bin_minutes",
    "approach_leg",
    "direction",
    "movement",
    "class_group",
    "count",
    "observed",
    "coverage",
    "flags",
];

/// `tmc.csv`: every bin × movement × class group.
pub fn tmc_csv(study: &Study) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(TMC_HEADER).expect("in memory");
    for ic in &study.intersections {
        for (b, bin) in ic.bins.iter().enumerate() {
            let start = iso(bin.start_ms, &study.tz);
            let coverage = format!("{:.4}", bin.coverage);
            let flags = bin.flag_text();
            for (m, mov) in ic.movements.iter().enumerate() {
                for (g, group) in ic.groups.iter().enumerate() {
                    let seen = ic.counts[b][m][g];
                    let count = ic.count(b, m, g).map(|n| n.to_string()).unwrap_or_default();
                    let observed = if bin.ok() { String::new() } else { seen.to_string() };
                    w.write_record([
                        ic.site.as_str(),
                        &ic.intersection_id,
                        &start,
                        &(BIN_MS / 60_000).to_string(),
                        mov.leg().letter(),
                        mov.bound(),
                        mov.turn.letter(),
                        group,
                        &count,
                        &observed,
                        &coverage,
                        &flags,
                    ])
                    .expect("in memory");
                }
            }
        }
    }
    w.into_inner().expect("in memory")
}

/// Columns of `tmc-totals.csv`.
pub const TOTALS_HEADER: [&str; 11] = [
    "site",
    "intersection_id",
    "bin_start",
    "approach_leg",
    "direction",
    "movement",
    "total",
    "heavy_pct",
    "bus_pct",
    "coverage",
    "flags",
];

/// `tmc-totals.csv`: per bin and movement, all classes, with the heavy-vehicle
/// (FHWA 4–13) and bus (FHWA 4) percentages.
pub fn totals_csv(study: &Study) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(TOTALS_HEADER).expect("in memory");
    for ic in &study.intersections {
        for (b, bin) in ic.bins.iter().enumerate() {
            let start = iso(bin.start_ms, &study.tz);
            for (m, mov) in ic.movements.iter().enumerate() {
                let total = ic.total(b, m);
                let pct = |n: u64| match total {
                    Some(t) if t > 0 => format!("{:.1}", 100.0 * n as f64 / t as f64),
                    _ => String::new(),
                };
                w.write_record([
                    ic.site.as_str(),
                    &ic.intersection_id,
                    &start,
                    mov.leg().letter(),
                    mov.bound(),
                    mov.turn.letter(),
                    &total.map(|t| t.to_string()).unwrap_or_default(),
                    &pct(ic.heavy[b][m]),
                    &pct(ic.buses[b][m]),
                    &format!("{:.4}", bin.coverage),
                    &bin.flag_text(),
                ])
                .expect("in memory");
            }
        }
    }
    w.into_inner().expect("in memory")
}
