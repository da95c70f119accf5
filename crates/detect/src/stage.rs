//! The detect stage: frames in, detections out, with preprocessing overlapped
//! with inference, frames batched across cameras, and on a CPU several runs of
//! the model at once.
//!
//! ```text
//!            ┌─ worker ─┐                    ┌─ run 0 ─┐
//! frames ──► ├─ worker ─┤ ──(reorder)──► batches ─┤─ run 1 ─┤ ──(reorder)──► detections
//!  (index)   └─ …      ─┘   by index    in order  └─ …     ─┘    by index
//! ```
//! Workers decode and convert frames into tensors while the model runs on
//! earlier ones. Each run of the model (a [`Detector`] of its own, see
//! [`Detector::load_streams`]) takes the next batch in input order when it is
//! free (batches ≤ max_batch, filled for at most max_wait); outputs are put
//! back in input order, so each camera's frames stay in order. Tensor buffers
//! circulate through a fixed pool, which bounds memory and applies
//! back-pressure to the input.

use std::collections::BTreeMap;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use streetscope_contracts::{CaptureClock, Frame, FrameDetections, Letterbox};
use streetscope_telemetry::{metrics, spans, StageMeter};
use streetscope_transport::{Publish, Subscribe, TransportError};

use crate::detector::{frame_detections, InputBuf, Preprocessor};
use crate::{DetectError, Detector};

/// How the stage batches and overlaps work.
#[derive(Debug, Clone)]
pub struct StageOptions {
    /// Largest batch (1 for models with a fixed batch of one).
    pub max_batch: usize,
    /// Longest wait for a batch to fill.
    pub max_wait: Duration,
    /// Preprocessing threads.
    pub workers: usize,
    /// Skip frames older than this (by capture time) instead of processing them late.
    pub shed_stale_after: Option<Duration>,
}

impl StageOptions {
    /// The options a `[detector]` section asks for.
    pub fn from_config(d: &streetscope_contracts::config::DetectorConfig) -> Self {
        Self {
            max_batch: d.max_batch as usize,
            max_wait: Duration::from_millis(d.max_wait_ms),
            workers: d.preprocess_threads as usize,
            shed_stale_after: (d.shed_stale_ms > 0).then(|| Duration::from_millis(d.shed_stale_ms)),
        }
    }
}

impl Default for StageOptions {
    fn default() -> Self {
        Self { max_batch: 1, max_wait: Duration::from_millis(5), workers: 1, shed_stale_after: None }
    }
}

/// Counts of what the stage skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectReport {
    /// Frames that failed to decode or to run, by reason (logged as they happen).
    pub failed: u64,
    /// Frames skipped as stale under overload.
    pub shed_stale: u64,
    /// Model runs (each of up to `max_batch` frames).
    pub runs: u64,
}

/// Runs a [`Detector`] (or several runs of one model at once) over a stream of
/// frames.
#[derive(Debug)]
pub struct DetectStage {
    detectors: Vec<Detector>,
    meter: StageMeter,
    opts: StageOptions,
}

/// What became of a frame, in input order.
enum Outcome {
    Detected(FrameDetections),
    /// Failed or shed: a placeholder with the frame's identity and no
    /// detections, never delivered (`Publish::nothing_for`).
    Dropped(FrameDetections),
}

struct Prepared {
    index: u64,
    frame: Frame,
    received: Instant,
    tensor: Result<InputBuf, DetectError>,
}

impl DetectStage {
    pub fn new(detector: Detector, meter: StageMeter) -> Self {
        Self::with_options(detector, meter, StageOptions::default())
    }

    pub fn with_options(detector: Detector, meter: StageMeter, opts: StageOptions) -> Self {
        Self::with_streams(vec![detector], meter, opts)
    }

    /// Several runs of one model at once ([`Detector::load_streams`]), each
    /// taking the next batch when it is free.
    ///
    /// # Panics
    /// If `detectors` is empty.
    pub fn with_streams(detectors: Vec<Detector>, meter: StageMeter, mut opts: StageOptions) -> Self {
        let detector = detectors.first().expect("at least one detector");
        if opts.max_batch > 1 && !detector.dynamic_batch() {
            tracing::warn!(
                "detector.max_batch = {} but the model {} has a fixed batch of 1: running one frame at a time \
                 (set-up's and the images' models/yolo11n_det_u8_batch.onnx is the default model with a dynamic batch)",
                opts.max_batch,
                detector.info().path
            );
            opts.max_batch = 1;
        }
        opts.max_batch = opts.max_batch.max(1);
        opts.workers = opts.workers.max(1);
        Self { detectors, meter, opts }
    }

    /// Runs until the input ends, then gives back the detectors. A frame that
    /// fails is logged with its camera and sequence number, counted, and
    /// skipped: one bad frame never stops the stage. Fails only when the output
    /// is closed.
    pub async fn run(
        self,
        mut input: impl Subscribe<Frame>,
        output: impl Publish<FrameDetections>,
    ) -> Result<(Vec<Detector>, DetectReport), TransportError> {
        let DetectStage { detectors, meter, opts } = self;
        let pre = detectors[0].preprocessor();
        let runs = detectors.len();
        // Enough buffers for the workers, a batch being filled, one running in
        // each run of the model, and one more.
        let pool_size = opts.workers + (runs + 1) * opts.max_batch + 1;
        let (free_tx, free_rx) = async_channel::bounded::<InputBuf>(pool_size);
        for _ in 0..pool_size {
            free_tx.try_send(pre.buffer()).expect("pool sized for it");
        }
        let (jobs_tx, jobs_rx) = async_channel::bounded::<(u64, Frame, Instant)>(opts.workers * 2);
        // Thread to thread: a run waits for a batch to fill with a timeout,
        // which a std channel gives without polling.
        let (prepared_tx, prepared_rx) = std::sync::mpsc::sync_channel::<Prepared>(pool_size);
        let (results_tx, results_rx) = async_channel::bounded::<(u64, Outcome)>(64);

        let workers: Vec<_> = (0..opts.workers)
            .map(|i| {
                let (jobs, free, prepared) = (jobs_rx.clone(), free_rx.clone(), prepared_tx.clone());
                std::thread::Builder::new()
                    .name(format!("detect-pre-{i}"))
                    .spawn(move || preprocess_worker(pre, jobs, free, prepared))
                    .expect("spawning a thread")
            })
            .collect();
        // Only the workers hold these now: when they stop, the feed and the
        // runs see their channels close.
        drop((prepared_tx, jobs_rx, free_rx));
        let batcher = std::sync::Arc::new(Mutex::new(Batcher::new(prepared_rx)));
        let busy = std::sync::Arc::new(BusyClock::new(meter.clone()));
        let infer: Vec<_> = detectors
            .into_iter()
            .enumerate()
            .map(|(i, detector)| {
                let (opts, meter, batcher, busy) = (opts.clone(), meter.clone(), batcher.clone(), busy.clone());
                let (free, results) = (free_tx.clone(), results_tx.clone());
                std::thread::Builder::new()
                    .name(if runs == 1 { "detect-infer".into() } else { format!("detect-infer-{i}") })
                    .spawn(move || inference_loop(detector, &meter, &opts, &batcher, &busy, &free, &results))
                    .expect("spawning a thread")
            })
            .collect();
        drop((free_tx, results_tx, batcher, busy));

        // Feed the workers and forward results in input order, concurrently.
        let feed = async move {
            let mut index = 0u64;
            while let Some(frame) = input.next().await {
                if jobs_tx.send((index, frame, Instant::now())).await.is_err() {
                    break;
                }
                index += 1;
            }
        };
        let forward = async {
            // Dropped when forwarding fails: the runs then stop at their next
            // result, the workers and the feed after them.
            let results_rx = results_rx;
            // Runs finish out of order; every frame has exactly one outcome.
            let mut waiting: BTreeMap<u64, Outcome> = BTreeMap::new();
            let mut next = 0u64;
            while let Ok((index, outcome)) = results_rx.recv().await {
                waiting.insert(index, outcome);
                while let Some(outcome) = waiting.remove(&next) {
                    next += 1;
                    match outcome {
                        Outcome::Detected(d) => {
                            output.publish(d).await?;
                        }
                        // In order with the outputs, so the connection settles
                        // exactly this frame's input.
                        Outcome::Dropped(placeholder) => output.nothing_for(placeholder).await?,
                    }
                }
            }
            Ok::<(), TransportError>(())
        };
        let (_, forwarded) = tokio::join!(feed, forward);
        for w in workers {
            w.join().expect("a preprocessing thread panicked");
        }
        let mut detectors = Vec::with_capacity(runs);
        let mut report = DetectReport::default();
        for handle in infer {
            let (detector, r) = handle.join().expect("an inference thread panicked");
            detectors.push(detector);
            report.failed += r.failed;
            report.shed_stale += r.shed_stale;
            report.runs += r.runs;
        }
        forwarded?;
        Ok((detectors, report))
    }
}

fn preprocess_worker(
    pre: Preprocessor,
    jobs: async_channel::Receiver<(u64, Frame, Instant)>,
    free: async_channel::Receiver<InputBuf>,
    prepared: std::sync::mpsc::SyncSender<Prepared>,
) {
    // Take a buffer before a job: the worker holding the oldest job then always
    // has a buffer, so later jobs finishing first can never starve it.
    while let Ok(mut buf) = free.recv_blocking() {
        let Ok((index, frame, received)) = jobs.recv_blocking() else { return };
        let tensor = pre.prepare(&frame, &mut buf).map(|()| buf);
        if prepared.send(Prepared { index, frame, received, tensor }).is_err() {
            return;
        }
    }
}

/// The prepared frames, handed out as batches in input order (workers finish
/// out of order). The runs of the model take turns at it.
struct Batcher {
    prepared: std::sync::mpsc::Receiver<Prepared>,
    pending: BTreeMap<u64, Prepared>,
    next: u64,
    closed: bool,
}

impl Batcher {
    fn new(prepared: std::sync::mpsc::Receiver<Prepared>) -> Self {
        Self { prepared, pending: BTreeMap::new(), next: 0, closed: false }
    }

    /// The next batch: the next frame in order, then more while they arrive
    /// within `max_wait`. Empty once the input has ended and all is handed out.
    fn next_batch(&mut self, max_batch: usize, max_wait: Duration) -> Vec<Prepared> {
        let mut batch: Vec<Prepared> = Vec::with_capacity(max_batch);
        let mut deadline: Option<Instant> = None;
        while batch.len() < max_batch {
            if let Some(p) = self.pending.remove(&self.next) {
                self.next += 1;
                batch.push(p);
                deadline.get_or_insert_with(|| Instant::now() + max_wait);
                continue;
            }
            if self.closed {
                break;
            }
            let got = match deadline {
                None => self.prepared.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    None => break,
                    Some(left) => self.prepared.recv_timeout(left),
                },
            };
            match got {
                Ok(p) => {
                    self.pending.insert(p.index, p);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
        batch
    }
}

/// The stage's busy time for its meter: the time at least one run of the model
/// is running (with several runs at once, their sum would count it twice).
struct BusyClock {
    meter: StageMeter,
    state: Mutex<(usize, Instant)>,
}

impl BusyClock {
    fn new(meter: StageMeter) -> Self {
        Self { meter, state: Mutex::new((0, Instant::now())) }
    }

    fn start(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 == 0 {
            s.1 = Instant::now();
        }
        s.0 += 1;
    }

    fn stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = s.0.saturating_sub(1);
        if s.0 == 0 {
            self.meter.add_busy(s.1.elapsed().as_nanos() as u64);
        }
    }
}

/// One run of the model: takes the next batch when free, runs it, and sends
/// each frame's outcome with its index.
fn inference_loop(
    mut detector: Detector,
    meter: &StageMeter,
    opts: &StageOptions,
    batcher: &Mutex<Batcher>,
    busy: &BusyClock,
    free: &async_channel::Sender<InputBuf>,
    results: &async_channel::Sender<(u64, Outcome)>,
) -> (Detector, DetectReport) {
    // A dropped frame is told downstream in its place (see `Outcome::Dropped`).
    let dropped = |index: u64, frame: &Frame| {
        results.send_blocking((index, Outcome::Dropped(frame_detections(frame, Vec::new())))).is_ok()
    };
    let mut report = DetectReport::default();
    let mut batch_input = detector.preprocessor().buffer_for(opts.max_batch);
    loop {
        let batch = batcher.lock().unwrap_or_else(|e| e.into_inner()).next_batch(opts.max_batch, opts.max_wait);
        if batch.is_empty() {
            break;
        }

        // Drop what failed or went stale; run the rest.
        let mut run: Vec<(u64, Frame, InputBuf)> = Vec::with_capacity(batch.len());
        for p in batch {
            match p.tensor {
                Err(e) => {
                    report.failed += 1;
                    meter.error();
                    metrics::frame_dropped(&p.frame.camera_id, "failed");
                    tracing::warn!(camera = %p.frame.camera_id, seq = p.frame.seq, "skipping frame: {e}");
                    if !dropped(p.index, &p.frame) {
                        return (detector, report);
                    }
                }
                Ok(buf) if opts.shed_stale_after.is_some_and(|max| age(&p.frame, p.received) > max) => {
                    report.shed_stale += 1;
                    metrics::frame_dropped(&p.frame.camera_id, "stale");
                    tracing::debug!(camera = %p.frame.camera_id, seq = p.frame.seq, "shed: stale");
                    let _ = free.try_send(buf);
                    if !dropped(p.index, &p.frame) {
                        return (detector, report);
                    }
                }
                Ok(buf) => run.push((p.index, p.frame, buf)),
            }
        }
        if run.is_empty() {
            continue;
        }
        busy.start();
        let started = Instant::now();
        let letterboxes: Vec<Letterbox> = run.iter().map(|(_, frame, _)| frame.letterbox).collect();
        // A single frame runs from its own buffer; only real batches are copied
        // into one contiguous tensor.
        let result = if let [(_, _, buf)] = run.as_slice() {
            detector.infer(buf.as_input(), &letterboxes)
        } else {
            batch_input.clear();
            for (_, _, buf) in &run {
                batch_input.extend_from(buf);
            }
            detector.infer(batch_input.as_input(), &letterboxes)
        };
        let took = started.elapsed();
        busy.stop();
        report.runs += 1;
        metrics::observe_inference(detector.provider().name(), run.len(), took.as_secs_f64());
        spans::inference(run.iter().map(|(_, f, _)| (&*f.camera_id, f.seq)), detector.provider().name(), took);
        match result {
            Ok(dets) => {
                for ((index, frame, buf), d) in run.into_iter().zip(dets) {
                    let _ = free.try_send(buf);
                    meter.item();
                    if results.send_blocking((index, Outcome::Detected(frame_detections(&frame, d)))).is_err() {
                        return (detector, report);
                    }
                }
            }
            Err(e) => {
                for (index, frame, buf) in run {
                    let _ = free.try_send(buf);
                    report.failed += 1;
                    meter.error();
                    metrics::frame_dropped(&frame.camera_id, "failed");
                    tracing::warn!(camera = %frame.camera_id, seq = frame.seq, "skipping frame: {e}");
                    if !dropped(index, &frame) {
                        return (detector, report);
                    }
                }
            }
        }
    }
    (detector, report)
}

/// How old a frame is: since its capture for live sources, since the stage
/// received it for files (whose capture time is the run's start plus the
/// position in the file, which says nothing about staleness).
fn age(frame: &Frame, received: Instant) -> Duration {
    match frame.clock {
        CaptureClock::FileStart => received.elapsed(),
        CaptureClock::Arrival | CaptureClock::CameraNtp => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            Duration::from_millis(now_ms.saturating_sub(frame.capture_time_ms).max(0) as u64)
        }
    }
}
