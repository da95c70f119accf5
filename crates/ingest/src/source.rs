//! One camera's pipeline: source → decode → timestamp sampling → letterbox → frames.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use streetscope_contracts::config::{redact_url, RtspTransport};
use streetscope_contracts::{CaptureClock, Frame, FrameEncoding, Letterbox};

use crate::sampler::Sampler;
use crate::{template, IngestError};

/// What ingest needs to know about one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSource {
    pub camera_id: String,
    pub intersection_id: String,
    /// A file path or a URL (`file://`, `rtsp://`, `http(s)://` MJPEG,
    /// `v4l2:///dev/videoN`).
    pub source: String,
    pub sample_fps: f64,
    /// Model input width and height: the size frames are letterboxed to.
    pub width: u32,
    pub height: u32,
    /// No decoded frame for this long (from the start, or since the last one) and
    /// the camera is torn down with an error: a source that stalls never hangs ingest
    /// (and the [supervisor](crate::supervisor) restarts a live one).
    pub stall_timeout: Duration,
    /// Decode keyframes only: buffers that are not keyframes are dropped before
    /// the decoder. For sampling rates at or below the camera's keyframe rate,
    /// this saves most of the decoding.
    pub keyframes_only: bool,
    /// JPEG quality (1-100) to encode frames with; `None` hands over raw RGB
    /// (in one process, where nothing is gained by compressing).
    pub jpeg_quality: Option<u8>,
    /// The transport of an RTSP source's media.
    pub rtsp_transport: RtspTransport,
    /// An operator's template file replacing the built-in template of the
    /// source's kind ([`template::load`] checks it).
    pub template: Option<PathBuf>,
}

/// Where a camera's frames go. Called on GStreamer's streaming thread; it may
/// block (back-pressure) or drop. Returns `false` when downstream is gone and the
/// camera should stop.
pub trait FrameSink: Send + Sync + 'static {
    fn push(&self, frame: Frame) -> bool;
}

impl<F: Fn(Frame) -> bool + Send + Sync + 'static> FrameSink for F {
    fn push(&self, frame: Frame) -> bool {
        self(frame)
    }
}

/// Asks running cameras to stop (Ctrl-C, or the pipeline shutting down).
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a camera's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraReport {
    pub camera_id: String,
    /// Decoded frames that reached the sampler.
    pub decoded: u64,
    /// Sampled frames handed to the sink.
    pub frames: u64,
    /// Whether the run ended because a stop was asked (rather than end of stream).
    pub stopped: bool,
}

/// How the reason of an [`IngestError::Source`] starts when no GStreamer source
/// handles the URL's scheme: a configuration error that no retry fixes.
pub const UNSUPPORTED_SCHEME: &str = "unsupported URL scheme";

/// The GStreamer URI of a source: paths become `file://` URIs, checked to exist;
/// URLs must have a scheme that an installed GStreamer source element handles.
pub fn source_uri(camera: &str, source: &str) -> Result<String, IngestError> {
    if let Some((scheme, _)) = source.split_once("://") {
        let bad =
            |reason: String| IngestError::Source { camera: camera.into(), source_url: redact_url(source), reason };
        if source.contains('"') {
            return Err(bad("the URL contains a double quote".into()));
        }
        crate::init()?;
        if scheme.eq_ignore_ascii_case("v4l2") {
            let device = v4l2_device(source);
            if !Path::new(device).exists() {
                return Err(bad(format!(
                    "no such device {device}: check that the camera is plugged in and the path is right"
                )));
            }
            return Ok(source.to_owned());
        }
        if !scheme_supported(scheme) {
            return Err(bad(format!(
                "{UNSUPPORTED_SCHEME} {scheme:?}: no installed GStreamer source handles it \
                 (use rtsp://, http(s):// or file://, or a file path)"
            )));
        }
        return Ok(source.to_owned());
    }
    let path = Path::new(source);
    let abs = path.canonicalize().map_err(|e| IngestError::Source {
        camera: camera.into(),
        source_url: source.into(),
        reason: format!("cannot open the file: {e}"),
    })?;
    if !abs.is_file() {
        return Err(IngestError::Source {
            camera: camera.into(),
            source_url: source.into(),
            reason: "not a regular file".into(),
        });
    }
    gst::glib::filename_to_uri(&abs, None).map(|u| u.to_string()).map_err(|e| IngestError::Source {
        camera: camera.into(),
        source_url: source.into(),
        reason: format!("cannot make a URI of the path: {e}"),
    })
}

/// The device of a `v4l2://` URL: `v4l2:///dev/video2` is `/dev/video2`;
/// `v4l2://` alone is `/dev/video0`.
pub fn v4l2_device(source: &str) -> &str {
    match source.split_once("://").map(|(_, rest)| rest) {
        Some("") | None => "/dev/video0",
        Some(rest) => rest,
    }
}

/// The `protocols` of rtspsrc for a transport.
fn rtsp_protocols(t: RtspTransport) -> &'static str {
    match t {
        RtspTransport::Auto => "tcp+udp+udp-mcast",
        RtspTransport::Tcp => "tcp",
        RtspTransport::Udp => "udp",
    }
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_TO_UNIX_S: u64 = 2_208_988_800;

/// The capture time that the camera stamped on a buffer (RTSP: NTP time from
/// the RTCP sender reports, attached by rtpjitterbuffer), in Unix milliseconds.
fn camera_ntp_ms(buffer: &gst::BufferRef) -> Option<i64> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|m| m.reference().structure(0).is_some_and(|s| s.has_name("timestamp/x-ntp")))
        .and_then(|m| m.timestamp().nseconds().checked_sub(NTP_TO_UNIX_S * 1_000_000_000))
        .map(|ns| (ns / 1_000_000) as i64)
}

/// Whether an installed GStreamer source element reads URIs of `scheme`.
fn scheme_supported(scheme: &str) -> bool {
    let scheme = scheme.to_ascii_lowercase();
    gst::ElementFactory::factories_with_type(gst::ElementFactoryType::SRC, gst::Rank::NONE)
        .iter()
        .filter(|f| f.uri_type() == gst::URIType::Src)
        .any(|f| f.uri_protocols().iter().any(|p| p.eq_ignore_ascii_case(&scheme)))
}

/// Runs one camera until its stream ends, it fails, or `stop` is asked. Blocks
/// the calling thread; frames are pushed to `sink` from GStreamer's thread.
/// Frames are numbered from 0; see [`run_camera_from`] to continue a sequence.
pub fn run_camera(cam: &CameraSource, sink: impl FrameSink, stop: &StopHandle) -> Result<CameraReport, IngestError> {
    run_camera_from(cam, 0, sink, stop)
}

/// [`run_camera`], numbering the frames from `first_seq`: a camera that is
/// reconnected continues its sequence where the last run stopped, so sequence
/// numbers stay monotonic across reconnects. The report counts this run only.
pub fn run_camera_from(
    cam: &CameraSource,
    first_seq: u64,
    sink: impl FrameSink,
    stop: &StopHandle,
) -> Result<CameraReport, IngestError> {
    crate::init()?;
    let uri = source_uri(&cam.camera_id, &cam.source)?;
    let is_file = uri.starts_with("file://");
    let redacted = redact_url(&cam.source);
    let src_err =
        |reason: String| IngestError::Source { camera: cam.camera_id.clone(), source_url: redacted.clone(), reason };

    let text = match &cam.template {
        Some(path) => std::borrow::Cow::Owned(
            template::load(path).map_err(|reason| IngestError::Pipeline { camera: cam.camera_id.clone(), reason })?,
        ),
        None => std::borrow::Cow::Borrowed(template::for_source(&uri)),
    };
    let device = if uri.to_ascii_lowercase().starts_with("v4l2://") { v4l2_device(&uri) } else { "" };
    let mut vars = vec![
        ("uri", uri.clone()),
        ("device", device.to_owned()),
        ("protocols", rtsp_protocols(cam.rtsp_transport).to_owned()),
    ];
    vars.extend(template::frame_vars(cam.width, cam.height, cam.jpeg_quality));
    let desc = template::render(&text, &vars);
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| IngestError::Pipeline {
            camera: cam.camera_id.clone(),
            reason: redact_in_text(&e.to_string(), &uri),
        })?
        .downcast::<gst::Pipeline>()
        .map_err(|_| IngestError::Pipeline { camera: cam.camera_id.clone(), reason: "not a pipeline".into() })?;
    let letterbox = pipeline.by_name("letterbox").ok_or_else(|| IngestError::Pipeline {
        camera: cam.camera_id.clone(),
        reason: "the template has no element named `letterbox`".into(),
    })?;
    let appsink = pipeline.by_name("sink").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).ok_or_else(|| {
        IngestError::Pipeline {
            camera: cam.camera_id.clone(),
            reason: "the template has no appsink named `sink`".into(),
        }
    })?;

    if cam.keyframes_only {
        drop_delta_units_before_the_decoder(&pipeline);
    }

    // Sampling: drop frames that are not due before they are scaled.
    let decoded = Arc::new(AtomicU64::new(0));
    // Milliseconds since `epoch` of the last decoded frame: the stall watchdog's clock.
    let epoch = std::time::Instant::now();
    let last_frame_ms = Arc::new(AtomicU64::new(0));
    let source_size: Arc<Mutex<Option<(u32, u32)>>> = Arc::default();
    // Camera capture times (NTP) of the last sampled frames, by stream position:
    // read before the converter, which need not keep metas.
    let ntp_times: Arc<Mutex<VecDeque<(u64, i64)>>> = Arc::default();
    {
        let ntp_times = ntp_times.clone();
        let sinkpad = letterbox.static_pad("sink").ok_or_else(|| IngestError::Pipeline {
            camera: cam.camera_id.clone(),
            reason: "the element named `letterbox` has no sink pad".into(),
        })?;
        let sampler = Mutex::new(Sampler::new(cam.sample_fps));
        let decoded = decoded.clone();
        let source_size = source_size.clone();
        let last_frame_ms = last_frame_ms.clone();
        sinkpad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            decoded.fetch_add(1, Ordering::Relaxed);
            last_frame_ms.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            let pts = buffer.pts().map(|t| t.nseconds()).unwrap_or(0);
            if !sampler.lock().expect("poisoned").keep(pts) {
                // `Handled` consumes the buffer (gstreamer-rs unrefs it). `Drop`
                // makes GStreamer 1.22 unref it a second time through the
                // ghost pads of uridecodebin (a GStreamer-CRITICAL per frame).
                return gst::PadProbeReturn::Handled;
            }
            if let Some(info) = pad.current_caps().and_then(|c| gst_video::VideoInfo::from_caps(&c).ok()) {
                *source_size.lock().expect("poisoned") = Some((info.width(), info.height()));
            }
            if let Some(ms) = camera_ntp_ms(buffer) {
                let mut times = ntp_times.lock().expect("poisoned");
                if times.len() >= 8 {
                    times.pop_front();
                }
                times.push_back((pts, ms));
            }
            gst::PadProbeReturn::Ok
        });
    }

    // Frames out of the appsink.
    let frames = Arc::new(AtomicU64::new(0));
    let sink_gone = Arc::new(AtomicBool::new(false));
    // The appsink's callback reaches the sink through this slot: a pipeline
    // left behind by `tear_down` is cut off from it (and from the camera's
    // queue, whose end the pod waits for) by emptying the slot.
    let slot: Arc<Mutex<Option<Arc<dyn FrameSink>>>> = Arc::new(Mutex::new(Some(Arc::new(sink))));
    let stop_pipeline = || {
        if !tear_down(&pipeline, &cam.camera_id, TEARDOWN_LIMIT) {
            slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    };
    let started_ms = unix_ms(SystemTime::now());
    {
        let camera_id: Arc<str> = Arc::from(cam.camera_id.as_str());
        let intersection_id: Arc<str> = Arc::from(cam.intersection_id.as_str());
        let (w, h) = (cam.width, cam.height);
        let jpeg = cam.jpeg_quality.is_some();
        let frames = frames.clone();
        let sink_gone = sink_gone.clone();
        let slot = slot.clone();
        let last_frame_ms = last_frame_ms.clone();
        let ntp_times = ntp_times.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |appsink| {
                    let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                        return Err(gst::FlowError::Error);
                    };
                    let (payload, encoding) = if jpeg {
                        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                        (Arc::from(map.as_slice()), FrameEncoding::Jpeg)
                    } else {
                        let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::NotNegotiated)?;
                        (packed_rgb(buffer, &info).ok_or(gst::FlowError::Error)?, FrameEncoding::Rgb8)
                    };
                    let (sw, sh) = source_size.lock().expect("poisoned").unwrap_or((w, h));
                    let letterbox = Letterbox::fit(sw, sh, w, h);
                    if let Err(e) = check_frame_size(caps, &letterbox, encoding) {
                        gst::element_error!(appsink, gst::StreamError::Format, ("{}", e));
                        return Err(gst::FlowError::Error);
                    }
                    let pts_ns = buffer.pts().map(|t| t.nseconds()).unwrap_or(0);
                    let ntp = ntp_times.lock().expect("poisoned").iter().find(|(p, _)| *p == pts_ns).map(|(_, ms)| *ms);
                    let (capture_time_ms, clock) = match ntp {
                        Some(ms) => (ms, CaptureClock::CameraNtp),
                        None if is_file => (started_ms + (pts_ns / 1_000_000) as i64, CaptureClock::FileStart),
                        None => (unix_ms(SystemTime::now()), CaptureClock::Arrival),
                    };
                    let frame = Frame {
                        camera_id: camera_id.clone(),
                        intersection_id: intersection_id.clone(),
                        seq: first_seq + frames.fetch_add(1, Ordering::Relaxed),
                        pts_ns,
                        capture_time_ms,
                        clock,
                        letterbox,
                        encoding,
                        payload,
                    };
                    let sink = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let delivered = sink.is_some_and(|s| s.push(frame));
                    // Waiting for room downstream is not a stall of the source.
                    last_frame_ms.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    if delivered {
                        Ok(gst::FlowSuccess::Ok)
                    } else {
                        sink_gone.store(true, Ordering::SeqCst);
                        Err(gst::FlowError::Flushing)
                    }
                })
                .build(),
        );
    }

    let bus = pipeline.bus().expect("a pipeline has a bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The element that refused said why on the bus (a V4L2 device that is
        // not a camera, say).
        let why = bus
            .timed_pop_filtered(gst::ClockTime::from_mseconds(500), &[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(redact_in_text(&e.error().to_string(), &uri)),
                _ => None,
            })
            .unwrap_or_else(|| "see the log for GStreamer's reason".into());
        stop_pipeline();
        return Err(src_err(format!("the pipeline refused to start: {why}")));
    }
    let mut stopped = false;
    let mut stop_asked: Option<std::time::Instant> = None;
    let result = loop {
        if (stop.is_stopped() || sink_gone.load(Ordering::SeqCst)) && !stopped {
            stopped = true;
            if !is_file {
                // A live source has nothing worth draining, and rtspsrc ignores
                // the end-of-stream event: tear it down now.
                break Ok(());
            }
            stop_asked = Some(std::time::Instant::now());
            pipeline.send_event(gst::event::Eos::new());
        }
        // A source that ignores the end-of-stream we sent is torn down anyway.
        if stop_asked.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break Ok(());
        }
        let Some(msg) = bus
            .timed_pop_filtered(gst::ClockTime::from_mseconds(100), &[gst::MessageType::Error, gst::MessageType::Eos])
        else {
            let idle = epoch.elapsed().saturating_sub(Duration::from_millis(last_frame_ms.load(Ordering::Relaxed)));
            if idle > cam.stall_timeout && !stopped {
                break Err(src_err(format!(
                    "no video frame for {:.1} s (stall timeout): the source is stalled or not decodable",
                    idle.as_secs_f64()
                )));
            }
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(..) => break Ok(()),
            gst::MessageView::Error(err) => {
                if stopped {
                    break Ok(());
                }
                let from = err.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into());
                // GStreamer's text for a refused or dropped connection says nothing
                // of the network: say what an operator should check.
                let hint = match err.error().kind::<gst::ResourceError>() {
                    Some(gst::ResourceError::OpenRead | gst::ResourceError::OpenReadWrite) if !is_file => {
                        "; the camera refused or closed the connection: check that it is up and the host and port are right"
                    }
                    _ => "",
                };
                break Err(src_err(format!(
                    "{} (from element {from}){hint}",
                    redact_in_text(&err.error().to_string(), &uri)
                )));
            }
            _ => {}
        }
    };
    // Tearing down can take a moment for network sources; never hang here.
    stop_pipeline();
    result?;
    let report = CameraReport {
        camera_id: cam.camera_id.clone(),
        decoded: decoded.load(Ordering::Relaxed),
        frames: frames.load(Ordering::Relaxed),
        stopped,
    };
    if report.frames == 0 && !stopped {
        return Err(src_err("the stream ended without a single decodable video frame".into()));
    }
    Ok(report)
}

/// How long a camera's pipeline may take to stop before it is left behind.
pub const TEARDOWN_LIMIT: Duration = Duration::from_secs(10);

/// Stops `pipeline` (state NULL), waiting at most `limit`. A network source
/// can hang in its teardown (a server that never answers, a streaming thread
/// stuck in a socket); a camera whose old pipeline hangs must still end — a
/// recording's end-of-stream marker is sent only then — or reconnect, so the
/// pipeline is then left to stop on a thread of its own, and said so. Returns
/// whether it stopped within `limit`.
pub fn tear_down(pipeline: &gst::Pipeline, camera: &str, limit: Duration) -> bool {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let p = pipeline.clone();
    let spawned = std::thread::Builder::new().name(format!("teardown-{camera}")).spawn(move || {
        let _ = p.set_state(gst::State::Null);
        // This thread's reference goes before the answer, so that nothing
        // here outlives a pipeline that stopped in time.
        drop(p);
        let _ = done_tx.send(());
    });
    if spawned.is_err() {
        // No thread to spare: stop it here, as before.
        let _ = pipeline.set_state(gst::State::Null);
        return true;
    }
    let stopped = done_rx.recv_timeout(limit).is_ok();
    if !stopped {
        tracing::warn!(
            camera,
            "the camera's pipeline did not stop within {limit:?}; it is left to stop in the background and the camera goes on"
        );
    }
    stopped
}

/// Hands the memory that the allocator holds free back to the system. A
/// camera's pipeline frees ten to twenty MiB when it is torn down (its
/// decoder's frames, its queues, its threads' buffers), and glibc's malloc
/// keeps what it cannot return from the top of its heaps: without this an
/// ingest pod whose cameras reconnect grew by some 20 MiB in six minutes of the
/// soak test while its heap in use stayed under 28 MiB (heaptrack). Called
/// after each run of a camera; a no-op elsewhere than glibc.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists under its locks.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops every buffer that is not a keyframe on the sink pad of the video decoder
/// that `uridecodebin` plugs in (avdec_h264's `skip-frame` property has no effect
/// on GStreamer 1.22, so the buffers never reach it).
fn drop_delta_units_before_the_decoder(pipeline: &gst::Pipeline) {
    pipeline.connect_deep_element_added(|_, _, element| {
        let is_video_decoder =
            element.factory().is_some_and(|f| f.klass().contains("Decoder") && f.klass().contains("Video"));
        if !is_video_decoder {
            return;
        }
        if let Some(pad) = element.static_pad("sink") {
            pad.add_probe(gst::PadProbeType::BUFFER, |_, info| match &info.data {
                Some(gst::PadProbeData::Buffer(b)) if b.flags().contains(gst::BufferFlags::DELTA_UNIT) => {
                    // `Handled` consumes the buffer (see the sampler's probe).
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            });
        }
    });
}

/// Whether the pipeline's frames are what the frame contract says: RGB of the
/// letterbox's size, or JPEG of that size or of its picture alone (an
/// operator's template may write either). A template that scales to another
/// size would have every frame refused downstream; it is told here, once.
fn check_frame_size(caps: &gst::CapsRef, letterbox: &Letterbox, encoding: FrameEncoding) -> Result<(), String> {
    let s = caps.structure(0).ok_or("frames without caps")?;
    let (Ok(w), Ok(h)) = (s.get::<i32>("width"), s.get::<i32>("height")) else {
        return Err(format!("frames of no size ({s})"));
    };
    let size = (w.max(0) as u32, h.max(0) as u32);
    let letterboxed = (letterbox.dst_w, letterbox.dst_h);
    let picture = (letterbox.scaled_w, letterbox.scaled_h);
    match encoding {
        FrameEncoding::Rgb8 if size == letterboxed => Ok(()),
        FrameEncoding::Jpeg if size == letterboxed || size == picture => Ok(()),
        FrameEncoding::Rgb8 => Err(format!(
            "the pipeline's RGB frames are {w}x{h}, the letterbox is {}x{} (raw frames carry the whole letterbox: \
             borders=true)",
            letterboxed.0, letterboxed.1
        )),
        FrameEncoding::Jpeg => Err(format!(
            "the pipeline's JPEG frames are {w}x{h}: neither the letterbox ({}x{}) nor its picture ({}x{})",
            letterboxed.0, letterboxed.1, picture.0, picture.1
        )),
    }
}

/// Copies a video buffer into packed RGB (rows without padding).
fn packed_rgb(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Option<Arc<[u8]>> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).ok()?;
    let row = w * 3;
    if stride == row {
        return Some(Arc::from(&data[..row * h]));
    }
    let mut out = Vec::with_capacity(row * h);
    for y in 0..h {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Some(Arc::from(out))
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as i64
}

/// GStreamer error texts can quote the URI; never let a password through.
fn redact_in_text(text: &str, uri: &str) -> String {
    text.replace(uri, &redact_url(uri))
}
