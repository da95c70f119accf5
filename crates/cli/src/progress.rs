//! The progress of `streetscope run` on stderr.
//!
//! - Every source a recording of known length: a bar of the frames through
//!   the pipeline against the frames the recordings hold at their sample
//!   rates, with the rate and the time left.
//! - Otherwise (live cameras, a length that could not be read): the live
//!   line, the frames each stage has handled, crossings and drops.
//!
//! On a terminal both are drawn in place (indicatif, redrawn every second,
//! cleared around each record printed); anywhere else — a CI log, systemd's
//! journal, a pipe — a plain line every five seconds, so a log is never full
//! of carriage returns.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// What the progress shows, read from the stages' meters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ingested: u64,
    pub detected: u64,
    /// Frames through the whole pipeline: the bar's position.
    pub aggregated: u64,
    pub crossings: u64,
    pub dropped: u64,
}

/// The progress display of one run.
#[derive(Debug)]
pub struct Progress {
    /// On a terminal: the bar or the live line.
    bar: Option<ProgressBar>,
    /// Frames the recordings hold, when every source is one of known length.
    total: Option<u64>,
    started: Instant,
}

/// Seconds between two plain lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Seconds between two redraws on a terminal.
const TTY_EVERY: Duration = Duration::from_secs(1);

impl Progress {
    /// `total`: the frames the sources hold, when known; `tty`: whether stderr
    /// is a terminal.
    pub fn new(total: Option<u64>, tty: bool) -> Self {
        let bar = tty.then(|| {
            let (bar, template) = match total {
                Some(n) => (
                    ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                    "[{elapsed_precise}] {wide_bar} {pos}/{len} frames ({rate} frames/s, {eta} left) {msg}",
                ),
                None => (ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()), "{spinner} {msg}"),
            };
            let style = ProgressStyle::with_template(template).expect("a valid template").with_key(
                "rate",
                |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1}", s.per_sec());
                },
            );
            bar.set_style(style);
            bar
        });
        Self { bar, total, started: Instant::now() }
    }

    /// How often [`Progress::update`] should be called.
    pub fn every(&self) -> Duration {
        if self.bar.is_some() {
            TTY_EVERY
        } else {
            PLAIN_EVERY
        }
    }

    /// Shows `c`: redraws the bar or the live line on a terminal, prints a
    /// plain line elsewhere.
    pub fn update(&self, c: &Counts) {
        let elapsed = self.started.elapsed();
        match &self.bar {
            Some(bar) if self.total.is_some() => {
                bar.set_position(c.aggregated);
                bar.set_message(format!("| crossings {} | dropped {}", c.crossings, c.dropped));
            }
            Some(bar) => {
                bar.set_message(live_line(elapsed, c));
                bar.tick();
            }
            None => eprintln!("{}", plain_line(elapsed, self.total, c)),
        }
    }

    /// Runs `f` (which prints records) with the bar out of the way, then
    /// draws it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar (the summary follows).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The live line: what each stage has handled so far.
pub fn live_line(elapsed: Duration, c: &Counts) -> String {
    format!(
        "[{:>6.1}s] frames ingested {} | detected {} | aggregated {} | crossings {} | dropped {}",
        elapsed.as_secs_f64(),
        c.ingested,
        c.detected,
        c.aggregated,
        c.crossings,
        c.dropped
    )
}

/// A plain line: the live line, with the share done, the rate and the time
/// left when the total is known (the rate over the whole run so far).
pub fn plain_line(elapsed: Duration, total: Option<u64>, c: &Counts) -> String {
    let line = live_line(elapsed, c);
    let Some(total) = total.filter(|&t| t > 0) else { return line };
    let done = c.aggregated.min(total);
    let rate = c.aggregated as f64 / elapsed.as_secs_f64().max(1e-3);
    let left =
        if rate > 0.0 { format!("{:.0} s left", (total - done) as f64 / rate) } else { "time left unknown".into() };
    format!("{line} | {:.0} % of {total} frames, {rate:.1} frames/s, {left}", 100.0 * done as f64 / total as f64)
}

/// The frames a recording of `duration` holds when sampled at `sample_fps`
/// (one every 1/fps s from its start).
pub fn frames_in(duration: Duration, sample_fps: f64) -> u64 {
    let n = (duration.as_secs_f64() * sample_fps).ceil();
    if n.is_finite() && n > 0.0 {
        n as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(aggregated: u64) -> Counts {
        Counts { ingested: aggregated + 4, detected: aggregated + 2, aggregated, crossings: 3, dropped: 0 }
    }

    #[test]
    fn plain_lines_say_how_far_how_fast_and_how_long() {
        let line = plain_line(Duration::from_secs(10), Some(400), &counts(100));
        assert_eq!(
            line,
            "[  10.0s] frames ingested 104 | detected 102 | aggregated 100 | crossings 3 | dropped 0 \
             | 25 % of 400 frames, 10.0 frames/s, 30 s left"
        );
        // Live sources: no total, the live line alone.
        assert_eq!(
            plain_line(Duration::from_secs(10), None, &counts(100)),
            live_line(Duration::from_secs(10), &counts(100))
        );
        // Nothing through yet; more than expected (a recording longer than its header said).
        assert!(plain_line(Duration::from_secs(1), Some(10), &counts(0))
            .ends_with("0 % of 10 frames, 0.0 frames/s, time left unknown"));
        assert!(plain_line(Duration::from_secs(1), Some(10), &counts(12)).contains("100 % of 10 frames"));
    }

    #[test]
    fn frames_of_a_recording_at_its_sample_rate() {
        assert_eq!(frames_in(Duration::from_secs(6), 10.0), 60);
        assert_eq!(frames_in(Duration::from_millis(6_050), 10.0), 61);
        assert_eq!(frames_in(Duration::ZERO, 10.0), 0);
        assert_eq!(frames_in(Duration::from_secs(1), f64::NAN), 0);
    }

    #[test]
    fn off_a_terminal_nothing_is_drawn_in_place() {
        let p = Progress::new(Some(10), false);
        assert!(p.bar.is_none());
        assert_eq!(p.every(), PLAIN_EVERY);
        assert_eq!(p.suspend(|| 7), 7);
        p.finish();
    }
}
