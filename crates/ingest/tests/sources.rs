//! Source kinds beyond files and RTSP: HTTP MJPEG from a server started by the
//! test on 127.0.0.1, V4L2 devices (none here: the errors), and an operator's
//! own template.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use streetscope_contracts::{Frame, Letterbox};
use streetscope_ingest::{run_camera, CameraSource, StopHandle};

fn camera(id: &str, source: &str) -> CameraSource {
    CameraSource {
        camera_id: id.into(),
        intersection_id: "x-1".into(),
        source: source.into(),
        sample_fps: 5.0,
        width: 160,
        height: 160,
        stall_timeout: Duration::from_secs(3),
        keyframes_only: false,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: None,
    }
}

/// Runs `cam` until `n` frames came (or it ends); stops it; at most `limit`.
fn take_frames(cam: &CameraSource, n: usize, limit: Duration) -> (Result<(), String>, Vec<Frame>) {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let frames = frames.clone();
        move |f: Frame| {
            let mut v = frames.lock().unwrap();
            v.push(f);
            v.len() < n
        }
    };
    let stop = StopHandle::default();
    let timer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + limit;
            while Instant::now() < end && !stop.is_stopped() {
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.stop();
        })
    };
    let r = run_camera(cam, sink, &stop).map(|_| ()).map_err(|e| e.to_string());
    stop.stop();
    timer.join().unwrap();
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    (r, frames)
}

/// `n` JPEG images of colour bars, `w`x`h`, made by GStreamer.
fn jpegs(n: u32, w: u32, h: u32) -> Vec<Vec<u8>> {
    streetscope_ingest::init().unwrap();
    let desc = format!(
        "videotestsrc num-buffers={n} pattern=smpte ! video/x-raw,width={w},height={h},framerate=15/1 \
         ! jpegenc ! appsink name=out sync=false"
    );
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        out.push(sample.buffer().unwrap().map_readable().unwrap().to_vec());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(out.len(), n as usize);
    out
}

/// An MJPEG camera on 127.0.0.1: `multipart/x-mixed-replace` of `images` in a
/// loop at 15 images a second, to each client, until the test ends.
struct MjpegServer {
    url: String,
    served: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

impl MjpegServer {
    fn start(images: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/video.mjpg", listener.local_addr().unwrap().port());
        let (served, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let images = Arc::new(images);
        {
            let (served, done) = (served.clone(), done.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    let (images, served, done) = (images.clone(), served.clone(), done.clone());
                    std::thread::spawn(move || {
                        // Read the request head before answering.
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                            head.push(byte[0]);
                        }
                        let _ = conn.write_all(
                            b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
                              Cache-Control: no-cache\r\n\r\n",
                        );
                        for img in images.iter().cycle() {
                            if done.load(Ordering::SeqCst) {
                                break;
                            }
                            let part =
                                format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", img.len());
                            let sent = conn
                                .write_all(part.as_bytes())
                                .and_then(|_| conn.write_all(img))
                                .and_then(|_| conn.write_all(b"\r\n"));
                            if sent.is_err() {
                                break;
                            }
                            served.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(66));
                        }
                    });
                }
            });
        }
        Self { url, served, done }
    }
}

impl Drop for MjpegServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_http_mjpeg_camera_gives_frames_with_its_geometry() {
    let t = Instant::now();
    let server = MjpegServer::start(jpegs(30, 320, 240));
    let (r, frames) = take_frames(&camera("cam-mjpeg", &server.url), 8, Duration::from_secs(30));
    r.unwrap();
    assert_eq!(frames.len(), 8, "served {}", server.served.load(Ordering::Relaxed));
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    for f in &frames {
        assert_eq!(f.letterbox, Letterbox::fit(320, 240, 160, 160));
        assert_eq!(f.payload.len(), 160 * 160 * 3);
        assert_eq!(f.clock, streetscope_contracts::CaptureClock::Arrival);
    }
    // Stamped on arrival at 15 images a second, sampled to 5 a second by timestamp.
    for w in frames.windows(2) {
        let gap = w[1].pts_ns - w[0].pts_ns;
        assert!((120_000_000..=500_000_000).contains(&gap), "gap {gap} ns");
    }
    // The picture is the test pattern, not black: the JPEGs were decoded.
    let f = &frames[frames.len() - 1];
    let inside = &f.payload[(80 * 160 + 20) * 3..(80 * 160 + 140) * 3];
    assert!(inside.iter().any(|&v| v > 40), "a decoded picture");
    eprintln!("mjpeg: 8 frames in {:.2} s", t.elapsed().as_secs_f64());
}

#[test]
fn a_missing_v4l2_device_is_a_clear_error_naming_it() {
    let t = Instant::now();
    let (r, frames) = take_frames(&camera("cam-usb", "v4l2:///dev/video-streetscope-none"), 3, Duration::from_secs(20));
    let e = r.unwrap_err();
    assert!(frames.is_empty());
    assert_eq!(
        e,
        "camera cam-usb: source v4l2:///dev/video-streetscope-none: no such device /dev/video-streetscope-none: \
         check that the camera is plugged in and the path is right"
    );
    // A device that is there but is no camera: GStreamer's reason, naming it, at once.
    let (r, _) = take_frames(&camera("cam-usb", "v4l2:///dev/null"), 3, Duration::from_secs(20));
    let e = r.unwrap_err();
    assert!(e.starts_with("camera cam-usb: source v4l2:///dev/null: "), "{e}");
    assert!(e.contains("/dev/null"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // A V4L2 camera is live: the supervisor retries it (it may be plugged in later).
    assert!(streetscope_ingest::supervisor::is_live("v4l2:///dev/video0"));
    eprintln!("v4l2 errors in {:.2} s: {e}", t.elapsed().as_secs_f64());
}

#[test]
fn an_operators_template_replaces_the_built_in_one_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    // A template that ignores the source and shows a test pattern of 400x200.
    let mine = dir.path().join("pattern.pipeline");
    std::fs::write(
        &mine,
        "# a test pattern instead of the camera\n\
         videotestsrc is-live=true pattern=smpte ! video/x-raw,width=400,height=200,framerate=10/1\n\
           ! videoconvertscale name=letterbox add-borders=true\n\
           ! video/x-raw,format={format},width={width},height={height},pixel-aspect-ratio=1/1 {encode}\n\
           ! appsink name=sink sync=false max-buffers=2\n",
    )
    .unwrap();
    let cam = CameraSource { template: Some(mine), ..camera("cam-own", "rtsp://127.0.0.1:9/unused") };
    let (r, frames) = take_frames(&cam, 4, Duration::from_secs(20));
    r.unwrap();
    assert_eq!(frames.len(), 4);
    assert!(frames.iter().all(|f| f.letterbox == Letterbox::fit(400, 200, 160, 160)));

    let missing = dir.path().join("nope.pipeline");
    let cam = CameraSource { template: Some(missing.clone()), ..camera("cam-own", "rtsp://u:pw@127.0.0.1:9/x") };
    let e = take_frames(&cam, 1, Duration::from_secs(10)).0.unwrap_err();
    assert!(
        e.starts_with(&format!(
            "camera cam-own: could not build the pipeline: template {}: cannot read it",
            missing.display()
        )),
        "{e}"
    );
    let bad = dir.path().join("bad.pipeline");
    std::fs::write(&bad, "rtspsrc location=\"{url}\" ! videoconvertscale name=letterbox ! appsink name=sink").unwrap();
    let cam = CameraSource { template: Some(bad), ..camera("cam-own", "rtsp://u:pw@127.0.0.1:9/x") };
    let e = take_frames(&cam, 1, Duration::from_secs(10)).0.unwrap_err();
    assert!(e.contains("unknown placeholder(s) {url}; known: {uri} {device}"), "{e}");
    assert!(!e.contains("pw"), "{e}");
}

/// The first frame of a `videotestsrc` pattern of `src` size through a template
/// whose letterbox element is `letterbox`, as RGB (or JPEG with `jpeg`).
fn pattern_frame(letterbox: &str, pattern: &str, src: (u32, u32), dst: u32, jpeg: Option<u8>) -> Frame {
    let lines = format!(
        "! {letterbox} name=letterbox\n\
         ! video/x-raw,format={{format}},width={{width}},height={{height}},pixel-aspect-ratio=1/1 {{encode}}"
    );
    pattern_through(&lines, pattern, src, dst, jpeg)
}

/// The first frame of a `videotestsrc` pattern of `src` size (limited-range
/// I420, BT.709 from 720 rows up, as a camera's decoder gives) through `lines`
/// of a template (between the source and the appsink), as RGB or as JPEG of
/// `jpeg` quality.
fn pattern_through(lines: &str, pattern: &str, src: (u32, u32), dst: u32, jpeg: Option<u8>) -> Frame {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pattern.pipeline");
    std::fs::write(
        &path,
        format!(
            "videotestsrc is-live=true pattern={pattern} ! video/x-raw,format=I420,width={},height={},framerate=10/1\n\
             {lines}\n! appsink name=sink sync=false max-buffers=2\n",
            src.0, src.1
        ),
    )
    .unwrap();
    let cam = CameraSource {
        template: Some(path),
        width: dst,
        height: dst,
        jpeg_quality: jpeg,
        ..camera("cam-pattern", "rtsp://127.0.0.1:9/unused")
    };
    let (r, mut frames) = take_frames(&cam, 1, Duration::from_secs(20));
    r.unwrap();
    frames.remove(0)
}

#[test]
fn the_rust_letterbox_draws_what_videoconvertscale_draws() {
    // What the built-in templates used before: the reference.
    let reference = "videoconvertscale add-borders=true method=bilinear dither=none chroma-mode=none";
    let sizes = [((400, 200), 160), ((1920, 1080), 640), ((640, 480), 640), ((270, 480), 320), ((704, 576), 640)];
    for pattern in ["smpte100", "zone-plate"] {
        for (src, dst) in sizes {
            let ours = pattern_frame("streetscopeletterbox", pattern, src, dst, None);
            let gst = pattern_frame(reference, pattern, src, dst, None);
            assert_eq!(ours.letterbox, gst.letterbox, "{src:?}");
            assert_eq!(ours.letterbox, Letterbox::fit(src.0, src.1, dst, dst));
            assert_eq!(ours.payload.len(), gst.payload.len());
            // The same picture in the same place (a zone plate shows any shift),
            // the same colours, the same borders: the scalers round differently,
            // and differ more only where a bar's sharp edge falls between pixels.
            let diffs: Vec<u8> = ours.payload.iter().zip(gst.payload.iter()).map(|(a, b)| a.abs_diff(*b)).collect();
            let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
            let far = diffs.iter().filter(|&&d| d > 24).count() as f64 / diffs.len() as f64;
            eprintln!("{pattern} {src:?} -> {dst}: mean difference {mean:.2}, {:.2} % differ by > 24", far * 100.0);
            assert!(mean < 3.0 && far < 0.03, "{pattern} {src:?}: mean {mean:.2}, far {far:.4}");
        }
    }
    // JPEG: letterboxed I420 into jpegenc.
    let jpeg = pattern_frame("streetscopeletterbox", "smpte100", (1920, 1080), 640, Some(80));
    assert_eq!(&jpeg.payload[..2], &[0xff, 0xd8], "a JPEG starts with SOI");
    assert_eq!(jpeg.encoding, streetscope_contracts::FrameEncoding::Jpeg);
    assert_eq!(jpeg.letterbox, Letterbox::fit(1920, 1080, 640, 640));
}

/// The first frame of a `videotestsrc` pattern of `src` size through the
/// built-in templates' letterbox and caps lines, as RGB or as JPEG of `jpeg`
/// quality.
fn built_in_style_frame(pattern: &str, src: (u32, u32), dst: u32, jpeg: Option<u8>) -> Frame {
    let mut builtin = streetscope_ingest::template::URI.lines().filter(|l| !l.starts_with('#'));
    let letterbox_line = builtin.find(|l| l.contains("streetscopeletterbox")).unwrap();
    let caps_line = builtin.find(|l| l.contains("{encode}")).unwrap();
    let lines = format!("{}\n{caps_line}", letterbox_line.replace("! videoconvert ", ""));
    pattern_through(&lines, pattern, src, dst, jpeg)
}

/// Mean absolute difference of two RGB pictures of the same size.
fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64
}

#[test]
fn jpeg_frames_are_the_picture_alone_in_the_colours_of_the_rgb_frames() {
    // HD (BT.709), SD (BT.601), portrait, and a size whose picture has odd rows.
    for (src, pattern) in
        [((1280, 720), "smpte75"), ((640, 480), "smpte75"), ((270, 480), "ball"), ((704, 576), "ball")]
    {
        let rgb = built_in_style_frame(pattern, src, 320, None);
        let jpeg = built_in_style_frame(pattern, src, 320, Some(95));
        let lb = Letterbox::fit(src.0, src.1, 320, 320);
        assert_eq!((rgb.letterbox, jpeg.letterbox), (lb, lb));
        assert_eq!(rgb.payload.len(), 320 * 320 * 3, "RGB frames are the whole letterbox");
        let decoded = image::load_from_memory(&jpeg.payload).unwrap().into_rgb8();
        assert_eq!((decoded.width(), decoded.height()), (lb.scaled_w, lb.scaled_h), "{src:?}: the picture alone");
        // The RGB frame's picture, cut from its letterbox.
        let line = lb.scaled_w as usize * 3;
        let picture: Vec<u8> = (0..lb.scaled_h as usize)
            .flat_map(|r| {
                let at = ((lb.pad_y as usize + r) * 320 + lb.pad_x as usize) * 3;
                rgb.payload[at..at + line].to_vec()
            })
            .collect();
        // The same colours: black black, white white (a decoder reads JPEG as
        // full range, BT.601); only JPEG's own loss differs.
        let mean = mean_difference(decoded.as_raw(), &picture);
        let channel_mean =
            |p: &[u8], c: usize| p.iter().skip(c).step_by(3).map(|&v| f64::from(v)).sum::<f64>() / (p.len() / 3) as f64;
        let shift: Vec<f64> = (0..3).map(|c| channel_mean(decoded.as_raw(), c) - channel_mean(&picture, c)).collect();
        eprintln!("{src:?} {pattern}: mean difference {mean:.2}, mean shift per channel {shift:.2?}");
        assert!(mean < 4.0, "{src:?}: mean difference {mean:.2}");
        assert!(shift.iter().all(|s| s.abs() < 1.5), "{src:?}: colours shifted by {shift:.2?}");
    }
    // An operator's template letterboxing with videoconvertscale: its JPEG is
    // the whole letterbox, and `{encode}` puts it in JPEG's colours too.
    let reference = "videoconvertscale add-borders=true method=bilinear dither=none chroma-mode=none";
    let rgb = pattern_frame(reference, "smpte75", (1280, 720), 320, None);
    let jpeg = pattern_frame(reference, "smpte75", (1280, 720), 320, Some(95));
    let decoded = image::load_from_memory(&jpeg.payload).unwrap().into_rgb8();
    assert_eq!((decoded.width(), decoded.height()), (320, 320));
    // The picture's rows (its bars are videoconvertscale's: limited-range
    // black, 16, whatever the output's range).
    let rows = 90 * 320 * 3..(90 + 180) * 320 * 3;
    let mean = mean_difference(&decoded.as_raw()[rows.clone()], &rgb.payload[rows]);
    eprintln!("videoconvertscale's JPEG: mean difference {mean:.2}");
    // (Limited range read as full, as before `{encode}` converted it: 11.6.)
    assert!(mean < 5.0, "videoconvertscale's JPEG: mean difference {mean:.2}");
}

#[test]
fn a_template_whose_frames_are_another_size_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.pipeline");
    std::fs::write(
        &path,
        "videotestsrc is-live=true ! video/x-raw,format=I420,width=400,height=200,framerate=10/1\n\
           ! streetscopeletterbox name=letterbox width={width} height={height} borders=false\n\
           ! video/x-raw,format={format},pixel-aspect-ratio=1/1 {encode}\n\
           ! appsink name=sink sync=false max-buffers=2\n",
    )
    .unwrap();
    let cam = CameraSource { template: Some(path), ..camera("cam-wrong", "rtsp://127.0.0.1:9/unused") };
    let (r, frames) = take_frames(&cam, 1, Duration::from_secs(20));
    assert!(frames.is_empty());
    let e = r.unwrap_err();
    assert!(
        e.contains(
            "the pipeline's RGB frames are 160x80, the letterbox is 160x160 (raw frames carry the whole letterbox"
        ),
        "{e}"
    );
}
