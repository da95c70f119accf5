//! Drawing boxes and labels on images (`detect --save`).

use image::{Rgb, RgbImage};

/// A colour per class, stable across runs.
pub fn class_colour(class_id: u32) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 8] = [
        [255, 56, 56],
        [255, 157, 151],
        [255, 112, 31],
        [255, 178, 29],
        [207, 210, 49],
        [72, 249, 10],
        [26, 147, 52],
        [0, 212, 187],
    ];
    Rgb(PALETTE[class_id as usize % PALETTE.len()])
}

/// Draws a rectangle outline `thickness` pixels wide, clipped to the image.
pub fn rect(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, thickness: i64, c: Rgb<u8>) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let mut fill = |xa: i64, ya: i64, xb: i64, yb: i64| {
        for y in ya.max(0)..yb.min(h) {
            for x in xa.max(0)..xb.min(w) {
                img.put_pixel(x as u32, y as u32, c);
            }
        }
    };
    fill(x1, y1, x2, y1 + thickness);
    fill(x1, y2 - thickness, x2, y2);
    fill(x1, y1, x1 + thickness, y2);
    fill(x2 - thickness, y1, x2, y2);
}

/// Writes `text` with an 8x8 bitmap font scaled by `scale`, on a filled background.
pub fn label(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, bg: Rgb<u8>) {
    use font8x8::UnicodeFonts;
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let glyph_w = 8 * scale;
    let (tw, th) = (glyph_w * text.chars().count() as i64 + 2 * scale, 8 * scale + 2 * scale);
    let y = if y - th >= 0 { y - th } else { y };
    let mut put = |px: i64, py: i64, c: Rgb<u8>| {
        if (0..w).contains(&px) && (0..h).contains(&py) {
            img.put_pixel(px as u32, py as u32, c);
        }
    };
    for py in y..y + th {
        for px in x..x + tw {
            put(px, py, bg);
        }
    }
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(
                                x + scale + i as i64 * glyph_w + col * scale + dx,
                                y + scale + row as i64 * scale + dy,
                                Rgb([255, 255, 255]),
                            );
                        }
                    }
                }
            }
        }
    }
}
