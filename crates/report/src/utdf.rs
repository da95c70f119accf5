//! Synchro's UTDF volume files.
//!
//! - `utdf-volume.csv`, the 15-minute counts in UTDF's time-sliced volume
//!   layout: two title lines, then `DATE,TIME,INTID,NBU,NBL,NBT,NBR,…,WBR`,
//!   one row per bin and intersection (local date `MM/DD/YYYY`, local start
//!   `HHMM`); a flagged bin's cells are empty, and so are movements the
//!   intersection does not have.
//! - `utdf-peak-<date>-<period>.csv`, a peak hour in UTDF's combined layout:
//!   `[Volume]`, `Volume Data`, `RECORDNAME,INTID,NBU,…,WBR`, then the rows
//!   `Volume` (vehicles in the hour), `PHF` (the approach's) and
//!   `HeavyVehicles` (percent, FHWA 4–13).

use jiff::Timestamp;

use crate::movement::{Movement, Turn, LEG_ORDER};
use crate::peak::{pct, PeakHour};
use crate::study::Study;

/// UTDF's sixteen movement columns, `NBU` to `WBR`.
pub fn columns() -> Vec<Movement> {
    LEG_ORDER.into_iter().flat_map(|l| Turn::ALL.map(|t| Movement::new(l, t))).collect()
}

fn header(first: &[&str]) -> Vec<String> {
    first.iter().map(|s| s.to_string()).chain(columns().iter().map(Movement::utdf)).collect()
}

/// `utdf-volume.csv`.
pub fn volume_csv(study: &Study) -> Vec<u8> {
    let mut out = b"Turning Movement Count\r\n15 Minute Counts\r\n".to_vec();
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    w.write_record(header(&["DATE", "TIME", "INTID"])).expect("in memory");
    for ic in &study.intersections {
        for (b, bin) in ic.bins.iter().enumerate() {
            let z = Timestamp::from_millisecond(bin.start_ms).expect("in range").to_zoned(study.tz.clone());
            let mut row =
                vec![z.strftime("%m/%d/%Y").to_string(), z.strftime("%H%M").to_string(), ic.utdf_id.to_string()];
            for col in columns() {
                let cell = ic.movements.iter().position(|m| *m == col).and_then(|m| ic.total(b, m));
                row.push(cell.map(|n| n.to_string()).unwrap_or_default());
            }
            w.write_record(&row).expect("in memory");
        }
    }
    out.extend(w.into_inner().expect("in memory"));
    out
}

/// A peak hour's `utdf-peak-<date>-<period>.csv`: (file name, contents).
pub fn peak_file(study: &Study, p: &PeakHour) -> (String, Vec<u8>) {
    let ic = &study.intersections[p.intersection];
    let mut out = b"[Volume]\r\nVolume Data\r\n".to_vec();
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    w.write_record(header(&["RECORDNAME", "INTID"])).expect("in memory");
    let mut rows = [vec!["Volume".to_owned()], vec!["PHF".to_owned()], vec!["HeavyVehicles".to_owned()]];
    for r in &mut rows {
        r.push(ic.utdf_id.to_string());
    }
    for col in columns() {
        let m = p.movements.iter().find(|m| m.movement == col);
        let a = p.approaches.iter().find(|a| a.direction == col.bound());
        rows[0].push(m.map(|m| m.volume.to_string()).unwrap_or_default());
        rows[1].push(m.and(a).and_then(|a| a.phf).map(|x| format!("{x:.2}")).unwrap_or_default());
        rows[2].push(m.map(|m| format!("{:.0}", pct(m.heavy, m.volume).unwrap_or(0.0))).unwrap_or_default());
    }
    for r in rows {
        w.write_record(&r).expect("in memory");
    }
    out.extend(w.into_inner().expect("in memory"));
    let name = format!("utdf-peak-{}-{}-{}.csv", ic.intersection_id, p.date, p.period);
    (sanitize(&name), out)
}

/// File names from ids: anything but letters, digits, `-`, `_` and `.` becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}
