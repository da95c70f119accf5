//! The detect stage with the real model: order across workers, shedding, bad
//! frames, batches across cameras.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use streetscope_contracts::{CaptureClock, Frame, FrameDetections, FrameEncoding, Letterbox};
use streetscope_detect::stage::{DetectStage, StageOptions};
use streetscope_detect::{Detector, DetectorOptions};
use streetscope_telemetry::StageMeter;
use streetscope_transport::{channel, FullPolicy, Publish, Published, Subscribe, TransportError};

fn detector() -> Detector {
    let p = std::env::var_os("STREETSCOPE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| streetscope_detect::runtime::cache_dir().join("models/yolo11n_seg_fp16.onnx"));
    assert!(p.is_file(), "{} is missing: run scripts/setup.sh", p.display());
    Detector::load(&p, DetectorOptions::default()).unwrap()
}

fn frame(camera: &str, seq: u64, payload: Vec<u8>, encoding: FrameEncoding) -> Frame {
    Frame {
        camera_id: Arc::from(camera),
        intersection_id: Arc::from("x"),
        seq,
        pts_ns: seq * 100_000_000,
        capture_time_ms: 0,
        clock: CaptureClock::FileStart,
        letterbox: Letterbox::fit(1280, 720, 640, 640),
        encoding,
        payload: Arc::from(payload),
    }
}

fn run(frames: Vec<Frame>, opts: StageOptions) -> (Vec<FrameDetections>, streetscope_detect::stage::DetectReport) {
    run_on(detector(), frames, opts)
}

fn run_on(
    det: Detector,
    frames: Vec<Frame>,
    opts: StageOptions,
) -> (Vec<FrameDetections>, streetscope_detect::stage::DetectReport) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let (tx, rx) = channel("frames", frames.len().max(1), FullPolicy::Block);
        let (out_tx, mut out_rx) = channel("detections", frames.len().max(1), FullPolicy::Block);
        for f in frames {
            tx.publish_blocking(f).unwrap();
        }
        drop(tx);
        let stage = tokio::spawn(DetectStage::with_options(det, StageMeter::new("detect"), opts).run(rx, out_tx));
        let mut out = Vec::new();
        while let Some(d) = out_rx.next().await {
            out.push(d);
        }
        let (_, report) = stage.await.unwrap().unwrap();
        (out, report)
    })
}

/// Every outcome the stage tells its output, in order: (camera, seq, delivered).
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, u64, bool)>>);

impl Publish<FrameDetections> for &Recorder {
    async fn publish(&self, d: FrameDetections) -> Result<Published, TransportError> {
        self.0.lock().unwrap().push((d.camera_id.to_string(), d.seq, true));
        Ok(Published::Queued)
    }

    async fn nothing_for(&self, d: FrameDetections) -> Result<(), TransportError> {
        assert!(d.detections.is_empty(), "a placeholder carries no detections");
        self.0.lock().unwrap().push((d.camera_id.to_string(), d.seq, false));
        Ok(())
    }
}

/// What the stage (two workers) tells its output of `frames`, in order.
fn told(det: Detector, frames: Vec<Frame>) -> Vec<(String, u64, bool)> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let recorder = Recorder::default();
    rt.block_on(async {
        let (tx, rx) = channel("frames", frames.len(), FullPolicy::Block);
        for f in frames {
            tx.publish_blocking(f).unwrap();
        }
        drop(tx);
        let opts = StageOptions { workers: 2, ..StageOptions::default() };
        DetectStage::with_options(det, StageMeter::new("detect"), opts).run(rx, &recorder).await.unwrap();
    });
    recorder.0.into_inner().unwrap()
}

/// A Kafka relay settles a frame's input when it hears of it: every frame the
/// stage takes comes out as a detection or as "nothing for it", in input order.
#[test]
fn every_frame_comes_out_in_order_as_detections_or_as_nothing_for_it() {
    let grey = vec![114u8; 640 * 640 * 3];
    let frames = vec![
        frame("a", 0, grey.clone(), FrameEncoding::Rgb8),
        frame("a", 1, vec![1, 2, 3], FrameEncoding::Jpeg), // not a JPEG
        frame("a", 2, grey.clone(), FrameEncoding::Rgb8),
        frame("a", 3, vec![0; 10], FrameEncoding::Rgb8), // wrong size: the last frame fails
    ];
    let told = told(detector(), frames);
    let a = |seq, delivered| ("a".to_owned(), seq, delivered);
    assert_eq!(told, [a(0, true), a(1, false), a(2, true), a(3, false)]);
}

#[test]
fn several_workers_keep_the_input_order_and_bad_frames_are_skipped() {
    let grey = vec![114u8; 640 * 640 * 3];
    let mut frames = Vec::new();
    for seq in 0..6 {
        frames.push(frame("a", seq, grey.clone(), FrameEncoding::Rgb8));
        frames.push(frame("b", seq, grey.clone(), FrameEncoding::Rgb8));
    }
    frames.insert(5, frame("a", 99, vec![1, 2, 3], FrameEncoding::Jpeg)); // not a JPEG
    frames.insert(8, frame("b", 98, vec![0; 10], FrameEncoding::Rgb8)); // wrong size
    let opts = StageOptions { workers: 3, ..StageOptions::default() };
    let (out, report) = run(frames, opts);
    let order: Vec<(String, u64)> = out.iter().map(|d| (d.camera_id.to_string(), d.seq)).collect();
    let expected: Vec<(String, u64)> = (0..6).flat_map(|s| [("a".to_owned(), s), ("b".to_owned(), s)]).collect();
    assert_eq!(order, expected);
    assert_eq!(report.failed, 2);
    assert!(out.iter().all(|d| d.width == 1280 && d.height == 720));
}

#[test]
fn stale_frames_are_shed_and_counted() {
    let grey = vec![114u8; 640 * 640 * 3];
    let frames: Vec<Frame> = (0..4).map(|s| frame("a", s, grey.clone(), FrameEncoding::Rgb8)).collect();
    let opts = StageOptions { shed_stale_after: Some(Duration::from_nanos(1)), ..StageOptions::default() };
    let (out, report) = run(frames, opts);
    assert!(out.is_empty());
    assert_eq!(report.shed_stale, 4);
}

/// Hostile JPEG frames on a float model and on a uint8 one (the default, whose
/// frames are decoded straight into the tensor): each bad frame is told as
/// "nothing for it" in its place, the good ones around it are detected, and a
/// greyscale JPEG of the right size is taken (as RGB).
#[test]
fn bad_jpeg_frames_are_skipped_in_place_on_float_and_uint8_models() {
    let jpeg = |img: image::DynamicImage| {
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
        out
    };
    let good = jpeg(image::RgbImage::from_pixel(640, 640, image::Rgb([114, 114, 114])).into());
    let grey = jpeg(image::GrayImage::from_pixel(640, 640, image::Luma([114])).into());
    let small = jpeg(image::RgbImage::from_pixel(320, 320, image::Rgb([114, 114, 114])).into());
    let truncated = good[..good.len() / 3].to_vec();
    let cases = [
        (good.clone(), Some(true)),
        (vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3], Some(false)), // a JPEG's first bytes, then nothing
        (grey, Some(true)),
        (small, Some(false)), // 320x320: the model takes 640x640
        (truncated, None),    // the decoder may fill in what is missing, or refuse: either, in its place
        (good, Some(true)),
    ];
    for model in ["yolo11n_seg_fp16.onnx", "yolo11n_det_u8.onnx"] {
        let det = cached_model(model);
        let frames: Vec<Frame> =
            cases.iter().enumerate().map(|(i, (p, _))| frame("a", i as u64, p.clone(), FrameEncoding::Jpeg)).collect();
        let told = told(det, frames);
        eprintln!("{model}: {told:?}");
        assert_eq!(told.len(), cases.len(), "{model}: {told:?}");
        for (i, ((_, want), (cam, seq, delivered))) in cases.iter().zip(&told).enumerate() {
            assert_eq!((cam.as_str(), *seq), ("a", i as u64), "{model}: in input order");
            if let Some(want) = want {
                assert_eq!(delivered, want, "{model}: frame {i}");
            }
        }
    }
}

fn cached_model(name: &str) -> Detector {
    let path = streetscope_detect::runtime::cache_dir().join("models").join(name);
    assert!(path.is_file(), "{} is missing: run scripts/setup.sh", path.display());
    Detector::load(&path, DetectorOptions::default()).unwrap()
}

/// Pictures with a bus in them, each a camera: bus.jpg, mirrored, and two
/// crops of it, letterboxed to 640x640 (four letterboxes).
fn cameras() -> Vec<(String, Vec<u8>, Letterbox)> {
    let bus = streetscope_detect::runtime::cache_dir().join("assets/bus.jpg");
    let img = image::open(&bus).unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup.sh", bus.display())).into_rgb8();
    let (w, h) = img.dimensions();
    let pictures = [
        img.clone(),
        image::imageops::flip_horizontal(&img),
        image::imageops::crop_imm(&img, 0, 0, w / 2, h).to_image(),
        image::imageops::crop_imm(&img, w / 2, h / 4, w / 2, h * 3 / 4).to_image(),
    ];
    pictures
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (rgb, lb) = streetscope_detect::preprocess::letterbox_image(p, 640, 640);
            (format!("cam-{i}"), rgb, lb)
        })
        .collect()
}

fn frames_of(cameras: &[(String, Vec<u8>, Letterbox)], rounds: u64) -> Vec<Frame> {
    let mut frames = Vec::new();
    for seq in 0..rounds {
        for (camera, rgb, lb) in cameras {
            frames.push(Frame { letterbox: *lb, ..frame(camera, seq, rgb.clone(), FrameEncoding::Rgb8) });
        }
    }
    frames
}

/// A GPU pool's configuration (`max_batch` 4) on the set-up's batch model:
/// frames of four cameras run four at a time, come out in input order, and
/// carry the detections each frame gets alone on the default model.
#[test]
fn frames_of_several_cameras_run_in_batches_with_the_detections_each_gets_alone() {
    let cams = cameras();
    let frames = frames_of(&cams, 3);
    let opts = StageOptions { max_batch: 4, max_wait: Duration::from_secs(5), workers: 2, shed_stale_after: None };
    let (batched, report) = run_on(cached_model("yolo11n_det_u8_batch.onnx"), frames.clone(), opts);
    assert_eq!(report.runs, 3, "12 frames in batches of 4: {report:?}");
    let (alone, report) = run_on(cached_model("yolo11n_det_u8.onnx"), frames, StageOptions::default());
    assert_eq!(report.runs, 12);
    assert_eq!(batched.len(), alone.len());
    assert!(alone.iter().all(|a| !a.detections.is_empty()), "the bus is in every picture: {alone:?}");
    for (b, a) in batched.iter().zip(&alone) {
        assert_eq!((&b.camera_id, b.seq), (&a.camera_id, a.seq), "input order");
        assert_eq!(b.detections.len(), a.detections.len(), "{} frame {}: {b:?} / {a:?}", b.camera_id, b.seq);
        for (db, da) in b.detections.iter().zip(&a.detections) {
            assert_eq!(db.class_id, da.class_id, "{} frame {}", b.camera_id, b.seq);
            assert!(db.bbox.iou(&da.bbox) > 0.99, "{} frame {}: {db:?} / {da:?}", b.camera_id, b.seq);
            assert!((db.score - da.score).abs() < 0.01, "{} frame {}: {db:?} / {da:?}", b.camera_id, b.seq);
        }
    }
}

/// A batch that does not fill runs when `max_wait` has passed since its first
/// frame, not before, and not never (the input stays open).
#[test]
fn a_batch_that_does_not_fill_runs_after_max_wait() {
    let max_wait = Duration::from_millis(400);
    let cams = cameras();
    let frames = frames_of(&cams[..1], 1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let (tx, rx) = channel("frames", 4, FullPolicy::Block);
        let (out_tx, mut out_rx) = channel("detections", 4, FullPolicy::Block);
        let opts = StageOptions { max_batch: 4, max_wait, workers: 1, shed_stale_after: None };
        let det = cached_model("yolo11n_det_u8_batch.onnx");
        let stage = tokio::spawn(DetectStage::with_options(det, StageMeter::new("detect"), opts).run(rx, out_tx));
        let sent = std::time::Instant::now();
        tx.publish(frames[0].clone()).await.unwrap();
        let out = tokio::time::timeout(Duration::from_secs(30), out_rx.next()).await.expect("no output").unwrap();
        let took = sent.elapsed();
        assert_eq!((&*out.camera_id, out.seq), ("cam-0", 0));
        assert!(took >= max_wait, "ran after {took:?}, before max_wait");
        assert!(took < max_wait + Duration::from_secs(10), "ran after {took:?}");
        drop(tx);
        let (_, report) = stage.await.unwrap().unwrap();
        assert_eq!(report.runs, 1);
    });
}

/// Several runs of the model at once (`detector.streams`, the default on a
/// CPU with more than one core): each takes the next frame when free and they
/// finish out of order, yet every frame comes out in input order — bad ones
/// told in their place — with the detections it gets from a single run.
#[test]
fn several_runs_at_once_keep_the_input_order_and_each_frame_s_detections() {
    let path = streetscope_detect::runtime::cache_dir().join("models/yolo11n_det_u8.onnx");
    let runs = Detector::load_streams(&path, DetectorOptions { streams: 3, ..DetectorOptions::default() }).unwrap();
    assert_eq!(runs.len(), 3, "streams = 3 on {}", runs[0].provider().name());
    let cams = cameras();
    let mut frames = frames_of(&cams, 4);
    frames.insert(3, frame("cam-9", 0, vec![1, 2, 3], FrameEncoding::Jpeg)); // not a JPEG
    frames.insert(10, frame("cam-9", 1, vec![0; 10], FrameEncoding::Rgb8)); // wrong size
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let recorder = Recorder::default();
    let (mut out, report) = rt.block_on(async {
        let (tx, rx) = channel("frames", frames.len(), FullPolicy::Block);
        let (out_tx, mut out_rx) = channel("detections", frames.len(), FullPolicy::Block);
        for f in frames.clone() {
            tx.publish_blocking(f).unwrap();
        }
        drop(tx);
        let opts = StageOptions { workers: 2, ..StageOptions::default() };
        let stage = DetectStage::with_streams(runs, StageMeter::new("detect"), opts);
        let (back, report) = stage.run(rx, out_tx).await.unwrap();
        assert_eq!(back.len(), 3, "every run is given back");
        let mut out = Vec::new();
        while let Some(d) = out_rx.next().await {
            out.push(d);
        }
        (out, report)
    });
    assert_eq!(report.runs, 16, "{report:?}");
    assert_eq!(report.failed, 2, "{report:?}");
    // Told in order, the bad frames in their places.
    let told = {
        let (tx, rx) = channel("frames", frames.len(), FullPolicy::Block);
        for f in frames.clone() {
            tx.publish_blocking(f).unwrap();
        }
        drop(tx);
        let runs = Detector::load_streams(&path, DetectorOptions { streams: 2, ..DetectorOptions::default() }).unwrap();
        rt.block_on(
            DetectStage::with_streams(runs, StageMeter::new("detect"), StageOptions::default()).run(rx, &recorder),
        )
        .unwrap();
        recorder.0.into_inner().unwrap()
    };
    let expected: Vec<(String, u64, bool)> =
        frames.iter().map(|f| (f.camera_id.to_string(), f.seq, &*f.camera_id != "cam-9")).collect();
    assert_eq!(told, expected);
    // The same detections as one run alone.
    let (alone, _) = run_on(cached_model("yolo11n_det_u8.onnx"), frames, StageOptions::default());
    assert_eq!(out.len(), 16);
    assert_eq!(out.len(), alone.len());
    for (b, a) in out.drain(..).zip(&alone) {
        assert_eq!((&b.camera_id, b.seq), (&a.camera_id, a.seq), "input order");
        assert_eq!(b.detections.len(), a.detections.len(), "{} frame {}: {b:?} / {a:?}", b.camera_id, b.seq);
        for (db, da) in b.detections.iter().zip(&a.detections) {
            assert_eq!(db.class_id, da.class_id, "{} frame {}", b.camera_id, b.seq);
            assert!(db.bbox.iou(&da.bbox) > 0.99, "{} frame {}: {db:?} / {da:?}", b.camera_id, b.seq);
        }
    }
}
