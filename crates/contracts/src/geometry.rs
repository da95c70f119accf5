//! Boxes, normalised points and letterbox geometry.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A point in normalised image coordinates: `(0, 0)` is the top-left corner of
/// the source image and `(1, 1)` its bottom-right corner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NormPoint {
    pub x: f64,
    pub y: f64,
}

impl NormPoint {
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }
}

/// An axis-aligned box in pixels, corners `(x1, y1)` top-left and `(x2, y2)` bottom-right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// From centre, width and height (the layout of YOLO outputs).
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Intersection over union; 0 when either box is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let iw = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// The box clipped to `[0, w] x [0, h]`.
    pub fn clamp(&self, w: f32, h: f32) -> BBox {
        BBox::new(self.x1.clamp(0.0, w), self.y1.clamp(0.0, h), self.x2.clamp(0.0, w), self.y2.clamp(0.0, h))
    }

    /// Bottom-centre of the box in normalised coordinates of a `w` x `h` image:
    /// the point where a vehicle meets the road, used for line crossings.
    pub fn bottom_center_norm(&self, w: u32, h: u32) -> NormPoint {
        NormPoint::new(f64::from((self.x1 + self.x2) / 2.0) / f64::from(w), f64::from(self.y2) / f64::from(h))
    }
}

/// How a source image of `src_w` x `src_h` was fitted into the model input of
/// `dst_w` x `dst_h`: scaled by `scale` keeping the aspect ratio, then padded by
/// `pad_x` columns on the left and `pad_y` rows on the top (and what remains on the
/// other sides).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Letterbox {
    pub src_w: u32,
    pub src_h: u32,
    pub dst_w: u32,
    pub dst_h: u32,
    /// Width of the scaled image inside the destination.
    pub scaled_w: u32,
    /// Height of the scaled image inside the destination.
    pub scaled_h: u32,
    pub pad_x: u32,
    pub pad_y: u32,
}

impl Letterbox {
    /// The letterbox that GStreamer's `videoconvertscale add-borders=true`
    /// produces, and ingest's own `streetscopeletterbox` element draws (it uses
    /// this function): the scaled size is rounded *down*
    /// to whole pixels, the padding split evenly with the odd pixel on the
    /// right/bottom. Ultralytics' `LetterBox` rounds the scaled size to the
    /// nearest pixel instead, so for sizes such as 704x576 the two differ by a pixel.
    pub fn fit(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Self {
        let (sw, sh, dw, dh) = (u64::from(src_w.max(1)), u64::from(src_h.max(1)), u64::from(dst_w), u64::from(dst_h));
        // Compare dst_w/src_w with dst_h/src_h exactly, in integers.
        let (scaled_w, scaled_h) = if dw * sh <= dh * sw {
            (dst_w, ((sh * dw / sw) as u32).clamp(1, dst_h))
        } else {
            (((sw * dh / sh) as u32).clamp(1, dst_w), dst_h)
        };
        Self {
            src_w,
            src_h,
            dst_w,
            dst_h,
            scaled_w,
            scaled_h,
            pad_x: (dst_w - scaled_w) / 2,
            pad_y: (dst_h - scaled_h) / 2,
        }
    }

    /// Horizontal scale from source to destination pixels.
    pub fn scale_x(&self) -> f32 {
        self.scaled_w as f32 / self.src_w as f32
    }

    /// Vertical scale from source to destination pixels.
    pub fn scale_y(&self) -> f32 {
        self.scaled_h as f32 / self.src_h as f32
    }

    /// Maps a box in model-input pixels back to source pixels, clipped to the source.
    pub fn to_source(&self, b: &BBox) -> BBox {
        let (sx, sy) = (self.scale_x(), self.scale_y());
        let (px, py) = (self.pad_x as f32, self.pad_y as f32);
        BBox::new((b.x1 - px) / sx, (b.y1 - py) / sy, (b.x2 - px) / sx, (b.y2 - py) / sy)
            .clamp(self.src_w as f32, self.src_h as f32)
    }

    /// Maps a box in source pixels to model-input pixels.
    pub fn to_model(&self, b: &BBox) -> BBox {
        let (sx, sy) = (self.scale_x(), self.scale_y());
        let (px, py) = (self.pad_x as f32, self.pad_y as f32);
        BBox::new(b.x1 * sx + px, b.y1 * sy + py, b.x2 * sx + px, b.y2 * sy + py)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_landscape_pads_top_and_bottom() {
        let lb = Letterbox::fit(1280, 720, 640, 640);
        assert_eq!((lb.scaled_w, lb.scaled_h), (640, 360));
        assert_eq!((lb.pad_x, lb.pad_y), (0, 140));
    }

    #[test]
    fn letterbox_portrait_pads_left_and_right() {
        // bus.jpg
        let lb = Letterbox::fit(810, 1080, 640, 640);
        assert_eq!((lb.scaled_w, lb.scaled_h), (480, 640));
        assert_eq!((lb.pad_x, lb.pad_y), (80, 0));
    }

    #[test]
    fn letterbox_odd_padding_goes_right_and_bottom() {
        let lb = Letterbox::fit(960, 540, 640, 640);
        assert_eq!((lb.scaled_w, lb.scaled_h), (640, 360));
        let lb = Letterbox::fit(1000, 333, 640, 640);
        assert_eq!(lb.scaled_h, 213);
        assert_eq!(lb.pad_y, 213);
        assert_eq!(lb.pad_y * 2 + lb.scaled_h + 1, 640);
    }

    #[test]
    fn letterbox_rounds_down_like_gstreamer() {
        // Measured with videoconvertscale add-borders=true (GStreamer 1.22).
        for (w, h, scaled_h, pad_y) in
            [(1280, 719, 359, 140), (1280, 725, 362, 139), (1280, 721, 360, 140), (1919, 1080, 360, 140)]
        {
            let lb = Letterbox::fit(w, h, 640, 640);
            assert_eq!((lb.scaled_w, lb.scaled_h, lb.pad_y), (640, scaled_h, pad_y), "{w}x{h}");
        }
        let lb = Letterbox::fit(704, 576, 640, 640);
        assert_eq!((lb.scaled_h, lb.pad_y), (523, 58));
    }

    #[test]
    fn letterbox_round_trip_is_identity() {
        let lb = Letterbox::fit(1920, 1080, 640, 640);
        let b = BBox::new(100.0, 200.0, 900.0, 1000.0);
        let back = lb.to_source(&lb.to_model(&b));
        for (a, e) in [(back.x1, b.x1), (back.y1, b.y1), (back.x2, b.x2), (back.y2, b.y2)] {
            assert!((a - e).abs() < 1e-3, "{back:?} != {b:?}");
        }
    }

    #[test]
    fn to_source_clips_to_the_image() {
        let lb = Letterbox::fit(1280, 720, 640, 640);
        let b = lb.to_source(&BBox::new(-10.0, 100.0, 700.0, 600.0));
        assert_eq!(b, BBox::new(0.0, 0.0, 1280.0, 720.0));
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(a.iou(&a), 1.0);
        let empty = BBox::new(3.0, 3.0, 3.0, 3.0);
        assert_eq!(empty.iou(&empty), 0.0);
    }
}
