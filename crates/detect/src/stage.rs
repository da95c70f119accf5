//! The detect stage: frames in, detections out, with preprocessing overlapped
//! with inference and frames batched across cameras.
//!
//! ```text
//!            ┌─ worker ─┐
//! frames ──► ├─ worker ─┤ ──(reorder)──► inference thread ──► detections
//!  (index)   └─ …      ─┘   by index      (batches ≤ max_batch, wait ≤ max_wait)
//! ```
//! Workers decode and convert frames into tensors while the model runs on the
//! previous batch. Output order equals input order, so each camera's frames stay
//! in order. Tensor buffers circulate through a fixed pool, which bounds memory
//! and applies back-pressure to the input.

use std::collections::BTreeMap;
use std::sync::mpsc::RecvTimeoutError;
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

/// Runs a [`Detector`] over a stream of frames.
#[derive(Debug)]
pub struct DetectStage {
    detector: Detector,
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

    pub fn with_options(detector: Detector, meter: StageMeter, mut opts: StageOptions) -> Self {
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
        Self { detector, meter, opts }
    }

    /// Runs until the input ends. A frame that fails is logged with its camera and
    /// sequence number, counted, and skipped: one bad frame never stops the
    /// stage. Fails only when the output is closed.
    pub async fn run(
        self,
        mut input: impl Subscribe<Frame>,
        output: impl Publish<FrameDetections>,
    ) -> Result<(Detector, DetectReport), TransportError> {
        let DetectStage { detector, meter, opts } = self;
        let pre = detector.preprocessor();
        // Enough buffers for the workers, a batch being filled and one running.
        let pool_size = opts.workers + 2 * opts.max_batch + 1;
        let (free_tx, free_rx) = async_channel::bounded::<InputBuf>(pool_size);
        for _ in 0..pool_size {
            free_tx.try_send(pre.buffer()).expect("pool sized for it");
        }
        let (jobs_tx, jobs_rx) = async_channel::bounded::<(u64, Frame, Instant)>(opts.workers * 2);
        // Thread to thread: the inference thread waits for a batch to fill
        // with a timeout, which a std channel gives without polling.
        let (prepared_tx, prepared_rx) = std::sync::mpsc::sync_channel::<Prepared>(pool_size);
        let (results_tx, results_rx) = async_channel::bounded::<Outcome>(64);

        let workers: Vec<_> = (0..opts.workers)
            .map(|i| {
                let (jobs, free, prepared) = (jobs_rx.clone(), free_rx.clone(), prepared_tx.clone());
                std::thread::Builder::new()
                    .name(format!("detect-pre-{i}"))
                    .spawn(move || preprocess_worker(pre, jobs, free, prepared))
                    .expect("spawning a thread")
            })
            .collect();
        drop(prepared_tx);
        let infer = {
            let opts = opts.clone();
            std::thread::Builder::new()
                .name("detect-infer".into())
                .spawn(move || inference_loop(detector, meter, opts, prepared_rx, free_tx, results_tx))
                .expect("spawning a thread")
        };

        // Feed the workers and forward results, concurrently.
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
            while let Ok(outcome) = results_rx.recv().await {
                match outcome {
                    Outcome::Detected(d) => {
                        output.publish(d).await?;
                    }
                    // In order with the outputs, so the connection settles
                    // exactly this frame's input.
                    Outcome::Dropped(placeholder) => output.nothing_for(placeholder).await?,
                }
            }
            Ok::<(), TransportError>(())
        };
        let (_, forwarded) = tokio::join!(feed, forward);
        for w in workers {
            w.join().expect("a preprocessing thread panicked");
        }
        let (detector, report) = infer.join().expect("the inference thread panicked");
        forwarded?;
        Ok((detector, report))
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

fn inference_loop(
    mut detector: Detector,
    meter: StageMeter,
    opts: StageOptions,
    prepared: std::sync::mpsc::Receiver<Prepared>,
    free: async_channel::Sender<InputBuf>,
    results: async_channel::Sender<Outcome>,
) -> (Detector, DetectReport) {
    // A dropped frame is told downstream in its place (see `Outcome::Dropped`).
    let dropped = |frame: &Frame| results.send_blocking(Outcome::Dropped(frame_detections(frame, Vec::new()))).is_ok();
    let mut report = DetectReport::default();
    // Workers finish out of order; frames go to the model in input order.
    let mut pending: BTreeMap<u64, Prepared> = BTreeMap::new();
    let mut next = 0u64;
    let mut closed = false;
    let mut batch_input = detector.preprocessor().buffer_for(opts.max_batch);
    loop {
        // Gather the next batch: the next frame in order, then more while they
        // arrive within max_wait.
        let mut batch: Vec<Prepared> = Vec::with_capacity(opts.max_batch);
        let mut deadline: Option<Instant> = None;
        while batch.len() < opts.max_batch {
            if let Some(p) = pending.remove(&next) {
                next += 1;
                batch.push(p);
                deadline.get_or_insert_with(|| Instant::now() + opts.max_wait);
                continue;
            }
            if closed {
                break;
            }
            let got = match deadline {
                None => prepared.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    None => break,
                    Some(left) => prepared.recv_timeout(left),
                },
            };
            match got {
                Ok(p) => {
                    pending.insert(p.index, p);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => closed = true,
            }
        }
        if batch.is_empty() {
            break;
        }

        // Drop what failed or went stale; run the rest.
        let mut run: Vec<(Frame, InputBuf)> = Vec::with_capacity(batch.len());
        for p in batch {
            match p.tensor {
                Err(e) => {
                    report.failed += 1;
                    meter.error();
                    metrics::frame_dropped(&p.frame.camera_id, "failed");
                    tracing::warn!(camera = %p.frame.camera_id, seq = p.frame.seq, "skipping frame: {e}");
                    if !dropped(&p.frame) {
                        return (detector, report);
                    }
                }
                Ok(buf) if opts.shed_stale_after.is_some_and(|max| age(&p.frame, p.received) > max) => {
                    report.shed_stale += 1;
                    metrics::frame_dropped(&p.frame.camera_id, "stale");
                    tracing::debug!(camera = %p.frame.camera_id, seq = p.frame.seq, "shed: stale");
                    let _ = free.try_send(buf);
                    if !dropped(&p.frame) {
                        return (detector, report);
                    }
                }
                Ok(buf) => run.push((p.frame, buf)),
            }
        }
        if run.is_empty() {
            continue;
        }
        let started = Instant::now();
        let letterboxes: Vec<Letterbox> = run.iter().map(|(frame, _)| frame.letterbox).collect();
        // A single frame runs from its own buffer; only real batches are copied
        // into one contiguous tensor.
        let result = if let [(_, buf)] = run.as_slice() {
            detector.infer(buf.as_input(), &letterboxes)
        } else {
            batch_input.clear();
            for (_, buf) in &run {
                batch_input.extend_from(buf);
            }
            detector.infer(batch_input.as_input(), &letterboxes)
        };
        let took = started.elapsed();
        report.runs += 1;
        meter.add_busy(took.as_nanos() as u64);
        metrics::observe_inference(detector.provider().name(), run.len(), took.as_secs_f64());
        spans::inference(run.iter().map(|(f, _)| (&*f.camera_id, f.seq)), detector.provider().name(), took);
        match result {
            Ok(dets) => {
                for ((frame, buf), d) in run.into_iter().zip(dets) {
                    let _ = free.try_send(buf);
                    meter.item();
                    if results.send_blocking(Outcome::Detected(frame_detections(&frame, d))).is_err() {
                        return (detector, report);
                    }
                }
            }
            Err(e) => {
                for (frame, buf) in run {
                    let _ = free.try_send(buf);
                    report.failed += 1;
                    meter.error();
                    metrics::frame_dropped(&frame.camera_id, "failed");
                    tracing::warn!(camera = %frame.camera_id, seq = frame.seq, "skipping frame: {e}");
                    if !dropped(&frame) {
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
