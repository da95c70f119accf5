//! Clip specifications: frame size and rate, the vehicles' paths and the
//! counting lines; where each vehicle is in each frame; and the built-in clips.
//!
//! Geometry is defined per frame, in whole pixels: a vehicle's box in frame `i`
//! is its continuous position at `t = i / fps` rounded to the nearest pixel
//! ([`VehiclePath::rect_at`]). Both the renderer and the ground truth use this
//! one function, so what is drawn and what is counted cannot disagree.

use serde::{Deserialize, Serialize};
use streetscope_contracts::{BBox, CountingLine, NormPoint};

use crate::{ClipError, Sprite};

/// Which way a vehicle moves across the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Travel {
    /// Towards growing x (east on a north-up view).
    LeftToRight,
    /// Towards shrinking x (west on a north-up view).
    RightToLeft,
}

/// An axis-aligned rectangle in whole pixels; may reach outside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PixelRect {
    /// Left column (inclusive).
    pub x: i32,
    /// Top row (inclusive).
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl PixelRect {
    /// One past the rightmost column.
    pub fn right(&self) -> i32 {
        self.x + self.width as i32
    }

    /// One past the bottom row.
    pub fn bottom(&self) -> i32 {
        self.y + self.height as i32
    }

    /// The part of the rectangle inside a `w` x `h` frame, if any.
    pub fn clip(&self, w: u32, h: u32) -> Option<PixelRect> {
        let (x1, y1) = (self.x.max(0), self.y.max(0));
        let (x2, y2) = (self.right().min(w as i32), self.bottom().min(h as i32));
        (x2 > x1 && y2 > y1).then(|| PixelRect { x: x1, y: y1, width: (x2 - x1) as u32, height: (y2 - y1) as u32 })
    }

    /// Whether the rectangle lies wholly inside a `w` x `h` frame.
    pub fn inside(&self, w: u32, h: u32) -> bool {
        self.x >= 0 && self.y >= 0 && self.right() <= w as i32 && self.bottom() <= h as i32
    }

    /// Whether the two rectangles share at least one pixel.
    pub fn intersects(&self, other: &PixelRect) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }

    /// Horizontal gap in pixels between the two rectangles (negative when their
    /// column ranges overlap).
    pub fn gap_x(&self, other: &PixelRect) -> i32 {
        (other.x - self.right()).max(self.x - other.right())
    }

    /// As a contracts box (corners in pixels).
    pub fn to_bbox(&self) -> BBox {
        BBox::new(self.x as f32, self.y as f32, self.right() as f32, self.bottom() as f32)
    }

    /// Bottom-centre in normalised coordinates of a `w` x `h` frame, computed
    /// in `f64`: the reference point of line crossings.
    pub fn bottom_center_norm(&self, w: u32, h: u32) -> NormPoint {
        NormPoint::new(
            (f64::from(self.x) + f64::from(self.width) / 2.0) / f64::from(w),
            f64::from(self.bottom()) / f64::from(h),
        )
    }
}

/// One vehicle driving straight across the frame at constant speed.
///
/// At `enter_s` the vehicle stands fully off-screen, touching the frame edge on
/// the side it comes from; it then moves at `speed_px_s` until it has fully left
/// on the other side, and stays gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehiclePath {
    /// Unique within the clip.
    pub id: u32,
    /// The true class, e.g. `"bus"`.
    pub class_name: String,
    /// When the vehicle starts to move in, in seconds from the start of the clip.
    pub enter_s: f64,
    /// Horizontal speed in pixels per second: positive moves right, negative
    /// moves left. Never 0. The sprite is drawn front first, mirrored when it
    /// faces the other way (see [`crate::Sprite::variant`]).
    pub speed_px_s: f64,
    /// Top row of the sprite, in pixels (rounded to a whole pixel when drawn).
    pub top_px: f64,
    /// Height of the sprite in pixels (rounded to a whole pixel when drawn).
    pub height_px: f64,
    /// Width over height of the drawn sprite: its width is
    /// `round(height_px * aspect)`; the sprite image is scaled to that size.
    pub aspect: f64,
}

impl VehiclePath {
    /// A bus with the aspect ratio of the `bus.jpg` crop.
    pub fn bus(id: u32, enter_s: f64, speed_px_s: f64, top_px: f64, height_px: f64) -> Self {
        Self { id, class_name: "bus".to_owned(), enter_s, speed_px_s, top_px, height_px, aspect: Sprite::BUS_ASPECT }
    }

    /// Which way the vehicle moves.
    pub fn travel(&self) -> Travel {
        if self.speed_px_s < 0.0 {
            Travel::RightToLeft
        } else {
            Travel::LeftToRight
        }
    }

    /// Drawn size in whole pixels, `(width, height)`.
    pub fn size_px(&self) -> (u32, u32) {
        let h = self.height_px.round().max(1.0);
        ((h * self.aspect).round().max(1.0) as u32, h as u32)
    }

    /// Left edge at `enter_s`: just off the frame on the side it comes from.
    fn start_left(&self, frame_width: u32) -> f64 {
        match self.travel() {
            Travel::LeftToRight => -f64::from(self.size_px().0),
            Travel::RightToLeft => f64::from(frame_width),
        }
    }

    /// Continuous left edge at time `t_s` (extrapolated outside the path's time).
    pub fn left_at(&self, t_s: f64, frame_width: u32) -> f64 {
        self.start_left(frame_width) + self.speed_px_s * (t_s - self.enter_s)
    }

    /// The box at time `t_s` with the position rounded to whole pixels
    /// (half away from zero), as drawn. Extrapolated outside the path's time:
    /// callers check [`PixelRect::clip`] for visibility.
    pub fn rect_at(&self, t_s: f64, frame_width: u32) -> PixelRect {
        let (width, height) = self.size_px();
        PixelRect { x: self.left_at(t_s, frame_width).round() as i32, y: self.top_px.round() as i32, width, height }
    }

    /// When the vehicle has fully left the frame on the far side.
    pub fn exit_s(&self, frame_width: u32) -> f64 {
        let distance = f64::from(frame_width) + f64::from(self.size_px().0);
        self.enter_s + distance / self.speed_px_s.abs()
    }
}

/// A test clip: frame format, vehicles and counting lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipSpec {
    /// Stable name; files are `<name>.mp4` and `<name>.truth.json`.
    pub name: String,
    /// One sentence for listings.
    pub description: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub duration_s: f64,
    pub vehicles: Vec<VehiclePath>,
    /// The lines the ground truth counts crossings of (not drawn in the video).
    pub lines: Vec<CountingLine>,
}

/// Number of frames of a clip: `round(duration_s * fps)`.
pub fn frame_count(spec: &ClipSpec) -> u32 {
    (spec.duration_s * f64::from(spec.fps)).round().max(0.0) as u32
}

impl ClipSpec {
    /// Number of frames; see [`frame_count`].
    pub fn frame_count(&self) -> u32 {
        frame_count(self)
    }

    /// Presentation time of frame `index` in seconds: `index / fps`.
    pub fn frame_time(&self, index: u32) -> f64 {
        f64::from(index) / f64::from(self.fps)
    }

    /// Box of `vehicle` in frame `index` (may lie outside the frame).
    pub fn rect_in_frame(&self, vehicle: &VehiclePath, index: u32) -> PixelRect {
        vehicle.rect_at(self.frame_time(index), self.width)
    }

    /// Vehicles at least partly visible in frame `index`, with their full
    /// (unclipped) boxes, in the order of [`ClipSpec::vehicles`].
    pub fn visible_in_frame(&self, index: u32) -> Vec<(&VehiclePath, PixelRect)> {
        let t = self.frame_time(index);
        self.vehicles
            .iter()
            .filter(|v| t >= v.enter_s)
            .map(|v| (v, v.rect_at(t, self.width)))
            .filter(|(_, r)| r.clip(self.width, self.height).is_some())
            .collect()
    }

    /// Checks the rules a fair test clip keeps: a sane format; unique vehicle
    /// ids; non-zero, finite speeds; every vehicle inside the frame vertically
    /// and gone before the clip ends; counting lines inside the image with
    /// distinct names; and no two vehicles overlapping in any frame (occlusion
    /// would make the ground truth unfair to a detector).
    pub fn validate(&self) -> Result<(), ClipError> {
        let fail = |reason: String| Err(ClipError::InvalidSpec { clip: self.name.clone(), reason });
        if self.width == 0 || self.height == 0 || self.fps == 0 {
            return fail("width, height and fps must be positive".into());
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0) {
            return fail(format!("duration {} s is not positive", self.duration_s));
        }
        for (i, v) in self.vehicles.iter().enumerate() {
            if self.vehicles[..i].iter().any(|o| o.id == v.id) {
                return fail(format!("vehicle id {} is used twice", v.id));
            }
            let finite = [v.enter_s, v.speed_px_s, v.top_px, v.height_px, v.aspect].iter().all(|x| x.is_finite());
            if !finite || v.speed_px_s == 0.0 || v.height_px < 1.0 || v.aspect <= 0.0 {
                return fail(format!("vehicle {} has an invalid path", v.id));
            }
            if v.enter_s < 0.0 {
                return fail(format!("vehicle {} enters before the clip starts", v.id));
            }
            let r = v.rect_at(v.enter_s, self.width);
            if r.y < 0 || r.bottom() > self.height as i32 {
                return fail(format!("vehicle {} does not fit the frame vertically", v.id));
            }
            if v.exit_s(self.width) > self.duration_s {
                return fail(format!(
                    "vehicle {} leaves at {:.3} s, after the clip ends at {} s",
                    v.id,
                    v.exit_s(self.width),
                    self.duration_s
                ));
            }
        }
        for (i, l) in self.lines.iter().enumerate() {
            if self.lines[..i].iter().any(|o| o.name == l.name) {
                return fail(format!("line name {:?} is used twice", l.name));
            }
            let inside = [l.start, l.end].iter().flatten().all(|c| (0.0..=1.0).contains(c));
            if !inside || l.start == l.end {
                return fail(format!("line {:?} is empty or outside the image", l.name));
            }
        }
        for index in 0..self.frame_count() {
            let visible = self.visible_in_frame(index);
            for (i, (a, ra)) in visible.iter().enumerate() {
                for (b, rb) in &visible[i + 1..] {
                    if ra.intersects(rb) {
                        return fail(format!("vehicles {} and {} overlap in frame {index}", a.id, b.id));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Frame width of the built-in clips.
pub const BUILTIN_WIDTH: u32 = 960;
/// Frame height of the built-in clips.
pub const BUILTIN_HEIGHT: u32 = 540;
/// Frame rate of the built-in clips.
pub const BUILTIN_FPS: u32 = 25;

/// Top and height of a bus in the near (eastbound, lower) lane of the built-in scene.
const NEAR_LANE: (f64, f64) = (200.0, 300.0);
/// Top and height of a bus in the far (westbound, upper) lane: a little smaller.
const FAR_LANE: (f64, f64) = (150.0, 290.0);

/// The two vertical counting lines of the built-in clips, at x = 0.35 and
/// x = 0.65, drawn bottom → top so that left-to-right traffic crosses them
/// forward (`"eastbound"`) and right-to-left traffic backward (`"westbound"`).
pub fn builtin_lines() -> Vec<CountingLine> {
    [("left_line", 0.35), ("right_line", 0.65)]
        .into_iter()
        .map(|(name, x)| CountingLine {
            name: name.to_owned(),
            start: [x, 0.98],
            end: [x, 0.15],
            forward: "eastbound".to_owned(),
            backward: "westbound".to_owned(),
        })
        .collect()
}

fn near(id: u32, enter_s: f64, speed_px_s: f64) -> VehiclePath {
    VehiclePath::bus(id, enter_s, speed_px_s, NEAR_LANE.0, NEAR_LANE.1)
}

fn far(id: u32, enter_s: f64, speed_px_s: f64) -> VehiclePath {
    VehiclePath::bus(id, enter_s, speed_px_s, FAR_LANE.0, FAR_LANE.1)
}

/// The built-in clips, 960x540 at 25 fps. Their names are stable: other code
/// and `test-videos/` refer to them.
///
/// - `one_bus` (6 s): one bus, left → right at 320 px/s, across both lines.
/// - `two_way` (21 s): five buses, one at a time or following each other with
///   a gap, three eastbound (near lane) and two westbound (far lane, 290 px
///   tall instead of 300). The bus photo faces left, so eastbound buses are
///   drawn mirrored.
///
/// Speeds stay ≤ 380 px/s, i.e. ≤ 38 px between frames sampled at 10 fps.
pub fn builtin_clips() -> Vec<ClipSpec> {
    let clip = |name: &str, description: &str, duration_s: f64, vehicles| ClipSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        width: BUILTIN_WIDTH,
        height: BUILTIN_HEIGHT,
        fps: BUILTIN_FPS,
        duration_s,
        vehicles,
        lines: builtin_lines(),
    };
    vec![
        clip(
            "one_bus",
            "One bus driving left to right (eastbound) across both counting lines.",
            6.0,
            vec![near(1, 0.4, 320.0)],
        ),
        clip(
            "two_way",
            "Five buses in both directions, one at a time except two eastbound ones \
             that follow each other with a gap.",
            21.0,
            vec![
                near(1, 0.4, 360.0),
                far(2, 4.8, -340.0),
                near(3, 9.4, 300.0),
                // Enters when bus 3 is 134 px in; a little slower, so the gap grows.
                near(4, 11.4, 280.0),
                far(5, 16.8, -380.0),
            ],
        ),
    ]
}

/// The built-in clip called `name`, if any.
pub fn builtin_clip(name: &str) -> Option<ClipSpec> {
    builtin_clips().into_iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_clips_are_valid_and_named_stably() {
        let clips = builtin_clips();
        let names: Vec<_> = clips.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["one_bus", "two_way"]);
        for c in &clips {
            c.validate().unwrap();
            assert_eq!((c.width, c.height, c.fps), (960, 540, 25));
        }
        assert!(builtin_clip("two_way").unwrap().duration_s <= 24.0);
        assert!(builtin_clip("nope").is_none());
    }

    #[test]
    fn builtin_vehicles_are_big_enough_and_slow_enough() {
        for c in builtin_clips() {
            for v in &c.vehicles {
                // ≈ 200 px of the 640x640 model input (960x540 → 640x360).
                assert!(v.height_px >= 285.0, "{} vehicle {}", c.name, v.id);
                // ≤ 40 px between frames sampled at 10 fps.
                assert!(v.speed_px_s.abs() / 10.0 <= 40.0, "{} vehicle {}", c.name, v.id);
            }
        }
    }

    #[test]
    fn vehicles_never_overlap_and_concurrent_ones_keep_a_gap() {
        for c in builtin_clips() {
            for i in 0..c.frame_count() {
                let vis = c.visible_in_frame(i);
                for (n, (_, a)) in vis.iter().enumerate() {
                    for (_, b) in &vis[n + 1..] {
                        assert!(!a.intersects(b), "{} frame {i}", c.name);
                        assert!(a.gap_x(b) >= 100, "{} frame {i}: gap {}", c.name, a.gap_x(b));
                    }
                }
            }
        }
    }

    #[test]
    fn a_vehicle_enters_and_leaves_fully_off_screen() {
        let c = builtin_clip("one_bus").unwrap();
        let v = &c.vehicles[0];
        let (w, _) = v.size_px();
        assert_eq!(w, 466);
        assert_eq!(v.rect_at(v.enter_s, c.width).right(), 0);
        assert_eq!(v.rect_at(v.exit_s(c.width), c.width).x, 960);
        let first = (0..c.frame_count()).find(|&i| !c.visible_in_frame(i).is_empty()).unwrap();
        let last = (0..c.frame_count()).rev().find(|&i| !c.visible_in_frame(i).is_empty()).unwrap();
        assert!(c.frame_time(first) > v.enter_s && c.frame_time(last) < v.exit_s(c.width));
        assert_eq!(frame_count(&c), 150);

        let mut left = v.clone();
        left.speed_px_s = -320.0;
        assert_eq!(left.travel(), Travel::RightToLeft);
        assert_eq!(left.rect_at(left.enter_s, c.width).x, 960);
        assert_eq!(left.rect_at(left.exit_s(c.width), c.width).right(), 0);
    }

    #[test]
    fn validate_rejects_overlap_and_late_exit() {
        let mut c = builtin_clip("one_bus").unwrap();
        c.vehicles.push(VehiclePath::bus(2, 1.0, 320.0, 200.0, 300.0));
        assert!(c.validate().unwrap_err().to_string().contains("overlap"));
        let mut c = builtin_clip("one_bus").unwrap();
        c.duration_s = 4.0;
        assert!(c.validate().unwrap_err().to_string().contains("leaves"));
    }

    #[test]
    fn pixel_rect_geometry() {
        let r = PixelRect { x: -10, y: 5, width: 30, height: 10 };
        assert_eq!(r.clip(100, 100), Some(PixelRect { x: 0, y: 5, width: 20, height: 10 }));
        assert!(!r.inside(100, 100));
        let p = r.bottom_center_norm(100, 100);
        assert_eq!((p.x, p.y), (0.05, 0.15));
        let far = PixelRect { x: 200, ..r };
        assert_eq!(r.clip(100, 100).and(far.clip(100, 100)), None);
        assert_eq!(r.gap_x(&far), 180);
    }
}
