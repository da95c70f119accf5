//! Validation against a manual count.
//!
//! The manual count is a CSV with the columns `bin_start` (ISO 8601, a bin of
//! the study), `direction` (NB, SB, EB, WB), `movement` (U, L, T, R) and `count`,
//! and optionally `intersection_id` (needed when the study has several),
//! `approach_leg` (checked against the direction) and `class_group` (a group of
//! the study, or `all`; absent: all). Per intersection, movement and class group,
//! the manual and the automatic counts are summed over the bins both have (a
//! flagged bin of the study is left out and named), and compared: difference,
//! percent error, and GEH = sqrt(2 (M − C)² / (M + C)) on hourly flows (the sums
//! scaled to one hour), the statistic of UK DMRB and FHWA's model validation.
//! The study passes when the share of rows with GEH under `geh_limit` is at
//! least `pass_share`.

use std::collections::{BTreeMap, BTreeSet};

use crate::movement::Movement;
use crate::study::{Study, BIN_MS};
use crate::ReportError;

/// GEH of a modelled (automatic) flow `c` against an observed (manual) flow `m`.
pub fn geh(m: f64, c: f64) -> f64 {
    if m + c <= 0.0 {
        0.0
    } else {
        (2.0 * (m - c).powi(2) / (m + c)).sqrt()
    }
}

/// One row of the manual count.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualRow {
    pub line: usize,
    pub intersection: usize,
    pub bin: usize,
    pub movement: usize,
    /// Index of the class group; `None`: all groups.
    pub group: Option<usize>,
    pub count: u64,
}

const KNOWN: [&str; 7] =
    ["intersection_id", "bin_start", "approach_leg", "direction", "movement", "class_group", "count"];

/// Reads a manual count against the study: each row must name a bin, movement
/// and class group the study has.
pub fn read_manual(origin: &str, text: &str, study: &Study) -> Result<Vec<ManualRow>, ReportError> {
    let err = |line: usize, field: &str, reason: String| ReportError::Input {
        path: origin.to_owned(),
        line,
        field: field.to_owned(),
        reason,
    };
    let mut r = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = r.headers().map_err(|e| err(1, "-", format!("not a CSV header: {e}")))?.clone();
    for h in headers.iter() {
        if !KNOWN.contains(&h) {
            return Err(err(1, h, format!("unknown column (the columns are {})", KNOWN.join(", "))));
        }
    }
    for need in ["bin_start", "direction", "movement", "count"] {
        if !headers.iter().any(|h| h == need) {
            return Err(err(1, need, "missing column".into()));
        }
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| err(e.position().map_or(0, |p| p.line() as usize), "-", e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let get = |name: &str| col(name).and_then(|i| rec.get(i)).unwrap_or("");
        let intersection = match col("intersection_id") {
            Some(_) => {
                study.intersections.iter().position(|ic| ic.intersection_id == get("intersection_id")).ok_or_else(
                    || {
                        err(
                            line,
                            "intersection_id",
                            format!("{:?} is not an intersection of the study", get("intersection_id")),
                        )
                    },
                )?
            }
            None if study.intersections.len() == 1 => 0,
            None => {
                return Err(err(line, "intersection_id", "the study has several intersections: add this column".into()))
            }
        };
        let ic = &study.intersections[intersection];
        let ms = crate::time::parse(get("bin_start"), &study.tz).map_err(|e| err(line, "bin_start", e))?;
        let bin = ic.bins.iter().position(|b| b.start_ms == ms).ok_or_else(|| {
            err(
                line,
                "bin_start",
                format!(
                    "{:?} is not the start of a 15-minute bin of the study ({} to {})",
                    get("bin_start"),
                    crate::time::iso(study.from_ms, &study.tz),
                    crate::time::iso(study.to_ms - BIN_MS, &study.tz)
                ),
            )
        })?;
        let name = format!("{}{}", get("direction"), get("movement"));
        let mov = Movement::parse_utdf(&name).ok_or_else(|| {
            err(line, "movement", format!("{name:?} is not a direction (NB, SB, EB, WB) and movement (U, L, T, R)"))
        })?;
        let movement = ic.movements.iter().position(|m| *m == mov).ok_or_else(|| {
            err(line, "movement", format!("{} has no movement {name} (it has legs {:?})", ic.site, legs(&ic.movements)))
        })?;
        if col("approach_leg").is_some() && get("approach_leg") != mov.leg().letter() {
            return Err(err(
                line,
                "approach_leg",
                format!("{:?}: {} traffic enters on the {} leg", get("approach_leg"), mov.bound(), mov.leg().letter()),
            ));
        }
        let group = match get("class_group") {
            "" | "all" => None,
            g => Some(ic.groups.iter().position(|x| x == g).ok_or_else(|| {
                err(line, "class_group", format!("{g:?} is not a class group of the study ({:?} or all)", ic.groups))
            })?),
        };
        let count = get("count").parse::<u64>().map_err(|e| err(line, "count", format!("{:?}: {e}", get("count"))))?;
        if !seen.insert((intersection, bin, movement, group)) {
            return Err(err(line, "count", "a second count of this bin, movement and class group".into()));
        }
        out.push(ManualRow { line, intersection, bin, movement, group, count });
    }
    if out.is_empty() {
        return Err(err(1, "-", "the manual count has no rows".into()));
    }
    Ok(out)
}

fn legs(movs: &[Movement]) -> Vec<&'static str> {
    let mut l: Vec<&str> = movs.iter().map(|m| m.leg().letter()).collect();
    l.dedup();
    l
}

/// One compared movement and class group.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub intersection: usize,
    pub movement: usize,
    pub group: Option<usize>,
    pub bins: usize,
    pub manual: u64,
    pub counted: u64,
    pub geh: f64,
}

/// The validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub rows: Vec<Comparison>,
    /// Share of rows with GEH under the limit.
    pub share: f64,
    pub pass: bool,
    /// Bins of the manual count left out because the study's bin is flagged.
    pub skipped_bins: Vec<(usize, usize)>,
}

/// Compares the study with the manual count.
pub fn validate(study: &Study, manual: &[ManualRow]) -> Validation {
    // (intersection, movement, group) -> (bins, manual, counted).
    type Sums = BTreeMap<(usize, usize, Option<usize>), (BTreeSet<usize>, u64, u64)>;
    let mut sums = Sums::new();
    let mut skipped = BTreeSet::new();
    for r in manual {
        let ic = &study.intersections[r.intersection];
        if !ic.bins[r.bin].ok() {
            skipped.insert((r.intersection, r.bin));
            continue;
        }
        let counted = match r.group {
            Some(g) => ic.counts[r.bin][r.movement][g],
            None => ic.counts[r.bin][r.movement].iter().sum(),
        };
        let e = sums.entry((r.intersection, r.movement, r.group)).or_default();
        e.0.insert(r.bin);
        e.1 += r.count;
        e.2 += counted;
    }
    let rows: Vec<Comparison> = sums
        .into_iter()
        .map(|((intersection, movement, group), (bins, manual, counted))| {
            let hourly = 3_600_000.0 / (bins.len() as f64 * BIN_MS as f64);
            Comparison {
                intersection,
                movement,
                group,
                bins: bins.len(),
                manual,
                counted,
                geh: geh(manual as f64 * hourly, counted as f64 * hourly),
            }
        })
        .collect();
    let limit = study.config.validation.geh_limit;
    let share =
        if rows.is_empty() { 0.0 } else { rows.iter().filter(|r| r.geh < limit).count() as f64 / rows.len() as f64 };
    Validation {
        pass: !rows.is_empty() && share >= study.config.validation.pass_share,
        share,
        rows,
        skipped_bins: skipped.into_iter().collect(),
    }
}

/// Columns of `validation.csv`.
pub const VALIDATION_HEADER: [&str; 13] = [
    "site",
    "intersection_id",
    "direction",
    "movement",
    "class_group",
    "bins",
    "manual",
    "counted",
    "difference",
    "pct_error",
    "geh",
    "geh_ok",
    "verdict",
];

/// `validation.csv`: one row per compared movement and group, then a summary row
/// (`direction` = `ALL`) with the share under the limit in `geh_ok` and the verdict.
pub fn validation_csv(study: &Study, v: &Validation) -> Vec<u8> {
    let limit = study.config.validation.geh_limit;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(VALIDATION_HEADER).expect("in memory");
    for r in &v.rows {
        let ic = &study.intersections[r.intersection];
        let m = ic.movements[r.movement];
        let diff = r.counted as i64 - r.manual as i64;
        let pct = (r.manual > 0).then(|| 100.0 * diff as f64 / r.manual as f64);
        w.write_record([
            ic.site.as_str(),
            &ic.intersection_id,
            m.bound(),
            m.turn.letter(),
            r.group.map_or("all", |g| ic.groups[g].as_str()),
            &r.bins.to_string(),
            &r.manual.to_string(),
            &r.counted.to_string(),
            &diff.to_string(),
            &pct.map(|p| format!("{p:.1}")).unwrap_or_default(),
            &format!("{:.2}", r.geh),
            if r.geh < limit { "yes" } else { "no" },
            "",
        ])
        .expect("in memory");
    }
    let (manual, counted) = v.rows.iter().fold((0, 0), |(a, b), r| (a + r.manual, b + r.counted));
    w.write_record([
        "",
        "",
        "ALL",
        "",
        "",
        "",
        &manual.to_string(),
        &counted.to_string(),
        &(counted as i64 - manual as i64).to_string(),
        "",
        "",
        &format!("{:.3}", v.share),
        if v.pass { "pass" } else { "fail" },
    ])
    .expect("in memory");
    w.into_inner().expect("in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geh_values_and_the_limit() {
        assert_eq!(geh(0.0, 0.0), 0.0);
        assert_eq!(geh(100.0, 100.0), 0.0);
        // GEH is symmetric.
        assert_eq!(geh(100.0, 150.0), geh(150.0, 100.0));
        // M = 100, C = 150: sqrt(2 × 2500 / 250) = sqrt(20) = 4.47.
        assert!((geh(100.0, 150.0) - 20f64.sqrt()).abs() < 1e-12);
        // GEH is exactly 5 at M = 0, C = 12.5 (2 × 156.25 / 12.5 = 25): the limit is strict.
        assert_eq!(geh(0.0, 12.5), 5.0);
        assert!(geh(0.0, 12.4) < 5.0 && geh(0.0, 12.6) > 5.0);
    }
}
