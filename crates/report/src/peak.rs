//! Peak hours and peak hour factors.
//!
//! The peak hour of a period (AM, midday, PM: local clock times) is the four
//! consecutive complete bins inside it with the highest intersection total
//! (the earliest on a tie); a flagged bin is never part of one. PHF = V / (4 × V15)
//! where V is the hour's volume and V15 its busiest bin, for the intersection and
//! for each approach (its own busiest bin within the same hour).

use crate::movement::{Movement, LEG_ORDER};
use crate::study::{IntersectionCounts, Study};
use crate::time::{hhmm, local_day_minute};

/// `V / (4 × V15)`; `None` without traffic.
pub fn phf(volume: u64, peak15: u64) -> Option<f64> {
    (peak15 > 0).then(|| volume as f64 / (4.0 * peak15 as f64))
}

/// One approach (entry leg) in a peak hour.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproachPeak {
    /// E.g. `"NB"`.
    pub direction: &'static str,
    pub volume: u64,
    pub peak15: u64,
    pub phf: Option<f64>,
    pub heavy: u64,
    pub buses: u64,
}

/// One movement in a peak hour.
#[derive(Debug, Clone, PartialEq)]
pub struct MovementPeak {
    pub movement: Movement,
    pub volume: u64,
    pub heavy: u64,
    pub buses: u64,
}

/// The peak hour of one period on one day at one intersection.
#[derive(Debug, Clone, PartialEq)]
pub struct PeakHour {
    /// Index into `study.intersections`.
    pub intersection: usize,
    pub period: String,
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// Index of its first bin.
    pub first_bin: usize,
    pub volume: u64,
    pub peak15: u64,
    pub phf: Option<f64>,
    pub heavy: u64,
    pub buses: u64,
    pub approaches: Vec<ApproachPeak>,
    pub movements: Vec<MovementPeak>,
}

/// `100 × part / whole`, `None` for an empty whole.
pub fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

/// The peak hours of every intersection, period and local day the study covers
/// with four complete bins; and a note for each period and day without.
pub fn peak_hours(study: &Study) -> (Vec<PeakHour>, Vec<String>) {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for (i, ic) in study.intersections.iter().enumerate() {
        let local: Vec<(String, u32)> = ic.bins.iter().map(|b| local_day_minute(b.start_ms, &study.tz)).collect();
        let mut days: Vec<&String> = local.iter().map(|(d, _)| d).collect();
        days.dedup();
        for day in days {
            for p in &study.config.peaks {
                let (Some(from), Some(to)) = (hhmm(&p.from), hhmm(&p.to)) else { continue };
                let inside = |b: usize| local.get(b).is_some_and(|(d, m)| d == day && *m >= from && m + 15 <= to);
                let touches = (0..ic.bins.len()).any(inside);
                let best = (0..ic.bins.len().saturating_sub(3))
                    .filter(|&b| (b..b + 4).all(|k| inside(k) && ic.bins[k].ok()))
                    .map(|b| (b, bin_total(ic, b) + bin_total(ic, b + 1) + bin_total(ic, b + 2) + bin_total(ic, b + 3)))
                    .fold(None, |acc: Option<(usize, u64)>, (b, v)| match acc {
                        Some((_, best)) if best >= v => acc,
                        _ => Some((b, v)),
                    });
                match best {
                    Some((b, _)) => out.push(hour(ic, i, &p.name, day, b)),
                    None if touches => notes.push(format!(
                        "{}: no {} peak hour on {day}: the period {}–{} has no four consecutive complete bins",
                        ic.site, p.name, p.from, p.to
                    )),
                    None => {}
                }
            }
        }
    }
    (out, notes)
}

fn bin_total(ic: &IntersectionCounts, b: usize) -> u64 {
    (0..ic.movements.len()).map(|m| ic.total(b, m).unwrap_or(0)).sum()
}

fn hour(ic: &IntersectionCounts, i: usize, period: &str, day: &str, b: usize) -> PeakHour {
    let bins = b..b + 4;
    let per_bin: Vec<u64> = bins.clone().map(|k| bin_total(ic, k)).collect();
    let volume = per_bin.iter().sum();
    let peak15 = per_bin.iter().copied().max().unwrap_or(0);
    let movements: Vec<MovementPeak> = ic
        .movements
        .iter()
        .enumerate()
        .map(|(m, mov)| MovementPeak {
            movement: *mov,
            volume: bins.clone().map(|k| ic.total(k, m).unwrap_or(0)).sum(),
            heavy: bins.clone().map(|k| ic.heavy[k][m]).sum(),
            buses: bins.clone().map(|k| ic.buses[k][m]).sum(),
        })
        .collect();
    let approaches = LEG_ORDER
        .iter()
        .filter(|leg| ic.movements.iter().any(|m| m.leg() == **leg))
        .map(|leg| {
            let of_leg: Vec<usize> = (0..ic.movements.len()).filter(|&m| ic.movements[m].leg() == *leg).collect();
            let by_bin: Vec<u64> =
                bins.clone().map(|k| of_leg.iter().map(|&m| ic.total(k, m).unwrap_or(0)).sum()).collect();
            let volume = by_bin.iter().sum();
            let peak15 = by_bin.iter().copied().max().unwrap_or(0);
            ApproachPeak {
                direction: crate::movement::bound(*leg),
                volume,
                peak15,
                phf: phf(volume, peak15),
                heavy: of_leg.iter().map(|&m| movements[m].heavy).sum(),
                buses: of_leg.iter().map(|&m| movements[m].buses).sum(),
            }
        })
        .collect();
    PeakHour {
        intersection: i,
        period: period.to_owned(),
        date: day.to_owned(),
        first_bin: b,
        volume,
        peak15,
        phf: phf(volume, peak15),
        heavy: movements.iter().map(|m| m.heavy).sum(),
        buses: movements.iter().map(|m| m.buses).sum(),
        approaches,
        movements,
    }
}

/// Columns of `peak-hours.csv`.
pub const PEAK_HEADER: [&str; 13] = [
    "site",
    "intersection_id",
    "period",
    "peak_start",
    "peak_end",
    "level",
    "direction",
    "movement",
    "volume",
    "peak_15min",
    "phf",
    "heavy_pct",
    "bus_pct",
];

/// `peak-hours.csv`: per peak hour one row for the intersection, one per
/// approach and one per movement.
pub fn peak_csv(study: &Study, peaks: &[PeakHour]) -> Vec<u8> {
    let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(PEAK_HEADER).expect("in memory");
    for p in peaks {
        let ic = &study.intersections[p.intersection];
        let start = crate::time::iso(ic.bins[p.first_bin].start_ms, &study.tz);
        let end = crate::time::iso(ic.bins[p.first_bin + 3].start_ms + crate::study::BIN_MS, &study.tz);
        let mut row =
            |level: &str, dir: &str, mov: &str, v: u64, v15: Option<u64>, phf_: Option<f64>, h: u64, bu: u64| {
                w.write_record([
                    ic.site.as_str(),
                    &ic.intersection_id,
                    &p.period,
                    &start,
                    &end,
                    level,
                    dir,
                    mov,
                    &v.to_string(),
                    &v15.map(|x| x.to_string()).unwrap_or_default(),
                    &f(phf_, 3),
                    &f(pct(h, v), 1),
                    &f(pct(bu, v), 1),
                ])
                .expect("in memory");
            };
        row("intersection", "", "", p.volume, Some(p.peak15), p.phf, p.heavy, p.buses);
        for a in &p.approaches {
            row("approach", a.direction, "", a.volume, Some(a.peak15), a.phf, a.heavy, a.buses);
        }
        for m in &p.movements {
            row("movement", m.movement.bound(), m.movement.turn.letter(), m.volume, None, None, m.heavy, m.buses);
        }
    }
    w.into_inner().expect("in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phf_of_the_worked_example() {
        // 740 vehicles in the hour, 219 in its busiest quarter: 740 / (4 × 219) = 0.845.
        let p = phf(740, 219).unwrap();
        assert_eq!(format!("{p:.3}"), "0.845");
        assert!((p - 0.844_748_858).abs() < 1e-9);
        assert_eq!(phf(0, 0), None);
        assert_eq!(phf(400, 100), Some(1.0));
    }
}
