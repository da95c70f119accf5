//! Ingest against real GStreamer pipelines on generated clips.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streetscope_contracts::{Frame, Letterbox};
use streetscope_ingest::clipwriter::{write_mp4, ClipFormat};
use streetscope_ingest::{run_camera, CameraSource, StopHandle};

const GREY: u8 = 128;

fn clip(dir: &tempfile::TempDir, w: u32, h: u32, frames: u32) -> String {
    let path = dir.path().join("grey.mp4");
    let fmt = ClipFormat { width: w, height: h, fps: 25, keyframe_interval: 50 };
    let n = write_mp4(&path, fmt, (0..frames).map(|_| vec![GREY; (w * h * 3) as usize])).unwrap();
    assert_eq!(n, u64::from(frames));
    path.to_string_lossy().into_owned()
}

fn camera(source: String, w: u32, h: u32) -> CameraSource {
    CameraSource {
        camera_id: "cam-test".into(),
        intersection_id: "x-1".into(),
        source,
        sample_fps: 10.0,
        width: w,
        height: h,
        stall_timeout: Duration::from_secs(3),
        keyframes_only: false,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: None,
    }
}

fn collect(
    cam: &CameraSource,
) -> (Result<streetscope_ingest::CameraReport, streetscope_ingest::IngestError>, Vec<Frame>) {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let frames = frames.clone();
        move |f: Frame| {
            frames.lock().unwrap().push(f);
            true
        }
    };
    let r = run_camera(cam, sink, &StopHandle::default());
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    (r, frames)
}

#[test]
fn a_file_is_sampled_by_timestamp_and_letterboxed() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(&dir, 320, 180, 50); // 2 s at 25 fps
    let (report, frames) = collect(&camera(src, 160, 160));
    let report = report.unwrap();
    assert_eq!(report.decoded, 50);
    assert_eq!(report.frames, 20, "2 s sampled at 10 fps");
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
    for w in frames.windows(2) {
        let gap = w[1].pts_ns - w[0].pts_ns;
        assert!((80_000_000..=120_000_000).contains(&gap), "gap {gap} ns");
    }
    let f = &frames[0];
    assert_eq!(f.letterbox, Letterbox::fit(320, 180, 160, 160));
    assert_eq!((f.letterbox.scaled_h, f.letterbox.pad_y), (90, 35));
    assert_eq!(f.payload.len(), 160 * 160 * 3);
    // The geometry we report is the one GStreamer drew: black borders, grey image.
    let px = |x: usize, y: usize| &f.payload[(y * 160 + x) * 3..(y * 160 + x) * 3 + 3];
    let is_black = |p: &[u8]| p.iter().all(|&c| c <= 2);
    let is_grey = |p: &[u8]| p.iter().all(|&c| c.abs_diff(GREY) <= 3);
    for x in [0, 80, 159] {
        assert!(is_black(px(x, 0)) && is_black(px(x, 34)), "top border at x={x}: {:?}", px(x, 34));
        assert!(is_grey(px(x, 35)) && is_grey(px(x, 124)), "image at x={x}: {:?} {:?}", px(x, 35), px(x, 124));
        assert!(is_black(px(x, 125)) && is_black(px(x, 159)), "bottom border at x={x}: {:?}", px(x, 125));
    }
    assert_eq!(&*f.camera_id, "cam-test");
    assert_eq!(&*f.intersection_id, "x-1");
}

#[test]
fn a_file_of_random_bytes_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.mp4");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let start = Instant::now();
    let (r, frames) = collect(&camera(path.to_string_lossy().into_owned(), 160, 160));
    let msg = r.unwrap_err().to_string();
    assert!(msg.starts_with("camera cam-test: source "), "{msg}");
    assert!(frames.is_empty());
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_truncated_file_gives_its_frames_or_a_clear_error_but_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(&dir, 320, 180, 50);
    let bytes = std::fs::read(&src).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let start = Instant::now();
    let (r, _) = collect(&camera(cut.to_string_lossy().into_owned(), 160, 160));
    // mp4mux writes the index at the end: without it nothing is decodable.
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("cam-test") && msg.contains("cut.mp4"), "{msg}");
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_missing_file_and_a_closed_port_are_clear_errors() {
    let (r, _) = collect(&camera("/nonexistent/clip.mp4".into(), 160, 160));
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("/nonexistent/clip.mp4") && msg.contains("cannot open the file"), "{msg}");

    let start = Instant::now();
    let (r, _) = collect(&camera("rtsp://user:secret@127.0.0.1:9/stream".into(), 160, 160));
    let msg = r.unwrap_err().to_string();
    assert!(msg.starts_with("camera cam-test: source rtsp://user:***@127.0.0.1:9/stream"), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_run_can_continue_a_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(&dir, 320, 180, 25); // 1 s: 10 frames at 10 fps
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let frames = frames.clone();
        move |f: Frame| {
            frames.lock().unwrap().push(f.seq);
            true
        }
    };
    let report =
        streetscope_ingest::run_camera_from(&camera(src, 160, 160), 100, sink, &StopHandle::default()).unwrap();
    assert_eq!(report.frames, 10, "the report counts this run");
    assert_eq!(*frames.lock().unwrap(), (100..110).collect::<Vec<_>>());
}

#[test]
fn a_supervised_file_runs_once_and_a_missing_one_fails() {
    use streetscope_ingest::{supervise, CameraState, CameraStatusHandle, RestartPolicy};
    let dir = tempfile::tempdir().unwrap();
    let cam = camera(clip(&dir, 320, 180, 25), 160, 160);
    let status = CameraStatusHandle::new(&cam);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        move |f: Frame| {
            seen.lock().unwrap().push(f.seq);
            true
        }
    };
    let r = supervise(&cam, &RestartPolicy::default(), sink, &StopHandle::default(), &status).unwrap();
    assert_eq!((r.frames, r.decoded, r.stopped), (10, 25, false));
    assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
    let s = status.snapshot();
    assert_eq!((s.state, s.frames, s.reconnects, s.last_error), (CameraState::Stopped, 10, 0, None));
    assert!(s.last_frame_at.is_some());

    let cam = camera("/nonexistent/clip.mp4".into(), 160, 160);
    let status = CameraStatusHandle::new(&cam);
    let e = supervise(&cam, &RestartPolicy::default(), |_f: Frame| true, &StopHandle::default(), &status).unwrap_err();
    let s = status.snapshot();
    assert_eq!(s.state, CameraState::Failed { reason: e.to_string() });
    assert_eq!(s.reconnects, 0, "files are not retried");
    assert!(e.to_string().contains("cannot open the file"), "{e}");
}

#[test]
fn sixteen_cameras_in_one_process_each_get_all_their_frames_and_a_bad_one_disturbs_none() {
    use std::collections::HashMap;
    use streetscope_telemetry::StageMeter;
    let dir = tempfile::tempdir().unwrap();
    let src = clip(&dir, 320, 180, 50); // 2 s at 25 fps → 20 frames at 10 fps
    let mut cameras: Vec<CameraSource> =
        (0..16).map(|i| CameraSource { camera_id: format!("cam-{i:02}"), ..camera(src.clone(), 160, 160) }).collect();
    cameras.push(CameraSource { camera_id: "cam-bad".into(), ..camera("/nonexistent/x.mp4".into(), 160, 160) });
    let seqs: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let push = {
        let seqs = seqs.clone();
        move |f: Frame| {
            seqs.lock().unwrap().entry(f.camera_id.to_string()).or_default().push(f.seq);
            true
        }
    };
    let start = Instant::now();
    let results =
        streetscope_ingest::stage::run_cameras(&cameras, push, &StopHandle::default(), &StageMeter::new("ingest"));
    assert!(start.elapsed() < Duration::from_secs(60));
    let seqs = seqs.lock().unwrap();
    for (cam, r) in cameras.iter().zip(&results) {
        if cam.camera_id == "cam-bad" {
            let e = r.as_ref().unwrap_err().to_string();
            assert!(e.contains("cam-bad") && e.contains("/nonexistent/x.mp4"), "{e}");
            continue;
        }
        assert_eq!(r.as_ref().unwrap().frames, 20, "{}", cam.camera_id);
        assert_eq!(seqs[&cam.camera_id], (0..20).collect::<Vec<_>>(), "{}", cam.camera_id);
    }
}

#[test]
fn keyframes_only_decodes_only_the_keyframes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gop10.mp4");
    let fmt = ClipFormat { width: 320, height: 180, fps: 25, keyframe_interval: 10 };
    // A changing picture, so that the encoder really makes delta frames.
    let frames = (0..50u32).map(|i| (0..320 * 180 * 3).map(|p| ((p as u32 / 3 + i * 7) % 251) as u8).collect());
    write_mp4(&path, fmt, frames).unwrap();
    let mut cam = camera(path.to_string_lossy().into_owned(), 160, 160);
    cam.sample_fps = 25.0;
    let (all, _) = collect(&cam);
    assert_eq!(all.unwrap().decoded, 50);
    cam.keyframes_only = true;
    let (report, frames) = collect(&cam);
    let report = report.unwrap();
    assert_eq!((report.decoded, report.frames), (5, 5), "keyframes at 0, 10, 20, 30 and 40");
    let pts: Vec<u64> = frames.iter().map(|f| f.pts_ns / 1_000_000).collect();
    assert_eq!(pts, [0, 400, 800, 1200, 1600]);
}

#[test]
fn frames_can_be_encoded_as_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(&dir, 320, 180, 25);
    let mut cam = camera(src, 160, 160);
    cam.jpeg_quality = Some(85);
    let (report, frames) = collect(&cam);
    assert_eq!(report.unwrap().frames, 10);
    let f = &frames[0];
    assert_eq!(f.encoding, streetscope_contracts::FrameEncoding::Jpeg);
    assert_eq!(&f.payload[..2], &[0xff, 0xd8], "a JPEG starts with SOI");
    assert!(f.payload.len() < 160 * 160 * 3 / 4, "compressed: {} bytes", f.payload.len());
    assert_eq!(f.letterbox, Letterbox::fit(320, 180, 160, 160));
    // The letterbox's picture alone, without its bars.
    let picture = image::load_from_memory(&f.payload).unwrap();
    assert_eq!((picture.width(), picture.height()), (f.letterbox.scaled_w, f.letterbox.scaled_h));
    assert_eq!((picture.width(), picture.height()), (160, 90));
}

/// A pipeline whose streaming thread is stuck (here in a pad probe that never
/// returns until told, as a network source stuck in a socket would be) cannot
/// reach NULL: `tear_down` gives up after its limit, so the camera can end or
/// reconnect, and the pipeline stops by itself once its thread is free.
#[test]
fn a_pipeline_stuck_in_its_teardown_is_left_behind_within_the_limit() {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use streetscope_ingest::source::tear_down;
    streetscope_ingest::init().unwrap();

    // A pipeline that stops normally stops within the limit.
    let fine = gst::parse::launch("videotestsrc ! fakesink").unwrap().downcast::<gst::Pipeline>().unwrap();
    fine.set_state(gst::State::Playing).unwrap();
    assert!(tear_down(&fine, "fine", Duration::from_secs(10)));
    assert_eq!(fine.current_state(), gst::State::Null);

    let stuck = gst::parse::launch("videotestsrc name=src ! fakesink").unwrap().downcast::<gst::Pipeline>().unwrap();
    let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let src = stuck.by_name("src").unwrap();
    src.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let _ = entered_tx.try_send(());
        // Holds the streaming thread until the test lets it go.
        let _ = release_rx.lock().unwrap().recv();
        gst::PadProbeReturn::Remove
    });
    stuck.set_state(gst::State::Playing).unwrap();
    entered_rx.recv_timeout(Duration::from_secs(10)).expect("the streaming thread reached the probe");
    let started = Instant::now();
    assert!(!tear_down(&stuck, "stuck", Duration::from_millis(500)), "a stuck pipeline is reported as left behind");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "tear_down returned after {took:?}, not at its limit");
    // Freed, the pipeline left behind stops by itself.
    release_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stuck.current_state() != gst::State::Null {
        assert!(Instant::now() < deadline, "the pipeline left behind never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
}
