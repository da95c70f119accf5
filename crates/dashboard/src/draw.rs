//! Drawing on snapshots: thick lines, polygons, boxes and labels in an 8x8
//! bitmap font (the same font as `streetscope detect --save`).

use image::{Rgb, RgbImage};

/// A colour per class name, stable across runs and processes.
pub fn class_colour(class: &str) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 8] = [
        [255, 56, 56],
        [255, 112, 31],
        [72, 249, 10],
        [255, 55, 199],
        [146, 204, 23],
        [0, 194, 255],
        [132, 56, 255],
        [255, 149, 200],
    ];
    // The model's classes get colours of their own; others by FNV-1a (stable,
    // unlike the standard library's hasher).
    let known = ["car", "bus", "van", "lorry", "bike", "tuktuk", "person", "truck"];
    if let Some(k) = known.iter().position(|&k| k == class) {
        return Rgb(PALETTE[k]);
    }
    let h = class.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    Rgb(PALETTE[h as usize % PALETTE.len()])
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if (0..i64::from(img.width())).contains(&x) && (0..i64::from(img.height())).contains(&y) {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// A filled square `size` pixels wide centred on (x, y).
fn dot(img: &mut RgbImage, x: i64, y: i64, size: i64, c: Rgb<u8>) {
    let r = size / 2;
    for dy in -r..size - r {
        for dx in -r..size - r {
            put(img, x + dx, y + dy, c);
        }
    }
}

/// A segment `thickness` pixels wide, clipped to the image.
pub fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), thickness: i64, c: Rgb<u8>) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().clamp(1.0, 1e5) as i64;
    for k in 0..=steps {
        let t = k as f64 / steps as f64;
        dot(img, (a.0 + (b.0 - a.0) * t).round() as i64, (a.1 + (b.1 - a.1) * t).round() as i64, thickness, c);
    }
}

/// A closed polygon's outline.
pub fn polygon(img: &mut RgbImage, pts: &[(f64, f64)], thickness: i64, c: Rgb<u8>) {
    for (k, &p) in pts.iter().enumerate() {
        line(img, p, pts[(k + 1) % pts.len()], thickness, c);
    }
}

/// A rectangle's outline `thickness` pixels wide (inside the box), clipped.
pub fn rect(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, thickness: i64, c: Rgb<u8>) {
    let mut fill = |xa: i64, ya: i64, xb: i64, yb: i64| {
        for y in ya..yb {
            for x in xa..xb {
                put(img, x, y, c);
            }
        }
    };
    fill(x1, y1, x2, y1 + thickness);
    fill(x1, y2 - thickness, x2, y2);
    fill(x1, y1, x1 + thickness, y2);
    fill(x2 - thickness, y1, x2, y2);
}

/// `text` in the 8x8 font scaled by `scale`, on a filled background, above
/// (x, y) where there is room, else below.
pub fn label(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, bg: Rgb<u8>, fg: Rgb<u8>) {
    use font8x8::UnicodeFonts;
    let glyph_w = 8 * scale;
    let (tw, th) = (glyph_w * text.chars().count() as i64 + 2 * scale, 10 * scale);
    let y = if y - th >= 0 { y - th } else { y };
    // Inside the image on the right, where it fits.
    let x = x.min(i64::from(img.width()) - tw).max(0);
    for py in y..y + th {
        for px in x..x + tw {
            put(img, px, py, bg);
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
                                img,
                                x + scale + i as i64 * glyph_w + col * scale + dx,
                                y + scale + row as i64 * scale + dy,
                                fg,
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_thick_and_clipped() {
        let mut img = RgbImage::new(20, 10);
        let c = Rgb([1, 2, 3]);
        line(&mut img, (-5.0, 5.0), (30.0, 5.0), 3, c);
        for x in 0..20 {
            assert_eq!(*img.get_pixel(x, 4), c);
            assert_eq!(*img.get_pixel(x, 6), c);
            assert_eq!(*img.get_pixel(x, 7), Rgb([0, 0, 0]));
        }
    }

    #[test]
    fn class_colours_are_stable() {
        assert_eq!(class_colour("bus"), class_colour("bus"));
        let known = ["car", "bus", "van", "lorry", "bike", "tuktuk"].map(class_colour);
        for (k, c) in known.iter().enumerate() {
            assert!(!known[..k].contains(c), "{k}");
        }
    }
}
