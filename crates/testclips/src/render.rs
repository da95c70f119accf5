//! Rendering frames of a clip: the background is drawn once, each vehicle's
//! sprite is scaled (and mirrored where it must face the other way) once, and a frame
//! is a copy of the background with the visible sprites pasted row by row at
//! their whole-pixel boxes from [`ClipSpec::visible_in_frame`].

use image::RgbImage;

use crate::{scene, ClipSpec, Sprite, Travel};

/// Renders the frames of one clip. Owns everything it needs, so it can move to
/// another thread; building it is the slow part (tens of milliseconds), a frame
/// is a memory copy plus a paste per visible vehicle.
#[derive(Debug, Clone)]
pub struct ClipRenderer {
    spec: ClipSpec,
    background: RgbImage,
    /// One sprite per vehicle of `spec.vehicles`, at its drawn size, front first.
    sprites: Vec<Sprite>,
}

impl ClipRenderer {
    /// Prepares the background and the sprite variants: each vehicle's sprite
    /// scaled to its size and mirrored when `sprite` faces against its travel
    /// (the bus in `bus.jpg` faces left, so eastbound buses are mirrored).
    /// Vehicles of the same size and direction share the work.
    pub fn new(spec: &ClipSpec, sprite: &Sprite) -> Self {
        let mut variants: Vec<((u32, u32, Travel), Sprite)> = Vec::new();
        let sprites = spec
            .vehicles
            .iter()
            .map(|v| {
                let (w, h) = v.size_px();
                let key = (w, h, v.travel());
                if let Some((_, s)) = variants.iter().find(|(k, _)| *k == key) {
                    return s.clone();
                }
                let s = sprite.variant(w, h, v.travel());
                variants.push((key, s.clone()));
                s
            })
            .collect();
        Self { spec: spec.clone(), background: scene::background(spec.width, spec.height), sprites }
    }

    /// The clip being rendered.
    pub fn spec(&self) -> &ClipSpec {
        &self.spec
    }

    /// The empty scene.
    pub fn background(&self) -> &RgbImage {
        &self.background
    }

    /// Frame `index` (time `index / fps`). Indices past the end render the empty
    /// scene (every vehicle has left by then).
    pub fn frame(&self, index: u32) -> RgbImage {
        let mut out = self.background.clone();
        self.paste_vehicles(index, &mut out);
        out
    }

    /// Renders frame `index` into `out`, reusing its allocation; `out` is
    /// resized to the clip's size when it differs.
    pub fn frame_into(&self, index: u32, out: &mut RgbImage) {
        if out.dimensions() == self.background.dimensions() {
            out.copy_from_slice(&self.background);
        } else {
            *out = self.background.clone();
        }
        self.paste_vehicles(index, out);
    }

    fn paste_vehicles(&self, index: u32, out: &mut RgbImage) {
        let (w, h) = (self.spec.width, self.spec.height);
        let row_bytes = w as usize * 3;
        for (n, v) in self.spec.vehicles.iter().enumerate() {
            let t = self.spec.frame_time(index);
            if t < v.enter_s {
                continue;
            }
            let rect = v.rect_at(t, w);
            let Some(vis) = rect.clip(w, h) else {
                continue;
            };
            let sprite: &[u8] = self.sprites[n].image().as_raw();
            let sprite_row_bytes = self.sprites[n].width() as usize * 3;
            // Offset of the visible part inside the sprite.
            let (sx, sy) = ((vis.x - rect.x) as usize, (vis.y - rect.y) as usize);
            let len = vis.width as usize * 3;
            let out: &mut [u8] = out;
            for row in 0..vis.height as usize {
                let src = (sy + row) * sprite_row_bytes + sx * 3;
                let dst = (vis.y as usize + row) * row_bytes + vis.x as usize * 3;
                out[dst..dst + len].copy_from_slice(&sprite[src..src + len]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;
    use crate::{builtin_clip, sprite::Facing};

    /// A right-facing sprite of pure-blue-channel colours, unlike the background's.
    fn synthetic_sprite() -> Sprite {
        Sprite::from_image(
            RgbImage::from_fn(795, 512, |x, y| Rgb([(x % 251) as u8, (y % 241) as u8, 255])),
            Facing::Right,
        )
    }

    #[test]
    fn the_vehicle_is_drawn_at_its_box_and_nowhere_else() {
        let spec = builtin_clip("one_bus").unwrap();
        let sprite = synthetic_sprite();
        let r = ClipRenderer::new(&spec, &sprite);
        let index = 60; // 2.4 s: the bus is fully in view
        let frame = r.frame(index);
        let (v, rect) = spec.visible_in_frame(index)[0];
        assert!(rect.inside(spec.width, spec.height));
        let scaled = sprite.variant(v.size_px().0, v.size_px().1, v.travel());
        // Inside the box: the scaled sprite, pixel for pixel.
        for (dx, dy) in [(0, 0), (10, 20), (rect.width - 1, rect.height - 1), (233, 150)] {
            let fx = (rect.x + dx as i32) as u32;
            let fy = (rect.y + dy as i32) as u32;
            assert_eq!(frame.get_pixel(fx, fy), scaled.image().get_pixel(dx, dy));
        }
        // Just outside the box: the background.
        for (fx, fy) in [
            (rect.x - 1, rect.y + 10),
            (rect.right(), rect.y + 10),
            (rect.x + 10, rect.y - 1),
            (rect.x + 10, rect.bottom()),
        ] {
            let (fx, fy) = (fx as u32, fy as u32);
            assert_eq!(frame.get_pixel(fx, fy), r.background().get_pixel(fx, fy));
        }
        // And the pasted region differs from the background everywhere else is equal.
        let changed = frame.enumerate_pixels().filter(|(x, y, p)| *p != r.background().get_pixel(*x, *y)).count();
        assert!(changed <= (rect.width * rect.height) as usize);
        assert!(changed > (rect.width * rect.height) as usize * 9 / 10);
    }

    #[test]
    fn right_to_left_vehicles_are_mirrored_and_clipped_at_the_edges() {
        let spec = builtin_clip("two_way").unwrap();
        let sprite = synthetic_sprite();
        let r = ClipRenderer::new(&spec, &sprite);
        // Bus 2 drives right to left; find a frame where it straddles the right edge.
        let bus2 = spec.vehicles.iter().find(|v| v.id == 2).unwrap();
        let index = (0..spec.frame_count())
            .find(|&i| {
                let rect = spec.rect_in_frame(bus2, i);
                rect.x > 0 && rect.x < spec.width as i32 - 100
            })
            .unwrap();
        let rect = spec.rect_in_frame(bus2, index);
        assert!(rect.right() > spec.width as i32);
        let frame = r.frame(index);
        let mirrored = sprite.scaled(bus2.size_px().0, bus2.size_px().1).mirrored();
        let (fx, fy) = (rect.x as u32 + 5, rect.y as u32 + 7);
        assert_eq!(frame.get_pixel(fx, fy), mirrored.image().get_pixel(5, 7));
        // A left-facing sprite (like the bus photo) is drawn as is for this bus.
        let left = sprite.mirrored();
        let frame = ClipRenderer::new(&spec, &left).frame(index);
        assert_eq!(frame.get_pixel(fx, fy), mirrored.image().get_pixel(5, 7));
    }

    #[test]
    fn frames_outside_any_vehicle_are_the_background() {
        let spec = builtin_clip("one_bus").unwrap();
        let r = ClipRenderer::new(&spec, &synthetic_sprite());
        assert_eq!(&r.frame(0), r.background());
        assert_eq!(&r.frame(spec.frame_count() - 1), r.background());
        let mut buf = RgbImage::new(1, 1);
        r.frame_into(60, &mut buf);
        assert_eq!(buf, r.frame(60));
        r.frame_into(0, &mut buf);
        assert_eq!(&buf, r.background());
    }

    /// FNV-1a, 64 bits: a stable fingerprint of a frame's bytes.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }

    #[test]
    fn rendering_is_deterministic() {
        let spec = builtin_clip("two_way").unwrap();
        let sprite = synthetic_sprite();
        let a = ClipRenderer::new(&spec, &sprite);
        let b = ClipRenderer::new(&spec, &sprite);
        for index in [0, 60, 150, 300, 345] {
            assert_eq!(a.frame(index).as_raw(), b.frame(index).as_raw());
            assert_eq!(a.frame(index).as_raw(), a.frame(index).as_raw());
        }
        // Recorded fingerprints: a change here changes every clip's pixels.
        // Frame 300 shows buses 3 and 4 at once.
        assert_eq!(fnv1a(a.background()), BACKGROUND_FNV, "background changed");
        assert_eq!(fnv1a(&a.frame(300)), SYNTHETIC_FRAME_300_FNV, "frame changed");
    }

    const BACKGROUND_FNV: u64 = 460969206331595038;
    const SYNTHETIC_FRAME_300_FNV: u64 = 3930801929024966027;
    const BUS_FRAME_FNV: [(&str, u32, u64); 2] =
        [("one_bus", 60, 3084887157397479924), ("two_way", 150, 4494005602778884392)];

    /// With the real photo (needs `bus.jpg`, which the set-up script fetches;
    /// see `default_bus_image_path`). The fingerprints also depend on the JPEG
    /// decoder of the `image` crate: after upgrading it, re-record them if the
    /// frames still look right.
    #[test]
    fn bus_frames_match_recorded_fingerprints() {
        let path = crate::default_bus_image_path();
        let sprite = Sprite::load_bus(&path)
            .unwrap_or_else(|e| panic!("{e}; run the set-up script or set {}", crate::BUS_IMAGE_ENV));
        assert_eq!(sprite.image().dimensions(), (795, 512));
        for (clip, index, expected) in BUS_FRAME_FNV {
            let spec = builtin_clip(clip).unwrap();
            let r = ClipRenderer::new(&spec, &sprite);
            let frame = r.frame(index);
            assert_eq!(frame.as_raw(), r.frame(index).as_raw());
            assert_eq!(fnv1a(&frame), expected, "{clip} frame {index}");
        }
    }
}
