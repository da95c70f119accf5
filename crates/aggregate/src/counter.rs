//! Directional line crossings from track movements.
//!
//! Each line has a dead band of half-width `hysteresis` around it (normalised
//! image units, perpendicular to the line). Per track and line, the last point
//! seen beyond the band is kept; a crossing happens when the track's reference
//! point is next seen beyond the band on the *other* side and the movement between
//! those two points passes through the segment
//! ([`CountingLine::crossing`]). Points inside the band change nothing, so
//! - the jitter of a box standing on the line (the front vehicle of a queue at
//!   its stop line) never counts, however often it flips side;
//! - a track that crossed forward and then jitters back counts backward only if it
//!   really goes back beyond the band;
//! - a box that stops on the line and leaves on the side it came from does not
//!   count, and one that stops on it and leaves on the other side counts once.
//!
//! With `hysteresis` 0 this is the plain rule of the simulator's ground truth
//! (last point strictly off the line). Each track counts at most once per line and
//! direction.
//!
//! **When a track ends** (it is lost, or the stream ends) with its last point inside
//! the band but strictly past the line, the crossing completes there: no later
//! frame can confirm it, and the track that may pick the vehicle up again starts
//! inside the band, where it cannot count it.
//!
//! **Frame stamps.** A crossing is stamped with the frame at which the point was
//! first seen beyond the band on the far side (or, for a track that ends inside it,
//! the frame of its last point): with a band, usually a frame or so after the point
//! passed the line itself.
//!
//! A crossing is held until its track is confirmed (a short-lived false track
//! never counts) and its class vote has settled (a vehicle entering the picture is
//! often misclassified until it is wholly in view); a track that ends first
//! releases its held crossings if it was confirmed. Released crossings keep the
//! frame at which they happened.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streetscope_contracts::{CountingLine, Direction, NormPoint};

use crate::tracker::{RetiredTrack, TrackUpdate};

/// When and where in the stream something happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameStamp {
    pub seq: u64,
    pub pts_ns: u64,
    pub capture_time_ms: i64,
}

/// A crossing ready to be reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub track_id: u64,
    /// Index of the line in the camera's list.
    pub line: usize,
    pub direction: Direction,
    pub class_name: Arc<str>,
    /// The frame at which the reference point was first seen beyond the dead band
    /// on the far side (see the module doc).
    pub at: FrameStamp,
}

/// One track's state with respect to one line.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct LineState {
    /// The last point seen beyond the dead band.
    last_off: Option<NormPoint>,
    /// The last point seen, when it is inside the band, and its frame.
    in_band: Option<(NormPoint, FrameStamp)>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct TrackLines {
    lines: Vec<LineState>,
    counted: HashSet<(usize, Direction)>,
    /// Crossings not yet released.
    pending: Vec<(usize, Direction, FrameStamp)>,
}

impl TrackLines {
    fn add(&mut self, line: usize, dir: Direction, at: FrameStamp) {
        let seen = self.counted.contains(&(line, dir)) || self.pending.iter().any(|p| (p.0, p.1) == (line, dir));
        if !seen {
            self.pending.push((line, dir, at));
        }
    }

    fn release(&mut self, track_id: u64, class_name: &Arc<str>, out: &mut Vec<Crossing>) {
        for (line, direction, at) in self.pending.drain(..) {
            if self.counted.insert((line, direction)) {
                out.push(Crossing { track_id, line, direction, class_name: class_name.clone(), at });
            }
        }
    }
}

/// What a [`LineCounter`] carries from frame to frame, for snapshots: per track,
/// sorted by id, its state with respect to each line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CounterState {
    tracks: Vec<(u64, TrackLines)>,
}

/// Counts crossings of one camera's lines.
#[derive(Debug)]
pub struct LineCounter {
    lines: Vec<CountingLine>,
    /// Per line: 1 / its length, turning [`CountingLine::side`] into a distance.
    inv_len: Vec<f64>,
    hysteresis: f64,
    tracks: HashMap<u64, TrackLines>,
}

impl LineCounter {
    /// `hysteresis`: half-width of the dead band around each line, normalised
    /// image units (0 for none).
    pub fn new(lines: Vec<CountingLine>, hysteresis: f64) -> Self {
        let inv_len = lines.iter().map(|l| 1.0 / (l.end[0] - l.start[0]).hypot(l.end[1] - l.start[1])).collect();
        Self { lines, inv_len, hysteresis: hysteresis.max(0.0), tracks: HashMap::new() }
    }

    pub fn line(&self, i: usize) -> &CountingLine {
        &self.lines[i]
    }

    /// Its state between frames.
    pub fn state(&self) -> CounterState {
        let mut tracks: Vec<(u64, TrackLines)> = self.tracks.iter().map(|(&id, t)| (id, t.clone())).collect();
        tracks.sort_by_key(|t| t.0);
        CounterState { tracks }
    }

    /// Goes on from `state`, taken from a counter of the same lines; `false`
    /// (and no change) when a track's state does not fit them.
    pub fn restore_state(&mut self, state: CounterState) -> bool {
        let n = self.lines.len();
        let fits = |t: &TrackLines| {
            t.lines.len() == n && t.counted.iter().all(|c| c.0 < n) && t.pending.iter().all(|p| p.0 < n)
        };
        if !state.tracks.iter().all(|(_, t)| fits(t)) {
            return false;
        }
        self.tracks = state.tracks.into_iter().collect();
        true
    }

    /// Takes the track updates of the frame `at` and the tracks that ended;
    /// returns the crossings released, in the order they happened per track.
    pub fn observe(&mut self, updates: &[TrackUpdate], retired: &[RetiredTrack], at: FrameStamp) -> Vec<Crossing> {
        let mut out = Vec::new();
        for u in updates {
            let n = self.lines.len();
            let st = self
                .tracks
                .entry(u.track_id)
                .or_insert_with(|| TrackLines { lines: vec![LineState::default(); n], ..TrackLines::default() });
            for (li, line) in self.lines.iter().enumerate() {
                let ls = &mut st.lines[li];
                let dist = line.side(u.anchor) * self.inv_len[li];
                if dist.abs() <= self.hysteresis {
                    ls.in_band = Some((u.anchor, at));
                    continue;
                }
                ls.in_band = None;
                let crossed = ls.last_off.and_then(|prev| line.crossing(prev, u.anchor));
                ls.last_off = Some(u.anchor);
                if let Some(dir) = crossed {
                    st.add(li, dir, at);
                }
            }
            if u.confirmed && u.class_settled {
                st.release(u.track_id, &u.class_name, &mut out);
            }
        }
        for r in retired {
            let Some(mut st) = self.tracks.remove(&r.track_id) else {
                continue;
            };
            // A track that ends inside a band, past the line, completes its crossing there.
            for (li, line) in self.lines.iter().enumerate() {
                let ls = st.lines[li];
                if let (Some(prev), Some((p, p_at))) = (ls.last_off, ls.in_band) {
                    if let Some(dir) = line.crossing(prev, p) {
                        st.add(li, dir, p_at);
                    }
                }
            }
            if r.confirmed {
                st.release(r.track_id, &r.class_name, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(id: u64, x: f64, confirmed: bool) -> TrackUpdate {
        TrackUpdate {
            track_id: id,
            anchor: NormPoint::new(x, 0.5),
            confirmed,
            class_name: Arc::from("car"),
            class_settled: true,
        }
    }

    fn at(seq: u64) -> FrameStamp {
        FrameStamp { seq, pts_ns: seq * 100_000_000, capture_time_ms: 0 }
    }

    fn vertical(x: f64) -> CountingLine {
        // Drawn bottom to top: rightward motion is forward.
        CountingLine::new("v", [x, 1.0], [x, 0.0])
    }

    /// The dead band of most tests: 0.04 either side of the line.
    const BAND: f64 = 0.04;

    fn run(c: &mut LineCounter, xs: &[f64]) -> Vec<Crossing> {
        xs.iter().enumerate().flat_map(|(i, &x)| c.observe(&[upd(1, x, true)], &[], at(i as u64))).collect()
    }

    #[test]
    fn counts_once_per_line_and_direction() {
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        let all = run(&mut c, &[0.3, 0.4, 0.6, 0.4, 0.6, 0.7]);
        let dirs: Vec<(Direction, u64)> = all.iter().map(|c| (c.direction, c.at.seq)).collect();
        assert_eq!(dirs, vec![(Direction::Forward, 2), (Direction::Backward, 3)]);
    }

    #[test]
    fn standing_on_the_line_and_going_back_does_not_count() {
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        assert!(run(&mut c, &[0.4, 0.5, 0.5, 0.5, 0.4]).is_empty());
        assert_eq!(run(&mut c, &[0.5, 0.6]).len(), 1);
    }

    #[test]
    fn crossings_before_confirmation_are_released_on_confirmation_with_their_frame() {
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        assert!(c.observe(&[upd(1, 0.45, false)], &[], at(0)).is_empty());
        assert!(c.observe(&[upd(1, 0.55, false)], &[], at(1)).is_empty());
        let out = c.observe(&[upd(1, 0.6, true)], &[], at(2));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].direction, out[0].at.seq), (Direction::Forward, 1));
    }

    #[test]
    fn crossings_wait_for_the_class_to_settle_or_the_track_to_end() {
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        let unsettled =
            |x: f64, class: &str| TrackUpdate { class_settled: false, class_name: Arc::from(class), ..upd(1, x, true) };
        assert!(c.observe(&[unsettled(0.45, "tuktuk")], &[], at(0)).is_empty());
        assert!(c.observe(&[unsettled(0.55, "tuktuk")], &[], at(1)).is_empty());
        let retired = RetiredTrack { track_id: 1, confirmed: true, class_name: Arc::from("bus") };
        let out = c.observe(&[], &[retired], at(2));
        assert_eq!(out.len(), 1);
        assert_eq!((&*out[0].class_name, out[0].at.seq), ("bus", 1));
    }

    #[test]
    fn unconfirmed_tracks_that_end_never_count() {
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        c.observe(&[upd(1, 0.45, false)], &[], at(0));
        c.observe(&[upd(1, 0.55, false)], &[], at(1));
        let retired = RetiredTrack { track_id: 1, confirmed: false, class_name: Arc::from("car") };
        assert!(c.observe(&[], &[retired], at(2)).is_empty());
        assert!(c.observe(&[upd(1, 0.6, true)], &[], at(3)).is_empty(), "state of a retired track is gone");
    }

    #[test]
    fn jitter_inside_the_band_never_counts() {
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        // The front of a queue stands on the line; its point flips side every frame.
        let mut xs = vec![0.4];
        xs.extend((0..50).map(|i| if i % 2 == 0 { 0.53 } else { 0.47 }));
        assert!(run(&mut c, &xs).is_empty());
        // It leaves forwards: one crossing, stamped with the frame beyond the band.
        let out: Vec<_> = [0.52, 0.56, 0.6]
            .iter()
            .enumerate()
            .flat_map(|(i, &x)| c.observe(&[upd(1, x, true)], &[], at(100 + i as u64)))
            .collect();
        assert_eq!(out.iter().map(|c| (c.direction, c.at.seq)).collect::<Vec<_>>(), vec![(Direction::Forward, 101)]);
    }

    #[test]
    fn jitter_back_after_crossing_is_not_a_backward_crossing() {
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        let all = run(&mut c, &[0.4, 0.56, 0.48, 0.47, 0.52, 0.47, 0.6]);
        assert_eq!(all.iter().map(|c| c.direction).collect::<Vec<_>>(), vec![Direction::Forward]);
        // Going back beyond the band is a real backward crossing.
        let back = c.observe(&[upd(1, 0.44, true)], &[], at(7));
        assert_eq!(back.iter().map(|c| (c.direction, c.at.seq)).collect::<Vec<_>>(), vec![(Direction::Backward, 7)]);
    }

    #[test]
    fn the_movement_between_the_points_beyond_the_band_must_pass_through_the_segment() {
        // A segment from y 0.4 to 0.6; the point enters the band level with it but
        // leaves it below the segment's end: the chord passes below the segment.
        let mut c = LineCounter::new(vec![CountingLine::new("v", [0.5, 0.6], [0.5, 0.4])], BAND);
        let pts = [(0.4, 0.5), (0.48, 0.55), (0.52, 0.7), (0.6, 0.9)];
        let all: Vec<_> = pts
            .iter()
            .enumerate()
            .flat_map(|(i, &(x, y))| {
                let u = TrackUpdate { anchor: NormPoint::new(x, y), ..upd(1, 0.0, true) };
                c.observe(&[u], &[], at(i as u64))
            })
            .collect();
        assert!(all.is_empty(), "{all:?}");
    }

    #[test]
    fn without_a_band_every_change_of_side_counts() {
        let mut c = LineCounter::new(vec![vertical(0.5)], 0.0);
        let all = run(&mut c, &[0.4, 0.499, 0.501, 0.5, 0.499]);
        let dirs: Vec<(Direction, u64)> = all.iter().map(|c| (c.direction, c.at.seq)).collect();
        assert_eq!(dirs, vec![(Direction::Forward, 2), (Direction::Backward, 4)]);
    }

    #[test]
    fn a_track_that_ends_inside_the_band_past_the_line_completes_its_crossing() {
        let retired = |id| RetiredTrack { track_id: id, confirmed: true, class_name: Arc::from("car") };
        let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
        assert!(run(&mut c, &[0.4, 0.47, 0.52]).is_empty());
        let out = c.observe(&[], &[retired(1)], at(9));
        assert_eq!(out.iter().map(|c| (c.direction, c.at.seq)).collect::<Vec<_>>(), vec![(Direction::Forward, 2)]);
        // One that ends inside the band on the side it came from, or on the line, does not.
        for last in [0.48, 0.5] {
            let mut c = LineCounter::new(vec![vertical(0.5)], BAND);
            assert!(run(&mut c, &[0.4, 0.52, last]).is_empty());
            assert!(c.observe(&[], &[retired(1)], at(9)).is_empty(), "ends at {last}");
        }
    }
}
