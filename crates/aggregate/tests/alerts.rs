//! Alerts in simulated scenarios: a queue that stands and then dissolves, a
//! camera that goes silent and comes back, a count that drops.

mod common;

use common::*;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{AlertsConfig, AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::records::{AlertEvent, AlertKind, AlertState, WindowRecord};
use streetscope_contracts::FrameDetections;
use streetscope_simulator::{
    scenario, Approach, DetectionSource, IntersectionSpec, NoiseSpec, PhaseSpec, SignalPlan, SimFrame, Simulation,
};

/// Everything an aggregator emitted, with the capture time of the input that emitted it.
#[derive(Debug, Default)]
struct Out {
    windows: Vec<(i64, WindowRecord)>,
    alerts: Vec<AlertEvent>,
}

fn feed(agg: &mut Aggregator, frames: &[FrameDetections], out: &mut Out) {
    for f in frames {
        agg.process(f).unwrap();
        out.windows.extend(agg.take_windows().into_iter().map(|w| (f.capture_time_ms, w)));
        out.alerts.extend(agg.take_alerts());
    }
}

fn finish(agg: &mut Aggregator, out: &mut Out) {
    agg.finish();
    out.windows.extend(agg.take_windows().into_iter().map(|w| (i64::MAX, w)));
    out.alerts.extend(agg.take_alerts());
}

fn summary(alerts: &[AlertEvent], epoch: i64) -> Vec<(AlertKind, AlertState, String, String, i64)> {
    alerts
        .iter()
        .map(|a| (a.alert, a.state, a.camera_id.clone(), a.subject.clone(), (a.time_ms - epoch) / 1000))
        .collect()
}

const EPOCH: i64 = 1_767_225_600_000;

#[test]
fn a_standing_queue_raises_and_a_dissolving_one_clears() {
    // Stop-and-go on the north approach over its capacity for 300 s (the queue
    // grows out of view), then light traffic with a long green.
    let mut heavy = IntersectionSpec { duration_s: 300.0, ..scenario::stop_and_go() };
    heavy.approaches.north.rate_veh_h = 800.0;
    let mut light = heavy.clone();
    light.approaches.north.rate_veh_h = 60.0;
    light.signal = SignalPlan {
        phases: vec![
            PhaseSpec { green: vec![Approach::North], green_s: 40.0 },
            PhaseSpec { green: vec![Approach::East, Approach::West], green_s: 5.0 },
        ],
        ..heavy.signal.clone()
    };
    let sim = Simulation::new(heavy.clone(), NoiseSpec::typical(), 1).unwrap();
    let mut cam = camera(&sim);
    cam.zones = heavy.queue_zones();
    let (mut frames, truth) = sim.run_to_end();
    let (later, _) = Simulation::new(light, NoiseSpec::typical(), 2).unwrap().run_to_end();
    let n = truth.frames;
    frames.extend(later.into_iter().map(|mut f| {
        f.seq += n;
        f.pts_ns += 300_000_000_000;
        f.capture_time_ms += 300_000;
        f
    }));
    let mut analytics = AnalyticsConfig::default();
    analytics.speed.queue_max_image_speed = 10.0 / 720.0;
    analytics.alerts = AlertsConfig {
        queue_length: 2,
        queue_for_s: 20.0,
        queue_clear_s: 30.0,
        anomaly_window_s: Some(0),
        ..AlertsConfig::default()
    };
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
    let mut out = Out::default();
    feed(&mut agg, &frames, &mut out);
    finish(&mut agg, &mut out);
    let got = summary(&out.alerts, EPOCH);
    eprintln!("{got:?}");
    // Both inbound lanes queue within the first minute and stay raised through the
    // greens; both clear in the light traffic, and nothing else is raised.
    for lane in ["north_0", "north_1"] {
        let of: Vec<_> = got.iter().filter(|a| a.3 == lane).collect();
        assert_eq!(of.len(), 2, "{lane}: {of:?}");
        assert_eq!((of[0].0, of[0].1), (AlertKind::Queue, AlertState::Raised));
        assert!((20..120).contains(&of[0].4), "{lane} raised at {} s", of[0].4);
        assert_eq!(of[1].1, AlertState::Cleared);
        assert!((300..420).contains(&of[1].4), "{lane} cleared at {} s", of[1].4);
    }
    assert_eq!(got.len(), 4, "{got:?}");
    let raised = out.alerts.iter().find(|a| a.state == AlertState::Raised).unwrap();
    assert!(raised.value >= 2.0 && raised.threshold == 2.0 && raised.message.contains("north"), "{raised:?}");
}

/// Two cameras of one intersection, frames merged by capture time.
fn two_cameras(duration_s: f64) -> (Vec<CameraConfig>, Vec<FrameDetections>) {
    let mut cams = Vec::new();
    let mut frames = Vec::new();
    for (id, seed) in [("cam-a", 1), ("cam-b", 2)] {
        let spec = IntersectionSpec { duration_s, camera_id: id.into(), ..scenario::default_four_way() };
        let sim = Simulation::new(spec, NoiseSpec::none(), seed).unwrap();
        cams.push(camera(&sim));
        frames.extend(sim.run_to_end().0);
    }
    frames.sort_by_key(|f| (f.capture_time_ms, f.camera_id.clone()));
    (cams, frames)
}

#[test]
fn a_silent_camera_turns_stale_stops_holding_windows_and_clears_when_back() {
    let (cams, mut frames) = two_cameras(480.0);
    // Camera b delivers nothing from 200 s to 300 s.
    frames.retain(|f| !(&*f.camera_id == "cam-b" && (EPOCH + 200_000..EPOCH + 300_000).contains(&f.capture_time_ms)));
    let mut analytics = AnalyticsConfig { window_lengths_s: vec![60], ..AnalyticsConfig::default() };
    analytics.alerts.camera_stale_s = 30.0;
    analytics.alerts.anomaly_window_s = Some(0);
    let mut agg = Aggregator::with_analytics(&cams, &TrackerConfig::default(), &analytics);
    let mut out = Out::default();
    feed(&mut agg, &frames, &mut out);
    finish(&mut agg, &mut out);
    let got = summary(&out.alerts, EPOCH);
    // Silent from its last frame (199.9 s): stale at 229.9 s, back at 300 s.
    assert_eq!(
        got,
        vec![
            (AlertKind::CameraStale, AlertState::Raised, "cam-b".into(), "cam-b".into(), 229),
            (AlertKind::CameraStale, AlertState::Cleared, "cam-b".into(), "cam-b".into(), 300),
        ]
    );
    assert_eq!(out.alerts[1].value, 100.1);
    for (emitted_at, w) in &out.windows {
        let start_s = (w.window_start_ms - EPOCH) / 1000;
        let b = w.cameras.iter().find(|c| c.camera_id == "cam-b").unwrap();
        let overlaps = start_s + 60 > 199 && start_s < 300;
        assert_eq!(b.stale, overlaps, "window at {start_s} s: {b:?}");
        if overlaps {
            assert!(!w.complete, "window at {start_s} s");
        }
        if start_s == 180 {
            // Closed by camera a's watermark while b was silent, not held until b came back.
            assert!(*emitted_at < EPOCH + 300_000, "window 180 s emitted at {}", (emitted_at - EPOCH) / 1000);
        }
        if start_s < 180 || start_s == 360 {
            assert!(w.complete, "window at {start_s} s: {w:?}");
        }
        if start_s == 300 {
            // Back, with the missing sequence numbers as a gap.
            assert_eq!((b.frames_received, b.frames_dropped), (600, 1000));
        }
    }
    assert_eq!(out.windows.len(), 8);
}

#[test]
fn ticks_turn_a_silent_single_camera_stale_and_close_its_windows() {
    let spec = IntersectionSpec { duration_s: 100.0, ..scenario::default_four_way() };
    let (cam, frames, _) = simulate(spec, NoiseSpec::none(), 3);
    let mut analytics =
        AnalyticsConfig { window_lengths_s: vec![60], allowed_lateness_s: 5.0, ..AnalyticsConfig::default() };
    analytics.alerts.camera_stale_s = 20.0;
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
    let mut out = Out::default();
    feed(&mut agg, &frames, &mut out);
    assert_eq!(out.windows.len(), 1, "window 0-60 s closed by the camera's own frames");
    // The camera's last frame was at 99.9 s. A tick at 110 s: not stale yet.
    agg.tick(EPOCH + 110_000);
    assert!(agg.take_alerts().is_empty() && agg.take_windows().is_empty());
    agg.tick(EPOCH + 125_000);
    let alerts = agg.take_alerts();
    assert_eq!(
        summary(&alerts, EPOCH),
        vec![(AlertKind::CameraStale, AlertState::Raised, cam.id.clone(), cam.id.clone(), 119)]
    );
    // Every camera of the intersection is stale: its windows follow the ticks (less the lateness).
    let w = agg.take_windows();
    assert_eq!(w.iter().map(|w| (w.window_start_ms - EPOCH) / 1000).collect::<Vec<_>>(), vec![60]);
    assert!(w[0].cameras[0].stale && !w[0].complete);
    agg.tick(EPOCH + 184_000);
    assert!(agg.take_windows().is_empty());
    agg.tick(EPOCH + 185_000);
    assert_eq!(agg.take_windows().len(), 1);
    // Ticks in the past change nothing.
    agg.tick(EPOCH + 10_000);
    assert!(agg.take_alerts().is_empty() && agg.take_windows().is_empty());
}

#[test]
fn a_count_that_drops_is_an_anomaly_until_it_recovers() {
    // 100 s windows hold one whole signal cycle each (4 x 25 s), so counts per
    // window vary only with the arrivals.
    let spec = IntersectionSpec { duration_s: 1500.0, warmup_s: 100.0, ..scenario::default_four_way() };
    let mut sim = Simulation::new(spec, NoiseSpec::none(), 17).unwrap();
    let cam = camera(&sim);
    // The detector misses every vehicle of the north approach from 900 s to 1100 s.
    let mut frames = Vec::new();
    while let Some(f) = sim.step() {
        let SimFrame { detections, sources, objects, time_s, .. } = f;
        let Some(mut d) = detections else { continue };
        if (900.0..1100.0).contains(&time_s) {
            let from_north: std::collections::HashSet<u64> =
                objects.iter().filter(|o| o.movement.from == Approach::North).map(|o| o.vehicle_id).collect();
            let keep: Vec<bool> =
                sources.iter().map(|s| !matches!(s, DetectionSource::Vehicle(v) if from_north.contains(v))).collect();
            let mut k = keep.iter();
            d.detections.retain(|_| *k.next().unwrap());
        }
        frames.push(d);
    }
    let mut analytics =
        AnalyticsConfig { window_lengths_s: vec![100], allowed_lateness_s: 10.0, ..AnalyticsConfig::default() };
    analytics.alerts = AlertsConfig { anomaly_baseline_windows: 6, anomaly_min_baseline: 5, ..AlertsConfig::default() };
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
    let mut out = Out::default();
    feed(&mut agg, &frames, &mut out);
    finish(&mut agg, &mut out);
    let all = summary(&out.alerts, EPOCH);
    eprintln!("{all:?}");
    let counts: Vec<(i64, u64)> = out
        .windows
        .iter()
        .map(|(_, w)| {
            let n = w.counts.iter().filter(|c| c.line == "north" && c.direction_label == "in").map(|c| c.count).sum();
            ((w.window_start_ms - EPOCH) / 1000, n)
        })
        .collect();
    eprintln!("north/in per window: {counts:?}");
    let truth = sim.ground_truth();
    let mut true_counts = [0u64; 15];
    for c in truth.crossings.iter().filter(|c| c.line == "north" && c.direction_label == "in") {
        true_counts[(c.time_s / 100.0) as usize] += 1;
    }
    eprintln!("true north/in per window: {true_counts:?}");
    // Outside the drop (and the window after it, where vehicles that reappear
    // standing on the stop line are not seen to cross it), the windows count what
    // really crossed.
    for (start_s, n) in &counts {
        if !(900..1200).contains(start_s) {
            assert_eq!(*n, true_counts[(*start_s / 100) as usize], "north/in in the window at {start_s} s");
        }
    }
    let north_in: Vec<_> = all.iter().filter(|a| a.3 == "north/in").map(|a| (a.1, a.4)).collect();
    // Raised at the end of the first window without north traffic (900-1000 s),
    // cleared at the end of the first one with it again (1100-1200 s). The last
    // window (1400-1500 s) really saw 22 vehicles, twice the median of 11: a surge.
    assert_eq!(north_in, vec![(AlertState::Raised, 1000), (AlertState::Cleared, 1200), (AlertState::Raised, 1500)]);
    let raised = out.alerts.iter().find(|a| a.subject == "north/in").unwrap();
    assert_eq!(
        (raised.alert, raised.value, raised.window_start_ms),
        (AlertKind::CountAnomaly, 0.0, Some(EPOCH + 900_000))
    );
    assert!(raised.threshold >= 5.0, "{raised:?}");
    // Normal traffic raised nothing before the drop.
    assert!(all.iter().all(|a| a.4 >= 1000), "{all:?}");
}

#[test]
fn a_camera_added_while_running_is_watched_and_a_removed_one_is_not() {
    let spec = IntersectionSpec { duration_s: 60.0, ..scenario::default_four_way() };
    let (cam, frames, _) = simulate(spec, NoiseSpec::none(), 3);
    let mut analytics = AnalyticsConfig { window_lengths_s: vec![60], ..AnalyticsConfig::default() };
    analytics.alerts.camera_stale_s = 10.0;
    analytics.alerts.anomaly_window_s = Some(0);
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
    let mut out = Out::default();
    let split = frames.iter().position(|f| f.capture_time_ms >= EPOCH + 20_000).unwrap();
    feed(&mut agg, &frames[..split], &mut out);
    // A camera added at 19.9 s that never sends a frame: stale 10 s later.
    let late = CameraConfig { id: "cam-late".into(), ..cam.clone() };
    agg.upsert_camera(&late);
    feed(&mut agg, &frames[split..], &mut out);
    assert_eq!(
        summary(&out.alerts, EPOCH),
        vec![(AlertKind::CameraStale, AlertState::Raised, "cam-late".into(), "cam-late".into(), 29)]
    );
    // Removed, it raises nothing more; the camera that stays turns stale when the ticks go on.
    agg.remove_camera("cam-late");
    agg.tick(EPOCH + 100_000);
    let alerts = agg.take_alerts();
    assert_eq!(
        summary(&alerts, EPOCH),
        vec![(AlertKind::CameraStale, AlertState::Raised, cam.id.clone(), cam.id.clone(), 69)]
    );
}
