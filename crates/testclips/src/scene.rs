//! The road scene behind the vehicles, drawn procedurally and deterministically.
//!
//! From top to bottom: a brick wall, the far sidewalk, a kerb, the asphalt band
//! (a double yellow centre line), the near kerb and the near sidewalk.
//! Texture comes from a small integer hash of the pixel position, so the same
//! size always gives the same bytes on every run and platform; there is no
//! random generator and nothing vehicle-like in it. The layout is proportional
//! to the frame height, so any size works.

use image::{Rgb, RgbImage};

/// A well-mixed 32-bit hash of a pixel position and a seed (lowbias32-style).
pub fn hash2(x: u32, y: u32, seed: u32) -> u32 {
    let mut h = x
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add(y.wrapping_mul(0x85EB_CA77))
        .wrapping_add(seed.wrapping_mul(0xC2B2_AE3D));
    h ^= h >> 16;
    h = h.wrapping_mul(0x7FEB_352D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846C_A68B);
    h ^= h >> 16;
    h
}

/// Hash noise in `-amp..=amp`.
fn noise(x: u32, y: u32, seed: u32, amp: i32) -> i32 {
    (hash2(x, y, seed) % (2 * amp as u32 + 1)) as i32 - amp
}

/// Smooth value noise in `-amp..=amp`: hash values on a grid of `cell`-pixel
/// squares, interpolated bilinearly in integer arithmetic.
fn blotch(x: u32, y: u32, cell: u32, seed: u32, amp: i32) -> i32 {
    let (gx, gy) = (x / cell, y / cell);
    let (fx, fy) = ((x % cell) as i32, (y % cell) as i32);
    let c = cell as i32;
    let v = |dx: u32, dy: u32| noise(gx + dx, gy + dy, seed, amp);
    let top = v(0, 0) * (c - fx) + v(1, 0) * fx;
    let bottom = v(0, 1) * (c - fx) + v(1, 1) * fx;
    (top * (c - fy) + bottom * fy) / (c * c)
}

fn shade(base: [u8; 3], delta: i32) -> Rgb<u8> {
    Rgb(base.map(|c| (i32::from(c) + delta).clamp(0, 255) as u8))
}

/// Rows (as fractions of the height) where the bands of the scene begin.
struct Layout {
    far_walk: u32,
    far_kerb: u32,
    road: u32,
    near_kerb: u32,
    near_walk: u32,
}

impl Layout {
    fn new(height: u32) -> Self {
        let at = |f: f64| (f64::from(height) * f).round() as u32;
        Self { far_walk: at(0.20), far_kerb: at(0.255), road: at(0.27), near_kerb: at(0.935), near_walk: at(0.95) }
    }
}

/// Draws the empty road scene at `width` x `height`.
pub fn background(width: u32, height: u32) -> RgbImage {
    let l = Layout::new(height);
    // Sizes scale with the height (given here for 540 rows).
    let unit = (f64::from(height) / 540.0).max(0.25);
    let px = |v: f64| ((v * unit).round() as u32).max(1);
    // The only lane marking: a double solid centre line, 3 + 3 + 3 px. The
    // vehicle model takes this whole road for a lorry when it has a dashed
    // centre line (0.56 with black letterbox borders) or white edge lines (up
    // to 0.29 next to a vehicle entering); with this line it finds nothing.
    let centre = l.road + (l.near_kerb - l.road) * 2 / 5;
    let centre_w = px(3.0);
    let brick_h = px(12.0);
    let brick_w = px(34.0);
    let tile = px(36.0);

    RgbImage::from_fn(width, height, |x, y| {
        let grain = noise(x, y, 1, 5);
        if y < l.far_walk {
            // Brick wall: rows of bricks offset by half a brick, mortar joints.
            let row = y / brick_h;
            let xo = x + (row % 2) * brick_w / 2;
            let mortar = y % brick_h < px(2.0) || xo % brick_w < px(2.0);
            if mortar {
                shade([176, 170, 160], grain)
            } else {
                let per_brick = noise(xo / brick_w, row, 2, 12);
                shade([150, 86, 62], per_brick + grain)
            }
        } else if y < l.far_kerb {
            let joint = (x + 7) % tile < px(2.0) || (y - l.far_walk).is_multiple_of(tile);
            shade([158, 156, 150], grain + blotch(x, y, 24, 3, 6) - if joint { 28 } else { 0 })
        } else if y < l.road {
            shade([196, 194, 188], grain)
        } else if y < l.near_kerb {
            let worn = hash2(x, y, 4).is_multiple_of(16);
            let centre_line =
                (centre..centre + centre_w).contains(&y) || (centre + 2 * centre_w..centre + 3 * centre_w).contains(&y);
            if centre_line && !worn {
                shade([218, 178, 44], noise(x, y, 5, 8))
            } else {
                shade([74, 74, 78], grain + blotch(x, y, 32, 6, 7) + noise(x, y, 7, 3))
            }
        } else if y < l.near_walk {
            shade([200, 198, 192], grain)
        } else {
            let joint = (x + 19) % tile < px(2.0) || (y - l.near_walk) % tile < px(2.0);
            shade([166, 162, 154], grain + blotch(x, y, 24, 8, 6) - if joint { 30 } else { 0 })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_is_deterministic_and_sized() {
        let a = background(96, 54);
        assert_eq!(a.dimensions(), (96, 54));
        assert_eq!(a, background(96, 54));
    }

    #[test]
    fn hash_spreads_values() {
        let distinct: std::collections::HashSet<_> = (0..64).map(|x| hash2(x, 0, 0) % 16).collect();
        assert!(distinct.len() >= 12);
        assert_ne!(hash2(1, 2, 3), hash2(2, 1, 3));
    }
}
