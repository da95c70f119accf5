//! The simulation loop: arrivals, car-following and signals move the vehicles;
//! each frame is then observed twice — exactly, for the ground truth, and through
//! the [`NoiseSpec`] detector model, for the detections.
//!
//! Per frame, in order: Poisson arrivals join a per-lane backlog; the head of each
//! backlog enters its lane beyond the image edge when there is room; every vehicle
//! moves (Krauss car-following behind the vehicle ahead in its inbound lane and in
//! its outbound lane, and behind its stop line when the signal says stop);
//! vehicles whose rear has left the road are removed; then the frame is observed.
//!
//! Traffic and detector noise draw from two generators seeded from the one seed,
//! so changing the noise never changes the traffic: the same seed gives the same
//! ground truth whatever the [`NoiseSpec`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use streetscope_contracts::config::FieldError;
use streetscope_contracts::{BBox, CountingLine, Detection, Direction, FrameDetections, NormPoint};

use crate::layout::{in_group, Layout, GROUPS};
use crate::rng::SimRng;
use crate::signal::{SignalState, SignalTimer};
use crate::spec::{Approach, IntersectionSpec, Movement, NoiseSpec, MAX_LANES};
use crate::truth::{
    truth_crossing, truth_side, CrossingTime, DetectionSource, GroundTruth, LineCount, MovementKey, QueueSample,
    SimFrame, TrueObject, TruthCrossing, TurningCount, VehicleTruth,
};

/// Why a simulation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The spec or the noise spec has bad fields.
    #[error("invalid simulation spec:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// Counts of what the detector model did, over the frames yielded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseStats {
    /// Frames yielded, dropped ones included.
    pub frames: u64,
    /// Frames dropped whole.
    pub frames_dropped: u64,
    /// Detectable vehicle-frames in frames not dropped.
    pub visible: u64,
    /// Of those, hidden by an occlusion.
    pub occluded: u64,
    /// Occlusions that began.
    pub occlusions_started: u64,
    /// Of the visible and not occluded, missed.
    pub missed: u64,
    /// True detections reported.
    pub detected: u64,
    /// True detections reported with a wrong class.
    pub class_flips: u64,
    /// False boxes reported.
    pub false_positives: u64,
}

/// Movement below this many pixels short of a limit snaps onto it, so that
/// queued vehicles stand exactly still rather than creep forever.
const SNAP_PX: f64 = 0.05;

#[derive(Debug)]
struct ClassRt {
    name: Arc<str>,
    id: u32,
    length: f64,
    width: f64,
    speed: f64,
    accel: f64,
    decel: f64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    class: usize,
    route: usize,
    v0: f64,
}

#[derive(Debug)]
struct Vehicle {
    id: u64,
    class: usize,
    route: usize,
    /// Arc length of the box centre along the route.
    s: f64,
    /// Speed, pixels per second.
    v: f64,
    /// Desired speed.
    v0: f64,
    /// Not detected before this frame.
    occluded_until: i64,
    /// Per counting line, the last reference point strictly off it.
    last_off: Vec<Option<NormPoint>>,
    /// Bit `2 * line + direction` set once counted.
    counted: u64,
}

/// A running simulation of one intersection and its camera.
///
/// Deterministic: the same spec, noise spec and seed give the same frames.
#[derive(Debug)]
pub struct Simulation {
    spec: IntersectionSpec,
    noise: NoiseSpec,
    layout: Layout,
    signal: SignalTimer,
    lines: Vec<CountingLine>,
    arm_line: [Option<usize>; 4],
    classes: Vec<ClassRt>,
    traffic: SimRng,
    noise_rng: SimRng,
    dt: f64,
    /// Index of the next frame; negative during warm-up.
    frame: i64,
    end_frame: i64,
    next_arrival: [f64; 4],
    backlog: Vec<VecDeque<Pending>>,
    vehicles: Vec<Vehicle>,
    /// Index = vehicle id - 1.
    records: Vec<VehicleTruth>,
    crossings: Vec<TruthCrossing>,
    queues: Vec<QueueSample>,
    stats: NoiseStats,
    camera_id: Arc<str>,
    intersection_id: Arc<str>,
    /// Scratch: (group, order key, vehicle index).
    in_order: Vec<(usize, f64, usize)>,
    out_order: Vec<(usize, f64, usize)>,
    leader_in: Vec<Option<usize>>,
    new_s: Vec<f64>,
    /// Vehicles whose front passed their stop line while it showed red (always 0;
    /// kept for the tests).
    red_runs: u64,
}

impl Simulation {
    /// Sets up a simulation; fails with every bad field of both specs.
    pub fn new(spec: IntersectionSpec, noise: NoiseSpec, seed: u64) -> Result<Self, SimError> {
        let mut errors = spec.validate().err().unwrap_or_default();
        errors.extend(noise.validate().err().unwrap_or_default());
        if !errors.is_empty() {
            return Err(SimError::Invalid(errors));
        }
        let layout = Layout::new(&spec);
        let lines = spec.counting_lines();
        let mut arm_line = [None; 4];
        for a in Approach::ALL {
            arm_line[a.index()] = lines.iter().position(|l| l.name == a.name());
        }
        let classes = spec
            .classes
            .iter()
            .map(|c| ClassRt {
                name: Arc::from(c.name.as_str()),
                id: c.class_id,
                length: c.length_px,
                width: c.width_px,
                speed: c.speed_px_s,
                accel: c.accel_px_s2,
                decel: c.decel_px_s2,
            })
            .collect();
        let dt = 1.0 / spec.fps;
        let warmup_frames = (spec.warmup_s * spec.fps).round() as i64;
        let mut traffic = SimRng::new(seed);
        let start = -warmup_frames as f64 * dt;
        let mut next_arrival = [f64::INFINITY; 4];
        for a in Approach::ALL {
            let rate = spec.approaches.get(a).rate_veh_h / 3600.0;
            if rate > 0.0 {
                next_arrival[a.index()] = start + traffic.exp(rate);
            }
        }
        Ok(Self {
            camera_id: Arc::from(spec.camera_id.as_str()),
            intersection_id: Arc::from(spec.intersection_id.as_str()),
            signal: SignalTimer::new(&spec.signal),
            end_frame: spec.frame_count() as i64,
            frame: -warmup_frames,
            noise_rng: SimRng::new(seed ^ 0x6e6f_6973_655f_726e),
            traffic,
            dt,
            next_arrival,
            backlog: vec![VecDeque::new(); GROUPS],
            vehicles: Vec::new(),
            records: Vec::new(),
            crossings: Vec::new(),
            queues: Vec::new(),
            stats: NoiseStats::default(),
            in_order: Vec::new(),
            out_order: Vec::new(),
            leader_in: Vec::new(),
            new_s: Vec::new(),
            red_runs: 0,
            layout,
            lines,
            arm_line,
            classes,
            spec,
            noise,
        })
    }

    /// The intersection being simulated.
    pub fn spec(&self) -> &IntersectionSpec {
        &self.spec
    }

    /// The detector model.
    pub fn noise(&self) -> &NoiseSpec {
        &self.noise
    }

    /// The counting lines the ground truth counts on (see [`IntersectionSpec::counting_lines`]).
    pub fn counting_lines(&self) -> &[CountingLine] {
        &self.lines
    }

    /// The camera the aggregator is given for this simulation: the
    /// intersection's ids and frame rate, the counting lines, and `zones`.
    pub fn camera(
        &self,
        zones: Vec<streetscope_contracts::config::ZoneConfig>,
    ) -> streetscope_contracts::config::CameraConfig {
        streetscope_contracts::config::CameraConfig {
            id: self.spec.camera_id.clone(),
            intersection: self.spec.intersection_id.clone(),
            source: "file:///simulated.mp4".to_owned(),
            sample_fps: self.spec.fps,
            lines: self.lines.clone(),
            keyframes_only: false,
            jpeg_quality: None,
            rtsp_transport: Default::default(),
            template: None,
            zones,
            calibration: None,
            frame_ids: None,
        }
    }

    /// A traffic study's analytics for `camera` (see [`Simulation::camera`]):
    /// one approach per arm's line with its compass leg (the simulator draws
    /// north at the top), 15-minute windows.
    pub fn study_analytics(&self, camera: &str) -> streetscope_contracts::config::AnalyticsConfig {
        use streetscope_contracts::config::{AnalyticsConfig, ApproachConfig, CompassLeg};
        let leg = |a| match a {
            Approach::North => CompassLeg::N,
            Approach::East => CompassLeg::E,
            Approach::South => CompassLeg::S,
            Approach::West => CompassLeg::W,
        };
        let approaches = Approach::ALL
            .into_iter()
            .map(|a| ApproachConfig {
                leg: Some(leg(a)),
                ..ApproachConfig::line(camera, a.name(), a.name(), Direction::Forward)
            })
            .collect();
        AnalyticsConfig { approaches, window_lengths_s: vec![900], ..AnalyticsConfig::default() }
    }

    /// What the detector model did so far.
    pub fn noise_stats(&self) -> &NoiseStats {
        &self.stats
    }

    /// Frames still to come.
    pub fn frames_left(&self) -> u64 {
        (self.end_frame - self.frame.max(0)).max(0) as u64
    }

    /// Vehicles on the simulated road now (visible or not).
    pub fn vehicles_on_road(&self) -> usize {
        self.vehicles.len()
    }

    /// Simulates up to the next frame and returns it; `None` after the last.
    /// The first call also runs the warm-up.
    pub fn step(&mut self) -> Option<SimFrame> {
        while self.frame < 0 {
            self.advance(self.frame);
            self.frame += 1;
        }
        if self.frame >= self.end_frame {
            return None;
        }
        let f = self.frame;
        self.advance(f);
        let out = self.observe(f);
        self.frame += 1;
        Some(out)
    }

    fn time(&self, f: i64) -> f64 {
        // Division rather than `f * dt`, so that whole seconds come out exact.
        f as f64 / self.spec.fps
    }

    /// Moves the world to the time of frame `f`.
    fn advance(&mut self, f: i64) {
        let t = self.time(f);
        for a in Approach::ALL {
            let rate = self.spec.approaches.get(a).rate_veh_h / 3600.0;
            while self.next_arrival[a.index()] <= t {
                self.arrive(a, self.next_arrival[a.index()]);
                self.next_arrival[a.index()] += self.traffic.exp(rate);
            }
        }
        self.spawn(t);
        self.drive(t);
        let routes = &self.layout.routes;
        let classes = &self.classes;
        let records = &mut self.records;
        self.vehicles.retain(|v| {
            let gone = v.s - classes[v.class].length / 2.0 >= routes[v.route].path.len();
            if gone {
                records[(v.id - 1) as usize].despawn_s = Some(t);
            }
            !gone
        });
    }

    /// A vehicle arrives at approach `a`: its class, movement, lane and desired speed.
    fn arrive(&mut self, a: Approach, at: f64) {
        let spec = &self.spec;
        let class = self.traffic.weighted(spec.classes.iter().map(|c| c.weight.max(0.0)));
        let turning = &spec.approaches.get(a).turning;
        let m = Movement::ALL[self.traffic.weighted(Movement::ALL.iter().map(|&m| turning.get(m)))];
        // The least busy lane that serves the movement.
        let mut best: Option<(usize, usize)> = None;
        for (_, route) in self.layout.lanes_for(a, m) {
            let g = self.layout.routes[route].in_group;
            let busy = self.backlog[g].len()
                + self
                    .vehicles
                    .iter()
                    .filter(|v| {
                        let r = &self.layout.routes[v.route];
                        r.in_group == g && v.s <= r.stop_s
                    })
                    .count();
            if best.is_none_or(|(b, _)| busy < b) {
                best = Some((busy, route));
            }
        }
        let (_, route) = best.expect("a validated spec has a lane for every movement with traffic");
        let c = &self.classes[class];
        let v0 = (c.speed * (1.0 + spec.speed_sd * self.traffic.normal())).clamp(0.5 * c.speed, 1.5 * c.speed);
        let id = self.records.len() as u64 + 1;
        let r = &self.layout.routes[route];
        self.records.push(VehicleTruth {
            id,
            class_name: c.name.to_string(),
            class_id: c.id,
            movement: MovementKey { from: r.from, to: r.to, movement: r.movement },
            lane_in: r.lane_in,
            lane_out: r.lane_out,
            desired_speed_px_s: v0,
            arrival_s: at,
            spawn_s: f64::NAN,
            despawn_s: None,
            entry: None,
            exit: None,
            queued_in_view_s: 0.0,
        });
        self.backlog[r.in_group].push_back(Pending { id, class, route, v0 });
    }

    /// The head of each lane's backlog enters the road if there is room.
    fn spawn(&mut self, t: f64) {
        for g in 0..GROUPS {
            let Some(&p) = self.backlog[g].front() else {
                continue;
            };
            // The last vehicle in the lane: the one furthest back.
            let last = self
                .vehicles
                .iter()
                .filter(|v| self.layout.routes[v.route].in_group == g)
                .min_by(|a, b| a.s.total_cmp(&b.s));
            let c = &self.classes[p.class];
            let v = match last {
                None => p.v0,
                Some(l) => {
                    let rear = l.s - self.classes[l.class].length / 2.0;
                    if rear < self.spec.min_gap_px {
                        continue;
                    }
                    if rear < 2.0 * p.v0 * self.spec.headway_s {
                        p.v0.min(l.v)
                    } else {
                        p.v0
                    }
                }
            };
            self.backlog[g].pop_front();
            self.records[(p.id - 1) as usize].spawn_s = t;
            self.vehicles.push(Vehicle {
                id: p.id,
                class: p.class,
                route: p.route,
                s: -c.length / 2.0,
                v,
                v0: p.v0,
                occluded_until: i64::MIN,
                last_off: vec![None; self.lines.len()],
                counted: 0,
            });
        }
    }

    /// Moves every vehicle by one frame.
    fn drive(&mut self, t: f64) {
        let (dt, tau, s0) = (self.dt, self.spec.headway_s, self.spec.min_gap_px);
        let routes = &self.layout.routes;
        let classes = &self.classes;
        let vehicles = &self.vehicles;
        let half = |v: &Vehicle| classes[v.class].length / 2.0;

        // Followers in an inbound lane: until the rear is a lane width past the
        // stop line, where routes from the same lane have diverged.
        self.in_order.clear();
        self.out_order.clear();
        for (i, v) in vehicles.iter().enumerate() {
            let r = &routes[v.route];
            if v.s - half(v) < r.stop_s + self.spec.lane_width_px {
                self.in_order.push((r.in_group, -v.s, i));
            }
            // Past the stop line: ordered in its outbound lane by the distance
            // of its front to the start of that lane.
            if v.s > r.stop_s - half(v) {
                self.out_order.push((r.out_group, r.merge_s - (v.s + half(v)), i));
            }
        }
        let by_key = |a: &(usize, f64, usize), b: &(usize, f64, usize)| {
            a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2))
        };
        self.in_order.sort_by(by_key);
        self.out_order.sort_by(by_key);
        self.leader_in.clear();
        self.leader_in.resize(vehicles.len(), None);
        for w in self.in_order.windows(2) {
            if w[0].0 == w[1].0 {
                self.leader_in[w[1].2] = Some(w[0].2);
            }
        }

        self.new_s.clear();
        for (i, v) in vehicles.iter().enumerate() {
            let c = &classes[v.class];
            let r = &routes[v.route];
            let h = half(v);
            let mut speed = (v.v + c.accel * dt).min(v.v0);
            let mut limit = f64::INFINITY;
            // A limit on the centre's position, behind an obstacle moving at `v_l`.
            let mut constrain = |lim: f64, v_l: f64| {
                let gap = lim - v.s;
                let safe = v_l + (gap - v_l * tau) / ((v.v + v_l) / (2.0 * c.decel) + tau);
                speed = speed.min(safe);
                limit = limit.min(lim);
            };
            if let Some(l) = self.leader_in[i] {
                let lv = &vehicles[l];
                constrain(lv.s - half(lv) - s0 - h, lv.v);
            }
            let own_d = r.merge_s - (v.s + h);
            let key = (r.out_group, own_d);
            let p = self.out_order.partition_point(|e| (e.0, e.1) < key || (e.0 == key.0 && e.1 == key.1 && e.2 < i));
            if p > 0 && self.out_order[p - 1].0 == r.out_group {
                let l = self.out_order[p - 1].2;
                let (lv, lr) = (&vehicles[l], &routes[vehicles[l].route]);
                let lead_d = lr.merge_s - (lv.s + half(lv));
                // Own front may come up to `lead_d + length + s0` before the merge.
                constrain(r.merge_s - (lead_d + 2.0 * half(lv) + s0) - h, lv.v);
            }
            let stop_c = r.stop_s - h;
            let mut red = false;
            if v.s <= stop_c {
                let (state, amber_left) = self.signal.state(r.from, t);
                let gap = stop_c - v.s;
                let must_stop = match state {
                    SignalState::Green => false,
                    SignalState::Red => true,
                    SignalState::Amber => {
                        let can_stop = gap >= v.v * v.v / (2.0 * c.decel);
                        let makes_it = gap < v.v * amber_left;
                        can_stop || !makes_it
                    }
                };
                if must_stop {
                    constrain(stop_c, 0.0);
                }
                red = state == SignalState::Red;
            }
            let mut s = (v.s + speed.max(0.0) * dt).min(limit).max(v.s);
            if limit >= v.s && limit - s < SNAP_PX {
                s = limit;
            }
            if red && v.s <= stop_c && s > stop_c {
                self.red_runs += 1;
            }
            self.new_s.push(s);
        }
        for (v, &s) in self.vehicles.iter_mut().zip(&self.new_s) {
            v.v = (s - v.s) / dt;
            v.s = s;
        }
    }

    /// Observes frame `f`: truth, crossings, queues, and the noisy detections.
    fn observe(&mut self, f: i64) -> SimFrame {
        let t = self.time(f);
        let (w, h) = (self.spec.width, self.spec.height);
        let (wf, hf) = (w as f32, h as f32);
        let whole_second = f == 0 || (t.floor() > self.time(f - 1).floor());
        let noise = &self.noise;
        let rng = &mut self.noise_rng;
        self.stats.frames += 1;
        let dropped = rng.chance(noise.frame_drop_rate);
        if dropped {
            self.stats.frames_dropped += 1;
        }
        let p_occlusion = 1.0 - (-noise.occlusion_rate_per_s * self.dt).exp();
        let mut queued = [0u32; 4];
        let mut queued_in_view = [0u32; 4];
        let mut queued_by_lane = [[0u32; MAX_LANES as usize]; 4];
        let mut objects = Vec::with_capacity(self.vehicles.len());
        let mut found: Vec<(Detection, DetectionSource)> = Vec::with_capacity(self.vehicles.len() + 2);
        let mut visible = 0usize;

        for v in &mut self.vehicles {
            let c = &self.classes[v.class];
            let r = &self.layout.routes[v.route];
            let full = footprint(r, c, v.s);
            let bbox = full.clamp(wf, hf);
            let detectable = bbox.width() >= 1.0
                && bbox.height() >= 1.0
                && f64::from(bbox.area()) >= self.spec.min_visible_fraction * f64::from(full.area());
            let is_queued = v.s <= r.stop_s - c.length / 2.0 && v.v < self.spec.queue_speed_px_s;
            if is_queued {
                queued[r.from.index()] += 1;
                queued_in_view[r.from.index()] += u32::from(detectable);
                queued_by_lane[r.from.index()][r.lane_in as usize] += u32::from(detectable);
            }
            if !detectable {
                continue;
            }
            if is_queued {
                self.records[(v.id - 1) as usize].queued_in_view_s += self.dt;
            }
            // Crossings, by the truth's own geometry, in the aggregator's conventions.
            let anchor = bbox.bottom_center_norm(w, h);
            for (li, line) in self.lines.iter().enumerate() {
                if truth_side(line, anchor) == 0.0 {
                    continue;
                }
                if let Some(dir) = v.last_off[li].and_then(|prev| truth_crossing(line, prev, anchor)) {
                    let bit = 1u64 << (2 * li + dir as usize);
                    if v.counted & bit == 0 {
                        v.counted |= bit;
                        let rec = &mut self.records[(v.id - 1) as usize];
                        let at = CrossingTime { direction: dir, seq: f as u64, time_s: t };
                        if dir == Direction::Forward && self.arm_line[r.from.index()] == Some(li) {
                            rec.entry = Some(at);
                        }
                        if dir == Direction::Backward && self.arm_line[r.to.index()] == Some(li) {
                            rec.exit = Some(at);
                        }
                        self.crossings.push(TruthCrossing {
                            vehicle_id: v.id,
                            class_name: c.name.to_string(),
                            line: line.name.clone(),
                            direction: dir,
                            direction_label: line.label(dir).to_owned(),
                            seq: f as u64,
                            time_s: t,
                        });
                    }
                }
                v.last_off[li] = Some(anchor);
            }
            objects.push(TrueObject {
                vehicle_id: v.id,
                class_id: c.id,
                class_name: c.name.clone(),
                bbox,
                speed_px_s: v.v,
                movement: MovementKey { from: r.from, to: r.to, movement: r.movement },
                queued: is_queued,
                lane_in: r.lane_in,
            });

            // The detector's view of it.
            if v.occluded_until <= f && rng.chance(p_occlusion) {
                v.occluded_until = f + i64::from(noise.occlusion_frames);
                self.stats.occlusions_started += 1;
            }
            if dropped {
                continue;
            }
            visible += 1;
            self.stats.visible += 1;
            if v.occluded_until > f {
                self.stats.occluded += 1;
                continue;
            }
            if rng.chance(noise.miss_rate) {
                self.stats.missed += 1;
                continue;
            }
            let mut b = bbox;
            if noise.jitter_px > 0.0 {
                let mut e = [b.x1, b.y1, b.x2, b.y2];
                for x in &mut e {
                    *x += (noise.jitter_px * rng.normal()) as f32;
                }
                b = BBox::new(e[0].min(e[2]), e[1].min(e[3]), e[0].max(e[2]), e[1].max(e[3])).clamp(wf, hf);
            }
            let mut class = v.class;
            if self.classes.len() > 1 && rng.chance(noise.class_flip_rate) {
                let other = rng.below(self.classes.len() - 1);
                class = if other >= v.class { other + 1 } else { other };
                self.stats.class_flips += 1;
            }
            let cl = &self.classes[class];
            let score = rng.uniform(0.5, 0.95) as f32;
            self.stats.detected += 1;
            found.push((
                Detection { class_id: cl.id, class_name: cl.name.clone(), score, bbox: b },
                DetectionSource::Vehicle(v.id),
            ));
        }

        if whole_second {
            for a in Approach::ALL {
                let backlog = (0..MAX_LANES).map(|k| self.backlog[in_group(a, k)].len() as u32).sum();
                self.queues.push(QueueSample {
                    time_s: t,
                    approach: a,
                    queued: queued[a.index()],
                    queued_in_view: queued_in_view[a.index()],
                    queued_in_view_by_lane: queued_by_lane[a.index()][..self.spec.approaches.get(a).lanes_in as usize]
                        .to_vec(),
                    backlog,
                });
            }
        }

        let detections = (!dropped).then(|| {
            let lambda = noise.false_positive_rate * visible as f64 + noise.false_positives_per_frame;
            let n = if lambda > 0.0 { rng.poisson(lambda) } else { 0 };
            for _ in 0..n {
                let c = &self.classes[rng.below(self.classes.len())];
                let scale = rng.uniform(0.7, 1.3);
                let (mut bw, mut bh) = (c.width * scale, c.length * scale);
                if rng.chance(0.5) {
                    std::mem::swap(&mut bw, &mut bh);
                }
                let (bw, bh) = (bw.min(f64::from(w)), bh.min(f64::from(h)));
                let x1 = rng.uniform(0.0, f64::from(w) - bw);
                let y1 = rng.uniform(0.0, f64::from(h) - bh);
                let bbox = BBox::new(x1 as f32, y1 as f32, (x1 + bw) as f32, (y1 + bh) as f32);
                let score = rng.uniform(0.25, 0.5) as f32;
                found.push((
                    Detection { class_id: c.id, class_name: c.name.clone(), score, bbox },
                    DetectionSource::FalsePositive,
                ));
                self.stats.false_positives += 1;
            }
            // Highest score first, as a detector's NMS emits them.
            found.sort_by(|a, b| b.0.score.total_cmp(&a.0.score));
            FrameDetections {
                camera_id: self.camera_id.clone(),
                intersection_id: self.intersection_id.clone(),
                seq: f as u64,
                pts_ns: (f as f64 * 1e9 / self.spec.fps).round() as u64,
                capture_time_ms: self.spec.epoch_ms + (f as f64 * 1000.0 / self.spec.fps).round() as i64,
                width: w,
                height: h,
                detections: Vec::with_capacity(found.len()),
            }
        });
        let mut sources = Vec::with_capacity(found.len());
        let detections = detections.map(|mut fd| {
            for (d, s) in found {
                fd.detections.push(d);
                sources.push(s);
            }
            fd
        });
        SimFrame {
            seq: f as u64,
            time_s: t,
            objects,
            signals: Approach::ALL.map(|a| self.signal.state(a, t).0),
            detections,
            sources,
        }
    }

    /// The ground truth of the frames yielded so far.
    pub fn ground_truth(&self) -> GroundTruth {
        let frames = self.frame.max(0) as u64;
        let line_index = |name: &str| self.lines.iter().position(|l| l.name == name).unwrap_or(usize::MAX);
        let mut counts: BTreeMap<(usize, Direction, &str), (&str, u64)> = BTreeMap::new();
        for c in &self.crossings {
            counts.entry((line_index(&c.line), c.direction, &c.class_name)).or_insert((&c.direction_label, 0)).1 += 1;
        }
        let mut turning: BTreeMap<(MovementKey, &str), u64> = BTreeMap::new();
        for v in &self.records {
            if v.entry.is_some() && v.exit.is_some() {
                *turning.entry((v.movement, &v.class_name)).or_insert(0) += 1;
            }
        }
        GroundTruth {
            intersection_id: self.spec.intersection_id.clone(),
            camera_id: self.spec.camera_id.clone(),
            frames,
            duration_s: frames as f64 / self.spec.fps,
            lines: self.lines.clone(),
            vehicles: self
                .records
                .iter()
                .filter(|v| !v.spawn_s.is_nan() && v.despawn_s.is_none_or(|d| d >= 0.0))
                .cloned()
                .collect(),
            crossings: self.crossings.clone(),
            counts: counts
                .into_iter()
                .map(|((li, direction, class), (label, count))| LineCount {
                    line: self.lines[li].name.clone(),
                    direction,
                    direction_label: label.to_owned(),
                    class_name: class.to_owned(),
                    count,
                })
                .collect(),
            turning_movements: turning
                .into_iter()
                .map(|((movement, class), count)| TurningCount { movement, class_name: class.to_owned(), count })
                .collect(),
            queues: self.queues.clone(),
        }
    }

    /// Runs to the end; returns the detections of every frame not dropped, and the ground truth.
    pub fn run_to_end(mut self) -> (Vec<FrameDetections>, GroundTruth) {
        let mut out = Vec::with_capacity(self.frames_left() as usize);
        while let Some(frame) = self.step() {
            out.extend(frame.detections);
        }
        (out, self.ground_truth())
    }
}

/// The axis-aligned bounds of a vehicle of class `c` centred at arc length `s` of route `r`.
fn footprint(r: &crate::layout::Route, c: &ClassRt, s: f64) -> BBox {
    let (p, d) = r.path.at(s);
    let bw = c.length * d[0].abs() + c.width * d[1].abs();
    let bh = c.length * d[1].abs() + c.width * d[0].abs();
    BBox::from_cxcywh(p[0] as f32, p[1] as f32, bw as f32, bh as f32)
}

impl Iterator for Simulation {
    type Item = SimFrame;

    fn next(&mut self) -> Option<SimFrame> {
        self.step()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{DrivingSide, SignalPlan};

    fn specs() -> Vec<IntersectionSpec> {
        let base = IntersectionSpec { duration_s: 900.0, ..IntersectionSpec::default() };
        let mut two_phase = IntersectionSpec { signal: SignalPlan::two_phase(25.0, 25.0), ..base.clone() };
        two_phase.approaches.north.lanes_in = 3;
        two_phase.approaches.east.lanes_out = 1;
        let left = IntersectionSpec { driving_side: DrivingSide::Left, ..base.clone() };
        vec![base, two_phase, left, crate::scenario::stop_and_go()]
    }

    /// Runs `spec` and calls `check` on the state after every frame.
    fn each_frame(spec: IntersectionSpec, mut check: impl FnMut(&Simulation, &SimFrame)) -> Simulation {
        let mut sim = Simulation::new(spec, NoiseSpec::none(), 3).unwrap();
        while let Some(frame) = sim.step() {
            check(&sim, &frame);
        }
        sim
    }

    #[test]
    fn vehicles_in_the_same_lane_never_overlap() {
        for spec in specs() {
            let mut pairs = 0u64;
            each_frame(spec, |sim, _| {
                let vs = &sim.vehicles;
                for (i, a) in vs.iter().enumerate() {
                    for b in &vs[i + 1..] {
                        let (ra, rb) = (&sim.layout.routes[a.route], &sim.layout.routes[b.route]);
                        let (ca, cb) = (&sim.classes[a.class], &sim.classes[b.class]);
                        let before =
                            |v: &Vehicle, r: &crate::layout::Route, c: &ClassRt| v.s + c.length / 2.0 <= r.stop_s;
                        let after =
                            |v: &Vehicle, r: &crate::layout::Route, c: &ClassRt| v.s - c.length / 2.0 >= r.merge_s;
                        let same_in = ra.in_group == rb.in_group && before(a, ra, ca) && before(b, rb, cb);
                        let same_out = ra.out_group == rb.out_group && after(a, ra, ca) && after(b, rb, cb);
                        if same_in || same_out {
                            pairs += 1;
                            let (ba, bb) = (footprint(ra, ca, a.s), footprint(rb, cb, b.s));
                            let iw = ba.x2.min(bb.x2) - ba.x1.max(bb.x1);
                            let ih = ba.y2.min(bb.y2) - ba.y1.max(bb.y1);
                            assert!(iw <= 1e-3 || ih <= 1e-3, "vehicles {} and {} overlap: {ba:?} {bb:?}", a.id, b.id);
                        }
                    }
                }
            });
            assert!(pairs > 10_000, "the check saw too few pairs: {pairs}");
        }
    }

    #[test]
    fn nobody_crosses_a_stop_line_on_red_and_queues_form() {
        for spec in specs() {
            let mut fronts: std::collections::HashMap<u64, f64> = std::collections::HashMap::new();
            let (mut crossings, mut stopped_at_red) = (0u64, 0u64);
            let sim = each_frame(spec, |sim, frame| {
                for v in &sim.vehicles {
                    let r = &sim.layout.routes[v.route];
                    let front = v.s + sim.classes[v.class].length / 2.0;
                    // `drive` moves vehicles into a frame under that frame's signal.
                    let state = frame.signals[r.from.index()];
                    if let Some(&before) = fronts.get(&v.id) {
                        if before <= r.stop_s && front > r.stop_s {
                            crossings += 1;
                            assert_ne!(state, SignalState::Red, "vehicle {} ran the red at frame {}", v.id, frame.seq);
                        }
                    }
                    if state == SignalState::Red && v.v == 0.0 && front <= r.stop_s {
                        stopped_at_red += 1;
                    }
                    fronts.insert(v.id, front);
                }
            });
            assert_eq!(sim.red_runs, 0);
            assert!(crossings > 50, "{crossings}");
            assert!(stopped_at_red > 1000, "{stopped_at_red}");
        }
    }
}
