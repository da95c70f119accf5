//! A first multi-object tracker of the SORT family. Each frame, detections are
//! associated with tracks in two greedy stages (best pair first, ties broken by
//! track age then detection order, so results are deterministic):
//!
//! 1. **IoU** between the detection and the track's predicted box, at least
//!    `match_iou`. The prediction is made two ways and the better IoU counts:
//!    every edge moved by its own velocity (follows a box that grows as a vehicle
//!    enters the picture), and the last box moved by its centre's velocity at its
//!    last size (follows a vehicle that ends a turn, where extrapolating each edge
//!    overshoots the change of the box's shape).
//! 2. **Centre distance**, for the tracks and detections stage 1 left over: the
//!    distance between the predicted centre and the detection's centre, divided
//!    by the diagonal of the track's box, at most [`MAX_CENTRE_DISTANCE`], between
//!    boxes whose areas differ by at most [`MAX_AREA_RATIO`]. Small boxes (bikes,
//!    tuktuks: 10-20 px wide) lose most of their IoU to a few pixels of jitter or
//!    prediction error; measured in their own size they are still close. A step
//!    towards ByteTrack's second association.
//!
//! Each track votes its class over its detections: a detection of a vehicle cut
//! by the image edge weighs a tenth of a whole one.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streetscope_contracts::config::TrackerConfig;
use streetscope_contracts::{BBox, Detection, NormPoint};

/// A track's state after a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackUpdate {
    pub track_id: u64,
    /// Reference point (bottom-centre of the box), normalised.
    pub anchor: NormPoint,
    /// Whether the track has been seen often enough to count.
    pub confirmed: bool,
    /// The class with the highest summed score over the track's detections.
    pub class_name: Arc<str>,
    /// Whether the track has seen the whole vehicle often enough to trust its class.
    pub class_settled: bool,
}

/// A track that ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RetiredTrack {
    pub track_id: u64,
    pub confirmed: bool,
    pub class_name: Arc<str>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Track {
    id: u64,
    bbox: BBox,
    velocity: [f32; 4],
    hits: u32,
    missed: u32,
    full_views: u32,
    votes: HashMap<Arc<str>, f32>,
}

/// Stage 2 gate: centre distance over the diagonal of the track's box.
pub const MAX_CENTRE_DISTANCE: f32 = 0.5;
/// Stage 2 gate: the larger of two boxes' areas over the smaller.
pub const MAX_AREA_RATIO: f32 = 4.0;

impl Track {
    /// The box one frame ahead, every edge moved by its velocity.
    fn predicted(&self) -> BBox {
        let v = self.velocity;
        BBox::new(self.bbox.x1 + v[0], self.bbox.y1 + v[1], self.bbox.x2 + v[2], self.bbox.y2 + v[3])
    }

    /// The box one frame ahead, moved by its centre's velocity at its present size.
    fn predicted_rigid(&self) -> BBox {
        let v = self.velocity;
        let (dx, dy) = ((v[0] + v[2]) / 2.0, (v[1] + v[3]) / 2.0);
        BBox::new(self.bbox.x1 + dx, self.bbox.y1 + dy, self.bbox.x2 + dx, self.bbox.y2 + dy)
    }

    /// Adds a detection's vote; returns whether it saw the whole vehicle.
    fn vote(&mut self, d: &Detection, w: u32, h: u32) {
        const EDGE_PX: f32 = 2.0;
        let b = d.bbox;
        let cut = b.x1 <= EDGE_PX || b.y1 <= EDGE_PX || b.x2 >= w as f32 - EDGE_PX || b.y2 >= h as f32 - EDGE_PX;
        let weight = if cut { 0.1 } else { 1.0 };
        if !cut {
            self.full_views += 1;
        }
        *self.votes.entry(d.class_name.clone()).or_insert(0.0) += weight * d.score;
    }

    fn class(&self) -> Arc<str> {
        // Highest vote; ties go to the alphabetically first name, for determinism.
        self.votes
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| Arc::from("unknown"))
    }
}

/// What a [`Tracker`] carries from frame to frame, for snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackerState {
    tracks: Vec<Track>,
    next_id: u64,
}

/// The tracker of one camera.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    retired: Vec<RetiredTrack>,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self { cfg, tracks: Vec::new(), next_id: 1, retired: Vec::new() }
    }

    /// Its state between frames.
    pub fn state(&self) -> TrackerState {
        TrackerState { tracks: self.tracks.clone(), next_id: self.next_id }
    }

    /// A tracker with `cfg` that goes on from `state`.
    pub fn restore(cfg: TrackerConfig, state: TrackerState) -> Self {
        Self { cfg, tracks: state.tracks, next_id: state.next_id, retired: Vec::new() }
    }

    /// The tracks that ended at the last update (or [`Tracker::finish`]).
    pub fn retired(&self) -> &[RetiredTrack] {
        &self.retired
    }

    /// Ends every track (end of stream); they are then in [`Tracker::retired`].
    pub fn finish(&mut self) {
        self.retired.clear();
        for t in self.tracks.drain(..) {
            self.retired.push(RetiredTrack {
                track_id: t.id,
                confirmed: t.hits >= self.cfg.min_hits,
                class_name: t.class(),
            });
        }
    }

    fn update_of(&self, t: &Track, w: u32, h: u32) -> TrackUpdate {
        TrackUpdate {
            track_id: t.id,
            anchor: t.bbox.bottom_center_norm(w, h),
            confirmed: t.hits >= self.cfg.min_hits,
            class_name: t.class(),
            class_settled: t.full_views >= self.cfg.settle_views,
        }
    }

    /// Takes the detections of the next frame (`w` x `h` pixels) and returns the
    /// state of every track that was matched in it.
    pub fn update(&mut self, dets: &[Detection], w: u32, h: u32) -> Vec<TrackUpdate> {
        self.retired.clear();
        let mut track_det: Vec<Option<usize>> = vec![None; self.tracks.len()];
        let mut det_taken = vec![false; dets.len()];

        // Stage 1: IoU with the better of the two predictions.
        let predicted: Vec<[BBox; 2]> = self.tracks.iter().map(|t| [t.predicted(), t.predicted_rigid()]).collect();
        let mut pairs = Vec::new();
        for (ti, p) in predicted.iter().enumerate() {
            for (di, d) in dets.iter().enumerate() {
                let iou = p[0].iou(&d.bbox).max(p[1].iou(&d.bbox));
                if iou >= self.cfg.match_iou {
                    pairs.push((-iou, ti, di));
                }
            }
        }
        assign(pairs, &mut track_det, &mut det_taken);

        // Stage 2: what is left, by centre distance in units of the track's size.
        let mut pairs = Vec::new();
        for (ti, p) in predicted.iter().enumerate() {
            if track_det[ti].is_some() {
                continue;
            }
            let p = p[1];
            let (diag, (cx, cy)) = (p.width().hypot(p.height()), p.center());
            for (di, d) in dets.iter().enumerate() {
                if det_taken[di] || diag <= 0.0 {
                    continue;
                }
                let (dx, dy) = d.bbox.center();
                let dist = (dx - cx).hypot(dy - cy) / diag;
                let (a, b) = (p.area(), d.bbox.area());
                let ratio = a.max(b) / a.min(b).max(f32::MIN_POSITIVE);
                if dist <= MAX_CENTRE_DISTANCE && ratio <= MAX_AREA_RATIO {
                    pairs.push((dist, ti, di));
                }
            }
        }
        assign(pairs, &mut track_det, &mut det_taken);

        let mut matched_ids = Vec::new();
        for (track, matched) in self.tracks.iter_mut().zip(&track_det) {
            match matched {
                Some(di) => {
                    let d = &dets[*di];
                    let old = track.bbox;
                    let new = [d.bbox.x1 - old.x1, d.bbox.y1 - old.y1, d.bbox.x2 - old.x2, d.bbox.y2 - old.y2];
                    // Velocity in pixels per frame, smoothed; a gap of missed frames spreads the jump.
                    let frames = (track.missed + 1) as f32;
                    for (v, n) in track.velocity.iter_mut().zip(new) {
                        *v = if track.hits == 1 { n / frames } else { 0.5 * *v + 0.5 * n / frames };
                    }
                    track.bbox = d.bbox;
                    track.hits += 1;
                    track.missed = 0;
                    track.vote(d, w, h);
                    matched_ids.push(track.id);
                }
                None => {
                    track.missed += 1;
                    track.bbox = track.predicted();
                }
            }
        }
        let mut updates: Vec<TrackUpdate> =
            self.tracks.iter().filter(|t| matched_ids.contains(&t.id)).map(|t| self.update_of(t, w, h)).collect();
        let (max_missed, min_hits) = (self.cfg.max_missed, self.cfg.min_hits);
        let retired = &mut self.retired;
        self.tracks.retain(|t| {
            let keep = t.missed <= max_missed;
            if !keep {
                retired.push(RetiredTrack { track_id: t.id, confirmed: t.hits >= min_hits, class_name: t.class() });
            }
            keep
        });
        for (di, d) in dets.iter().enumerate() {
            if det_taken[di] {
                continue;
            }
            let mut track = Track {
                id: self.next_id,
                bbox: d.bbox,
                velocity: [0.0; 4],
                hits: 1,
                missed: 0,
                full_views: 0,
                votes: HashMap::new(),
            };
            track.vote(d, w, h);
            self.next_id += 1;
            updates.push(self.update_of(&track, w, h));
            self.tracks.push(track);
        }
        updates
    }
}

/// Greedy assignment of `(cost, track, detection)` pairs: lowest cost first, then
/// the older track, then the earlier detection; each track and detection once.
fn assign(mut pairs: Vec<(f32, usize, usize)>, track_det: &mut [Option<usize>], det_taken: &mut [bool]) {
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (_, ti, di) in pairs {
        if track_det[ti].is_none() && !det_taken[di] {
            track_det[ti] = Some(di);
            det_taken[di] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, class: &str, score: f32) -> Detection {
        Detection { class_id: 0, class_name: Arc::from(class), score, bbox: BBox::new(x, 100.0, x + 100.0, 200.0) }
    }

    fn cfg() -> TrackerConfig {
        TrackerConfig { match_iou: 0.3, max_missed: 2, min_hits: 3, settle_views: 2, ..TrackerConfig::default() }
    }

    #[test]
    fn a_moving_box_keeps_its_id_and_is_confirmed_on_the_third_hit() {
        let mut t = Tracker::new(cfg());
        let ids: Vec<(u64, bool)> = (0..5)
            .map(|i| {
                let u = t.update(&[det(i as f32 * 20.0, "car", 0.9)], 1000, 500);
                (u[0].track_id, u[0].confirmed)
            })
            .collect();
        assert_eq!(ids, vec![(1, false), (1, false), (1, true), (1, true), (1, true)]);
    }

    #[test]
    fn prediction_bridges_a_missed_frame_of_a_fast_mover() {
        let mut t = Tracker::new(cfg());
        // 40 px per frame: after a missed frame the box is 80 px from the last one
        // seen (IoU 0.11, below the threshold), but the prediction follows it.
        for i in 0..3 {
            t.update(&[det(i as f32 * 40.0, "car", 0.9)], 1000, 500);
        }
        assert!(t.update(&[], 1000, 500).is_empty());
        let u = t.update(&[det(160.0, "car", 0.9)], 1000, 500);
        assert_eq!(u[0].track_id, 1);
    }

    #[test]
    fn tracks_retire_after_max_missed_frames() {
        let mut t = Tracker::new(cfg());
        t.update(&[det(0.0, "car", 0.9)], 1000, 500);
        for _ in 0..2 {
            t.update(&[], 1000, 500);
            assert!(t.retired().is_empty());
        }
        t.update(&[], 1000, 500);
        assert_eq!(t.retired().iter().map(|r| r.track_id).collect::<Vec<_>>(), vec![1]);
        assert!(!t.retired()[0].confirmed);
        let u = t.update(&[det(0.0, "car", 0.9)], 1000, 500);
        assert_eq!(u[0].track_id, 2);
    }

    #[test]
    fn class_is_voted_by_summed_score() {
        let mut t = Tracker::new(cfg());
        t.update(&[det(10.0, "bus", 0.5)], 1000, 500);
        t.update(&[det(15.0, "tuktuk", 0.6)], 1000, 500);
        let u = t.update(&[det(20.0, "bus", 0.4)], 1000, 500);
        assert_eq!(&*u[0].class_name, "bus");
    }

    #[test]
    fn votes_of_vehicles_cut_by_the_edge_weigh_less() {
        let mut t = Tracker::new(cfg());
        let at_edge = |class: &str| Detection {
            class_id: 0,
            class_name: Arc::from(class),
            score: 0.9,
            bbox: BBox::new(0.0, 100.0, 100.0, 200.0),
        };
        for _ in 0..3 {
            let u = t.update(&[at_edge("tuktuk")], 1000, 500);
            assert!(!u[0].class_settled);
        }
        let u = t.update(&[det(5.0, "bus", 0.5)], 1000, 500);
        assert_eq!(&*u[0].class_name, "bus", "one whole view outweighs three cut ones");
        let u = t.update(&[det(6.0, "bus", 0.5)], 1000, 500);
        assert!(u[0].class_settled);
    }

    #[test]
    fn finish_retires_every_track() {
        let mut t = Tracker::new(cfg());
        for i in 0..3 {
            t.update(&[det(i as f32, "car", 0.9)], 1000, 500);
        }
        t.finish();
        assert_eq!(t.retired(), &[RetiredTrack { track_id: 1, confirmed: true, class_name: Arc::from("car") }]);
    }

    #[test]
    fn two_objects_get_two_tracks() {
        let mut t = Tracker::new(cfg());
        let u = t.update(&[det(0.0, "car", 0.9), det(500.0, "bus", 0.8)], 1000, 500);
        assert_eq!(u.iter().map(|u| u.track_id).collect::<Vec<_>>(), vec![1, 2]);
        let u = t.update(&[det(510.0, "bus", 0.8), det(10.0, "car", 0.9)], 1000, 500);
        let mut ids: Vec<u64> = u.iter().map(|u| u.track_id).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2]);
    }
}
