//! `streetscope report` on a real clip's results: the real binary, the real
//! model, real GStreamer, the generated `two_way` clip (three buses eastbound,
//! two westbound), at 10 and 5 frames/s.
//!
//! The ATSPM event log against the long TMC CSV: two zones just past the
//! approaches' counting lines, one in each direction's lane, are lane-by-lane
//! count detectors (a bus is in one for a few frames; no two buses at once).
//! Per approach, the detector-on events (82) that an ATSPM tool counts equal
//! the vehicles of `tmc.csv` from that leg (the count, or what was observed in
//! a flagged bin: a 21-second clip never fills a 15-minute bin), which equal
//! the clip's truth; on and off alternate on each channel.
//!
//! Needs what `scripts/setup.sh` fetches and generates (the model, the clips).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use streetscope_testclips::{GroundTruth, Travel};

mod common;
use common::repo;

/// Runs the binary with `args`, failing the test if it fails or takes longer
/// than `limit`; its log.
fn streetscope(args: &[&str], limit: Duration) -> String {
    let out = common::streetscope(args, limit);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "streetscope {args:?} failed:\n{stderr}");
    stderr
}

/// A CSV file of the report (no quoted fields) as rows of column -> value.
fn rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!text.contains('"'), "{}: quoted fields", path.display());
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines.map(|l| head.iter().map(|h| h.to_string()).zip(l.split(',').map(str::to_owned)).collect()).collect()
}

#[test]
fn atspm_detector_events_of_a_real_clip_reconcile_with_the_long_tmc_csv() {
    let truth_path = repo().join("test-videos/out/two_way.truth.json");
    let clip = repo().join("test-videos/out/two_way.mp4");
    assert!(clip.exists() && truth_path.exists(), "test-videos/out/two_way.* missing: run scripts/setup.sh first");
    let truth: GroundTruth = serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    // The truth per approach: eastbound buses enter from the west across
    // left_line (forward), westbound ones from the east across right_line (backward).
    let eb = truth.vehicles.iter().filter(|v| v.travel == Travel::LeftToRight).count() as u64;
    let wb = truth.vehicles.iter().filter(|v| v.travel == Travel::RightToLeft).count() as u64;
    assert_eq!((eb, wb), (3, 2), "the clip as generated");

    for fps in [10.0, 5.0] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = format!(
            "[[cameras]]\nid = \"cam-two_way\"\nintersection = \"x-two_way\"\nsource = {:?}\nsample_fps = {fps:?}\n",
            clip.display().to_string()
        );
        for l in &truth.lines {
            cfg += &format!(
                "[[cameras.lines]]\nname = {:?}\nstart = {:?}\nend = {:?}\nforward = {:?}\nbackward = {:?}\n",
                l.name, l.start, l.end, l.forward, l.backward
            );
        }
        // Bottom-centre of the boxes: eastbound buses at about y 0.93, westbound
        // at 0.81 (the clip's lanes); each zone a tenth of the width past its line.
        cfg +=
            "[[cameras.zones]]\nname = \"eb_bar\"\npolygon = [[0.35, 0.87], [0.45, 0.87], [0.45, 1.0], [0.35, 1.0]]\n";
        cfg += "[[cameras.zones]]\nname = \"wb_bar\"\npolygon = [[0.55, 0.70], [0.65, 0.70], [0.65, 0.87], [0.55, 0.87]]\n";
        cfg += "[[analytics.approaches]]\ncamera = \"cam-two_way\"\nname = \"west\"\nline = \"left_line\"\n\
                entering = \"forward\"\nleg = \"w\"\n";
        cfg += "[[analytics.approaches]]\ncamera = \"cam-two_way\"\nname = \"east\"\nline = \"right_line\"\n\
                entering = \"backward\"\nleg = \"e\"\n";
        cfg += "[analytics]\nwindow_lengths_s = [900]\n";
        let cfg_path = dir.path().join("clip.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let study = dir.path().join("study.toml");
        std::fs::write(
            &study,
            "time_zone = \"UTC\"\n[[detectors]]\ncamera = \"cam-two_way\"\nzone = \"eb_bar\"\nchannel = 1\n\
             [[detectors]]\ncamera = \"cam-two_way\"\nzone = \"wb_bar\"\nchannel = 2\n",
        )
        .unwrap();
        let results = dir.path().join("results.jsonl");
        let out = dir.path().join("report");
        let (c, r, o, s) =
            (cfg_path.to_str().unwrap(), results.to_str().unwrap(), out.to_str().unwrap(), study.to_str().unwrap());
        streetscope(&["run", "--config", c, "--output", r], Duration::from_secs(300));
        streetscope(&["report", "--results", r, "--config", c, "--study", s, "--out", o], Duration::from_secs(60));

        // tmc.csv: vehicles per approach leg, the count or, in a flagged bin, what was observed.
        let mut tmc: BTreeMap<String, u64> = BTreeMap::new();
        for row in rows(&out.join("tmc.csv")) {
            let n = if row["count"].is_empty() { &row["observed"] } else { &row["count"] };
            *tmc.entry(row["approach_leg"].clone()).or_default() += n.parse::<u64>().unwrap();
        }
        // atspm-events.csv: on and off alternate per channel; the on events per channel.
        let mut on: BTreeMap<String, u64> = BTreeMap::new();
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for e in rows(&out.join("atspm-events.csv")) {
            let prev = last.insert(e["EventParam"].clone(), e["EventCode"].clone());
            assert_ne!(prev.as_deref().unwrap_or("81"), e["EventCode"], "{fps} fps: on and off alternate: {e:?}");
            if e["EventCode"] == "82" {
                *on.entry(e["EventParam"].clone()).or_default() += 1;
            }
        }
        assert!(last.values().all(|c| c == "81"), "{fps} fps: every channel ends off: {last:?}");
        let got = (on.get("1").copied(), on.get("2").copied(), tmc.get("W").copied(), tmc.get("E").copied());
        println!(
            "{fps} fps: channel 1 (eb_bar) {:?} on, channel 2 (wb_bar) {:?} on; tmc.csv W {:?}, E {:?}",
            got.0, got.1, got.2, got.3
        );
        assert_eq!(got, (Some(eb), Some(wb), Some(eb), Some(wb)), "{fps} fps: (on 1, on 2, tmc W, tmc E)");
    }
}
