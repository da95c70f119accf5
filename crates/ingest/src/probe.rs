//! How long a recording is: the total of `streetscope run`'s progress bar for
//! file sources (the frames to expect at the camera's sample rate).

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// The duration of the recording at `source` (a file path or a `file://`
/// URI), read by prerolling it in a `playbin` with fake sinks (nothing is
/// decoded beyond the first frame). None for anything that is not a file, or
/// when the duration cannot be read within `timeout`: the progress then shows
/// no total, nothing fails.
pub fn duration(source: &str, timeout: Duration) -> Option<Duration> {
    let uri = crate::source::source_uri("probe", source).ok()?;
    if !uri.starts_with("file://") {
        return None;
    }
    crate::init().ok()?;
    let playbin = gst::ElementFactory::make("playbin").property("uri", &uri).build().ok()?;
    for sink in ["video-sink", "audio-sink"] {
        let fake = gst::ElementFactory::make("fakesink").property("sync", false).build().ok()?;
        playbin.set_property(sink, &fake);
    }
    let d = match playbin.set_state(gst::State::Paused) {
        Ok(_) => {
            let (prerolled, _, _) = playbin.state(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64));
            prerolled.ok().and_then(|_| playbin.query_duration::<gst::ClockTime>())
        }
        Err(_) => None,
    };
    let _ = playbin.set_state(gst::State::Null);
    d.map(|d| Duration::from_nanos(d.nseconds()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clipwriter::{write_mp4, ClipFormat};

    #[test]
    fn a_recordings_duration_and_none_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        let fmt = ClipFormat { width: 64, height: 48, fps: 10, keyframe_interval: 10 };
        write_mp4(&path, fmt, (0..25).map(|_| vec![128u8; 64 * 48 * 3])).unwrap();
        let d = duration(path.to_str().unwrap(), Duration::from_secs(10)).expect("a duration");
        assert!((d.as_secs_f64() - 2.5).abs() < 0.05, "{d:?}");
        assert_eq!(duration(dir.path().join("missing.mp4").to_str().unwrap(), Duration::from_secs(1)), None);
        assert_eq!(duration("rtsp://127.0.0.1:1/x", Duration::from_secs(1)), None);
        let not_media = dir.path().join("notes.txt");
        std::fs::write(&not_media, "not a video").unwrap();
        assert_eq!(duration(not_media.to_str().unwrap(), Duration::from_secs(5)), None);
    }
}
