//! How a camera's frames are numbered (`frame_ids` of the camera spec).
//!
//! The aggregator recognises a replayed input by its (camera, sequence number)
//! and drops it, so the numbers decide what a replay is:
//! - `sequence` (live cameras): one after another, continued across
//!   reconnections by the [supervisor](crate::supervisor);
//! - `media` (recordings: files, or recorded footage served over RTSP): the
//!   sampling slot of the frame's position in the media, counted from the first
//!   frame of each run. A source that plays the same recording again from its
//!   start — after a reconnection, or on another ingest pod after a failover —
//!   yields the same numbers for the same frames, and the replay changes
//!   nothing downstream.

/// Numbers frames by media position: slot = ⌊(pts − pts of the run's first
/// frame + period/20) / period⌋, the sampling slot the [sampler](crate::sampler)
/// kept the frame for (it keeps a frame up to a twentieth of a period early, and
/// at most one per slot), so two kept frames never share a number. A timestamp
/// that goes backwards marks a new run (the source started again from its
/// beginning).
#[derive(Debug, Clone)]
pub struct MediaNumbering {
    period_ns: u64,
    first_pts: Option<u64>,
    last_pts: u64,
}

impl MediaNumbering {
    /// For a camera sampled at `sample_fps`.
    pub fn new(sample_fps: f64) -> Self {
        Self { period_ns: ((1e9 / sample_fps).round() as u64).max(1), first_pts: None, last_pts: 0 }
    }

    /// The number of the frame at `pts_ns`.
    pub fn number(&mut self, pts_ns: u64) -> u64 {
        let first = match self.first_pts {
            Some(f) if pts_ns >= self.last_pts => f,
            _ => {
                self.first_pts = Some(pts_ns);
                pts_ns
            }
        };
        self.last_pts = pts_ns;
        (pts_ns - first + self.period_ns / 20) / self.period_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_from_the_start_gets_the_same_numbers() {
        let mut n = MediaNumbering::new(10.0);
        // Sampled at 10 fps from a 25 fps source: 0.0, 0.12, 0.2 (±jitter), 0.32 ...
        let first: Vec<u64> =
            [40_000_000u64, 160_000_000, 240_000_000, 361_000_000, 440_000_000].iter().map(|&p| n.number(p)).collect();
        assert_eq!(first, [0, 1, 2, 3, 4]);
        // The source starts over (a new RTSP session: timestamps restart near zero).
        let again: Vec<u64> = [7_000_000u64, 126_000_000, 207_000_000].iter().map(|&p| n.number(p)).collect();
        assert_eq!(again, [0, 1, 2]);
    }

    #[test]
    fn frames_the_sampler_keeps_never_share_a_number() {
        // A 12 frames/s source sampled at 10: rounding to the nearest slot gave
        // 167 ms and 250 ms, or 250 and 333, the same number.
        for (fps_in, fps_out) in [(12.0, 10.0), (25.0, 10.0), (29.97, 10.0), (30.0, 25.0), (7.0, 5.0), (25.0, 5.0)] {
            let mut sampler = crate::sampler::Sampler::new(fps_out);
            let mut n = MediaNumbering::new(fps_out);
            let numbers: Vec<u64> = (0..2000u64)
                .map(|i| (i as f64 * 1e9 / fps_in).round() as u64)
                .filter(|&t| sampler.keep(t))
                .map(|t| n.number(t))
                .collect();
            assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{fps_in} -> {fps_out}: {numbers:?}");
        }
    }
}
