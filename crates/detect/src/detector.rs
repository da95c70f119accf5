//! The detector: one letterboxed frame in, detections in source pixels out.

use std::path::Path;
use std::sync::Arc;

use half::f16;
use ndarray::ArrayView4;
use ort::value::TensorRef;
use streetscope_contracts::config::{CudaConfig, DetectorConfig, Provider, TensorRtConfig};
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
    /// Intra-op threads of ONNX Runtime (0: its choice).
    pub threads: usize,
    /// Class names replacing the model's.
    pub class_names: Option<Vec<String>>,
    /// Execution providers in order of preference.
    pub providers: Vec<Provider>,
    pub tensorrt: TensorRtConfig,
    pub cuda: CudaConfig,
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
            class_names: cfg.class_names.clone(),
            providers: cfg.providers.clone(),
            tensorrt: cfg.tensorrt.clone(),
            cuda: cfg.cuda.clone(),
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
        let input_f16 = if model.info.input_precision == Precision::F16 { vec![f16::ZERO; len] } else { Vec::new() };
        Ok(Detector { model, opts, names, input: vec![0.0; len], input_f16 })
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
        Ok(started.elapsed().as_secs_f64())
    }

    /// Model input `(width, height)`: the size ingest letterboxes frames to.
    pub fn input_size(&self) -> (u32, u32) {
        let (h, w) = self.model.info.input_hw;
        (w, h)
    }

    /// Runs the model on one frame from ingest.
    pub fn detect_frame(&mut self, frame: &Frame) -> Result<FrameDetections, DetectError> {
        let ferr = |reason: String| DetectError::Frame { camera: frame.camera_id.to_string(), seq: frame.seq, reason };
        if frame.encoding != FrameEncoding::Rgb8 {
            return Err(ferr(format!("encoding {:?} is not supported by this detector", frame.encoding)));
        }
        let detections = self.detect_rgb(&frame.payload, &frame.letterbox).map_err(|e| match e {
            DetectError::Inference(reason) => ferr(reason),
            other => other,
        })?;
        Ok(FrameDetections {
            camera_id: frame.camera_id.clone(),
            intersection_id: frame.intersection_id.clone(),
            seq: frame.seq,
            pts_ns: frame.pts_ns,
            capture_time_ms: frame.capture_time_ms,
            width: frame.letterbox.src_w,
            height: frame.letterbox.src_h,
            detections,
        })
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
        rgb8_to_chw_f32(rgb, &mut self.input);
        let shape = (1, 3, h as usize, w as usize);
        let info = &self.model.info;
        let ierr = |e: ort::Error| DetectError::Inference(e.to_string());
        let outputs = if info.input_precision == Precision::F16 {
            for (d, s) in self.input_f16.iter_mut().zip(&self.input) {
                *d = f16::from_f32(*s);
            }
            let view = ArrayView4::from_shape(shape, &self.input_f16).expect("buffer sized at load");
            let tensor = TensorRef::from_array_view(view).map_err(ierr)?;
            self.model.session.run(ort::inputs![info.input_name.as_str() => tensor]).map_err(ierr)?
        } else {
            let view = ArrayView4::from_shape(shape, &self.input).expect("buffer sized at load");
            let tensor = TensorRef::from_array_view(view).map_err(ierr)?;
            self.model.session.run(ort::inputs![info.input_name.as_str() => tensor]).map_err(ierr)?
        };
        let out = &outputs[0];
        let (dims, data): (Vec<i64>, std::borrow::Cow<'_, [f32]>) = match out.try_extract_tensor::<f32>() {
            Ok((s, d)) => (s.to_vec(), d.into()),
            Err(_) => {
                let (s, d) = out.try_extract_tensor::<f16>().map_err(ierr)?;
                (s.to_vec(), d.iter().map(|v| v.to_f32()).collect::<Vec<_>>().into())
            }
        };
        let nc = self.names.len();
        let cands = match info.head {
            HeadKind::EndToEnd => decode_end_to_end(&data, nc, self.opts.confidence),
            HeadKind::Detect | HeadKind::Segment { .. } => {
                let channels = dims.get(1).copied().unwrap_or(0) as usize;
                let cands = decode_anchors(&data, channels, nc, self.opts.confidence);
                nms(cands, self.opts.iou, self.opts.class_agnostic, self.opts.max_detections)
            }
        };
        Ok(cands
            .into_iter()
            .take(self.opts.max_detections)
            .map(|c| Detection {
                class_id: c.class_id,
                class_name: self.names[c.class_id as usize].clone(),
                score: c.score,
                bbox: lb.to_source(&c.bbox),
            })
            .collect())
    }
}
