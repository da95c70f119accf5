//! Directional line crossings from track movements.
//!
//! A track's reference point is compared with each line at every frame. The last
//! point that was strictly off the line is kept, so a box that stops on the line
//! and leaves on the side it came from does not count, and one that stops on it
//! and leaves on the other side counts once. Each track counts at most once per line
//! and direction.
//!
//! A crossing is held until its track is confirmed (a short-lived false track
//! never counts) and its class vote has settled (a vehicle entering the picture is
//! often misclassified until it is wholly in view); a track that ends first
//! releases its held crossings if it was confirmed. Released crossings keep the
//! frame at which they happened.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use streetscope_contracts::{CountingLine, Direction, NormPoint};

use crate::tracker::{RetiredTrack, TrackUpdate};

/// When and where in the stream something happened.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// The frame at which the reference point passed the line.
    pub at: FrameStamp,
}

#[derive(Debug, Default)]
struct TrackLines {
    /// Per line: the last point strictly off it.
    last_off: Vec<Option<NormPoint>>,
    counted: HashSet<(usize, Direction)>,
    /// Crossings not yet released.
    pending: Vec<(usize, Direction, FrameStamp)>,
}

impl TrackLines {
    fn release(&mut self, track_id: u64, class_name: &Arc<str>, out: &mut Vec<Crossing>) {
        for (line, direction, at) in self.pending.drain(..) {
            if self.counted.insert((line, direction)) {
                out.push(Crossing { track_id, line, direction, class_name: class_name.clone(), at });
            }
        }
    }
}

/// Counts crossings of one camera's lines.
#[derive(Debug)]
pub struct LineCounter {
    lines: Vec<CountingLine>,
    tracks: HashMap<u64, TrackLines>,
}

impl LineCounter {
    pub fn new(lines: Vec<CountingLine>) -> Self {
        Self { lines, tracks: HashMap::new() }
    }

    pub fn line(&self, i: usize) -> &CountingLine {
        &self.lines[i]
    }

    /// Takes the track updates of the frame `at` and the tracks that ended;
    /// returns the crossings released, in the order they happened per track.
    pub fn observe(&mut self, updates: &[TrackUpdate], retired: &[RetiredTrack], at: FrameStamp) -> Vec<Crossing> {
        let mut out = Vec::new();
        for u in updates {
            let st = self
                .tracks
                .entry(u.track_id)
                .or_insert_with(|| TrackLines { last_off: vec![None; self.lines.len()], ..TrackLines::default() });
            for (li, line) in self.lines.iter().enumerate() {
                let side = line.side(u.anchor);
                if side == 0.0 {
                    continue;
                }
                if let Some(dir) = st.last_off[li].and_then(|prev| line.crossing(prev, u.anchor)) {
                    let seen = st.counted.contains(&(li, dir)) || st.pending.iter().any(|p| (p.0, p.1) == (li, dir));
                    if !seen {
                        st.pending.push((li, dir, at));
                    }
                }
                st.last_off[li] = Some(u.anchor);
            }
            if u.confirmed && u.class_settled {
                st.release(u.track_id, &u.class_name, &mut out);
            }
        }
        for r in retired {
            if let Some(mut st) = self.tracks.remove(&r.track_id) {
                if r.confirmed {
                    st.release(r.track_id, &r.class_name, &mut out);
                }
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

    fn run(c: &mut LineCounter, xs: &[f64]) -> Vec<Crossing> {
        xs.iter().enumerate().flat_map(|(i, &x)| c.observe(&[upd(1, x, true)], &[], at(i as u64))).collect()
    }

    #[test]
    fn counts_once_per_line_and_direction() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        let all = run(&mut c, &[0.3, 0.4, 0.6, 0.4, 0.6, 0.7]);
        let dirs: Vec<(Direction, u64)> = all.iter().map(|c| (c.direction, c.at.seq)).collect();
        assert_eq!(dirs, vec![(Direction::Forward, 2), (Direction::Backward, 3)]);
    }

    #[test]
    fn standing_on_the_line_and_going_back_does_not_count() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        assert!(run(&mut c, &[0.4, 0.5, 0.5, 0.5, 0.4]).is_empty());
        assert_eq!(run(&mut c, &[0.5, 0.6]).len(), 1);
    }

    #[test]
    fn crossings_before_confirmation_are_released_on_confirmation_with_their_frame() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        assert!(c.observe(&[upd(1, 0.45, false)], &[], at(0)).is_empty());
        assert!(c.observe(&[upd(1, 0.55, false)], &[], at(1)).is_empty());
        let out = c.observe(&[upd(1, 0.6, true)], &[], at(2));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].direction, out[0].at.seq), (Direction::Forward, 1));
    }

    #[test]
    fn crossings_wait_for_the_class_to_settle_or_the_track_to_end() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
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
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        c.observe(&[upd(1, 0.45, false)], &[], at(0));
        c.observe(&[upd(1, 0.55, false)], &[], at(1));
        let retired = RetiredTrack { track_id: 1, confirmed: false, class_name: Arc::from("car") };
        assert!(c.observe(&[], &[retired], at(2)).is_empty());
        assert!(c.observe(&[upd(1, 0.6, true)], &[], at(3)).is_empty(), "state of a retired track is gone");
    }
}
