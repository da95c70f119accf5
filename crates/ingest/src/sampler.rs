//! Sampling to a target frame rate by timestamp, not every Nth frame: a camera
//! whose frame rate varies, or that drops frames, is still sampled evenly in time.

/// Decides which frames to keep so that kept frames are at least one period apart
/// on average, aligned to a grid of `period` from the first kept frame.
#[derive(Debug, Clone)]
pub struct Sampler {
    period_ns: u64,
    next_due_ns: Option<u64>,
}

impl Sampler {
    /// A sampler for `fps` frames per second.
    pub fn new(fps: f64) -> Self {
        Self { period_ns: (1e9 / fps).round() as u64, next_due_ns: None }
    }

    /// Whether the frame at `pts_ns` is kept. Frames are kept at the first
    /// timestamp at or after each grid point; half a frame of tolerance keeps
    /// rounding in container timestamps from skipping a grid point.
    pub fn keep(&mut self, pts_ns: u64) -> bool {
        match self.next_due_ns {
            Some(due) if pts_ns + self.period_ns / 20 < due => {
                // A timestamp jump backwards (stream restart): re-align.
                if due.saturating_sub(pts_ns) > self.period_ns * 4 {
                    self.next_due_ns = Some(pts_ns + self.period_ns);
                    return true;
                }
                false
            }
            Some(due) => {
                // Skip grid points the stream jumped over rather than bursting.
                let behind = (pts_ns + self.period_ns / 20 - due) / self.period_ns;
                self.next_due_ns = Some(due + (behind + 1) * self.period_ns);
                true
            }
            None => {
                self.next_due_ns = Some(pts_ns + self.period_ns);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(fps_in: f64, fps_out: f64, secs: f64) -> Vec<u64> {
        let mut s = Sampler::new(fps_out);
        let n = (fps_in * secs) as u64;
        (0..n).map(|i| (i as f64 * 1e9 / fps_in).round() as u64).filter(|&t| s.keep(t)).collect()
    }

    #[test]
    fn samples_25_to_10_evenly() {
        let k = kept(25.0, 10.0, 10.0);
        assert_eq!(k.len(), 100);
        for w in k.windows(2) {
            let gap = w[1] - w[0];
            assert!((80_000_000..=120_000_000).contains(&gap), "gap {gap}");
        }
    }

    #[test]
    fn samples_30_to_5_and_keeps_all_when_slower_than_target() {
        assert_eq!(kept(30.0, 5.0, 10.0).len(), 50);
        assert_eq!(kept(5.0, 10.0, 10.0).len(), 50);
        assert_eq!(kept(25.0, 25.0, 4.0).len(), 100);
    }

    #[test]
    fn a_gap_in_the_stream_does_not_cause_a_burst() {
        let mut s = Sampler::new(10.0);
        assert!(s.keep(0));
        assert!(s.keep(1_000_000_000)); // after a 1 s gap
        assert!(!s.keep(1_040_000_000));
        assert!(s.keep(1_100_000_000));
    }

    #[test]
    fn a_restarted_stream_is_realigned() {
        let mut s = Sampler::new(10.0);
        for i in 0..50 {
            s.keep(i * 40_000_000);
        }
        assert!(s.keep(0));
        assert!(!s.keep(40_000_000));
        assert!(s.keep(120_000_000));
    }
}
