//! Control delay per movement from trajectories: the time a vehicle spent in a
//! zone spanning its stop line (its stay, from the window records' `visits`)
//! minus the time it needs through the zone unimpeded (the zone's configured
//! `free_flow_s`, or per movement the 15th percentile of the study's times
//! through the zone), never below zero; summed over the delay zones a vehicle
//! passed. Vehicles are filed like the counts: by their movement's bin. The
//! level of service follows from the mean delay ([`crate::los`]).
//!
//! **Stopped time**, apart from the delay: the time a vehicle stood still in the
//! same zones (each stay's `stopped_ms`: its smoothed speed under the queue
//! threshold, `analytics.speed.queue_max_kmh`), summed over the delay zones it
//! passed, with no free-flow time taken off. Records written before it was
//! measured give 0.

use std::collections::{BTreeMap, HashMap};

use crate::los::los;
use crate::study::Study;
use crate::time::iso;

/// The `p` quantile of `v` by the nearest-rank method (`v` not empty).
fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A vehicle's stay in a delay zone: (zone index, movement, seconds inside,
/// seconds stopped).
type Stay = (usize, usize, f64, f64);

/// One vehicle's control delay and stopped time, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VehicleDelay {
    pub delay_s: f64,
    pub stopped_s: f64,
}

/// Per intersection: (bin, movement) -> its vehicles' delays.
pub type Delays = Vec<BTreeMap<(usize, usize), Vec<VehicleDelay>>>;

/// The mean delay and mean stopped time of `v` (`None`: no vehicle).
pub fn means(v: &[VehicleDelay]) -> Option<(f64, f64)> {
    let n = v.len() as f64;
    (!v.is_empty())
        .then(|| (v.iter().map(|d| d.delay_s).sum::<f64>() / n, v.iter().map(|d| d.stopped_s).sum::<f64>() / n))
}

/// Each vehicle's control delay, by intersection, bin and movement.
pub fn delays(study: &Study) -> Delays {
    let zones = &study.config.delay_zones;
    study
        .intersections
        .iter()
        .map(|ic| {
            // (camera, track) -> [(zone index, movement, seconds inside)].
            let mut stays: HashMap<(String, u64), Vec<Stay>> = HashMap::new();
            for (cam, zone, v) in &ic.visits {
                let Some(zi) = zones.iter().position(|z| z.camera == *cam && z.zone == *zone) else { continue };
                let Some(&m) = ic.track_movements.get(&(cam.clone(), v.track_id)) else { continue };
                let secs = (v.leave_ms - v.enter_ms) as f64 / 1000.0;
                let stopped = v.stopped_ms as f64 / 1000.0;
                stays.entry((cam.clone(), v.track_id)).or_default().push((zi, m, secs, stopped));
            }
            let mut times: HashMap<(usize, usize), Vec<f64>> = HashMap::new();
            for list in stays.values() {
                for &(z, m, s, _) in list {
                    times.entry((z, m)).or_default().push(s);
                }
            }
            let free: HashMap<(usize, usize), f64> = times
                .into_iter()
                .map(|((z, m), v)| ((z, m), zones[z].free_flow_s.unwrap_or_else(|| percentile(v, 0.15))))
                .collect();
            let mut out: BTreeMap<(usize, usize), Vec<VehicleDelay>> = BTreeMap::new();
            for ((cam, track), list) in &stays {
                let Some(bin) = ic.track_bins.get(&(cam.clone(), *track)) else { continue };
                let m = list[0].1;
                let delay_s = list.iter().map(|&(z, m, s, _)| (s - free[&(z, m)]).max(0.0)).sum();
                let stopped_s = list.iter().map(|s| s.3).sum();
                out.entry((*bin, m)).or_default().push(VehicleDelay { delay_s, stopped_s });
            }
            out
        })
        .collect()
}

/// Columns of `delay.csv`.
pub const DELAY_HEADER: [&str; 10] = [
    "site",
    "intersection_id",
    "bin_start",
    "direction",
    "movement",
    "vehicles",
    "mean_delay_s",
    "mean_stopped_s",
    "los",
    "flags",
];

/// `delay.csv`: per bin and movement, then per movement over the whole study
/// (`bin_start` empty). Bins whose counts are not given are empty and left
/// out of the totals; every bin carries its flags.
pub fn delay_csv(study: &Study, d: &Delays) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(DELAY_HEADER).expect("in memory");
    for (i, ic) in study.intersections.iter().enumerate() {
        let mut whole: BTreeMap<usize, Vec<VehicleDelay>> = BTreeMap::new();
        // `given`: the bin's figures are given (a bin counted with short frame
        // losses is, and carries its `dropped_frames` flag).
        let mut row = |start: String, m: usize, v: Option<&Vec<VehicleDelay>>, given: bool, flags: String| {
            let mov = ic.movements[m];
            let n = v.map_or(0, Vec::len);
            let mean = v.and_then(|v| means(v)).filter(|_| given);
            w.write_record([
                ic.site.as_str(),
                &ic.intersection_id,
                &start,
                mov.bound(),
                mov.turn.letter(),
                &if given { n.to_string() } else { String::new() },
                &mean.map(|x| format!("{:.1}", x.0)).unwrap_or_default(),
                &mean.map(|x| format!("{:.1}", x.1)).unwrap_or_default(),
                &mean.map(|x| los(x.0, ic.control).to_string()).unwrap_or_default(),
                &flags,
            ])
            .expect("in memory");
        };
        for (b, bin) in ic.bins.iter().enumerate() {
            for m in 0..ic.movements.len() {
                let v = d[i].get(&(b, m));
                if bin.ok() {
                    whole.entry(m).or_default().extend(v.into_iter().flatten());
                }
                row(iso(bin.start_ms, &study.tz), m, v, bin.ok(), bin.flag_text());
            }
        }
        for m in 0..ic.movements.len() {
            row(String::new(), m, whole.get(&m), true, String::new());
        }
    }
    w.into_inner().expect("in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentile() {
        assert_eq!(percentile(vec![5.0, 1.0, 3.0, 2.0, 4.0], 0.15), 1.0);
        assert_eq!(percentile((1..=20).map(f64::from).collect(), 0.15), 3.0);
        assert_eq!(percentile(vec![7.0], 0.15), 7.0);
    }
}
