//! Streetscope test clips: deterministic synthetic road scenes in which a real
//! vehicle photo moves along known paths, and the exact ground truth of which
//! vehicle crosses which counting line, in which direction, and when.
//!
//! The crate is pure: it draws frames into memory and computes the ground truth
//! analytically. Its only IO is loading the vehicle photo ([`Sprite::load_bus`])
//! and writing ground-truth JSON ([`write_truth_files`]). Encoding the frames to
//! video is the caller's job (the CLI's `streetscope clips generate` feeds
//! [`ClipRenderer::frame`] to a GStreamer H.264 writer).
//!
//! - [`sprite`]: the vehicle image, cropped from `bus.jpg`, scaled, and mirrored
//!   so that every vehicle drives front first.
//! - [`spec`]: clip and vehicle-path specifications, pixel geometry per frame,
//!   validation, and the built-in clips ([`builtin_clips`]).
//! - [`scene`]: the procedurally drawn, deterministic road background.
//! - [`render`]: [`ClipRenderer`], which composites the vehicles over the background.
//! - [`truth`]: [`GroundTruth`], computed from a [`ClipSpec`], and its JSON files.
//!
//! ```no_run
//! use streetscope_testclips::{builtin_clip, ClipRenderer, Sprite, ground_truth};
//!
//! let sprite = Sprite::load_bus(&streetscope_testclips::default_bus_image_path())?;
//! let spec = builtin_clip("one_bus").expect("built-in clip");
//! let renderer = ClipRenderer::new(&spec, &sprite);
//! for index in 0..spec.frame_count() {
//!     let frame: image::RgbImage = renderer.frame(index);
//!     // hand `frame` to an encoder ...
//! #   let _ = frame;
//! }
//! let truth = ground_truth(&spec);
//! println!("{}", truth.to_json());
//! # Ok::<(), streetscope_testclips::ClipError>(())
//! ```

use std::path::PathBuf;

pub mod render;
pub mod scene;
pub mod spec;
pub mod sprite;
pub mod truth;

pub use render::ClipRenderer;
pub use spec::{builtin_clip, builtin_clips, frame_count, ClipSpec, PixelRect, Travel, VehiclePath};
pub use sprite::{CropRect, Facing, Sprite};
pub use truth::{
    ground_truth, truth_file_name, write_truth_files, GroundTruth, TruthCount, TruthCrossing, TruthVehicle,
};

/// Environment variable that overrides where `bus.jpg` is looked for.
pub const BUS_IMAGE_ENV: &str = "STREETSCOPE_BUS_JPG";

/// Where the set-up script (`scripts/setup.sh`) leaves Ultralytics' `bus.jpg`:
/// `$STREETSCOPE_BUS_JPG` when set, else `assets/bus.jpg` in the cache folder
/// (`$STREETSCOPE_CACHE`, by default `~/.cache/streetscope`).
pub fn default_bus_image_path() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|p| !p.is_empty());
    if let Some(p) = var(BUS_IMAGE_ENV) {
        return PathBuf::from(p);
    }
    let cache = var("STREETSCOPE_CACHE").map_or_else(
        || var("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from).join(".cache/streetscope"),
        PathBuf::from,
    );
    cache.join("assets/bus.jpg")
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The vehicle photo could not be read or decoded.
    #[error("cannot load image {path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    /// The vehicle photo is smaller than the rectangle to crop from it.
    #[error("image {path} is {width}x{height}, too small to crop {crop_w}x{crop_h} at ({crop_x}, {crop_y})")]
    ImageTooSmall { path: PathBuf, width: u32, height: u32, crop_x: u32, crop_y: u32, crop_w: u32, crop_h: u32 },
    /// A clip specification breaks one of the rules that [`ClipSpec::validate`] checks.
    #[error("invalid clip {clip:?}: {reason}")]
    InvalidSpec { clip: String, reason: String },
    /// Writing a ground-truth file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Serialising ground truth failed.
    #[error("cannot serialise ground truth: {0}")]
    Json(#[from] serde_json::Error),
}
