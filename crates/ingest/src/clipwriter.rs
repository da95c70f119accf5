//! Writes RGB frames to an H.264 MP4 file with GStreamer (x264). Used to build
//! the test clips; deterministic for the same frames (x264 runs single-threaded).

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::IngestError;

/// Encoding settings of a clip.
#[derive(Debug, Clone, Copy)]
pub struct ClipFormat {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Frames between keyframes (a camera's GOP); 2 s at 25 fps is typical.
    pub keyframe_interval: u32,
}

/// Encodes `frames` (packed RGB, `width * height * 3` bytes each) into `path`.
pub fn write_mp4<I>(path: &Path, format: ClipFormat, frames: I) -> Result<u64, IngestError>
where
    I: IntoIterator<Item = Vec<u8>>,
{
    crate::init()?;
    let werr = |reason: String| IngestError::Write { path: path.display().to_string(), reason };
    let desc = format!(
        "appsrc name=src format=time ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc threads=1 speed-preset=faster pass=quant quantizer=22 key-int-max={} bframes=0 \
         ! video/x-h264,profile=high ! h264parse ! mp4mux ! filesink name=out",
        format.keyframe_interval
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| werr(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| werr("not a pipeline".into()))?;
    let out = pipeline.by_name("out").expect("named in the description");
    out.set_property("location", path.to_string_lossy().to_string());
    let src =
        pipeline.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).expect("named in the description");
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", format.width as i32)
        .field("height", format.height as i32)
        .field("framerate", gst::Fraction::new(format.fps as i32, 1))
        .build();
    src.set_caps(Some(&caps));
    src.set_property("block", true);
    src.set_property("max-bytes", 4 * u64::from(format.width * format.height * 3));
    pipeline.set_state(gst::State::Playing).map_err(|e| werr(e.to_string()))?;

    let frame_ns = 1_000_000_000u64 / u64::from(format.fps);
    let expected = (format.width * format.height * 3) as usize;
    let mut n = 0u64;
    for data in frames {
        if data.len() != expected {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(werr(format!("frame {n} has {} bytes, expected {expected}", data.len())));
        }
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(n * frame_ns));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        if src.push_buffer(buffer).is_err() {
            break; // the bus says why
        }
        n += 1;
    }
    let _ = src.end_of_stream();
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let result = match bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Error, gst::MessageType::Eos])
    {
        Some(msg) => match msg.view() {
            gst::MessageView::Error(e) => Err(werr(e.error().to_string())),
            _ => Ok(n),
        },
        None => Err(werr("the encoder did not finish within 120 s".into())),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}
