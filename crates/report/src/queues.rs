//! Queues per lane and bin, from the windows' queue rows: the mean is the mean
//! of the windows' means (each window weighs the same: they are equally long),
//! the maximum the largest; metres are vehicles times the lane's length per
//! vehicle (7.6 m unless calibrated), and the queue-to-storage ratio is the
//! maximum in metres over the lane's storage, where it is configured.

use crate::study::Study;
use crate::time::iso;

/// Columns of `queues.csv`.
pub const QUEUE_HEADER: [&str; 13] = [
    "site",
    "intersection_id",
    "bin_start",
    "camera_id",
    "lane",
    "mean_vehicles",
    "max_vehicles",
    "mean_m",
    "max_m",
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
                let (mean, max) = match rows {
                    Some(r) if !r.is_empty() => {
                        (Some(r.iter().map(|x| x.0).sum::<f64>() / r.len() as f64), r.iter().map(|x| x.1).max())
                    }
                    _ => (None, None),
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
                    &f(mean.map(|m| m * per_veh), 1),
                    &f(max.map(|m| f64::from(m) * per_veh), 1),
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
