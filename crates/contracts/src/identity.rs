//! A frame's identity: the layout of its per-camera sequence number.
//!
//! The aggregator drops a frame whose sequence number is not above the last one
//! it saw for the camera (at-least-once transport, effectively-once results), so
//! the numbers of a live camera must keep rising through everything that
//! restarts its ingest: a crashed pod, a rolling update, the camera moving to
//! another pod, a registry edit. No pod knows the numbers an earlier pod used,
//! so a number is made of two parts:
//!
//! ```text
//!   seq = run × 2^21 + index          (always below 2^53: exact in JSON for JavaScript readers too)
//! ```
//!
//! - **run**: the Unix second at which this run of the camera started on its
//!   ingest pod ([`RunClock::next_run`]: never at or below the run before it in
//!   the same process). A new pod starts a new run seconds after the old one
//!   stopped, so its numbers are above every number the old pod produced, as
//!   long as the pods' clocks disagree by less than the old run lasted — NTP
//!   keeps nodes within milliseconds, and a run lasts at least the seconds it
//!   takes a pod to start.
//! - **index**: the frame's place in the run, from 0; reconnections inside a
//!   run continue it. After 2^21 frames (4.8 days at 5 frames/s, 23 hours at 25)
//!   the run rolls over to the next run number with no frame lost.
//!
//! Recordings (`frame_ids = "media"`) keep run 0 and number frames by their
//! sampling slot in the media, so that a replay of the same recording yields
//! the same numbers and is dropped downstream as duplicates.
//!
//! The aggregator tells a gap inside a run (missing indexes: frames dropped
//! under back-pressure) from a change of run (the camera's ingest restarted:
//! the missing frames are estimated from the capture times) with
//! [`run_of`] and [`index_of`].

/// Bits of the index inside a run.
pub const INDEX_BITS: u32 = 21;
/// Frames in one run before it rolls over.
pub const RUN_LEN: u64 = 1 << INDEX_BITS;
/// The largest run number whose sequence numbers stay below 2^53.
pub const MAX_RUN: u64 = (1 << (53 - INDEX_BITS)) - 1;

/// The first run that is a Unix second (2001-09-09): runs below it are media
/// numbering (a recording's sampling slots, past 2^21 of them).
pub const FIRST_LIVE_RUN: u64 = 1_000_000_000;
/// How far ahead of a stage's clock a live run may start: the pods' clocks
/// differ (by milliseconds under NTP; minutes is a broken node), and
/// [`RunClock`] moves a run past the clock when a camera restarts several
/// times in one second.
pub const MAX_RUN_AHEAD_S: u64 = 600;
/// The fastest a camera's frames are numbered (frames per second), for the
/// bound on a live run's index: no traffic camera is sampled faster. The bound
/// is loose (with the clock's slack, a run's whole index range is allowed
/// after about 2.4 hours): it catches numbers from another epoch, not a
/// forger with produce rights on the detections topic (ACLs do, see
/// docs/security.md).
pub const MAX_FRAME_RATE: u64 = 240;

/// Whether frame `seq` can have been numbered by now (`now_unix_s` on this
/// stage's clock): a live run may not start more than [`MAX_RUN_AHEAD_S`]
/// after now, and its index may not exceed what [`MAX_FRAME_RATE`] allows
/// since the run started. None when it can; otherwise what is wrong, in words.
///
/// The aggregator keeps the highest number per camera and drops everything
/// at or below it, so one number from the future would blank the camera until
/// its numbers caught up with it — days or years of counts. Media numbering
/// (runs below [`FIRST_LIVE_RUN`]) has no relation to the clock and passes.
pub fn from_the_future(seq: u64, now_unix_s: u64) -> Option<String> {
    let (run, index) = (run_of(seq), index_of(seq));
    if run < FIRST_LIVE_RUN {
        return None;
    }
    let horizon = now_unix_s + MAX_RUN_AHEAD_S;
    if run > horizon {
        return Some(format!(
            "sequence number {seq} is of run {run} (a start at Unix second {run}), {} s ahead of this stage's clock \
             ({now_unix_s})",
            run - now_unix_s
        ));
    }
    let most = (horizon - run).saturating_mul(MAX_FRAME_RATE);
    (index > most).then(|| {
        format!(
            "sequence number {seq} is frame {index} of run {run}, more than {MAX_FRAME_RATE} frames/s could number \
             since the run started ({} s before this stage's clock)",
            now_unix_s.saturating_sub(run)
        )
    })
}

/// How far a live frame's capture time may lie before the start of its run, or
/// after this stage's clock: a day. The run is the ingest pod's clock when the
/// camera's run started; the capture time is the camera's own clock (RTCP
/// sender reports) or the pod's. A camera set to local time instead of UTC is
/// hours off and still passes (its records are filed hours off, as before); a
/// clock reset to 1970, or years off, does not.
pub const MAX_CAPTURE_SKEW_S: u64 = 86_400;

/// Whether frame `seq`'s capture time can be true (`now_unix_ms` on this
/// stage's clock): a live run's frame cannot have been captured more than
/// [`MAX_CAPTURE_SKEW_S`] before its run started nor more than that after now.
/// None when it can; otherwise what is wrong, in words.
///
/// One record dated decades back would open windows that far back in an
/// aggregator that has closed none yet (a new pod, a new intersection), and
/// closing windows in order would emit every one since; one dated far ahead
/// would close every window up to it, and the camera's true records would all
/// be late. Media numbering (runs below [`FIRST_LIVE_RUN`]) dates frames by the
/// recording, not a clock, and passes.
pub fn capture_time_off_clock(seq: u64, capture_time_ms: i64, now_unix_ms: i64) -> Option<String> {
    let run = run_of(seq);
    if run < FIRST_LIVE_RUN {
        return None;
    }
    let skew_ms = MAX_CAPTURE_SKEW_S as i64 * 1000;
    let run_ms = run as i64 * 1000;
    if capture_time_ms < run_ms - skew_ms {
        return Some(format!(
            "capture time {capture_time_ms} ms (Unix) is {} s before its run started (Unix second {run}): the \
             camera's clock is wrong (reset to 1970?); it counts again once its clock is right",
            (run_ms - capture_time_ms) / 1000
        ));
    }
    if capture_time_ms > now_unix_ms.saturating_add(skew_ms) {
        return Some(format!(
            "capture time {capture_time_ms} ms (Unix) is {} s ahead of this stage's clock ({now_unix_ms} ms): the \
             camera's clock is wrong; it counts again once its clock is right",
            (capture_time_ms - now_unix_ms) / 1000
        ));
    }
    None
}

/// The sequence number of frame `index` of run `run`.
pub fn compose(run: u64, index: u64) -> u64 {
    debug_assert!(index < RUN_LEN, "index {index} does not fit a run");
    (run << INDEX_BITS) | (index & (RUN_LEN - 1))
}

/// The run a sequence number belongs to (0: media numbering, or a source from
/// before runs existed).
pub fn run_of(seq: u64) -> u64 {
    seq >> INDEX_BITS
}

/// The frame's index inside its run.
pub fn index_of(seq: u64) -> u64 {
    seq & (RUN_LEN - 1)
}

/// Hands out run numbers for one process: the current Unix second, but always
/// above the last run handed out (two starts inside one second, or a clock
/// stepped back, still get rising runs).
#[derive(Debug, Clone, Default)]
pub struct RunClock {
    last: u64,
}

impl RunClock {
    /// The run for a camera starting at `now_unix_s`.
    pub fn next_run(&mut self, now_unix_s: u64) -> u64 {
        let run = now_unix_s.clamp(self.last + 1, MAX_RUN);
        self.last = run;
        run
    }
}

/// Numbers the frames of one camera run by run (`frame_ids = "sequence"`):
/// the supervisor's frame counter in, sequence numbers out. Pure: the caller
/// gives the time when a run starts or rolls over.
#[derive(Debug, Clone)]
pub struct RunNumbering {
    run: u64,
    /// The supervisor's counter value that maps to index 0 of `run`.
    base: u64,
}

impl RunNumbering {
    /// A camera's numbering starting with `run`.
    pub fn new(run: u64) -> Self {
        Self { run, base: 0 }
    }

    /// The sequence number of the camera's `counter`-th frame (0, 1, 2, … as
    /// the supervisor counts them, across reconnections). `new_run` is asked for
    /// a run number when the current run is full.
    pub fn number(&mut self, counter: u64, new_run: impl FnOnce() -> u64) -> u64 {
        let mut index = counter.saturating_sub(self.base);
        if index >= RUN_LEN {
            self.run = new_run().max(self.run + 1);
            self.base = counter;
            index = 0;
        }
        compose(self.run, index)
    }

    /// The run frames are numbered in now.
    pub fn run(&self) -> u64 {
        self.run
    }
}

/// How the aggregator sees a frame against the last one of its camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first frame of the camera.
    First,
    /// The next frame of the same run; `missing` indexes were skipped (frames
    /// dropped before they reached the aggregator).
    Next { missing: u64 },
    /// The first frame of a later run: the camera's ingest started again.
    NewRun,
    /// Not above the last frame: a replay (at-least-once delivery), or a late
    /// frame of an older run.
    Duplicate,
}

/// Classifies frame `seq` of a camera whose last frame was `last`.
pub fn arrival(last: Option<u64>, seq: u64) -> Arrival {
    let Some(last) = last else { return Arrival::First };
    if seq <= last {
        Arrival::Duplicate
    } else if run_of(seq) == run_of(last) {
        Arrival::Next { missing: seq - last - 1 }
    } else {
        Arrival::NewRun
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_exact_in_json_doubles() {
        let top = compose(MAX_RUN, RUN_LEN - 1);
        assert!(top < 1 << 53, "{top}");
        assert_eq!(top as f64 as u64, top);
        // Today's seconds fit comfortably.
        const { assert!(1_800_000_000 < MAX_RUN) };
    }

    #[test]
    fn split_is_the_inverse_of_compose() {
        for (run, index) in [(0, 0), (0, 17), (1_764_900_000, 0), (1_764_900_000, RUN_LEN - 1), (MAX_RUN, 5)] {
            let seq = compose(run, index);
            assert_eq!((run_of(seq), index_of(seq)), (run, index));
        }
    }

    #[test]
    fn runs_rise_even_when_the_clock_does_not() {
        let mut c = RunClock::default();
        assert_eq!(c.next_run(1000), 1000);
        assert_eq!(c.next_run(1000), 1001, "two starts in one second");
        assert_eq!(c.next_run(900), 1002, "clock stepped back");
        assert_eq!(c.next_run(5000), 5000);
    }

    #[test]
    fn a_later_pod_numbers_above_an_earlier_one() {
        // Pod A started the camera at t=1000 s and streamed 20 minutes at 25 frames/s.
        let mut a = RunNumbering::new(RunClock::default().next_run(1000));
        let last_a = a.number(20 * 60 * 25, || unreachable!());
        // Pod B (its own process, its own clock) starts it 8 s after A died.
        let mut b = RunNumbering::new(RunClock::default().next_run(1000 + 20 * 60 + 8));
        let first_b = b.number(0, || unreachable!());
        assert!(first_b > last_a);
        assert_eq!(arrival(Some(last_a), first_b), Arrival::NewRun);
        assert_eq!(arrival(Some(first_b), last_a), Arrival::Duplicate, "a straggler of the old pod");
    }

    #[test]
    fn a_full_run_rolls_over_without_a_gap() {
        let mut n = RunNumbering::new(7);
        let last = n.number(RUN_LEN - 1, || unreachable!());
        assert_eq!((run_of(last), index_of(last)), (7, RUN_LEN - 1));
        let next = n.number(RUN_LEN, || 3); // the clock says 3: still after run 7
        assert_eq!((run_of(next), index_of(next)), (8, 0));
        assert_eq!(arrival(Some(last), next), Arrival::NewRun);
        assert_eq!(n.number(RUN_LEN + 1, || unreachable!()), compose(8, 1));
    }

    #[test]
    fn numbers_from_the_future_are_named() {
        let now = 1_767_225_600;
        // Live numbers of a run started now, an hour ago, or a little ahead (another pod's clock).
        assert_eq!(from_the_future(compose(now, 0), now), None);
        assert_eq!(from_the_future(compose(now - 3600, 3600 * 25), now), None);
        assert_eq!(from_the_future(compose(now + MAX_RUN_AHEAD_S, 0), now), None);
        // A run an hour ahead, a year ahead, the largest there is.
        for run in [now + 3600, now + 365 * 86_400, MAX_RUN] {
            let why = from_the_future(compose(run, 0), now).unwrap();
            assert!(why.contains(&format!("of run {run}")) && why.contains("ahead"), "{why}");
        }
        // A run started 100 s ago cannot have numbered the last index of a run.
        let why = from_the_future(compose(now - 100, RUN_LEN - 1), now).unwrap();
        assert!(why.contains("frames/s"), "{why}");
        // Media numbering knows no clock.
        assert_eq!(from_the_future(123_456_789, now), None);
        assert_eq!(from_the_future(compose(FIRST_LIVE_RUN - 1, RUN_LEN - 1), now), None);
    }

    #[test]
    fn capture_times_off_the_clocks_are_named() {
        let now_s: i64 = 1_767_225_600;
        let (now_ms, run) = (now_s * 1000, now_s as u64 - 3600);
        let seq = compose(run, 42);
        // Captured in its run, or off by a time zone either way: true enough.
        for t in [now_ms - 3_600_000, now_ms, now_ms - 5 * 3_600_000, now_ms + 14 * 3_600_000] {
            assert_eq!(capture_time_off_clock(seq, t, now_ms), None, "{t}");
        }
        // A clock reset to 1970, a digit short (1970 too), years back.
        for t in [5_000, 176_722_560_000, now_ms - 3 * 365 * 86_400_000] {
            let why = capture_time_off_clock(seq, t, now_ms).unwrap();
            assert!(why.contains("before its run started") && why.contains(&format!("{run}")), "{why}");
        }
        // Ahead of this stage's clock by more than a day: a year, a digit too many.
        for t in [now_ms + 365 * 86_400_000, now_ms * 10] {
            let why = capture_time_off_clock(seq, t, now_ms).unwrap();
            assert!(why.contains("ahead of this stage's clock"), "{why}");
        }
        // Media numbering dates frames by the recording.
        assert_eq!(capture_time_off_clock(123_456_789, 5_000, now_ms), None);
    }

    #[test]
    fn arrivals() {
        assert_eq!(arrival(None, compose(5, 3)), Arrival::First);
        assert_eq!(arrival(Some(compose(5, 3)), compose(5, 4)), Arrival::Next { missing: 0 });
        assert_eq!(arrival(Some(compose(5, 3)), compose(5, 9)), Arrival::Next { missing: 5 });
        assert_eq!(arrival(Some(compose(5, 3)), compose(5, 3)), Arrival::Duplicate);
        assert_eq!(arrival(Some(compose(5, 3)), compose(4, 900)), Arrival::Duplicate);
        assert_eq!(arrival(Some(compose(5, 3)), compose(6, 0)), Arrival::NewRun);
        // Media numbering (run 0) behaves as plain sequence numbers.
        assert_eq!(arrival(Some(10), 12), Arrival::Next { missing: 1 });
    }
}
