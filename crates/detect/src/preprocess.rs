//! Turning letterboxed RGB8 frames into the model's input tensor.

use image::RgbImage;
use streetscope_contracts::Letterbox;

/// Writes packed RGB8 `hwc` into planar, normalised `chw` (`[3, h, w]`, values in [0, 1]).
/// One pass over the pixels with contiguous writes per plane; the loop vectorises.
pub fn rgb8_to_chw_f32(hwc: &[u8], chw: &mut [f32]) {
    let hw = hwc.len() / 3;
    assert_eq!(chw.len(), hw * 3, "tensor size does not match the image");
    let (r, rest) = chw.split_at_mut(hw);
    let (g, b) = rest.split_at_mut(hw);
    // Divide rather than multiply by 1/255: bit-identical to Ultralytics' `im / 255`.
    for (i, px) in hwc.chunks_exact(3).enumerate() {
        r[i] = f32::from(px[0]) / 255.0;
        g[i] = f32::from(px[1]) / 255.0;
        b[i] = f32::from(px[2]) / 255.0;
    }
}

/// Letterboxes a still image (the `detect` command; video frames come letterboxed
/// from ingest): bilinear resize keeping the aspect ratio, centred on grey 114 as
/// Ultralytics does.
pub fn letterbox_image(img: &RgbImage, dst_w: u32, dst_h: u32) -> (Vec<u8>, Letterbox) {
    let lb = Letterbox::fit(img.width(), img.height(), dst_w, dst_h);
    let scaled = image::imageops::resize(img, lb.scaled_w, lb.scaled_h, image::imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(dst_w, dst_h, image::Rgb([114, 114, 114]));
    image::imageops::replace(&mut canvas, &scaled, i64::from(lb.pad_x), i64::from(lb.pad_y));
    (canvas.into_raw(), lb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_planes_are_normalised() {
        let hwc = [255u8, 0, 51, 0, 255, 102];
        let mut chw = [0f32; 6];
        rgb8_to_chw_f32(&hwc, &mut chw);
        assert_eq!(chw, [1.0, 0.0, 0.0, 1.0, 0.2, 0.4]);
    }

    #[test]
    fn still_images_are_letterboxed_on_grey() {
        let img = RgbImage::from_pixel(200, 100, image::Rgb([255, 0, 0]));
        let (px, lb) = letterbox_image(&img, 64, 64);
        assert_eq!((lb.scaled_w, lb.scaled_h, lb.pad_x, lb.pad_y), (64, 32, 0, 16));
        assert_eq!(&px[0..3], &[114, 114, 114]);
        let mid = (32 * 64 + 32) * 3;
        assert_eq!(&px[mid..mid + 3], &[255, 0, 0]);
    }
}
