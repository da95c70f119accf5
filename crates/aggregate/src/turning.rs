//! Turning movements: which approach a vehicle came in by and which it left by.
//!
//! Each approach of a camera is one of its counting lines with an entering
//! direction ([`ApproachConfig`]). A track's entry is its crossing of an approach's
//! line in the entering direction, its exit a crossing of *another* approach's line
//! in the other direction. The two are paired per track in whichever order they are
//! released: on a tight turn the reference point (bottom-centre of the box) can
//! reach the exit line a frame before the entry line, and the counter releases a
//! track's crossings together once the track is confirmed and its class settled.
//! Each track makes at most one movement; a crossing back over the line it came in
//! by (a U-turn, or jitter past the dead band) is not an exit.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use streetscope_contracts::config::ApproachConfig;
use streetscope_contracts::Direction;

use crate::counter::{Crossing, FrameStamp};

/// A completed movement of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    pub track_id: u64,
    /// Index of the entry approach in [`Turning::name`] order.
    pub from: usize,
    pub to: usize,
    pub entry: FrameStamp,
    pub exit: FrameStamp,
}

/// One track's entries and exits so far.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct TrackTurn {
    entries: Vec<(usize, FrameStamp)>,
    exits: Vec<(usize, FrameStamp)>,
    done: bool,
}

/// What a [`Turning`] carries from frame to frame, for snapshots: per track,
/// sorted by id, the approaches by index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurningState {
    approaches: Vec<String>,
    tracks: Vec<(u64, TrackTurn)>,
}

/// Pairs entries and exits of one camera's tracks.
#[derive(Debug, Default)]
pub struct Turning {
    names: Vec<String>,
    /// Per counting line (camera order): its approach and entering direction.
    by_line: Vec<Option<(usize, Direction)>>,
    tracks: HashMap<u64, TrackTurn>,
}

impl Turning {
    /// `lines`: the camera's counting line names, in order; `approaches`: those of
    /// this camera (entries naming an unknown line are ignored: see
    /// [`AnalyticsConfig::validate`](streetscope_contracts::config::AnalyticsConfig::validate)).
    pub fn new<'a>(lines: impl IntoIterator<Item = &'a str>, approaches: &[&ApproachConfig]) -> Self {
        let names: Vec<String> = approaches.iter().map(|a| a.name.clone()).collect();
        let by_line = lines
            .into_iter()
            .map(|l| approaches.iter().position(|a| a.line == l).map(|i| (i, approaches[i].entering)))
            .collect();
        Self { names, by_line, tracks: HashMap::new() }
    }

    /// Whether the camera has approaches at all.
    pub fn is_active(&self) -> bool {
        !self.names.is_empty()
    }

    pub fn name(&self, approach: usize) -> &str {
        &self.names[approach]
    }

    /// Takes a released crossing; returns the movement it completes, if any.
    pub fn observe(&mut self, c: &Crossing) -> Option<Movement> {
        let (approach, entering) = (*self.by_line.get(c.line)?)?;
        let t = self.tracks.entry(c.track_id).or_default();
        if t.done {
            return None;
        }
        if c.direction == entering {
            t.entries.push((approach, c.at));
        } else {
            t.exits.push((approach, c.at));
        }
        // The first entry, and the first exit by another approach.
        let &(from, entry) = t.entries.first()?;
        let &(to, exit) = t.exits.iter().find(|x| x.0 != from)?;
        t.done = true;
        Some(Movement { track_id: c.track_id, from, to, entry, exit })
    }

    /// Its state between frames.
    pub fn state(&self) -> TurningState {
        let mut tracks: Vec<(u64, TrackTurn)> = self.tracks.iter().map(|(&id, t)| (id, t.clone())).collect();
        tracks.sort_by_key(|t| t.0);
        TurningState { approaches: self.names.clone(), tracks }
    }

    /// Goes on from `state`; `false` (and no change) when it was taken with other approaches.
    pub fn restore_state(&mut self, state: TurningState) -> bool {
        if state.approaches != self.names {
            return false;
        }
        self.tracks = state.tracks.into_iter().collect();
        true
    }

    /// Forgets a track that ended.
    pub fn retire(&mut self, track_id: u64) {
        self.tracks.remove(&track_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn approach(name: &str, entering: Direction) -> ApproachConfig {
        ApproachConfig { camera: "c".into(), name: name.into(), line: format!("{name}_line"), entering }
    }

    fn crossing(track_id: u64, line: usize, direction: Direction, seq: u64) -> Crossing {
        let at = FrameStamp { seq, pts_ns: 0, capture_time_ms: seq as i64 * 100 };
        Crossing { track_id, line, direction, class_name: Arc::from("car"), at }
    }

    fn turning() -> Turning {
        let (n, e) = (approach("north", Direction::Forward), approach("east", Direction::Backward));
        // Line 1 ("other") belongs to no approach.
        Turning::new(["north_line", "other", "east_line"], &[&n, &e])
    }

    #[test]
    fn entry_then_exit_and_exit_then_entry_both_pair() {
        let mut t = turning();
        assert_eq!(t.observe(&crossing(1, 0, Direction::Forward, 5)), None);
        let m = t.observe(&crossing(1, 2, Direction::Forward, 9)).unwrap();
        assert_eq!((m.from, m.to, m.entry.seq, m.exit.seq), (0, 1, 5, 9));
        // The exit (east, entering backward: forward leaves) released first.
        assert_eq!(t.observe(&crossing(2, 2, Direction::Forward, 7)), None);
        let m = t.observe(&crossing(2, 0, Direction::Forward, 8)).unwrap();
        assert_eq!((t.name(m.from), t.name(m.to), m.entry.seq, m.exit.seq), ("north", "east", 8, 7));
    }

    #[test]
    fn a_track_moves_once_and_a_u_turn_or_other_line_is_not_an_exit() {
        let mut t = turning();
        t.observe(&crossing(1, 0, Direction::Forward, 1));
        assert_eq!(t.observe(&crossing(1, 0, Direction::Backward, 2)), None, "back over its own line");
        assert_eq!(t.observe(&crossing(1, 1, Direction::Backward, 3)), None, "a line of no approach");
        assert!(t.observe(&crossing(1, 2, Direction::Forward, 4)).is_some());
        assert_eq!(t.observe(&crossing(1, 2, Direction::Backward, 5)), None);
        assert_eq!(t.observe(&crossing(1, 0, Direction::Backward, 6)), None);
        t.retire(1);
        assert!(t.tracks.is_empty());
    }
}
