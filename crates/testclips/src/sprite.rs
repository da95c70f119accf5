//! The vehicle image that moves through a clip: an opaque RGB rectangle cropped
//! from a real photo, with scaled and mirrored variants. A sprite knows which
//! way its vehicle faces, so a clip can show every vehicle front first.
//!
//! Variants are made once per clip (see [`crate::ClipRenderer::new`]), never per
//! frame: scaling with a Lanczos filter is far slower than copying pixels.

use std::path::Path;

use image::{imageops, RgbImage};

use crate::{ClipError, Travel};

/// Which way the vehicle in a sprite faces (where its front is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Facing {
    /// Front on the left: drives right to left as drawn.
    Left,
    /// Front on the right: drives left to right as drawn.
    Right,
}

impl Facing {
    /// The other way.
    pub fn flipped(self) -> Facing {
        match self {
            Facing::Left => Facing::Right,
            Facing::Right => Facing::Left,
        }
    }

    /// The facing of a vehicle that travels `travel`, front first.
    pub fn of_travel(travel: Travel) -> Facing {
        match travel {
            Travel::LeftToRight => Facing::Right,
            Travel::RightToLeft => Facing::Left,
        }
    }
}

/// A rectangle of a source photo, in pixels: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// An RGB image of a vehicle, drawn opaque (the whole rectangle is pasted).
#[derive(Debug, Clone, PartialEq)]
pub struct Sprite {
    image: RgbImage,
    facing: Facing,
}

impl Sprite {
    /// The bus in Ultralytics' `bus.jpg` (810x1080): it fills this rectangle,
    /// with people standing in front of it, which is fine for a detector.
    pub const BUS_CROP: CropRect = CropRect { x: 10, y: 228, width: 795, height: 512 };

    /// Width over height of [`Sprite::BUS_CROP`]; built-in clips size their
    /// vehicles with it, so their ground truth does not depend on the photo.
    pub const BUS_ASPECT: f64 = 795.0 / 512.0;

    /// A sprite from an image already in memory (tests use synthetic ones).
    pub fn from_image(image: RgbImage, facing: Facing) -> Self {
        Self { image, facing }
    }

    /// Loads `bus.jpg` (see [`crate::default_bus_image_path`]) and crops the bus,
    /// [`Sprite::BUS_CROP`], from it. The bus faces left in the photo (its
    /// windscreen and destination sign are on the left).
    pub fn load_bus(path: &Path) -> Result<Sprite, ClipError> {
        Self::load_cropped(path, Self::BUS_CROP, Facing::Left)
    }

    /// Loads an image (JPEG or PNG) and crops `crop` from it; the vehicle in it
    /// faces `facing`.
    pub fn load_cropped(path: &Path, crop: CropRect, facing: Facing) -> Result<Sprite, ClipError> {
        let img = image::open(path).map_err(|source| ClipError::Image { path: path.to_owned(), source })?.to_rgb8();
        let fits = crop.x.checked_add(crop.width).is_some_and(|r| r <= img.width())
            && crop.y.checked_add(crop.height).is_some_and(|b| b <= img.height())
            && crop.width > 0
            && crop.height > 0;
        if !fits {
            return Err(ClipError::ImageTooSmall {
                path: path.to_owned(),
                width: img.width(),
                height: img.height(),
                crop_x: crop.x,
                crop_y: crop.y,
                crop_w: crop.width,
                crop_h: crop.height,
            });
        }
        let cropped = imageops::crop_imm(&img, crop.x, crop.y, crop.width, crop.height).to_image();
        Ok(Self { image: cropped, facing })
    }

    /// The pixels.
    pub fn image(&self) -> &RgbImage {
        &self.image
    }

    /// Which way the vehicle faces.
    pub fn facing(&self) -> Facing {
        self.facing
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.image.height()
    }

    /// Width over height.
    pub fn aspect(&self) -> f64 {
        f64::from(self.width()) / f64::from(self.height().max(1))
    }

    /// This sprite resized to exactly `width` x `height` (Lanczos3 when
    /// shrinking or enlarging; a copy when the size is unchanged).
    pub fn scaled(&self, width: u32, height: u32) -> Sprite {
        let (width, height) = (width.max(1), height.max(1));
        if (width, height) == self.image.dimensions() {
            return self.clone();
        }
        Self {
            image: imageops::resize(&self.image, width, height, imageops::FilterType::Lanczos3),
            facing: self.facing,
        }
    }

    /// This sprite mirrored left to right (a vehicle facing the other way).
    pub fn mirrored(&self) -> Sprite {
        Self { image: imageops::flip_horizontal(&self.image), facing: self.facing.flipped() }
    }

    /// This sprite scaled to `width` x `height` and, where needed, mirrored so
    /// that a vehicle travelling `travel` shows its front first.
    pub fn variant(&self, width: u32, height: u32, travel: Travel) -> Sprite {
        let scaled = self.scaled(width, height);
        if scaled.facing == Facing::of_travel(travel) {
            scaled
        } else {
            scaled.mirrored()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Sprite {
        Sprite::from_image(RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 200])), Facing::Right)
    }

    #[test]
    fn mirrored_swaps_columns() {
        let s = gradient(10, 4);
        let m = s.mirrored();
        assert_eq!(m.image().get_pixel(0, 2), s.image().get_pixel(9, 2));
        assert_eq!(m.facing(), Facing::Left);
        assert_eq!(m.mirrored(), s);
    }

    #[test]
    fn variants_face_their_travel() {
        let s = gradient(10, 4);
        assert_eq!(s.variant(10, 4, Travel::LeftToRight), s);
        assert_eq!(s.variant(10, 4, Travel::RightToLeft), s.mirrored());
        let left = s.mirrored();
        assert_eq!(left.variant(10, 4, Travel::RightToLeft), left);
        assert_eq!(left.variant(5, 2, Travel::LeftToRight).facing(), Facing::Right);
    }

    #[test]
    fn scaled_has_the_requested_size() {
        let s = gradient(100, 50).scaled(31, 17);
        assert_eq!(s.image().dimensions(), (31, 17));
        assert_eq!(gradient(8, 8).scaled(8, 8), gradient(8, 8));
    }

    #[test]
    fn load_bus_reports_a_missing_file() {
        let err = Sprite::load_bus(Path::new("/nonexistent/bus.jpg")).unwrap_err();
        assert!(matches!(err, ClipError::Image { .. }), "{err}");
    }
}
