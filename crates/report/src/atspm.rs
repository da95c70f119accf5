//! Signal-performance events: configured zones as virtual detectors, in the
//! Indiana hi-resolution event enumerations that ATSPM tools load — 82
//! (detector on) when the zone becomes occupied, 81 (detector off) when it is
//! empty again — in the CSV layout of ATSPM's controller event log:
//! `SignalID,Timestamp,EventCode,EventParam` (parameter: the detector channel;
//! timestamp: local time `YYYY-MM-DD HH:MM:SS.mmm`).
//!
//! A detector is on while any vehicle is inside: the stays of the vehicles in
//! the zone (`visits` of the window records) are merged into occupied intervals,
//! so on and off alternate, each channel starting with on.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::study::Study;

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    pub ms: i64,
    /// 82 on, 81 off.
    pub code: u8,
    pub channel: u8,
}

/// Merges stays `[enter, leave)` into on/off events of one channel.
pub fn detector_events(mut stays: Vec<(i64, i64)>, channel: u8) -> Vec<Event> {
    stays.sort_unstable();
    let mut out = Vec::new();
    let mut open: Option<(i64, i64)> = None;
    for (a, b) in stays {
        match &mut open {
            Some((_, end)) if a <= *end => *end = (*end).max(b),
            _ => {
                if let Some((s, e)) = open.take() {
                    out.push(Event { ms: s, code: 82, channel });
                    out.push(Event { ms: e, code: 81, channel });
                }
                open = Some((a, b));
            }
        }
    }
    if let Some((s, e)) = open {
        out.push(Event { ms: s, code: 82, channel });
        out.push(Event { ms: e, code: 81, channel });
    }
    out
}

/// `atspm-events.csv` and a note per intersection on the channels used.
pub fn atspm_csv(study: &Study) -> (Vec<u8>, Vec<String>) {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["SignalID", "Timestamp", "EventCode", "EventParam"]).expect("in memory");
    let mut notes = Vec::new();
    for ic in &study.intersections {
        let mut zones: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
        for (cam, zone, v) in &ic.visits {
            zones.entry((cam.clone(), zone.clone())).or_default().push((v.enter_ms, v.leave_ms));
        }
        let channels: Vec<((String, String), u8)> = if study.config.detectors.is_empty() {
            zones.keys().cloned().zip(1..=255).collect()
        } else {
            study.config.detectors.iter().map(|d| ((d.camera.clone(), d.zone.clone()), d.channel)).collect()
        };
        let signal = study
            .config
            .intersections
            .iter()
            .find(|s| s.id == ic.intersection_id)
            .and_then(|s| s.signal_id.clone())
            .unwrap_or_else(|| ic.utdf_id.to_string());
        let mut events = Vec::new();
        for (key, ch) in &channels {
            events.extend(detector_events(zones.get(key).cloned().unwrap_or_default(), *ch));
        }
        events.sort();
        for e in events {
            let t = Timestamp::from_millisecond(e.ms).expect("in range").to_zoned(study.tz.clone());
            let stamp = format!("{}.{:03}", t.strftime("%Y-%m-%d %H:%M:%S"), e.ms.rem_euclid(1000));
            w.write_record([signal.as_str(), &stamp, &e.code.to_string(), &e.channel.to_string()]).expect("in memory");
        }
        if !channels.is_empty() {
            let list: Vec<String> = channels.iter().map(|((c, z), ch)| format!("{ch} = {c}/{z}")).collect();
            notes.push(format!("{}: ATSPM detector channels (SignalID {signal}): {}", ic.site, list.join(", ")));
        }
    }
    (w.into_inner().expect("in memory"), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_stays_make_one_actuation() {
        let ev = detector_events(vec![(5_000, 7_000), (1_000, 3_000), (2_500, 4_000), (7_000, 8_000)], 3);
        let got: Vec<(i64, u8)> = ev.iter().map(|e| (e.ms, e.code)).collect();
        // 1.0–4.0 s one vehicle after another with overlap; 5.0–8.0 s touching stays.
        assert_eq!(got, [(1_000, 82), (4_000, 81), (5_000, 82), (8_000, 81)]);
        assert!(ev.iter().all(|e| e.channel == 3));
        assert!(detector_events(Vec::new(), 1).is_empty());
    }
}
