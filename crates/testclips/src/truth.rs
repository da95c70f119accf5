//! Ground truth of a clip: which vehicle crosses which counting line, in which
//! direction, and when — computed from the [`ClipSpec`] alone, without pixels.
//!
//! A vehicle's reference point is the bottom-centre of its box in normalised
//! coordinates (`x = (left + right) / 2 / width`, `y = bottom / height`), the
//! point where it meets the road and the point the aggregator tracks. The box in
//! each frame is the whole-pixel box the renderer draws
//! ([`crate::VehiclePath::rect_at`]). Walking the frames, a crossing is found
//! by the truth's own geometry ([`truth_crossing`], parametric segment
//! intersection; never the product's `CountingLine::crossing`, so a bug there
//! cannot hide in the truth) between the last position strictly off the line and
//! the current one (the aggregator's conventions), and its time is interpolated
//! linearly between the previous frame and this one by the signed distances to
//! the line ([`truth_side`]), so it lies between them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use streetscope_contracts::{CountingLine, Direction, NormPoint};

use crate::{builtin_clips, ClipError, ClipSpec, Travel};

/// Version of the ground-truth file format.
pub const TRUTH_VERSION: u32 = 1;

/// The complete ground truth of one clip, as written to `<clip>.truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Format version, [`TRUTH_VERSION`].
    pub version: u32,
    /// The clip's name.
    pub clip: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub duration_s: f64,
    /// Number of frames, `round(duration_s * fps)`; frame `i` is at `i / fps` s.
    pub frame_count: u32,
    /// The counting lines the crossings refer to.
    pub lines: Vec<CountingLine>,
    /// Every vehicle of the clip, by id.
    pub vehicles: Vec<TruthVehicle>,
    /// Every crossing, by time (then vehicle id, then line name).
    pub crossings: Vec<TruthCrossing>,
    /// Crossings per (line, direction, class), sorted by line name, direction
    /// (forward first) and class; only non-zero counts are listed.
    pub counts: Vec<TruthCount>,
}

/// One vehicle of a clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthVehicle {
    pub id: u32,
    pub class_name: String,
    /// Which way it drives across the screen.
    pub travel: Travel,
    /// Signed horizontal speed in pixels per second.
    pub speed_px_s: f64,
    /// Drawn box size in pixels.
    pub width_px: u32,
    pub height_px: u32,
    /// Top row of the box in pixels.
    pub top_px: i32,
    /// When it starts to move in (fully off-screen, touching the edge).
    pub enter_s: f64,
    /// When it has fully left on the other side.
    pub exit_s: f64,
    /// First and last frame in which at least one pixel of it is visible.
    pub first_frame: u32,
    pub last_frame: u32,
}

/// One vehicle crossing one counting line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthCrossing {
    pub vehicle_id: u32,
    pub class_name: String,
    /// Name of the counting line.
    pub line: String,
    pub direction: Direction,
    /// The line's label for `direction`, e.g. `"eastbound"`.
    pub direction_label: String,
    /// When the reference point passes the line, in seconds (to the microsecond),
    /// interpolated between the two frames around the crossing.
    pub time_s: f64,
    /// The first frame in which the reference point is on the far side.
    pub frame: u32,
}

/// How many vehicles of a class crossed a line in a direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthCount {
    pub line: String,
    pub direction: Direction,
    pub direction_label: String,
    pub class_name: String,
    pub count: u32,
}

fn round_us(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

/// Computes the ground truth of `spec` (see the module docs for the rules).
pub fn ground_truth(spec: &ClipSpec) -> GroundTruth {
    let frames = spec.frame_count();
    let mut vehicles = Vec::new();
    let mut crossings = Vec::new();
    for v in &spec.vehicles {
        let (width_px, height_px) = v.size_px();
        let visible: Vec<u32> = (0..frames)
            .filter(|&i| {
                spec.frame_time(i) >= v.enter_s && spec.rect_in_frame(v, i).clip(spec.width, spec.height).is_some()
            })
            .collect();
        vehicles.push(TruthVehicle {
            id: v.id,
            class_name: v.class_name.clone(),
            travel: v.travel(),
            speed_px_s: v.speed_px_s,
            width_px,
            height_px,
            top_px: v.rect_at(v.enter_s, spec.width).y,
            enter_s: v.enter_s,
            exit_s: round_us(v.exit_s(spec.width)),
            first_frame: visible.first().copied().unwrap_or(0),
            last_frame: visible.last().copied().unwrap_or(0),
        });

        // The vehicle exists from `enter_s` on; before that it is nowhere.
        let path: Vec<(u32, NormPoint)> = (0..frames)
            .filter(|&i| spec.frame_time(i) >= v.enter_s)
            .map(|i| {
                let p = spec.rect_in_frame(v, i).bottom_center_norm(spec.width, spec.height);
                (i, p)
            })
            .collect();
        for line in &spec.lines {
            // Last position strictly off the line, (point, side), for the
            // crossing test; and the previous frame's (time, side), to time it.
            let mut last_off: Option<(NormPoint, f64)> = None;
            let mut prev: Option<(f64, f64)> = None;
            for &(i, p) in &path {
                let (t, side) = (spec.frame_time(i), truth_side(line, p));
                if side != 0.0 {
                    if let Some(direction) = last_off.and_then(|(q, _)| truth_crossing(line, q, p)) {
                        // The point moved from `prev` (off or on the line) to here:
                        // interpolate where its signed distance to the line is 0.
                        let (tp, sp) = prev.expect("a crossing has a previous frame");
                        let time_s = tp + (t - tp) * sp / (sp - side);
                        crossings.push(TruthCrossing {
                            vehicle_id: v.id,
                            class_name: v.class_name.clone(),
                            line: line.name.clone(),
                            direction,
                            direction_label: line.label(direction).to_owned(),
                            time_s: round_us(time_s),
                            frame: i,
                        });
                    }
                    last_off = Some((p, side));
                }
                prev = Some((t, side));
            }
        }
    }
    vehicles.sort_by_key(|v| v.id);
    crossings.sort_by(|a, b| {
        a.time_s.total_cmp(&b.time_s).then(a.vehicle_id.cmp(&b.vehicle_id)).then_with(|| a.line.cmp(&b.line))
    });

    let mut tally: BTreeMap<(String, Direction, String), (String, u32)> = BTreeMap::new();
    for c in &crossings {
        tally
            .entry((c.line.clone(), c.direction, c.class_name.clone()))
            .or_insert_with(|| (c.direction_label.clone(), 0))
            .1 += 1;
    }
    let counts = tally
        .into_iter()
        .map(|((line, direction, class_name), (direction_label, count))| TruthCount {
            line,
            direction,
            direction_label,
            class_name,
            count,
        })
        .collect();

    GroundTruth {
        version: TRUTH_VERSION,
        clip: spec.name.clone(),
        width: spec.width,
        height: spec.height,
        fps: spec.fps,
        duration_s: spec.duration_s,
        frame_count: frames,
        lines: spec.lines.clone(),
        vehicles,
        crossings,
        counts,
    }
}

impl GroundTruth {
    /// Pretty JSON with a final newline, exactly as in the committed files.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("ground truth serialises");
        s.push('\n');
        s
    }

    /// Parses a ground-truth file's contents.
    pub fn from_json(text: &str) -> Result<Self, ClipError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The count for `(line, direction, class_name)`, 0 when absent.
    pub fn count(&self, line: &str, direction: Direction, class_name: &str) -> u32 {
        self.counts
            .iter()
            .find(|c| c.line == line && c.direction == direction && c.class_name == class_name)
            .map_or(0, |c| c.count)
    }
}

/// File name of a clip's ground truth: `<clip>.truth.json`.
pub fn truth_file_name(clip: &str) -> String {
    format!("{clip}.truth.json")
}

/// Writes `<clip>.truth.json` for every built-in clip into `dir` (created if
/// needed) and returns the paths written.
pub fn write_truth_files(dir: &Path) -> Result<Vec<PathBuf>, ClipError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ClipError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    builtin_clips()
        .iter()
        .map(|spec| {
            let path = dir.join(truth_file_name(&spec.name));
            std::fs::write(&path, ground_truth(spec).to_json()).map_err(io(&path))?;
            Ok(path)
        })
        .collect()
}

pub use streetscope_contracts::truth_geometry::{truth_crossing, truth_side};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin_clip;

    #[test]
    fn one_bus_crosses_each_line_once_eastbound() {
        let spec = builtin_clip("one_bus").unwrap();
        let t = ground_truth(&spec);
        assert_eq!(t.crossings.len(), 2, "{:#?}", t.crossings);
        assert_eq!(t.crossings[0].line, "left_line");
        assert_eq!(t.crossings[1].line, "right_line");
        for c in &t.crossings {
            assert_eq!(c.direction, Direction::Forward);
            assert_eq!(c.direction_label, "eastbound");
            assert_eq!((c.vehicle_id, c.class_name.as_str()), (1, "bus"));
        }
        // Analytically: the centre reaches x = 0.35 * 960 = 336 px when the left
        // edge is at 103 px, i.e. 0.4 s + (103 + 466) / 320 s = 2.178125 s.
        assert!((t.crossings[0].time_s - 2.178125).abs() < 1.0 / 25.0);
        assert!((t.crossings[1].time_s - (0.4 + (391.0 + 466.0) / 320.0)).abs() < 1.0 / 25.0);
        assert_eq!(t.count("left_line", Direction::Forward, "bus"), 1);
        assert_eq!(t.count("left_line", Direction::Backward, "bus"), 0);
        assert_eq!(t.counts.len(), 2);
    }

    #[test]
    fn two_way_crosses_both_lines_both_ways() {
        let spec = builtin_clip("two_way").unwrap();
        let t = ground_truth(&spec);
        for line in ["left_line", "right_line"] {
            assert_eq!(t.count(line, Direction::Forward, "bus"), 3);
            assert_eq!(t.count(line, Direction::Backward, "bus"), 2);
        }
        assert_eq!(t.crossings.len(), 10);
        assert!(t.crossings.windows(2).all(|w| w[0].time_s <= w[1].time_s));
        for c in &t.crossings {
            let v = t.vehicles.iter().find(|v| v.id == c.vehicle_id).unwrap();
            let expected = match v.travel {
                Travel::LeftToRight => ("eastbound", Direction::Forward),
                Travel::RightToLeft => ("westbound", Direction::Backward),
            };
            assert_eq!((c.direction_label.as_str(), c.direction), expected);
        }
    }

    #[test]
    fn crossings_match_the_drawn_boxes() {
        for spec in builtin_clips() {
            let t = ground_truth(&spec);
            for c in &t.crossings {
                let v = spec.vehicles.iter().find(|v| v.id == c.vehicle_id).unwrap();
                let line = spec.lines.iter().find(|l| l.name == c.line).unwrap();
                let at = |i: u32| spec.rect_in_frame(v, i).bottom_center_norm(spec.width, spec.height);
                // The frame before is on the near side (or on the line), the
                // frame is on the far side, and the crossing time lies between.
                let before = line.side(at(c.frame - 1));
                let after = line.side(at(c.frame));
                assert!(after != 0.0 && (before == 0.0 || (before > 0.0) != (after > 0.0)));
                assert!(c.time_s > spec.frame_time(c.frame - 1) - 1e-6);
                assert!(c.time_s <= spec.frame_time(c.frame) + 1e-6);
                // Fair to a detector: the vehicle is wholly in view when it crosses.
                let rect = spec.rect_in_frame(v, c.frame);
                assert!(rect.inside(spec.width, spec.height), "{} {c:?}", spec.name);
            }
        }
    }

    #[test]
    fn json_round_trips() {
        let t = ground_truth(&builtin_clip("two_way").unwrap());
        let back = GroundTruth::from_json(&t.to_json()).unwrap();
        assert_eq!(back.to_json(), t.to_json());
        assert!(t.to_json().contains("\"direction\": \"forward\""));
        assert!(t.to_json().contains("\"travel\": \"right_to_left\""));
    }

    /// At run time, as the test runner gives it: a test binary built from
    /// another checkout (the build cache is shared) reads this checkout's files.
    fn test_videos_dir() -> PathBuf {
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
            .join("../../test-videos")
    }

    /// The committed `test-videos/<clip>.truth.json` files are up to date.
    /// Regenerate them with
    /// `cargo test -p streetscope-testclips -- --ignored regenerate_truth_files`.
    #[test]
    fn committed_truth_files_are_current() {
        for spec in builtin_clips() {
            let path = test_videos_dir().join(truth_file_name(&spec.name));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            assert!(
                text == ground_truth(&spec).to_json(),
                "{} is stale; regenerate it (see this test's docs)",
                path.display()
            );
            GroundTruth::from_json(&text).unwrap();
        }
    }

    #[test]
    #[ignore = "writes test-videos/*.truth.json; run on purpose after changing a clip"]
    fn regenerate_truth_files() {
        let written = write_truth_files(&test_videos_dir()).unwrap();
        assert_eq!(written.len(), builtin_clips().len());
    }
}
