//! Measurements for `streetscope bench ingest`: the bare GStreamer decode that
//! ingest is compared with, a clip transcoder to make camera-like inputs, and
//! process CPU time and memory readings.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::IngestError;

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (clock ticks of 1/100 s, Linux's USER_HZ).
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Resident memory of this process in bytes (`VmRSS`).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Frames, wall seconds and CPU seconds of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub frames: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
}

impl Measured {
    /// Frames per CPU second: what one core sustains.
    pub fn per_core(&self) -> f64 {
        self.frames as f64 / self.cpu_s.max(1e-9)
    }
}

fn run_to_eos(desc: &str, what: &str) -> Result<Arc<AtomicU64>, IngestError> {
    crate::init()?;
    let err = |reason: String| IngestError::Pipeline { camera: what.to_owned(), reason };
    let pipeline = gst::parse::launch(desc)
        .map_err(|e| err(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("not a pipeline".into()))?;
    let frames = Arc::new(AtomicU64::new(0));
    if let Some(sink) = pipeline.by_name("sink") {
        let counter = frames.clone();
        sink.static_pad("sink").expect("a sink has a sink pad").add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    pipeline.set_state(gst::State::Playing).map_err(|e| err(e.to_string()))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let result = match bus.timed_pop_filtered(gst::ClockTime::NONE, &[gst::MessageType::Eos, gst::MessageType::Error]) {
        Some(m) => match m.view() {
            gst::MessageView::Error(e) => Err(err(e.error().to_string())),
            _ => Ok(frames),
        },
        None => Err(err("no end of stream".into())),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Bare decode-only throughput of an H.264 MP4, the limit ingest is compared
/// with: `filesrc ! qtdemux ! h264parse ! avdec_h264 ! fakesink`.
pub fn decode_only(path: &Path) -> Result<Measured, IngestError> {
    let desc = format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! fakesink name=sink sync=false",
        path.display()
    );
    let (t, c) = (Instant::now(), process_cpu_seconds());
    let frames = run_to_eos(&desc, "decode-only")?.load(Ordering::Relaxed);
    Ok(Measured { frames, wall_s: t.elapsed().as_secs_f64(), cpu_s: process_cpu_seconds() - c })
}

/// Re-encodes an MP4 at `width` x `height` with a keyframe every `gop` frames (a
/// camera-like input for the benchmarks).
pub fn transcode(src: &Path, dst: &Path, width: u32, height: u32, gop: u32) -> Result<(), IngestError> {
    let desc = format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! videoconvertscale \
         ! video/x-raw,width={width},height={height},format=I420 \
         ! x264enc speed-preset=faster key-int-max={gop} bframes=0 bitrate=6000 \
         ! h264parse ! mp4mux ! filesink location=\"{}\"",
        src.display(),
        dst.display()
    );
    run_to_eos(&desc, "transcode").map(|_| ())
}
