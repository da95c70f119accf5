//! Queues per lane and bin, from the windows' queue rows: the mean is the mean
//! of the windows' means (each window weighs the same: they are equally long),
//! the maximum the largest, the 95th percentile the nearest-rank percentile of
//! the frames by vehicles queued (`frames_by_queue`, summed over the windows;
//! empty for records older than that field); metres are vehicles times the lane's length per
//! vehicle (7.6 m unless calibrated), and the queue-to-storage ratio is the
//! maximum in metres over the lane's storage, where it is configured.

use crate::study::Study;
use crate::time::iso;

/// Columns of `queues.csv`.
pub const QUEUE_HEADER: [&str; 15] = [
    "site",
    "intersection_id",
    "bin_start",
    "camera_id",
    "lane",
    "mean_vehicles",
    "max_vehicles",
    "p95_vehicles",
    "mean_m",
    "max_m",
    "p95_m",
    "vehicle_length_m",
    "storage_m",
    "max_queue_to_storage",
    "flags",
];

/// `queues.csv`: per bin and lane (lanes with queue zones); a flagged bin's
/// figures are empty.
pub fn queues_csv(study: &Study) -> Vec<u8> {
    let q = &study.config.queues;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(QUEUE_HEADER).expect("in memory");
    for ic in &study.intersections {
        let mut lanes: Vec<&(String, String)> = ic.queues.iter().flat_map(|m| m.keys()).collect();
        lanes.sort();
        lanes.dedup();
        for (b, bin) in ic.bins.iter().enumerate() {
            for key @ (camera, lane) in lanes.iter().copied() {
                let conf = q.lanes.iter().find(|l| l.lane == *lane && l.camera.as_ref().is_none_or(|c| c == camera));
                let per_veh = conf.and_then(|l| l.vehicle_length_m).unwrap_or(q.vehicle_length_m);
                let storage = conf.and_then(|l| l.storage_m);
                let rows = ic.queues[b].get(key).filter(|_| bin.ok());
                let (mean, max, p95) = match rows {
                    Some(r) if !r.is_empty() => (
                        Some(r.iter().map(|x| x.0).sum::<f64>() / r.len() as f64),
                        r.iter().map(|x| x.1).max(),
                        p95_of(r.iter().map(|x| x.2.as_slice())),
                    ),
                    _ => (None, None, None),
                };
                let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_default();
                w.write_record([
                    ic.site.as_str(),
                    &ic.intersection_id,
                    &iso(bin.start_ms, &study.tz),
                    camera,
                    lane,
                    &f(mean, 2),
                    &max.map(|m| m.to_string()).unwrap_or_default(),
                    &p95.map(|m| m.to_string()).unwrap_or_default(),
                    &f(mean.map(|m| m * per_veh), 1),
                    &f(max.map(|m| f64::from(m) * per_veh), 1),
                    &f(p95.map(|m| f64::from(m) * per_veh), 1),
                    &format!("{per_veh}"),
                    &storage.map(|s| s.to_string()).unwrap_or_default(),
                    &f(max.zip(storage).map(|(m, s)| f64::from(m) * per_veh / s), 2),
                    &bin.flag_text(),
                ])
                .expect("in memory");
            }
        }
    }
    w.into_inner().expect("in memory")
}

/// The 95th percentile (nearest rank) of the queue over frames counted by
/// vehicles queued, summed over windows; `None` without frames.
pub fn p95_of<'a>(windows: impl Iterator<Item = &'a [u64]>) -> Option<u32> {
    let mut sum: Vec<u64> = Vec::new();
    for w in windows {
        if sum.len() < w.len() {
            sum.resize(w.len(), 0);
        }
        for (s, n) in sum.iter_mut().zip(w) {
            *s += n;
        }
    }
    let total: u64 = sum.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (0.95 * total as f64).ceil() as u64;
    let mut seen = 0;
    sum.iter()
        .position(|n| {
            seen += n;
            seen >= rank
        })
        .map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_by_nearest_rank_over_windows() {
        // 100 frames: 90 with 0 queued, 5 with 1, 5 with 4: the 95th is 1.
        assert_eq!(p95_of([&[90u64, 5, 0, 0, 5][..]].into_iter()), Some(1));
        // Two windows summed: 50 + 40 with 0, 10 with 3: rank 95 falls on 3.
        assert_eq!(p95_of([&[50u64][..], &[40, 0, 0, 10][..]].into_iter()), Some(3));
        assert_eq!(p95_of([&[][..]].into_iter()), None);
    }
}
