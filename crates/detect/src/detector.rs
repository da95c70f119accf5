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
    /// Intra-op threads of ONNX Runtime (0: the cores this process may use, see
    /// [`crate::cores`]).
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

impl DetectorOptions {
    /// The intra-op threads the session gets: `threads`, or when 0 the cores this
    /// process may use (affinity capped by its cgroup CPU quota).
    pub fn intra_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            crate::cores::available().cores
        }
    }
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self::from_config(&DetectorConfig::default())
    }
}

/// A model with its pre- and post-processing.
#[derive(Debug)]
pub struct Detector {
    model: Model,
    opts: DetectorOptions,
    names: Vec<Arc<str>>,
    input: Vec<f32>,
    input_f16: Vec<f16>,
}

impl Detector {
    /// Loads the model at `path`.
    pub fn load(path: &Path, opts: DetectorOptions) -> Result<Detector, DetectError> {
        let model = Model::load(path, &opts)?;
        let names = model.info.names.iter().map(|n| Arc::from(n.as_str())).collect();
        let (h, w) = model.info.input_hw;
        let len = 3 * h as usize * w as usize;
        Ok(Detector { model, opts, names, input: vec![0.0; len], input_f16: Vec::new() })
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
        Preprocessor { width: w, height: h }
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
            .and_then(|()| self.infer(&input, std::slice::from_ref(&frame.letterbox)));
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
        let mut input = std::mem::take(&mut self.input);
        rgb8_to_chw_f32(rgb, &mut input);
        let result = self.infer(&input, std::slice::from_ref(lb));
        self.input = input;
        Ok(result?.pop().unwrap_or_default())
    }

    /// Runs the model on `letterboxes.len()` prepared images (planar CHW floats,
    /// one after the other in `batch`) and returns each image's detections in its
    /// source pixels. A model with a fixed batch of one runs them one at a time.
    pub fn infer(&mut self, batch: &[f32], letterboxes: &[Letterbox]) -> Result<Vec<Vec<Detection>>, DetectError> {
        let n = letterboxes.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let (w, h) = self.input_size();
        let per_image = 3 * w as usize * h as usize;
        if batch.len() != n * per_image {
            return Err(DetectError::Inference(format!(
                "batch of {} floats for {n} images of {per_image}",
                batch.len()
            )));
        }
        if n > 1 && !self.model.info.dynamic_batch {
            let mut all = Vec::with_capacity(n);
            for (img, lb) in batch.chunks_exact(per_image).zip(letterboxes) {
                all.extend(self.infer(img, std::slice::from_ref(lb))?);
            }
            return Ok(all);
        }
        let shape = (n, 3, h as usize, w as usize);
        let info = &self.model.info;
        let ierr = |e: ort::Error| DetectError::Inference(e.to_string());
        let outputs = run_session(&mut self.model.session, info, &mut self.input_f16, batch, shape)?;
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
    pub fn run_bare(&mut self, batch: &[f32], n: usize) -> Result<(), DetectError> {
        let (w, h) = self.input_size();
        run_session(
            &mut self.model.session,
            &self.model.info,
            &mut self.input_f16,
            batch,
            (n, 3, h as usize, w as usize),
        )
        .map(drop)
    }
}

/// One `session.run` on a batch laid out `shape`, converting to fp16 when the
/// model takes it.
fn run_session<'s>(
    session: &'s mut ort::session::Session,
    info: &ModelInfo,
    f16_buf: &mut Vec<f16>,
    batch: &[f32],
    shape: (usize, usize, usize, usize),
) -> Result<ort::session::SessionOutputs<'s>, DetectError> {
    let ierr = |e: ort::Error| DetectError::Inference(e.to_string());
    if batch.len() != shape.0 * shape.1 * shape.2 * shape.3 {
        return Err(DetectError::Inference(format!("batch of {} floats for shape {shape:?}", batch.len())));
    }
    if info.input_precision == Precision::F16 {
        // One slice conversion (F16C, 8 values an instruction) rather than a
        // conversion per value: about 1 ms of a 60 ms run instead of several.
        f16_buf.resize(batch.len(), f16::ZERO);
        f16_buf.convert_from_f32_slice(batch);
        let view = ArrayView4::from_shape(shape, f16_buf.as_slice()).expect("sized above");
        let tensor = TensorRef::from_array_view(view).map_err(ierr)?;
        session.run(ort::inputs![info.input_name.as_str() => tensor]).map_err(ierr)
    } else {
        let view = ArrayView4::from_shape(shape, batch).expect("sized above");
        let tensor = TensorRef::from_array_view(view).map_err(ierr)?;
        session.run(ort::inputs![info.input_name.as_str() => tensor]).map_err(ierr)
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
}

impl Preprocessor {
    /// Floats of one prepared image.
    pub fn len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    /// Whether the model input is empty (never, for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes `frame` (RGB8 or JPEG, letterboxed to the model's size) into
    /// planar normalised floats in `out` (`self.len()` long).
    pub fn prepare(&self, frame: &Frame, out: &mut [f32]) -> Result<(), DetectError> {
        let ferr = |reason: String| DetectError::Frame { camera: frame.camera_id.to_string(), seq: frame.seq, reason };
        let (w, h) = (self.width, self.height);
        if (frame.letterbox.dst_w, frame.letterbox.dst_h) != (w, h) {
            return Err(ferr(format!(
                "frame is letterboxed to {}x{}, the model takes {w}x{h}",
                frame.letterbox.dst_w, frame.letterbox.dst_h
            )));
        }
        let expected = (w * h * 3) as usize;
        match frame.encoding {
            FrameEncoding::Rgb8 if frame.payload.len() == expected => rgb8_to_chw_f32(&frame.payload, out),
            FrameEncoding::Rgb8 => {
                return Err(ferr(format!("RGB payload of {} bytes, expected {expected}", frame.payload.len())))
            }
            FrameEncoding::Jpeg => {
                let img = image::load_from_memory_with_format(&frame.payload, image::ImageFormat::Jpeg)
                    .map_err(|e| ferr(format!("JPEG payload does not decode: {e}")))?
                    .into_rgb8();
                if img.dimensions() != (w, h) {
                    return Err(ferr(format!("JPEG is {}x{}, expected {w}x{h}", img.width(), img.height())));
                }
                rgb8_to_chw_f32(img.as_raw(), out);
            }
        }
        Ok(())
    }
}
