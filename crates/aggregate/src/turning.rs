//! Turning movements: which approach a vehicle came in by and which it left by.
//!
//! Each approach of a camera is one of its counting lines with an entering
//! direction, or one of its zones ([`ApproachConfig`]).
//!
//! **Lines.** A track's entry is its crossing of an approach's line in the
//! entering direction, its exit a crossing of *another* approach's line in the
//! other direction. The two are paired per track in whichever order they are
//! released: on a tight turn the reference point (bottom-centre of the box) can
//! reach the exit line a frame before the entry line, and the counter releases a
//! track's crossings together once the track is confirmed and its class settled.
//! A crossing back over the line it came in by (a U-turn, or jitter past the
//! dead band) is not an exit.
//!
//! **Zones.** A zone approach's zone is its road, drawn from the junction
//! outwards. Of a track's positions (one per frame it is matched in), those
//! inside an approach's zone count; where zones overlap, the approach listed
//! first.
//! - The track **entered** from the approach whose zone holds the first of them.
//!   A track picked up late, halfway along its arm or standing in a queue when
//!   the input starts, still has its entry: any position in the arm will do,
//!   not the crossing of an edge.
//! - It **left** by another approach once its last [`EXIT_POSITIONS`] positions
//!   all lie in that approach's zone, or, when the track ends (its vehicle left
//!   the picture, or the input ended), once its last position does. A point
//!   flickering across the edge of a third zone, or back across its entry
//!   zone's, decides nothing.
//! - As with lines, the movement waits for the track to be confirmed and its
//!   class settled, or to end confirmed; it has the class the track has then.
//!   A track that starts beyond its entry zone (in the junction) has the zone
//!   it leaves by as its first: no movement rather than a wrong one.
//!
//! The exit is decided when the vehicle reaches the exit arm, not when its track
//! ends: a track that outlives its vehicle at the image edge and takes over
//! another entering there (an identity switch the tracker does not always
//! avoid where clipped boxes shrink and grow side by side) must not change a
//! movement made already. The entry is stamped with the frame of the track's
//! last position in the entry zone (when it left the arm for the junction), the
//! exit with the first of the positions that decided it (when it reached the
//! exit arm): for zones that end at the stop lines, about the frames at which a
//! line on them would count.
//!
//! A camera may mix both kinds: a track's entry is then the earlier of its first
//! entering crossing and its first zone position, and its exit whichever of an
//! exiting crossing and a zone exit comes first. Each track makes at most one
//! movement.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streetscope_contracts::config::{ApproachConfig, ZoneConfig};
use streetscope_contracts::Direction;

use crate::counter::{Crossing, FrameStamp};
use crate::tracker::{RetiredTrack, TrackUpdate};

/// A completed movement of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    pub track_id: u64,
    /// Index of the entry approach in [`Turning::name`] order.
    pub from: usize,
    pub to: usize,
    pub entry: FrameStamp,
    pub exit: FrameStamp,
    /// The track's class: at the exit crossing, or when the track ended.
    pub class_name: Arc<str>,
}

/// Positions in a row (matched frames) a track must spend in another
/// approach's zone than its entry's to have left by it.
pub const EXIT_POSITIONS: u32 = 3;

/// A track's positions inside one approach's zone: the frames of the first and
/// of the last.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Visit {
    approach: usize,
    first: FrameStamp,
    last: FrameStamp,
}

/// A track's latest positions in a row inside one approach's zone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Run {
    approach: usize,
    first: FrameStamp,
    positions: u32,
}

/// One track's entries and exits so far.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct TrackTurn {
    entries: Vec<(usize, FrameStamp)>,
    exits: Vec<(usize, FrameStamp)>,
    done: bool,
    /// The approach zones it has been in, in the order it first was.
    #[serde(default)]
    visits: Vec<Visit>,
    /// Its latest positions, if the latest is inside an approach zone.
    #[serde(default)]
    run: Option<Run>,
}

impl TrackTurn {
    /// The entry: the earlier of the first entering crossing and the first zone
    /// position; (approach, stamp).
    fn entry(&self) -> Option<(usize, FrameStamp)> {
        let line = self.entries.first().copied();
        let zone = self.visits.first();
        match (line, zone) {
            (Some(l), Some(z)) if z.first.seq < l.1.seq => Some((z.approach, z.last)),
            (Some(l), _) => Some(l),
            (None, Some(z)) => Some((z.approach, z.last)),
            (None, None) => None,
        }
    }

    /// Takes the track's position at `at`: in approach `zone`'s zone, or in none.
    fn position(&mut self, zone: Option<usize>, at: FrameStamp) {
        let Some(approach) = zone else {
            self.run = None;
            return;
        };
        match self.visits.iter_mut().find(|v| v.approach == approach) {
            Some(v) => v.last = at,
            None => self.visits.push(Visit { approach, first: at, last: at }),
        }
        match &mut self.run {
            Some(r) if r.approach == approach => r.positions += 1,
            _ => self.run = Some(Run { approach, first: at, positions: 1 }),
        }
    }

    /// The movement its zone positions make, when its latest `positions` or more
    /// lie in another zone than its entry's: (from, entry, to, exit).
    fn zone_exit(&self, positions: u32) -> Option<(usize, FrameStamp, usize, FrameStamp)> {
        let run = self.run.filter(|r| r.positions >= positions)?;
        let (from, entry) = self.entry()?;
        (run.approach != from).then_some((from, entry, run.approach, run.first))
    }
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
    /// The zones of the zone approaches, in approach order, with their approach.
    zones: Vec<(usize, ZoneConfig)>,
    tracks: HashMap<u64, TrackTurn>,
}

impl Turning {
    /// `lines`: the camera's counting line names, in order; `zones`: its zones;
    /// `approaches`: those of this camera (entries naming an unknown line or zone
    /// are ignored: see
    /// [`AnalyticsConfig::validate`](streetscope_contracts::config::AnalyticsConfig::validate)).
    pub fn new<'a>(
        lines: impl IntoIterator<Item = &'a str>,
        zones: &[ZoneConfig],
        approaches: &[&ApproachConfig],
    ) -> Self {
        let names: Vec<String> = approaches.iter().map(|a| a.name.clone()).collect();
        let by_line = lines
            .into_iter()
            .map(|l| {
                approaches
                    .iter()
                    .position(|a| a.zone.is_none() && a.line.as_deref() == Some(l))
                    .map(|i| (i, approaches[i].entering()))
            })
            .collect();
        let zones = approaches
            .iter()
            .enumerate()
            .filter(|(_, a)| a.line.is_none())
            .filter_map(|(i, a)| Some((i, zones.iter().find(|z| Some(&z.name) == a.zone.as_ref())?.clone())))
            .collect();
        Self { names, by_line, zones, tracks: HashMap::new() }
    }

    /// Whether the camera has approaches at all.
    pub fn is_active(&self) -> bool {
        !self.names.is_empty()
    }

    pub fn name(&self, approach: usize) -> &str {
        &self.names[approach]
    }

    /// Takes the positions of a frame's tracks (for zone approaches); returns
    /// the movements they complete.
    pub fn track(&mut self, updates: &[TrackUpdate], at: FrameStamp) -> Vec<Movement> {
        let mut out = Vec::new();
        if self.zones.is_empty() {
            return out;
        }
        for u in updates {
            let zone = self.zones.iter().find(|(_, z)| z.contains(u.anchor)).map(|&(a, _)| a);
            let t = match self.tracks.get_mut(&u.track_id) {
                Some(t) => t,
                None if zone.is_some() => self.tracks.entry(u.track_id).or_default(),
                None => continue,
            };
            if t.done {
                continue;
            }
            t.position(zone, at);
            if !(u.confirmed && u.class_settled) {
                continue;
            }
            if let Some((from, entry, to, exit)) = t.zone_exit(EXIT_POSITIONS) {
                t.done = true;
                out.push(Movement { track_id: u.track_id, from, to, entry, exit, class_name: u.class_name.clone() });
            }
        }
        out
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
        // The entry, and the first exit by another approach.
        let (from, entry) = t.entry()?;
        let &(to, exit) = t.exits.iter().find(|x| x.0 != from)?;
        t.done = true;
        Some(Movement { track_id: c.track_id, from, to, entry, exit, class_name: c.class_name.clone() })
    }

    /// Forgets a track that ended; returns the movement its zone positions
    /// complete (its last position in another zone than its entry's), if it
    /// was confirmed and made none yet.
    pub fn retire(&mut self, r: &RetiredTrack) -> Option<Movement> {
        let t = self.tracks.remove(&r.track_id)?;
        if t.done || !r.confirmed {
            return None;
        }
        let (from, entry, to, exit) = t.zone_exit(1)?;
        Some(Movement { track_id: r.track_id, from, to, entry, exit, class_name: r.class_name.clone() })
    }

    /// Its state between frames.
    pub fn state(&self) -> TurningState {
        let mut tracks: Vec<(u64, TrackTurn)> = self.tracks.iter().map(|(&id, t)| (id, t.clone())).collect();
        tracks.sort_by_key(|t| t.0);
        TurningState { approaches: self.names.clone(), tracks }
    }

    /// Goes on from `state`; `false` (and no change) when it was taken with other approaches.
    pub fn restore_state(&mut self, state: TurningState) -> bool {
        // Approach indices name one of the approaches: a forged one (65536)
        // panicked at the track's next movement (found at volume, seed
        // 0x5747524545545343).
        let n = self.names.len();
        let indices_fit = state.tracks.iter().all(|(_, t)| {
            t.entries.iter().chain(&t.exits).all(|&(a, _)| a < n)
                && t.visits.iter().all(|v| v.approach < n)
                && t.run.as_ref().is_none_or(|r| r.approach < n)
        });
        if state.approaches != self.names || !indices_fit {
            return false;
        }
        self.tracks = state.tracks.into_iter().collect();
        true
    }
}

#[cfg(test)]
mod tests {
    use streetscope_contracts::config::ZoneKind;
    use streetscope_contracts::NormPoint;

    use super::*;

    fn approach(name: &str, entering: Direction) -> ApproachConfig {
        ApproachConfig::line("c", name, &format!("{name}_line"), entering)
    }

    fn crossing(track_id: u64, line: usize, direction: Direction, seq: u64) -> Crossing {
        let at = FrameStamp { seq, pts_ns: 0, capture_time_ms: seq as i64 * 100 };
        Crossing { track_id, line, direction, class_name: Arc::from("car"), at }
    }

    fn turning() -> Turning {
        let (n, e) = (approach("north", Direction::Forward), approach("east", Direction::Backward));
        // Line 1 ("other") belongs to no approach.
        Turning::new(["north_line", "other", "east_line"], &[], &[&n, &e])
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
        assert_eq!(t.retire(&retired(1, true)), None);
        assert!(t.tracks.is_empty());
    }

    fn retired(track_id: u64, confirmed: bool) -> RetiredTrack {
        RetiredTrack { track_id, confirmed, class_name: Arc::from("van") }
    }

    fn at(seq: u64) -> FrameStamp {
        FrameStamp { seq, pts_ns: 0, capture_time_ms: seq as i64 * 100 }
    }

    /// Approaches over three zones of a junction in the middle of the picture:
    /// `north` (x 0.4-0.6, above y 0.4), `east` (right of x 0.6, y 0.4-0.6) and
    /// `south` (below y 0.6).
    fn zoned() -> Turning {
        let rect = |name: &str, x0: f64, y0: f64, x1: f64, y1: f64| {
            ZoneConfig::new(name, vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]], ZoneKind::Zone)
        };
        let zones = [
            rect("n_arm", 0.4, 0.0, 0.6, 0.4),
            rect("e_arm", 0.6, 0.4, 1.0, 0.6),
            rect("s_arm", 0.4, 0.6, 0.6, 1.0),
            rect("other", 0.0, 0.0, 0.1, 0.1),
        ];
        let a = [
            ApproachConfig::zone("c", "north", "n_arm"),
            ApproachConfig::zone("c", "east", "e_arm"),
            ApproachConfig::zone("c", "south", "s_arm"),
        ];
        Turning::new(["line"], &zones, &a.iter().collect::<Vec<_>>())
    }

    /// Feeds track `id`'s positions from frame `from` on, one a frame, its class
    /// settled or not; returns the movements made.
    fn walk_as(t: &mut Turning, id: u64, from: u64, settled: bool, points: &[(f64, f64)]) -> Vec<Movement> {
        let mut out = Vec::new();
        for (i, &(x, y)) in points.iter().enumerate() {
            let u = TrackUpdate {
                track_id: id,
                anchor: NormPoint::new(x, y),
                confirmed: true,
                class_name: Arc::from("car"),
                class_settled: settled,
            };
            out.extend(t.track(&[u], at(from + i as u64)));
        }
        out
    }

    fn walk(t: &mut Turning, id: u64, from: u64, points: &[(f64, f64)]) -> Vec<Movement> {
        walk_as(t, id, from, true, points)
    }

    /// Southbound down the north arm (x 0.45), through the junction, left into
    /// the east arm (y 0.55): frames 0-2 in the north arm, 3-4 in the
    /// junction, 5 on in the east arm.
    const LEFT_TURN: [(f64, f64); 9] = [
        (0.45, 0.1),
        (0.45, 0.2),
        (0.45, 0.35),
        (0.45, 0.5),
        (0.55, 0.55),
        (0.65, 0.55),
        (0.7, 0.55),
        (0.8, 0.55),
        (0.9, 0.55),
    ];

    #[test]
    fn a_zone_movement_is_made_once_the_track_has_kept_to_another_arm() {
        let mut t = zoned();
        let made = walk(&mut t, 1, 0, &LEFT_TURN[..7]);
        assert!(made.is_empty(), "two positions in the east arm are not yet an exit: {made:?}");
        let made = walk(&mut t, 1, 7, &LEFT_TURN[7..]);
        let m = &made[0];
        assert_eq!((t.name(m.from), t.name(m.to), &*m.class_name), ("north", "east", "car"));
        // Entry: the last frame in the north arm; exit: the first in the east arm.
        assert_eq!((m.entry.seq, m.exit.seq), (2, 5));
        // The track then takes over a vehicle in the south arm: nothing more.
        assert!(walk(&mut t, 1, 9, &[(0.45, 0.7), (0.45, 0.8), (0.45, 0.9), (0.45, 0.95)]).is_empty());
        assert_eq!(t.retire(&retired(1, true)), None);
        assert!(t.tracks.is_empty());
    }

    #[test]
    fn a_track_that_ends_needs_only_its_last_position_in_the_exit_arm() {
        let mut t = zoned();
        assert!(walk(&mut t, 1, 0, &LEFT_TURN[..6]).is_empty());
        let m = t.retire(&retired(1, true)).unwrap();
        assert_eq!((t.name(m.from), t.name(m.to), m.entry.seq, m.exit.seq), ("north", "east", 2, 5));
        assert_eq!(&*m.class_name, "van", "the class it ended with");
        // A class that has not settled waits for the track's end.
        assert!(walk_as(&mut t, 2, 0, false, &LEFT_TURN).is_empty());
        assert_eq!(t.retire(&retired(2, true)).map(|m| m.exit.seq), Some(5));
        // An unconfirmed track makes none, nor one whose last position is in no zone.
        walk_as(&mut t, 3, 0, false, &LEFT_TURN);
        assert_eq!(t.retire(&retired(3, false)), None);
        walk(&mut t, 4, 0, &LEFT_TURN[..5]);
        assert_eq!(t.retire(&retired(4, true)), None);
        assert!(t.tracks.is_empty());
    }

    #[test]
    fn zone_movements_are_robust_to_jitter_at_the_edges_and_to_late_starts() {
        let mut t = zoned();
        // Picked up late, at the stop line of the south arm, flickering across
        // its edge; north through the junction, touching the east arm's corner
        // twice; flickering at the north arm's edge, then up it.
        let pts = [
            (0.45, 0.61),
            (0.45, 0.59),
            (0.45, 0.605),
            (0.61, 0.55),
            (0.61, 0.5),
            (0.45, 0.45),
            (0.45, 0.39),
            (0.45, 0.41),
            (0.45, 0.38),
            (0.45, 0.3),
            (0.45, 0.2),
        ];
        let made = walk(&mut t, 1, 0, &pts);
        assert_eq!(
            made.iter().map(|m| (t.name(m.from), t.name(m.to), m.entry.seq, m.exit.seq)).collect::<Vec<_>>(),
            [("south", "north", 2, 8)]
        );
        // A U-turn back into its own arm is no movement, nor a track that
        // starts in the junction.
        assert!(walk(&mut t, 2, 0, &[(0.45, 0.2), (0.45, 0.5), (0.55, 0.5), (0.55, 0.3), (0.55, 0.2), (0.55, 0.1)])
            .is_empty());
        assert_eq!(t.retire(&retired(2, true)), None);
        assert!(walk(&mut t, 3, 0, &LEFT_TURN[4..]).is_empty());
        assert_eq!(t.retire(&retired(3, true)), None);
    }

    #[test]
    fn a_line_entry_pairs_with_a_zone_exit_and_a_zone_entry_with_a_line_exit() {
        let zones = [ZoneConfig::new("e_arm", vec![[0.6, 0.4], [1.0, 0.4], [1.0, 0.6], [0.6, 0.6]], ZoneKind::Zone)];
        let a = [approach("north", Direction::Forward), ApproachConfig::zone("c", "east", "e_arm")];
        let mut t = Turning::new(["north_line"], &zones, &a.iter().collect::<Vec<_>>());
        walk(&mut t, 1, 0, &LEFT_TURN[..3]);
        assert_eq!(t.observe(&crossing(1, 0, Direction::Forward, 3)), None);
        let made = walk(&mut t, 1, 3, &LEFT_TURN[3..]);
        let m = &made[0];
        assert_eq!((t.name(m.from), t.name(m.to), m.entry.seq, m.exit.seq), ("north", "east", 3, 5));
        // The other way: in from the east arm, out across the north line at once.
        walk(&mut t, 2, 0, &[(0.9, 0.5), (0.7, 0.5), (0.5, 0.5)]);
        let m = t.observe(&crossing(2, 0, Direction::Backward, 4)).unwrap();
        assert_eq!((t.name(m.from), t.name(m.to), m.entry.seq, m.exit.seq), ("east", "north", 1, 4));
        assert_eq!(t.retire(&retired(2, true)), None, "one movement per track");
    }
}
