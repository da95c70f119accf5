//! Directional line crossings from track movements.
//!
//! A track's reference point is compared with each line at every frame. The last
//! point that was strictly off the line is kept, so a box that stops on the line
//! and leaves on the side it came from does not count, and one that stops on it
//! and leaves on the other side counts once. Each track counts at most once per line
//! and direction. Crossings seen before a track is confirmed are held and released
//! when it is confirmed, so a vehicle that crosses early in its life still counts,
//! and a short-lived false track never does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use streetscope_contracts::{CountingLine, Direction, NormPoint};

use crate::tracker::TrackUpdate;

/// A crossing ready to be reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub track_id: u64,
    /// Index of the line in the camera's list.
    pub line: usize,
    pub direction: Direction,
    pub class_name: Arc<str>,
}

#[derive(Debug, Default)]
struct TrackLines {
    /// Per line: the last point strictly off it.
    last_off: Vec<Option<NormPoint>>,
    counted: HashSet<(usize, Direction)>,
    /// Crossings seen while the track was not yet confirmed.
    pending: Vec<(usize, Direction)>,
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

    /// Takes the updates of one frame and the ids of tracks that ended; returns new crossings.
    pub fn observe(&mut self, updates: &[TrackUpdate], retired: &[u64]) -> Vec<Crossing> {
        let mut out = Vec::new();
        for u in updates {
            let st = self.tracks.entry(u.track_id).or_insert_with(|| TrackLines {
                last_off: vec![None; self.lines.len()],
                ..TrackLines::default()
            });
            for (li, line) in self.lines.iter().enumerate() {
                let side = line.side(u.anchor);
                if side == 0.0 {
                    continue;
                }
                if let Some(prev) = st.last_off[li] {
                    if let Some(dir) = line.crossing(prev, u.anchor) {
                        if !st.counted.contains(&(li, dir)) && !st.pending.contains(&(li, dir)) {
                            st.pending.push((li, dir));
                        }
                    }
                }
                st.last_off[li] = Some(u.anchor);
            }
            if u.confirmed {
                for (li, dir) in st.pending.drain(..) {
                    if st.counted.insert((li, dir)) {
                        out.push(Crossing { track_id: u.track_id, line: li, direction: dir, class_name: u.class_name.clone() });
                    }
                }
            }
        }
        for id in retired {
            self.tracks.remove(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(id: u64, x: f64, confirmed: bool) -> TrackUpdate {
        TrackUpdate { track_id: id, anchor: NormPoint::new(x, 0.5), confirmed, class_name: Arc::from("car") }
    }

    fn vertical(x: f64) -> CountingLine {
        // Drawn bottom to top: rightward motion is forward.
        CountingLine::new("v", [x, 1.0], [x, 0.0])
    }

    #[test]
    fn counts_once_per_line_and_direction() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        let mut all = Vec::new();
        for x in [0.3, 0.4, 0.6, 0.4, 0.6, 0.7] {
            all.extend(c.observe(&[upd(1, x, true)], &[]));
        }
        let dirs: Vec<Direction> = all.iter().map(|c| c.direction).collect();
        assert_eq!(dirs, vec![Direction::Forward, Direction::Backward]);
    }

    #[test]
    fn standing_on_the_line_and_going_back_does_not_count() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        let mut all = Vec::new();
        for x in [0.4, 0.5, 0.5, 0.5, 0.4] {
            all.extend(c.observe(&[upd(1, x, true)], &[]));
        }
        assert!(all.is_empty());
        for x in [0.5, 0.6] {
            all.extend(c.observe(&[upd(1, x, true)], &[]));
        }
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn crossings_before_confirmation_are_released_on_confirmation() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        assert!(c.observe(&[upd(1, 0.45, false)], &[]).is_empty());
        assert!(c.observe(&[upd(1, 0.55, false)], &[]).is_empty());
        let out = c.observe(&[upd(1, 0.6, true)], &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].direction, Direction::Forward);
    }

    #[test]
    fn unconfirmed_tracks_that_end_never_count() {
        let mut c = LineCounter::new(vec![vertical(0.5)]);
        c.observe(&[upd(1, 0.45, false)], &[]);
        c.observe(&[upd(1, 0.55, false)], &[]);
        assert!(c.observe(&[], &[1]).is_empty());
        assert!(c.observe(&[upd(1, 0.6, true)], &[]).is_empty(), "state of a retired track is gone");
    }
}
