//! The detector: one letterboxed frame in, detections in source pixels out.

use std::path::Path;
use std::sync::Arc;

use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::ArrayView4;
use ort::value::TensorRef;
use streetscope_contracts::config::{CudaConfig, DetectorConfig, OpenVinoConfig, Provider, TensorRtConfig};
use streetscope_contracts::{Detection, Frame, FrameDetections, FrameEncoding, Letterbox};

use crate::decode::{decode_anchors, decode_end_to_end};
use crate::model::{HeadKind, Model, ModelInfo, Precision};
use crate::nms::nms;
use crate::preprocess::rgb8_to_chw_f32;
use crate::DetectError;

/// Post-processing settings.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    /// Minimum class score.
    pub confidence: f32,
    /// NMS IoU threshold.
    pub iou: f32,
    /// Suppress across classes.
    pub class_agnostic: bool,
    /// At most this many detections per image.
    pub max_detections: usize,
    /// Runs of the model at once, each on its own session (0: on a CPU the
    /// cores this process may use, at most [`MAX_AUTO_STREAMS`]; on a GPU 1).
    /// [`Detector::load_streams`] loads them.
    pub streams: usize,
    /// Intra-op threads of ONNX Runtime in each run (0: the cores this process
    /// may use, see [`crate::cores`], divided among the runs).
    pub threads: usize,
    /// Whether ONNX Runtime's intra-op threads spin while waiting for work
    /// (`detector.intra_op_spinning`: off unless the detector has its cores to itself).
    pub intra_op_spinning: bool,
    /// ONNX Runtime's CPU memory arena (on by default in ONNX Runtime, off in ort).
    pub cpu_arena: bool,
    /// Class names replacing the model's.
    pub class_names: Option<Vec<String>>,
    /// Input `[width, height]` replacing the model's metadata.
    pub input_size: Option<[u32; 2]>,
    /// Execution providers in order of preference.
    pub providers: Vec<Provider>,
    pub tensorrt: TensorRtConfig,
    pub cuda: CudaConfig,
    pub openvino: OpenVinoConfig,
}

impl DetectorOptions {
    /// The options of a pipeline's `[detector]` section.
    pub fn from_config(cfg: &DetectorConfig) -> Self {
        Self {
            confidence: cfg.confidence,
            iou: cfg.iou,
            class_agnostic: cfg.class_agnostic_nms,
            max_detections: 300,
            streams: cfg.streams,
            threads: cfg.threads,
            intra_op_spinning: cfg.intra_op_spinning,
            cpu_arena: true,
            class_names: cfg.class_names.clone(),
            input_size: cfg.input_size,
            providers: cfg.providers.clone(),
            tensorrt: cfg.tensorrt.clone(),
            cuda: cfg.cuda.clone(),
            openvino: cfg.openvino.clone(),
        }
    }
}

/// At most this many runs of the model at once unless `streams` says more:
/// each holds the model's memory, and beyond 2 cores what more runs are worth
/// is not measured.
pub const MAX_AUTO_STREAMS: usize = 4;

impl DetectorOptions {
    /// Runs of the model at once when it runs on a CPU: `streams`, or when 0
    /// the cores this process may use (affinity capped by its cgroup CPU
    /// quota), at most [`MAX_AUTO_STREAMS`].
    pub fn cpu_streams(&self) -> usize {
        match self.streams {
            0 => crate::cores::available().cores.clamp(1, MAX_AUTO_STREAMS),
            n => n,
        }
    }

    /// The intra-op threads of a session that runs alone: `threads`, or when 0
    /// the cores this process may use.
    pub fn intra_threads(&self) -> usize {
        self.intra_threads_for(1)
    }

    /// The intra-op threads of each of `runs` sessions running at once:
    /// `threads`, or when 0 the cores this process may use divided among them
    /// (at least 1).
    pub fn intra_threads_for(&self, runs: usize) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            (crate::cores::available().cores / runs.max(1)).max(1)
        }
    }
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self::from_config(&DetectorConfig::default())
    }
}

/// Prepared images in the model's input layout, one after the other: planar
/// floats in [0, 1] for float models (`[3, h, w]` each; converted to fp16 at the
/// run for fp16 models), the letterboxed RGB bytes as decoded for uint8 models
/// (`[h, w, 3]` each).
#[derive(Debug, Clone, PartialEq)]
pub enum InputBuf {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

/// A borrowed [`InputBuf`]: what [`Detector::infer`] runs on.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
}

impl Default for InputBuf {
    fn default() -> Self {
        InputBuf::F32(Vec::new())
    }
}

impl InputBuf {
    pub fn as_input(&self) -> Input<'_> {
        match self {
            InputBuf::F32(v) => Input::F32(v),
            InputBuf::U8(v) => Input::U8(v),
        }
    }

    /// Empties it, keeping its kind and capacity.
    pub fn clear(&mut self) {
        match self {
            InputBuf::F32(v) => v.clear(),
            InputBuf::U8(v) => v.clear(),
        }
    }

    /// Appends `other`'s values; both must be of one kind.
    pub fn extend_from(&mut self, other: &InputBuf) {
        match (self, other) {
            (InputBuf::F32(a), InputBuf::F32(b)) => a.extend_from_slice(b),
            (InputBuf::U8(a), InputBuf::U8(b)) => a.extend_from_slice(b),
            _ => panic!("prepared images of different kinds in one batch"),
        }
    }
}

impl Input<'_> {
    /// Values (floats or bytes) it holds.
    pub fn len(&self) -> usize {
        match self {
            Input::F32(v) => v.len(),
            Input::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kind(&self) -> &'static str {
        match self {
            Input::F32(_) => "float32",
            Input::U8(_) => "uint8",
        }
    }
}

impl<'a> From<&'a [f32]> for Input<'a> {
    fn from(v: &'a [f32]) -> Self {
        Input::F32(v)
    }
}

impl<'a> From<&'a [u8]> for Input<'a> {
    fn from(v: &'a [u8]) -> Self {
        Input::U8(v)
    }
}

/// A model with its pre- and post-processing.
#[derive(Debug)]
pub struct Detector {
    model: Model,
    opts: DetectorOptions,
    names: Vec<Arc<str>>,
    input: InputBuf,
    input_f16: Vec<f16>,
}

impl Detector {
    /// Loads the model at `path`.
    pub fn load(path: &Path, opts: DetectorOptions) -> Result<Detector, DetectError> {
        Self::load_run(path, opts, 1)
    }

    /// Loads `path` as one of `runs` sessions that will run at once.
    fn load_run(path: &Path, opts: DetectorOptions, runs: usize) -> Result<Detector, DetectError> {
        let model = Model::load(path, &opts, runs)?;
        let names = model.info.names.iter().map(|n| Arc::from(n.as_str())).collect();
        let (h, w) = model.info.input_hw;
        let input = Preprocessor { width: w, height: h, precision: model.info.input_precision }.buffer();
        Ok(Detector { model, opts, names, input, input_f16: Vec::new() })
    }

    /// Loads the runs of the model that `opts` asks for ([`DetectorOptions::streams`]):
    /// one session each, all on the same provider. On a CPU (ONNX Runtime's CPU
    /// provider, OpenVINO's `CPU` device) [`DetectorOptions::cpu_streams`] of
    /// them; elsewhere `streams`, or 1 when it is 0 (a GPU takes several frames
    /// at once by batches).
    pub fn load_streams(path: &Path, opts: DetectorOptions) -> Result<Vec<Detector>, DetectError> {
        // Which provider takes the model is known once a session is made: the
        // first is made with a CPU run's share of the cores. On a GPU that share
        // is only ONNX Runtime's pool for operators no GPU provider takes (none
        // of a YOLO model's), so it is kept rather than loaded again.
        let cpu_streams = opts.cpu_streams();
        let first = Detector::load_run(path, opts.clone(), cpu_streams)?;
        let streams = match (first.runs_on_cpu(), opts.streams) {
            (true, _) => cpu_streams,
            (false, 0) => 1,
            (false, n) => n,
        };
        let mut all = Vec::with_capacity(streams);
        all.push(first);
        for _ in 1..streams {
            let next = Detector::load_run(path, opts.clone(), streams)?;
            if next.provider() != all[0].provider() {
                return Err(DetectError::Model {
                    path: path.display().to_string(),
                    reason: format!(
                        "run {} of {streams} loaded on {}, the first on {}",
                        all.len() + 1,
                        next.provider().name(),
                        all[0].provider().name()
                    ),
                });
            }
            all.push(next);
        }
        if streams > 1 {
            tracing::info!(
                model = %path.display(),
                intra_threads = opts.intra_threads_for(streams),
                "{streams} runs of the model at once on {}",
                all[0].provider().name()
            );
        }
        Ok(all)
    }

    /// Whether the model runs on the CPU's cores (ONNX Runtime's CPU provider,
    /// OpenVINO on its `CPU` device), not on a GPU.
    pub fn runs_on_cpu(&self) -> bool {
        match self.model.provider {
            Provider::Cpu => true,
            Provider::Openvino => self.opts.openvino.on_cpu(),
            Provider::Cuda | Provider::Tensorrt => false,
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.model.info
    }

    /// The execution provider running the model.
    pub fn provider(&self) -> Provider {
        self.model.provider
    }

    /// Runs the model once on a blank image, so that lazy initialisation (memory
    /// arenas, TensorRT engines) happens before the stage reports ready. Returns
    /// the seconds it took.
    pub fn warm_up(&mut self) -> Result<f64, DetectError> {
        let (w, h) = self.input_size();
        let started = std::time::Instant::now();
        let blank = vec![114u8; (w * h * 3) as usize];
        self.detect_rgb(&blank, &Letterbox::fit(w, h, w, h))?;
        let secs = started.elapsed().as_secs_f64();
        if self.model.provider == Provider::Tensorrt {
            // TensorRT builds (or loads from its cache) the engine on the first run.
            tracing::info!(model = %self.model.info.path, "TensorRT engine ready after {secs:.1} s (build or cache load)");
        }
        Ok(secs)
    }

    /// Model input `(width, height)`: the size ingest letterboxes frames to.
    pub fn input_size(&self) -> (u32, u32) {
        let (h, w) = self.model.info.input_hw;
        (w, h)
    }

    /// The frame-to-tensor converter of this model, for preprocessing workers.
    pub fn preprocessor(&self) -> Preprocessor {
        let (w, h) = self.input_size();
        Preprocessor { width: w, height: h, precision: self.model.info.input_precision }
    }

    /// Whether the model takes batches larger than one.
    pub fn dynamic_batch(&self) -> bool {
        self.model.info.dynamic_batch
    }

    /// Runs the model on one frame from ingest.
    pub fn detect_frame(&mut self, frame: &Frame) -> Result<FrameDetections, DetectError> {
        let mut input = std::mem::take(&mut self.input);
        let result = self
            .preprocessor()
            .prepare(frame, &mut input)
            .and_then(|()| self.infer(input.as_input(), std::slice::from_ref(&frame.letterbox)));
        self.input = input;
        let mut dets = result?;
        Ok(frame_detections(frame, dets.pop().unwrap_or_default()))
    }

    /// Runs the model on a letterboxed RGB8 image of the model's input size;
    /// boxes come back in the source image's pixels.
    pub fn detect_rgb(&mut self, rgb: &[u8], lb: &Letterbox) -> Result<Vec<Detection>, DetectError> {
        let (w, h) = self.input_size();
        if (lb.dst_w, lb.dst_h) != (w, h) || rgb.len() != (w * h * 3) as usize {
            return Err(DetectError::Inference(format!(
                "image is {}x{} ({} bytes); the model takes {w}x{h} RGB",
                lb.dst_w,
                lb.dst_h,
                rgb.len()
            )));
        }
        let lbs = std::slice::from_ref(lb);
        let result = match &mut self.input {
            // The model takes the bytes as they are.
            InputBuf::U8(_) => self.infer(Input::U8(rgb), lbs),
            InputBuf::F32(chw) => {
                let mut chw = std::mem::take(chw);
                rgb8_to_chw_f32(rgb, &mut chw);
                let result = self.infer(Input::F32(&chw), lbs);
                self.input = InputBuf::F32(chw);
                result
            }
        };
        Ok(result?.pop().unwrap_or_default())
    }

    /// Runs the model on `letterboxes.len()` prepared images (in the model's
    /// layout, see [`InputBuf`], one after the other in `batch`) and returns each
    /// image's detections in its source pixels. A model with a fixed batch of one
    /// runs them one at a time.
    pub fn infer(&mut self, batch: Input<'_>, letterboxes: &[Letterbox]) -> Result<Vec<Vec<Detection>>, DetectError> {
        let n = letterboxes.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let per_image = self.preprocessor().len();
        if batch.len() != n * per_image {
            return Err(DetectError::Inference(format!(
                "batch of {} values for {n} images of {per_image}",
                batch.len()
            )));
        }
        if n > 1 && !self.model.info.dynamic_batch {
            let mut all = Vec::with_capacity(n);
            for (i, lb) in letterboxes.iter().enumerate() {
                let one = match batch {
                    Input::F32(b) => Input::F32(&b[i * per_image..(i + 1) * per_image]),
                    Input::U8(b) => Input::U8(&b[i * per_image..(i + 1) * per_image]),
                };
                all.extend(self.infer(one, std::slice::from_ref(lb))?);
            }
            return Ok(all);
        }
        let info = &self.model.info;
        let ierr = |e: ort::Error| DetectError::Inference(e.to_string());
        let outputs = run_session(&mut self.model.session, info, &mut self.input_f16, batch, n)?;
        let out = &outputs[0];
        let (dims, data): (Vec<i64>, std::borrow::Cow<'_, [f32]>) = match out.try_extract_tensor::<f32>() {
            Ok((s, d)) => (s.to_vec(), d.into()),
            Err(_) => {
                let (s, d) = out.try_extract_tensor::<f16>().map_err(ierr)?;
                // The slice conversion uses the CPU's F16C instructions (8 at a time).
                let mut f = vec![0.0f32; d.len()];
                d.convert_to_f32_slice(&mut f);
                (s.to_vec(), f.into())
            }
        };
        if dims.first().copied() != Some(n as i64) || data.len() % n != 0 {
            return Err(DetectError::Inference(format!("output {dims:?} does not hold a batch of {n}")));
        }
        let nc = self.names.len();
        let per_out = data.len() / n;
        let opts = &self.opts;
        let names = &self.names;
        Ok(data
            .chunks_exact(per_out)
            .zip(letterboxes)
            .map(|(out, lb)| {
                let cands = match info.head {
                    HeadKind::EndToEnd => decode_end_to_end(out, nc, opts.confidence),
                    HeadKind::Detect | HeadKind::Segment { .. } => {
                        let channels = dims.get(1).copied().unwrap_or(0) as usize;
                        let cands = decode_anchors(out, channels, nc, opts.confidence);
                        nms(cands, opts.iou, opts.class_agnostic, opts.max_detections)
                    }
                };
                cands
                    .into_iter()
                    .take(opts.max_detections)
                    .map(|c| Detection {
                        class_id: c.class_id,
                        class_name: names[c.class_id as usize].clone(),
                        score: c.score,
                        bbox: lb.to_source(&c.bbox),
                    })
                    .collect()
            })
            .collect())
    }
}

impl Detector {
    /// Runs only the model on `n` prepared images, discarding the outputs: the
    /// bare ONNX Runtime cost that benchmarks compare the whole detector with.
    pub fn run_bare(&mut self, batch: Input<'_>, n: usize) -> Result<(), DetectError> {
        run_session(&mut self.model.session, &self.model.info, &mut self.input_f16, batch, n).map(drop)
    }
}

/// One `session.run` on a batch of `n` images in the model's layout, converting
/// to fp16 when the model takes it.
fn run_session<'s>(
    session: &'s mut ort::session::Session,
    info: &ModelInfo,
    f16_buf: &mut Vec<f16>,
    batch: Input<'_>,
    n: usize,
) -> Result<ort::session::SessionOutputs<'s>, DetectError> {
    let ierr = |e: ort::Error| DetectError::Inference(e.to_string());
    let (h, w) = info.input_hw;
    let shape = info.input_precision.shape(n, h as usize, w as usize);
    if batch.len() != shape.iter().product::<usize>() {
        return Err(DetectError::Inference(format!("batch of {} values for shape {shape:?}", batch.len())));
    }
    let input = info.input_name.as_str();
    match (info.input_precision, batch) {
        (Precision::F16, Input::F32(batch)) => {
            // One slice conversion (F16C, 8 values an instruction) rather than a
            // conversion per value: about 1 ms of a 60 ms run instead of several.
            f16_buf.resize(batch.len(), f16::ZERO);
            f16_buf.convert_from_f32_slice(batch);
            let view = ArrayView4::from_shape(shape, f16_buf.as_slice()).expect("sized above");
            session.run(ort::inputs![input => TensorRef::from_array_view(view).map_err(ierr)?]).map_err(ierr)
        }
        (Precision::F32, Input::F32(batch)) => {
            let view = ArrayView4::from_shape(shape, batch).expect("sized above");
            session.run(ort::inputs![input => TensorRef::from_array_view(view).map_err(ierr)?]).map_err(ierr)
        }
        (Precision::U8, Input::U8(batch)) => {
            let view = ArrayView4::from_shape(shape, batch).expect("sized above");
            session.run(ort::inputs![input => TensorRef::from_array_view(view).map_err(ierr)?]).map_err(ierr)
        }
        (p, b) => Err(DetectError::Inference(format!(
            "the model takes {}; the images were prepared as {}",
            p.layout(),
            b.kind()
        ))),
    }
}

/// The detections of `frame` as the stage's output record.
pub fn frame_detections(frame: &Frame, detections: Vec<Detection>) -> FrameDetections {
    FrameDetections {
        camera_id: frame.camera_id.clone(),
        intersection_id: frame.intersection_id.clone(),
        seq: frame.seq,
        pts_ns: frame.pts_ns,
        capture_time_ms: frame.capture_time_ms,
        width: frame.letterbox.src_w,
        height: frame.letterbox.src_h,
        detections,
    }
}

/// Turns frames into the model's input layout. Cheap to clone; one per
/// preprocessing worker.
#[derive(Debug, Clone, Copy)]
pub struct Preprocessor {
    pub width: u32,
    pub height: u32,
    /// The model's input type, which says the layout ([`Precision`]).
    pub precision: Precision,
}

impl Preprocessor {
    /// Values (floats or bytes) of one prepared image.
    pub fn len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    /// Whether the model input is empty (never, for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A buffer for `n` prepared images.
    pub fn buffer_for(&self, n: usize) -> InputBuf {
        match self.precision {
            Precision::U8 => InputBuf::U8(vec![0; n * self.len()]),
            Precision::F32 | Precision::F16 => InputBuf::F32(vec![0.0; n * self.len()]),
        }
    }

    /// A buffer for one prepared image.
    pub fn buffer(&self) -> InputBuf {
        self.buffer_for(1)
    }

    /// Decodes `frame` (RGB8 or JPEG, letterboxed to the model's size, a JPEG
    /// perhaps its picture alone) into
    /// `out` (a [`Self::buffer`]) in the model's layout.
    pub fn prepare(&self, frame: &Frame, out: &mut InputBuf) -> Result<(), DetectError> {
        self.prepare_nth(frame, out, 0)
    }

    /// [`Self::prepare`] into the `i`-th image of a buffer of several
    /// ([`Self::buffer_for`]).
    pub fn prepare_nth(&self, frame: &Frame, out: &mut InputBuf, i: usize) -> Result<(), DetectError> {
        let ferr = |reason: String| DetectError::Frame { camera: frame.camera_id.to_string(), seq: frame.seq, reason };
        let (w, h) = (self.width, self.height);
        if (frame.letterbox.dst_w, frame.letterbox.dst_h) != (w, h) {
            return Err(ferr(format!(
                "frame is letterboxed to {}x{}, the model takes {w}x{h}",
                frame.letterbox.dst_w, frame.letterbox.dst_h
            )));
        }
        let len = self.len();
        if frame.encoding == FrameEncoding::Rgb8 && frame.payload.len() != len {
            return Err(ferr(format!("RGB payload of {} bytes, expected {len}", frame.payload.len())));
        }
        let range = i * len..(i + 1) * len;
        match out {
            // The model takes the letterboxed bytes: a JPEG is decoded straight into the tensor.
            InputBuf::U8(v) => {
                let dst = v.get_mut(range).expect("a buffer from Preprocessor::buffer_for");
                match frame.encoding {
                    FrameEncoding::Rgb8 => dst.copy_from_slice(&frame.payload),
                    FrameEncoding::Jpeg => decode_jpeg(&frame.payload, &frame.letterbox, dst).map_err(ferr)?,
                }
            }
            InputBuf::F32(v) => {
                let dst = v.get_mut(range).expect("a buffer from Preprocessor::buffer_for");
                match frame.encoding {
                    FrameEncoding::Rgb8 => rgb8_to_chw_f32(&frame.payload, dst),
                    FrameEncoding::Jpeg => LETTERBOX_SCRATCH.with(|scratch| {
                        let mut rgb = scratch.borrow_mut();
                        rgb.resize(len, 0);
                        decode_jpeg(&frame.payload, &frame.letterbox, &mut rgb).map_err(ferr)?;
                        rgb8_to_chw_f32(&rgb, dst);
                        Ok::<(), DetectError>(())
                    })?,
                }
            }
        }
        Ok(())
    }
}

thread_local! {
    /// Each preprocessing worker's decoded letterbox, for float models, and
    /// decoded picture, for pictures whose rows are not the letterbox's
    /// (reused: no allocation per frame).
    static LETTERBOX_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static PICTURE_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decodes a frame's JPEG into `dst`, its letterbox as packed RGB8
/// (`dst_w * dst_h * 3` bytes). The JPEG is the whole letterbox, or its
/// picture alone (ingest's built-in templates), which is put in its place
/// between black bars, as the letterbox element draws them: a landscape
/// picture is decoded straight into its rows, any other through a scratch
/// buffer.
fn decode_jpeg(payload: &[u8], lb: &Letterbox, dst: &mut [u8]) -> Result<(), String> {
    let bad = |e: image::ImageError| format!("JPEG payload does not decode: {e}");
    let decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(payload)).map_err(bad)?;
    let (jw, jh) = image::ImageDecoder::dimensions(&decoder);
    let (w, h) = (lb.dst_w, lb.dst_h);
    if (jw, jh) == (w, h) {
        return read_rgb(decoder, dst);
    }
    let fits =
        u64::from(lb.pad_x) + u64::from(jw) <= u64::from(w) && u64::from(lb.pad_y) + u64::from(jh) <= u64::from(h);
    if (jw, jh) != (lb.scaled_w, lb.scaled_h) || !fits {
        return Err(format!(
            "JPEG is {jw}x{jh}: neither the letterbox ({w}x{h}) nor its picture ({}x{})",
            lb.scaled_w, lb.scaled_h
        ));
    }
    let row = w as usize * 3;
    let (top, rows) = (lb.pad_y as usize * row, jh as usize * row);
    if jw == w {
        read_rgb(decoder, &mut dst[top..top + rows])?;
    } else {
        PICTURE_SCRATCH.with(|scratch| {
            let mut picture = scratch.borrow_mut();
            let line = jw as usize * 3;
            picture.resize(line * jh as usize, 0);
            read_rgb(decoder, &mut picture)?;
            let left = lb.pad_x as usize * 3;
            for (i, src) in picture.chunks_exact(line).enumerate() {
                dst[top + i * row + left..][..line].copy_from_slice(src);
            }
            Ok::<(), String>(())
        })?;
    }
    // The bars.
    dst[..top].fill(0);
    dst[top + rows..].fill(0);
    if jw != w {
        let (left, right) = (lb.pad_x as usize * 3, (lb.pad_x + jw) as usize * 3);
        for line in dst[top..top + rows].chunks_exact_mut(row) {
            line[..left].fill(0);
            line[right..].fill(0);
        }
    }
    Ok(())
}

/// Reads a decoder's whole image into `dst` as packed RGB8 (`dst` is its size).
fn read_rgb(decoder: image::codecs::jpeg::JpegDecoder<std::io::Cursor<&[u8]>>, dst: &mut [u8]) -> Result<(), String> {
    use image::ImageDecoder;
    let bad = |e: image::ImageError| format!("JPEG payload does not decode: {e}");
    if decoder.color_type() == image::ColorType::Rgb8 {
        decoder.read_image(dst).map_err(bad)
    } else {
        // Greyscale (or another colour type): through an image, then RGB.
        let img = image::DynamicImage::from_decoder(decoder).map_err(bad)?.into_rgb8();
        dst.copy_from_slice(img.as_raw());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streetscope_contracts::CaptureClock;

    fn jpeg_of(w: u32, h: u32) -> (Vec<u8>, Vec<u8>) {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap().into_rgb8().into_raw();
        (jpeg, decoded)
    }

    fn frame(lb: Letterbox, payload: Vec<u8>) -> Frame {
        Frame {
            camera_id: "cam".into(),
            intersection_id: "x".into(),
            seq: 3,
            pts_ns: 0,
            capture_time_ms: 0,
            clock: CaptureClock::FileStart,
            letterbox: lb,
            encoding: FrameEncoding::Jpeg,
            payload: payload.into(),
        }
    }

    /// The letterbox of a decoded picture: black bars, the picture in place.
    fn letterboxed(lb: &Letterbox, picture: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; (lb.dst_w * lb.dst_h * 3) as usize];
        let line = lb.scaled_w as usize * 3;
        for (i, src) in picture.chunks_exact(line).enumerate() {
            let at = ((lb.pad_y as usize + i) * lb.dst_w as usize + lb.pad_x as usize) * 3;
            out[at..at + line].copy_from_slice(src);
        }
        out
    }

    #[test]
    fn a_jpeg_of_the_picture_alone_is_put_in_its_letterbox_between_black_bars() {
        let u8_pre = Preprocessor { width: 64, height: 64, precision: Precision::U8 };
        let f32_pre = Preprocessor { precision: Precision::F32, ..u8_pre };
        // Landscape (rows contiguous), portrait (through the scratch), odd sizes, no bars.
        for (src_w, src_h) in [(128, 72), (72, 128), (704, 576), (33, 99), (64, 64)] {
            let lb = Letterbox::fit(src_w, src_h, 64, 64);
            let (jpeg, picture) = jpeg_of(lb.scaled_w, lb.scaled_h);
            let want = letterboxed(&lb, &picture);
            // A reused buffer: whatever the last frame left there is overwritten.
            let mut buf = InputBuf::U8(vec![7; u8_pre.len() * 2]);
            u8_pre.prepare_nth(&frame(lb, jpeg.clone()), &mut buf, 1).unwrap();
            let InputBuf::U8(got) = &buf else { unreachable!() };
            assert!(got[..u8_pre.len()].iter().all(|&b| b == 7), "{src_w}x{src_h}: another image's place");
            assert!(got[u8_pre.len()..] == want[..], "{src_w}x{src_h}");
            let mut floats = f32_pre.buffer();
            f32_pre.prepare(&frame(lb, jpeg), &mut floats).unwrap();
            let mut chw = vec![0f32; want.len()];
            rgb8_to_chw_f32(&want, &mut chw);
            assert_eq!(floats, InputBuf::F32(chw), "{src_w}x{src_h}, float model");
        }
        // The whole letterbox as a JPEG still works (operators' templates, older ingest pods).
        let lb = Letterbox::fit(128, 72, 64, 64);
        let (jpeg, whole) = jpeg_of(64, 64);
        let mut buf = u8_pre.buffer();
        u8_pre.prepare(&frame(lb, jpeg), &mut buf).unwrap();
        assert_eq!(buf, InputBuf::U8(whole));
    }

    #[test]
    fn runs_at_once_share_the_cores_unless_told_otherwise() {
        let cores = crate::cores::available().cores;
        let auto = DetectorOptions::default();
        assert_eq!(auto.cpu_streams(), cores.clamp(1, MAX_AUTO_STREAMS));
        assert_eq!(auto.intra_threads(), cores, "a session alone has all the cores");
        assert_eq!(auto.intra_threads_for(auto.cpu_streams()), (cores / auto.cpu_streams()).max(1));
        assert_eq!(auto.intra_threads_for(cores * 2), 1, "at least one thread each");
        let told = DetectorOptions { streams: 6, threads: 3, ..DetectorOptions::default() };
        assert_eq!(told.cpu_streams(), 6, "streams as configured, above the automatic cap");
        assert_eq!((told.intra_threads(), told.intra_threads_for(6)), (3, 3), "threads as configured");
    }

    #[test]
    fn a_jpeg_of_another_size_is_refused_naming_both_sizes_it_could_have() {
        let pre = Preprocessor { width: 64, height: 64, precision: Precision::U8 };
        let lb = Letterbox::fit(128, 72, 64, 64);
        let (jpeg, _) = jpeg_of(64, 30);
        let e = pre.prepare(&frame(lb, jpeg), &mut pre.buffer()).unwrap_err().to_string();
        assert!(e.contains("JPEG is 64x30: neither the letterbox (64x64) nor its picture (64x36)"), "{e}");
        assert!(e.contains("cam") && e.contains('3'), "names the frame: {e}");
        // A letterbox whose picture would not fit in it (a forged record).
        let forged = Letterbox { pad_y: 40, ..lb };
        let (jpeg, _) = jpeg_of(64, 36);
        let e = pre.prepare(&frame(forged, jpeg), &mut pre.buffer()).unwrap_err().to_string();
        assert!(e.contains("neither the letterbox"), "{e}");
    }
}
