//! The study: each intersection's turning-movement counts per 15-minute bin,
//! movement and class group, with the data quality of every bin.
//!
//! Counts come from the `turning_movement` records, filed by the time the
//! movement was complete (`capture_time_ms`, the later of its two crossings),
//! so movements that reached the aggregator after their window had closed are
//! still in their bin. Quality comes from the `window` records: a bin is
//! covered by the windows of one length that divides it (900 s preferred);
//! a bin that no window covers, or that had a sequence gap, an ingest restart,
//! a stale camera, too few frames, or a window closed before its end, is
//! *flagged*: its count is empty (never zero), and what was seen is kept apart
//! as `observed`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::tz::TimeZone;
use streetscope_contracts::config::{ApproachConfig, CompassLeg};
use streetscope_contracts::records::{WindowRecord, ZoneVisit};

use crate::config::{ClassGroup, Control, StudyConfig};
use crate::input::Results;
use crate::movement::{movements, turn, Movement};
use crate::ReportError;

/// Bin length: 15 minutes.
pub const BIN_MS: i64 = 900_000;

/// Why a bin's count is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// No window covers the bin: nothing was running, or its results are not in the input.
    NoData,
    /// Some of the windows that make up the bin are missing.
    PartialData,
    /// Frames were lost: a run of missing sequence numbers longer than
    /// `max_gap_s`, long enough to hide a vehicle.
    Gap,
    /// Frames were lost in short runs (at most `max_gap_s` each) that the
    /// tracker bridges: the count is given, and flagged.
    DroppedFrames,
    /// A camera's ingest restarted in the bin (the time between its runs is lost).
    Restart,
    /// A camera delivered nothing for `camera_stale_s` in the bin.
    Stale,
    /// A camera delivered fewer than `min_coverage` of its expected frames.
    LowCoverage,
    /// The window was flushed before its end (the input ended inside it).
    NotClosed,
}

impl Flag {
    pub fn name(self) -> &'static str {
        match self {
            Flag::NoData => "no_data",
            Flag::PartialData => "partial_data",
            Flag::Gap => "gap",
            Flag::DroppedFrames => "dropped_frames",
            Flag::Restart => "restart",
            Flag::Stale => "stale",
            Flag::LowCoverage => "low_coverage",
            Flag::NotClosed => "not_closed",
        }
    }

    /// Whether the flag empties the bin's count (all but `dropped_frames`).
    pub fn empties(self) -> bool {
        self != Flag::DroppedFrames
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Flag::NoData, Flag::PartialData, Flag::Gap, Flag::Restart, Flag::Stale, Flag::LowCoverage, Flag::NotClosed]
            .into_iter()
            .find(|f| f.name() == s)
    }
}

/// One 15-minute bin of an intersection.
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    /// Start, ms since the Unix epoch (a multiple of 900 s: a local quarter hour
    /// in every time zone in use today).
    pub start_ms: i64,
    /// The weakest camera's share of its expected frames (0 without windows).
    pub coverage: f64,
    /// Frames missing in sequence gaps, all cameras.
    pub frames_dropped: u64,
    /// What went wrong in the bin; the count is not given when one of them
    /// [`Flag::empties`] it.
    pub flags: BTreeSet<Flag>,
}

impl Bin {
    /// Whether the bin's counts are given.
    pub fn ok(&self) -> bool {
        !self.flags.iter().any(|f| f.empties())
    }

    pub fn flag_text(&self) -> String {
        self.flags.iter().map(|f| f.name()).collect::<Vec<_>>().join(";")
    }
}

/// A bin's queue rows: (camera, lane) -> per window (mean, max, frames by vehicles queued).
pub type LaneQueues = BTreeMap<(String, String), Vec<(f64, u32, Vec<u64>)>>;

/// The counts of one intersection.
#[derive(Debug, Clone, PartialEq)]
pub struct IntersectionCounts {
    pub intersection_id: String,
    pub site: String,
    pub utdf_id: u32,
    pub control: Control,
    /// Its movements (between the legs its approaches have), UTDF order.
    pub movements: Vec<Movement>,
    /// Class groups, report order.
    pub groups: Vec<String>,
    pub bins: Vec<Bin>,
    /// Vehicles per bin, movement and group: `counts[bin][movement][group]`.
    /// Counted in every bin; a flagged bin's are only what was seen.
    pub counts: Vec<Vec<Vec<u64>>>,
    /// Heavy vehicles (FHWA 4–13) per bin and movement.
    pub heavy: Vec<Vec<u64>>,
    /// Buses (FHWA 4) per bin and movement.
    pub buses: Vec<Vec<u64>>,
    /// The windows' queue rows per bin: (camera, lane) -> per window (mean, max).
    pub queues: Vec<LaneQueues>,
    /// Stays in zones that ended in the period (from windows of one length):
    /// (camera, zone, stay), by leaving time.
    pub visits: Vec<(String, String, ZoneVisit)>,
    /// The movement of each track that made one: (camera, track) -> movement index.
    pub track_movements: HashMap<(String, u64), usize>,
    /// The bin of each track's movement: (camera, track) -> bin index.
    pub track_bins: HashMap<(String, u64), usize>,
    /// Sentences for the reader: what was left out and why.
    pub notes: Vec<String>,
}

impl IntersectionCounts {
    /// The count of a bin, movement and group: `None` for a flagged bin.
    pub fn count(&self, bin: usize, mov: usize, group: usize) -> Option<u64> {
        self.bins[bin].ok().then(|| self.counts[bin][mov][group])
    }

    /// All groups of a bin and movement: `None` for a flagged bin.
    pub fn total(&self, bin: usize, mov: usize) -> Option<u64> {
        self.bins[bin].ok().then(|| self.counts[bin][mov].iter().sum())
    }
}

/// A whole study.
#[derive(Debug, Clone)]
pub struct Study {
    pub config: StudyConfig,
    pub tz: TimeZone,
    /// First bin's start and last bin's end, ms.
    pub from_ms: i64,
    pub to_ms: i64,
    pub intersections: Vec<IntersectionCounts>,
}

/// What to report on.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this intersection (default all with legs).
    pub intersection: Option<String>,
    /// Period, ms (default: what the windows cover), widened to whole bins.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// Builds the study from the results, the approaches (with their compass legs)
/// and the study's settings.
pub fn build(
    results: &Results,
    approaches: &[ApproachConfig],
    config: &StudyConfig,
    scope: &Scope,
) -> Result<Study, ReportError> {
    config.validate()?;
    let tz = crate::time::zone(&config.time_zone)?;
    let classes = config.class_groups();
    let groups = config.group_order();
    let legs: HashMap<(&str, &str), CompassLeg> =
        approaches.iter().filter_map(|a| Some(((a.camera.as_str(), a.name.as_str()), a.leg?))).collect();
    let camera_legs: BTreeMap<&str, Vec<CompassLeg>> = approaches.iter().fold(BTreeMap::new(), |mut m, a| {
        if let Some(l) = a.leg {
            m.entry(a.camera.as_str()).or_default().push(l);
        }
        m
    });

    // Intersections: those with records, whose cameras have legs.
    let mut ids: BTreeSet<&str> = results.turning.iter().map(|t| t.intersection_id.as_str()).collect();
    ids.extend(results.windows.iter().map(|w| w.intersection_id.as_str()));
    if let Some(only) = &scope.intersection {
        if !ids.contains(only.as_str()) {
            return Err(ReportError::Study(format!(
                "intersection {only:?} has no records in the results (they hold {:?})",
                ids.iter().collect::<Vec<_>>()
            )));
        }
        ids.retain(|i| i == only);
    }
    if legs.is_empty() {
        return Err(ReportError::Study(
            "no approach has a compass leg: give each approach its `leg` (n, s, e or w) in \
             [[analytics.approaches]] of the pipeline configuration"
                .into(),
        ));
    }

    // The period: given, or what the windows (else the movements) cover.
    let windows: Vec<&WindowRecord> = results
        .windows
        .iter()
        .filter(|w| {
            ids.contains(w.intersection_id.as_str()) && w.length_s > 0 && BIN_MS % (i64::from(w.length_s) * 1000) == 0
        })
        .collect();
    let extent = |it: &mut dyn Iterator<Item = (i64, i64)>| {
        it.fold(None, |acc: Option<(i64, i64)>, (a, b)| Some(acc.map_or((a, b), |(x, y)| (x.min(a), y.max(b)))))
    };
    let seen = extent(&mut windows.iter().map(|w| (w.window_start_ms, w.window_end_ms))).or_else(|| {
        extent(
            &mut results
                .turning
                .iter()
                .filter(|t| ids.contains(t.intersection_id.as_str()))
                .map(|t| (t.capture_time_ms, t.capture_time_ms + 1)),
        )
    });
    let (from, to) = match (scope.from_ms, scope.to_ms, seen) {
        (Some(f), Some(t), _) => (f, t),
        (f, t, Some((a, b))) => (f.unwrap_or(a), t.unwrap_or(b)),
        _ => {
            return Err(ReportError::Study(
                "the results hold no window and no turning movement: nothing to report".into(),
            ))
        }
    };
    if to <= from {
        return Err(ReportError::Study(format!(
            "the period ends ({}) before it starts ({})",
            crate::time::iso(to, &tz),
            crate::time::iso(from, &tz)
        )));
    }
    let from_ms = from.div_euclid(BIN_MS) * BIN_MS;
    let to_ms = (to + BIN_MS - 1).div_euclid(BIN_MS) * BIN_MS;
    let nbins = ((to_ms - from_ms) / BIN_MS) as usize;
    if nbins > 366 * 96 {
        return Err(ReportError::Study(format!("{nbins} bins: a study is at most a year of 15-minute bins")));
    }

    let mut out = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        // The intersection's cameras with legs, and their legs.
        let cams: BTreeSet<&str> = results
            .turning
            .iter()
            .filter(|t| t.intersection_id == *id)
            .map(|t| t.camera_id.as_str())
            .chain(
                windows
                    .iter()
                    .filter(|w| w.intersection_id == *id)
                    .flat_map(|w| w.cameras.iter().map(|c| c.camera_id.as_str())),
            )
            .collect();
        let mut its_legs: Vec<CompassLeg> = cams.iter().filter_map(|c| camera_legs.get(c)).flatten().copied().collect();
        its_legs.sort();
        its_legs.dedup();
        if its_legs.is_empty() {
            if scope.intersection.is_some() {
                return Err(ReportError::Study(format!(
                    "no approach of intersection {id:?} (cameras {cams:?}) has a compass leg: set `leg` in its \
                     [[analytics.approaches]]"
                )));
            }
            continue;
        }
        let study = config.intersections.iter().find(|s| s.id == *id);
        let movs = movements(&its_legs);
        let mut ic = IntersectionCounts {
            intersection_id: id.to_string(),
            site: study.and_then(|s| s.site.clone()).unwrap_or_else(|| id.to_string()),
            utdf_id: study.and_then(|s| s.utdf_id).unwrap_or(k as u32 + 1),
            control: study.map(|s| s.control).unwrap_or_default(),
            groups: groups.clone(),
            bins: Vec::with_capacity(nbins),
            counts: vec![vec![vec![0; groups.len()]; movs.len()]; nbins],
            heavy: vec![vec![0; movs.len()]; nbins],
            buses: vec![vec![0; movs.len()]; nbins],
            queues: vec![BTreeMap::new(); nbins],
            visits: Vec::new(),
            track_movements: HashMap::new(),
            track_bins: HashMap::new(),
            movements: movs,
            notes: Vec::new(),
        };
        let mine: Vec<&WindowRecord> = windows.iter().copied().filter(|w| w.intersection_id == *id).collect();
        quality(&mut ic, &mine, from_ms, nbins, config);
        let mut left_out: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for t in results.turning.iter().filter(|t| t.intersection_id == *id) {
            let ms = t.capture_time_ms;
            if ms < from_ms || ms >= to_ms {
                continue;
            }
            let class = class_of(&classes, &t.class_name, id, t.track_id)?;
            let (Some(&a), Some(&b)) =
                (legs.get(&(t.camera_id.as_str(), t.from.as_str())), legs.get(&(t.camera_id.as_str(), t.to.as_str())))
            else {
                *left_out.entry((t.camera_id.clone(), t.from.clone(), t.to.clone())).or_default() += 1;
                continue;
            };
            let m = Movement::new(a, turn(a, b));
            let Some(mi) = ic.movements.iter().position(|x| *x == m) else { continue };
            ic.track_movements.insert((t.camera_id.clone(), t.track_id), mi);
            let bi = ((ms - from_ms) / BIN_MS) as usize;
            ic.track_bins.insert((t.camera_id.clone(), t.track_id), bi);
            let gi = ic.groups.iter().position(|g| *g == class.group).expect("groups come from the classes");
            ic.counts[bi][mi][gi] += 1;
            if class.fhwa >= 4 {
                ic.heavy[bi][mi] += 1;
            }
            if class.fhwa == 4 {
                ic.buses[bi][mi] += 1;
            }
        }
        for ((cam, f, t), n) in left_out {
            ic.notes.push(format!(
                "{n} movements of camera {cam} from approach {f:?} to {t:?} are left out: an approach without a \
                 compass leg (`leg` in [[analytics.approaches]])"
            ));
        }
        out.push(ic);
    }
    if out.is_empty() {
        return Err(ReportError::Study(format!(
            "no intersection of the results ({ids:?}) has approaches with compass legs"
        )));
    }
    Ok(Study { config: config.clone(), tz, from_ms, to_ms, intersections: out })
}

fn class_of<'a>(
    classes: &'a BTreeMap<String, ClassGroup>,
    class: &str,
    id: &str,
    track: u64,
) -> Result<&'a ClassGroup, ReportError> {
    classes.get(class).ok_or_else(|| {
        ReportError::Study(format!(
            "class {class:?} (intersection {id}, track {track}) has no class group: add \
             [classes.{class}] with group = \"…\" and fhwa = 1..13 to the study configuration"
        ))
    })
}

/// Fills `ic.bins` (and the queue rows) from the intersection's windows.
fn quality(ic: &mut IntersectionCounts, windows: &[&WindowRecord], from_ms: i64, nbins: usize, config: &StudyConfig) {
    // The longest window length that divides a bin.
    let len_s = windows.iter().map(|w| w.length_s).max();
    let by_start: HashMap<i64, &WindowRecord> =
        windows.iter().filter(|w| Some(w.length_s) == len_s).map(|w| (w.window_start_ms, *w)).collect();
    let per_bin = len_s.map_or(1, |l| (BIN_MS / (i64::from(l) * 1000)) as usize);
    for b in 0..nbins {
        let start = from_ms + b as i64 * BIN_MS;
        let mut flags = BTreeSet::new();
        let subs: Vec<&WindowRecord> = (0..per_bin)
            .filter_map(|k| by_start.get(&(start + k as i64 * len_s.map_or(0, i64::from) * 1000)).copied())
            .collect();
        if subs.is_empty() {
            flags.insert(Flag::NoData);
        } else if subs.len() < per_bin {
            flags.insert(Flag::PartialData);
        }
        let mut per_cam: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        let mut dropped = 0;
        for w in &subs {
            let mut own_rules_ok = true;
            for c in &w.cameras {
                let e = per_cam.entry(c.camera_id.as_str()).or_default();
                e.0 += c.frames_received;
                e.1 += c.frames_expected;
                dropped += c.frames_dropped;
                let fps = c.frames_expected as f64 / f64::from(w.length_s.max(1));
                for g in &c.gaps {
                    let secs = if fps > 0.0 { g.frames() as f64 / fps } else { f64::INFINITY };
                    flags.insert(if g.restart {
                        Flag::Restart
                    } else if secs > config.max_gap_s {
                        Flag::Gap
                    } else {
                        Flag::DroppedFrames
                    });
                }
                if c.frames_dropped > 0 && c.gaps.is_empty() {
                    flags.insert(Flag::Gap);
                }
                if c.stale {
                    flags.insert(Flag::Stale);
                }
                own_rules_ok &= c.gaps.is_empty()
                    && !c.stale
                    && c.frames_dropped == 0
                    && c.frames_received as f64 >= 0.99 * c.frames_expected as f64;
            }
            if !w.complete && own_rules_ok {
                flags.insert(Flag::NotClosed);
            }
            for z in &w.zones {
                for v in z.visits.iter().filter(|v| v.leave_ms >= start && v.leave_ms < start + BIN_MS) {
                    ic.visits.push((z.camera_id.clone(), z.zone.clone(), v.clone()));
                }
            }
            for q in &w.queues {
                ic.queues[b].entry((q.camera_id.clone(), q.lane.clone())).or_default().push((
                    q.mean_queue,
                    q.max_queue,
                    q.frames_by_queue.clone(),
                ));
            }
        }
        let present = subs.len() as f64 / per_bin as f64;
        let coverage = per_cam
            .values()
            .map(|&(r, e)| if e == 0 { 1.0 } else { (r as f64 / e as f64).min(1.0) })
            .fold(f64::INFINITY, f64::min);
        let coverage = if per_cam.is_empty() { 0.0 } else { coverage * present };
        if !subs.is_empty() && coverage < config.min_coverage {
            flags.insert(Flag::LowCoverage);
        }
        ic.bins.push(Bin { start_ms: start, coverage, frames_dropped: dropped, flags });
    }
}
