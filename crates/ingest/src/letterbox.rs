//! Letterboxing in Rust: the `streetscopeletterbox` GStreamer element.
//!
//! It takes the decoder's I420 at the source size and writes the model input:
//! the picture scaled to fit ([`Letterbox::fit`], the same geometry as
//! `videoconvertscale add-borders=true`), centred, with black borders, as packed
//! RGB (raw frames) or I420 (for `jpegenc`). Each plane is scaled bilinearly
//! (2 taps, as `videoconvertscale method=bilinear`) with weights computed once
//! per stream, rows first (a vectorised blend of two rows) then columns, and
//! without any weights at all where the source is an exact multiple of the
//! picture (1080p and 720p to 640x360); only the scaled picture is converted to
//! RGB (SIMD, `yuvutils-rs`), in the matrix and range the decoder's caps name.
//! docs/benchmarks.md has what it costs against `videoconvertscale`.
//!
//! I420 out is in JPEG's colours (JFIF: full range, BT.601), whatever the
//! camera's, because a JPEG decoder reads it so: limited-range BT.709 handed to
//! `jpegenc` as it is decodes greyer (black at 16, white at 235) and with shifted
//! hues. With `borders=false` (the built-in templates' JPEG frames) the output is
//! the scaled picture alone, without its bars: the frame's [`Letterbox`] says
//! where it goes, and the detector puts it there (a JPEG of 640x360 instead of
//! 640x640: less to encode, to carry and to decode).
//!
//! [`Scaler`] is the pure part, with no GStreamer in it; [`register`] makes the
//! element known to this process (the built-in templates in `pipelines/` use
//! it; an operator's template may keep `videoconvertscale` instead).

use streetscope_contracts::Letterbox;
use yuvutils_rs::{BufferStoreMut, YuvConversionMode, YuvPlanarImage, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

/// The element's factory name, as written in pipeline templates.
pub const ELEMENT: &str = "streetscopeletterbox";

/// One plane of 8-bit samples: `stride` bytes a row, `width` of them used.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: u32,
    pub height: u32,
}

/// How the source's YUV encodes colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    Bt601,
    Bt709,
    Bt2020,
}

impl Matrix {
    fn yuvutils(self) -> YuvStandardMatrix {
        match self {
            Matrix::Bt601 => YuvStandardMatrix::Bt601,
            Matrix::Bt709 => YuvStandardMatrix::Bt709,
            Matrix::Bt2020 => YuvStandardMatrix::Bt2020,
        }
    }
}

/// The scaler of one stream: letterbox geometry, colour and reused buffers.
/// Built again when the source size changes.
#[derive(Debug)]
pub struct Scaler {
    /// What is written: the letterbox, or (built with [`Scaler::picture`]) its
    /// picture alone, a letterbox without bars.
    geometry: Letterbox,
    /// The source's colour.
    matrix: Matrix,
    full_range: bool,
    /// The colour the scaled planes are in now: the source's after
    /// [`Scaler::scale`], JPEG's after [`Scaler::to_jpeg_colours`].
    planes: (Matrix, bool),
    /// How the luma and the chroma planes are scaled.
    luma: PlaneScaler,
    chroma: PlaneScaler,
    /// The scaled picture's planes (`scaled_w` x `scaled_h`, chroma halved,
    /// rounded up), rows without padding.
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    /// One source row blended from two, while scaling.
    row: Vec<u8>,
    /// The RGB picture, when it cannot be converted in place (see `write_rgb`).
    rgb: Vec<u8>,
}

impl Scaler {
    /// A scaler from `src_w` x `src_h` I420 to its letterbox of `dst_w` x `dst_h`.
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, matrix: Matrix, full_range: bool) -> Self {
        Self::with_geometry(Letterbox::fit(src_w, src_h, dst_w, dst_h), matrix, full_range)
    }

    /// A scaler from `src_w` x `src_h` I420 to the picture of its letterbox of
    /// `dst_w` x `dst_h`, without the bars: `scaled_w` x `scaled_h` of
    /// [`Letterbox::fit`] (not the fit of the source into that size, which
    /// can round a pixel differently).
    pub fn picture(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, matrix: Matrix, full_range: bool) -> Self {
        let g = Letterbox::fit(src_w, src_h, dst_w, dst_h);
        let picture = Letterbox { dst_w: g.scaled_w, dst_h: g.scaled_h, pad_x: 0, pad_y: 0, ..g };
        Self::with_geometry(picture, matrix, full_range)
    }

    fn with_geometry(geometry: Letterbox, matrix: Matrix, full_range: bool) -> Self {
        let (src_w, src_h) = (geometry.src_w, geometry.src_h);
        let (cw, ch) = (geometry.scaled_w.div_ceil(2), geometry.scaled_h.div_ceil(2));
        Self {
            geometry,
            matrix,
            full_range,
            planes: (matrix, full_range),
            luma: PlaneScaler::new(src_w, src_h, geometry.scaled_w, geometry.scaled_h),
            chroma: PlaneScaler::new(src_w.div_ceil(2), src_h.div_ceil(2), cw, ch),
            y: vec![0; (geometry.scaled_w * geometry.scaled_h) as usize],
            u: vec![0; (cw * ch) as usize],
            v: vec![0; (cw * ch) as usize],
            row: Vec::new(),
            rgb: Vec::new(),
        }
    }

    pub fn geometry(&self) -> Letterbox {
        self.geometry
    }

    /// Scales the three planes of one I420 picture into the scaler's buffers.
    pub fn scale(&mut self, y: Plane, u: Plane, v: Plane) -> Result<(), String> {
        let g = self.geometry;
        if (y.width, y.height) != (g.src_w, g.src_h)
            || (u.width, u.height) != (g.src_w.div_ceil(2), g.src_h.div_ceil(2))
            || (v.width, v.height) != (u.width, u.height)
        {
            return Err(format!(
                "planes {}x{}, {}x{}, {}x{} do not make an I420 picture of {}x{}",
                y.width, y.height, u.width, u.height, v.width, v.height, g.src_w, g.src_h
            ));
        }
        let planes = [
            (y, &self.luma, &mut self.y, "Y"),
            (u, &self.chroma, &mut self.u, "U"),
            (v, &self.chroma, &mut self.v, "V"),
        ];
        for (src, scaler, dst, name) in planes {
            scaler.scale(src, dst, &mut self.row).map_err(|e| format!("scaling the {name} plane: {e}"))?;
        }
        self.planes = (self.matrix, self.full_range);
        Ok(())
    }

    /// Converts the scaled picture to JPEG's colours (JFIF: full range,
    /// BT.601), through RGB (SIMD both ways); nothing to do for a source
    /// already in them (an MJPEG camera's).
    pub fn to_jpeg_colours(&mut self) -> Result<(), String> {
        if self.planes == (Matrix::Bt601, true) {
            return Ok(());
        }
        let g = self.geometry;
        let row = g.scaled_w as usize * 3;
        self.rgb.resize(row * g.scaled_h as usize, 0);
        let mut rgb = std::mem::take(&mut self.rgb);
        let converted = self.picture_to_rgb(&mut rgb, row).and_then(|()| {
            let cw = g.scaled_w.div_ceil(2);
            let mut planar = YuvPlanarImageMut {
                y_plane: BufferStoreMut::Borrowed(&mut self.y),
                y_stride: g.scaled_w,
                u_plane: BufferStoreMut::Borrowed(&mut self.u),
                u_stride: cw,
                v_plane: BufferStoreMut::Borrowed(&mut self.v),
                v_stride: cw,
                width: g.scaled_w,
                height: g.scaled_h,
            };
            yuvutils_rs::rgb_to_yuv420(
                &mut planar,
                &rgb,
                row as u32,
                YuvRange::Full,
                YuvStandardMatrix::Bt601,
                YuvConversionMode::Balanced,
            )
            .map_err(|e| format!("converting to JPEG's colours: {e}"))
        });
        self.rgb = rgb;
        converted?;
        self.planes = (Matrix::Bt601, true);
        Ok(())
    }

    /// The scaled picture as packed RGB into `rgb` (`stride` bytes a row, the
    /// picture's rows and no more).
    fn picture_to_rgb(&self, rgb: &mut [u8], stride: usize) -> Result<(), String> {
        let g = self.geometry;
        let picture = YuvPlanarImage {
            y_plane: &self.y,
            y_stride: g.scaled_w,
            u_plane: &self.u,
            u_stride: g.scaled_w.div_ceil(2),
            v_plane: &self.v,
            v_stride: g.scaled_w.div_ceil(2),
            width: g.scaled_w,
            height: g.scaled_h,
        };
        let (matrix, full_range) = self.planes;
        let range = if full_range { YuvRange::Full } else { YuvRange::Limited };
        yuvutils_rs::yuv420_to_rgb(&picture, rgb, stride as u32, range, matrix.yuvutils())
            .map_err(|e| format!("converting to RGB: {e}"))
    }

    /// Writes the last scaled picture as packed RGB into `out` (`dst_w` x
    /// `dst_h`, `stride` bytes a row), borders black.
    pub fn write_rgb(&mut self, out: &mut [u8], stride: usize) -> Result<(), String> {
        let g = self.geometry;
        let (w, h) = (g.dst_w as usize, g.dst_h as usize);
        if stride < w * 3 || out.len() < stride * (h - 1) + w * 3 {
            return Err(format!("an RGB buffer of {} bytes (stride {stride}) cannot hold {w}x{h}", out.len()));
        }
        fill_borders(out, stride, 3, &g, 0);
        let at = g.pad_y as usize * stride + g.pad_x as usize * 3;
        let rows = stride * g.scaled_h as usize;
        if out.len() - at >= rows {
            return self.picture_to_rgb(&mut out[at..at + rows], stride);
        }
        // yuvutils converts whole row pairs of the slice it is given: a picture
        // that reaches the buffer's last row with bars beside it goes through
        // a buffer of its own.
        let row = g.scaled_w as usize * 3;
        let mut rgb = std::mem::take(&mut self.rgb);
        rgb.resize(row * g.scaled_h as usize, 0);
        let converted = self.picture_to_rgb(&mut rgb, row);
        if converted.is_ok() {
            for (i, line) in rgb.chunks_exact(row).enumerate() {
                out[at + i * stride..at + i * stride + row].copy_from_slice(line);
            }
        }
        self.rgb = rgb;
        converted
    }

    /// Writes the last scaled picture into one plane of an I420 output
    /// (`plane` 0 is Y, 1 and 2 chroma), borders black, in the planes' colours
    /// now (JPEG's after [`Scaler::to_jpeg_colours`]).
    pub fn write_i420_plane(&self, plane: usize, out: &mut [u8], stride: usize) -> Result<(), String> {
        let g = self.geometry;
        let (src, geometry, black) = match plane {
            0 => (&self.y, g, if self.planes.1 { 0 } else { 16 }),
            1 | 2 => {
                // The chroma plane's own letterbox: half the size and offsets.
                let half = Letterbox {
                    dst_w: g.dst_w.div_ceil(2),
                    dst_h: g.dst_h.div_ceil(2),
                    scaled_w: g.scaled_w.div_ceil(2),
                    scaled_h: g.scaled_h.div_ceil(2),
                    pad_x: g.pad_x / 2,
                    pad_y: g.pad_y / 2,
                    ..g
                };
                (if plane == 1 { &self.u } else { &self.v }, half, 128)
            }
            _ => return Err(format!("I420 has no plane {plane}")),
        };
        let (w, h) = (geometry.dst_w as usize, geometry.dst_h as usize);
        if stride < w || out.len() < stride * (h - 1) + w {
            return Err(format!("plane {plane} of {} bytes (stride {stride}) cannot hold {w}x{h}", out.len()));
        }
        fill_borders(out, stride, 1, &geometry, black);
        let (sw, x0, y0) = (geometry.scaled_w as usize, geometry.pad_x as usize, geometry.pad_y as usize);
        for (row, line) in src.chunks_exact(sw).enumerate() {
            let at = (y0 + row) * stride + x0;
            out[at..at + sw].copy_from_slice(line);
        }
        Ok(())
    }
}

/// Bilinear scaling of one plane size to another: for each output column and
/// row, the two source samples it lies between and the second's weight in
/// 256ths, computed once per stream.
#[derive(Debug)]
struct PlaneScaler {
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    /// Set when the source is exactly that many times the output both ways.
    integer: Option<usize>,
    columns: Vec<Tap>,
    rows: Vec<Tap>,
}

/// The two source samples an output sample lies between, and the weight of
/// the second (0 to 256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tap {
    first: usize,
    second: usize,
    weight: u16,
}

/// Where each of `dst` output samples falls among `src` input samples, centre
/// on centre: output `x` is at input `(x + 0.5) * src / dst - 0.5`, clamped
/// to the edges.
fn taps(src: u32, dst: u32) -> Vec<Tap> {
    let scale = f64::from(src) / f64::from(dst.max(1));
    let last = src.saturating_sub(1) as usize;
    (0..dst)
        .map(|x| {
            let at = ((f64::from(x) + 0.5) * scale - 0.5).clamp(0.0, last as f64);
            let first = at.floor() as usize;
            let weight = ((at - first as f64) * 256.0).round() as u16;
            Tap { first, second: (first + 1).min(last), weight }
        })
        .collect()
}

/// `(a * (256 - w) + b * w) / 256`, rounded half up (fits in 16 bits).
#[inline(always)]
fn blend(a: u8, b: u8, w: u16) -> u8 {
    ((u16::from(a) * (256 - w) + u16::from(b) * w + 128) >> 8) as u8
}

/// `(a + b) / 2`, rounded half up.
#[inline(always)]
fn average(a: u8, b: u8) -> u8 {
    ((u16::from(a) + u16::from(b) + 1) >> 1) as u8
}

impl PlaneScaler {
    fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Self {
        Self {
            src_w,
            src_h,
            dst_w,
            integer: integer_ratio(src_w, src_h, dst_w, dst_h),
            columns: taps(src_w, dst_w),
            rows: taps(src_h, dst_h),
        }
    }

    /// Scales `src` into `dst` (`dst_w` a row, no padding); `row` is scratch.
    fn scale(&self, src: Plane, dst: &mut [u8], row: &mut Vec<u8>) -> Result<(), String> {
        let (w, h, stride) = (src.width as usize, src.height as usize, src.stride);
        if (src.width, src.height) != (self.src_w, self.src_h) {
            return Err(format!("{w}x{h} where the stream's caps said {}x{}", self.src_w, self.src_h));
        }
        if w == 0 || h == 0 || stride < w || src.data.len() < stride * (h - 1) + w {
            return Err(format!("{} bytes (stride {stride}) cannot hold {w}x{h}", src.data.len()));
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `scale_avx2` needs nothing but AVX2, which this CPU has
            // (checked just above).
            #[allow(unsafe_code)]
            unsafe {
                self.scale_avx2(src, dst, row)
            };
            return Ok(());
        }
        self.scale_rows(src, dst, row);
        Ok(())
    }

    /// [`Self::scale_rows`] compiled for AVX2: the row blends and averages
    /// vectorise four times wider than with x86-64's baseline SSE2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn scale_avx2(&self, src: Plane, dst: &mut [u8], row: &mut Vec<u8>) {
        self.scale_rows(src, dst, row);
    }

    /// The scaling itself, on a plane that [`Self::scale`] checked.
    #[inline(always)]
    fn scale_rows(&self, src: Plane, dst: &mut [u8], row: &mut Vec<u8>) {
        let (w, stride) = (src.width as usize, src.stride);
        let line = |y: usize| &src.data[y * stride..y * stride + w];
        let out_w = self.dst_w as usize;
        if let Some(k) = self.integer {
            for (y, out) in dst.chunks_exact_mut(out_w).enumerate() {
                scale_row_by_integer(line(k * y + (k - 1) / 2), line(k * y + k / 2), k, out);
            }
            return;
        }
        row.resize(w, 0);
        for (out, t) in dst.chunks_exact_mut(out_w).zip(&self.rows) {
            let source = if t.weight == 0 {
                line(t.first)
            } else {
                // Written so that the compiler vectorises it.
                for ((m, a), b) in row.iter_mut().zip(line(t.first)).zip(line(t.second)) {
                    *m = blend(*a, *b, t.weight);
                }
                &row[..]
            };
            for (o, c) in out.iter_mut().zip(&self.columns) {
                *o = blend(source[c.first], source[c.second], c.weight);
            }
        }
    }
}

/// `k` when the source is exactly `k` times the destination both ways (1080p
/// to 640x360 is 3, 720p 2, 2160p 6): there bilinear interpolation needs no
/// weights (see [`scale_row_by_integer`]).
fn integer_ratio(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Option<usize> {
    let k = src_w / dst_w.max(1);
    (k >= 1 && src_w == k * dst_w && src_h == k * dst_h).then_some(k as usize)
}

/// One output row at an integer ratio `k`, from the one or two source rows it
/// lies on or between, with the result of the general path. Output `x`'s
/// centre lies at source `k * x + (k - 1) / 2`: for odd `k` on a source pixel,
/// which bilinear weighs 1 and its neighbours 0; for even `k` halfway between
/// two, weighed a half each (rows first, then columns, each rounded).
#[inline(always)]
fn scale_row_by_integer(r0: &[u8], r1: &[u8], k: usize, out: &mut [u8]) {
    // The common ratios as constants: `row_by` is inlined into each arm, where
    // the compiler vectorises the picking and averaging for that ratio.
    match k {
        1 => out.copy_from_slice(&r0[..out.len()]),
        2 => row_by(r0, r1, 2, out),
        3 => row_by(r0, r1, 3, out),
        4 => row_by(r0, r1, 4, out),
        5 => row_by(r0, r1, 5, out),
        6 => row_by(r0, r1, 6, out),
        _ => row_by(r0, r1, k, out),
    }
}

#[inline(always)]
fn row_by(r0: &[u8], r1: &[u8], k: usize, out: &mut [u8]) {
    let span = k * out.len();
    if k % 2 == 1 {
        for (o, c) in out.iter_mut().zip(r0[..span].chunks_exact(k)) {
            *o = c[k / 2];
        }
    } else {
        for ((o, a), b) in out.iter_mut().zip(r0[..span].chunks_exact(k)).zip(r1[..span].chunks_exact(k)) {
            *o = average(average(a[k / 2 - 1], b[k / 2 - 1]), average(a[k / 2], b[k / 2]));
        }
    }
}

/// Sets every byte outside the letterbox's picture to `value` (`bpp` bytes a
/// pixel; black is one byte value in RGB and in each plane of YUV).
fn fill_borders(out: &mut [u8], stride: usize, bpp: usize, g: &Letterbox, value: u8) {
    let (w, h) = (g.dst_w as usize, g.dst_h as usize);
    let (x0, y0) = (g.pad_x as usize * bpp, g.pad_y as usize);
    let (x1, y1) = (x0 + g.scaled_w as usize * bpp, y0 + g.scaled_h as usize);
    for row in 0..h {
        let line = &mut out[row * stride..row * stride + w * bpp];
        if row < y0 || row >= y1 {
            line.fill(value);
        } else {
            line[..x0].fill(value);
            line[x1..].fill(value);
        }
    }
}

/// Registers the `streetscopeletterbox` element with this process's GStreamer
/// (once; later calls do nothing).
pub fn register() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED.get_or_init(element::register).clone()
}

mod element {
    //! The GStreamer side: caps, negotiation and buffers around [`Scaler`].

    use std::sync::{LazyLock, Mutex};

    use gstreamer as gst;
    use gstreamer::glib;
    use gstreamer::prelude::*;
    use gstreamer::subclass::prelude::*;
    use gstreamer_base::subclass::prelude::*;
    use gstreamer_base::subclass::BaseTransformMode;
    use gstreamer_video as gst_video;
    use gstreamer_video::prelude::*;
    use gstreamer_video::subclass::prelude::*;

    use super::{Letterbox, Matrix, Plane, Scaler};

    glib::wrapper! {
        pub struct LetterboxElement(ObjectSubclass<Imp>)
            @extends gst_video::VideoFilter, gstreamer_base::BaseTransform, gst::Element, gst::Object;
    }

    pub(super) fn register() -> Result<(), String> {
        gst::Element::register(None, super::ELEMENT, gst::Rank::NONE, LetterboxElement::static_type())
            .map_err(|e| format!("registering {}: {e}", super::ELEMENT))
    }

    static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
        gst::DebugCategory::new(super::ELEMENT, gst::DebugColorFlags::empty(), Some("Streetscope letterbox"))
    });

    #[derive(Debug)]
    struct State {
        scaler: Scaler,
        rgb_out: bool,
    }

    /// The element's properties.
    #[derive(Debug, Clone, Copy)]
    struct Settings {
        /// The letterbox's size; 0 x 0: the size downstream's caps ask for.
        width: u32,
        height: u32,
        /// Whether the output is the whole letterbox (true) or its picture alone.
        borders: bool,
    }

    impl Default for Settings {
        fn default() -> Self {
            Self { width: 0, height: 0, borders: true }
        }
    }

    impl Settings {
        fn size(&self) -> Option<(u32, u32)> {
            (self.width > 0 && self.height > 0).then_some((self.width, self.height))
        }
    }

    #[derive(Debug, Default)]
    pub struct Imp {
        state: Mutex<Option<State>>,
        settings: Mutex<Settings>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Imp {
        const NAME: &'static str = "StreetscopeLetterbox";
        type Type = LetterboxElement;
        type ParentType = gst_video::VideoFilter;
    }

    impl ObjectImpl for Imp {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                let size = |name: &str, blurb: &str| {
                    glib::ParamSpecUInt::builder(name).blurb(blurb).maximum(i32::MAX as u32).mutable_ready().build()
                };
                vec![
                    size("width", "Width of the letterbox (0: the width downstream's caps ask for)"),
                    size("height", "Height of the letterbox (0: the height downstream's caps ask for)"),
                    glib::ParamSpecBoolean::builder("borders")
                        .blurb(
                            "Output the whole letterbox, bars included; false: its scaled picture alone \
                             (needs width and height)",
                        )
                        .default_value(true)
                        .mutable_ready()
                        .build(),
                ]
            });
            PROPERTIES.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut settings = self.settings.lock().expect("poisoned");
            match pspec.name() {
                "width" => settings.width = value.get().expect("type checked upstream"),
                "height" => settings.height = value.get().expect("type checked upstream"),
                "borders" => settings.borders = value.get().expect("type checked upstream"),
                other => unreachable!("no property {other}"),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let settings = self.settings.lock().expect("poisoned");
            match pspec.name() {
                "width" => settings.width.to_value(),
                "height" => settings.height.to_value(),
                "borders" => settings.borders.to_value(),
                other => unreachable!("no property {other}"),
            }
        }
    }
    impl GstObjectImpl for Imp {}

    fn raw_caps(formats: &[gst_video::VideoFormat]) -> gst::Caps {
        gst_video::VideoCapsBuilder::new().format_list(formats.iter().copied()).build()
    }

    impl ElementImpl for Imp {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "Streetscope letterbox",
                    "Filter/Converter/Video/Scaler",
                    "Scales I420 to fit the model input, centred with black borders, as RGB or I420 (JPEG's colours), \
                     or the scaled picture alone",
                    "Streetscope",
                )
            });
            Some(&META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                use gst_video::VideoFormat::{Rgb, I420};
                vec![
                    gst::PadTemplate::new(
                        "src",
                        gst::PadDirection::Src,
                        gst::PadPresence::Always,
                        &raw_caps(&[Rgb, I420]),
                    )
                    .expect("a valid src template"),
                    gst::PadTemplate::new(
                        "sink",
                        gst::PadDirection::Sink,
                        gst::PadPresence::Always,
                        &raw_caps(&[I420]),
                    )
                    .expect("a valid sink template"),
                ]
            });
            TEMPLATES.as_ref()
        }
    }

    impl BaseTransformImpl for Imp {
        const MODE: BaseTransformMode = BaseTransformMode::NeverInPlace;
        const PASSTHROUGH_ON_SAME_CAPS: bool = false;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

        fn transform_caps(
            &self,
            direction: gst::PadDirection,
            caps: &gst::Caps,
            filter: Option<&gst::Caps>,
        ) -> Option<gst::Caps> {
            // I420 in, RGB or I420 (in JPEG's colours) out, square pixels out.
            // The output's size: the letterbox's (the properties', or
            // downstream's choice), or with `borders=false` the picture's,
            // known once the input's size is.
            let settings = *self.settings.lock().expect("poisoned");
            let jpeg_colours = gst_video::VideoColorimetry::new(
                gst_video::VideoColorRange::Range0_255,
                gst_video::VideoColorMatrix::Bt601,
                gst_video::VideoTransferFunction::Unknown,
                gst_video::VideoColorPrimaries::Unknown,
            )
            .to_string();
            let any = |s: &mut gst::Structure| {
                s.set("width", gst::IntRange::new(1, i32::MAX));
                s.set("height", gst::IntRange::new(1, i32::MAX));
            };
            let mut other = gst::Caps::new_empty();
            {
                let other = other.get_mut().expect("a new caps is writable");
                for s in caps.iter() {
                    let mut s = s.to_owned();
                    s.remove_fields(["colorimetry", "chroma-site", "pixel-aspect-ratio"]);
                    if direction == gst::PadDirection::Src {
                        any(&mut s);
                        s.set("format", "I420");
                        other.append_structure(s);
                        continue;
                    }
                    match settings.size() {
                        None => any(&mut s),
                        Some((w, h)) if settings.borders => {
                            s.set("width", w as i32);
                            s.set("height", h as i32);
                        }
                        Some((w, h)) => match (s.get::<i32>("width"), s.get::<i32>("height")) {
                            (Ok(sw), Ok(sh)) if sw > 0 && sh > 0 => {
                                let g = Letterbox::fit(sw as u32, sh as u32, w, h);
                                s.set("width", g.scaled_w as i32);
                                s.set("height", g.scaled_h as i32);
                            }
                            _ => {
                                s.set("width", gst::IntRange::new(1, w as i32));
                                s.set("height", gst::IntRange::new(1, h as i32));
                            }
                        },
                    }
                    s.set("pixel-aspect-ratio", gst::Fraction::new(1, 1));
                    let mut rgb = s.clone();
                    rgb.set("format", "RGB");
                    s.set("format", "I420");
                    s.set("colorimetry", &jpeg_colours);
                    other.append_structure(rgb);
                    other.append_structure(s);
                }
            }
            Some(match filter {
                Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
                None => other,
            })
        }

        fn fixate_caps(&self, direction: gst::PadDirection, caps: &gst::Caps, othercaps: gst::Caps) -> gst::Caps {
            // Left free, the output keeps the input's size.
            if direction == gst::PadDirection::Sink {
                if let Some(input) = caps.structure(0) {
                    let mut other = othercaps;
                    other.truncate();
                    if let Some(s) = other.make_mut().structure_mut(0) {
                        for field in ["width", "height"] {
                            if let Ok(v) = input.get::<i32>(field) {
                                s.fixate_field_nearest_int(field, v);
                            }
                        }
                    }
                    other.fixate();
                    return other;
                }
            }
            self.parent_fixate_caps(direction, caps, othercaps)
        }
    }

    impl VideoFilterImpl for Imp {
        fn set_info(
            &self,
            incaps: &gst::Caps,
            in_info: &gst_video::VideoInfo,
            outcaps: &gst::Caps,
            out_info: &gst_video::VideoInfo,
        ) -> Result<(), gst::LoggableError> {
            let colorimetry = in_info.colorimetry();
            let matrix = match colorimetry.matrix() {
                gst_video::VideoColorMatrix::Bt709 => Matrix::Bt709,
                gst_video::VideoColorMatrix::Bt2020 => Matrix::Bt2020,
                gst_video::VideoColorMatrix::Bt601 | gst_video::VideoColorMatrix::Fcc => Matrix::Bt601,
                // Unknown: what GStreamer assumes, by size.
                _ if in_info.height() >= 720 => Matrix::Bt709,
                _ => Matrix::Bt601,
            };
            let full_range = colorimetry.range() == gst_video::VideoColorRange::Range0_255;
            let settings = *self.settings.lock().expect("poisoned");
            let (in_w, in_h, out_w, out_h) = (in_info.width(), in_info.height(), out_info.width(), out_info.height());
            let scaler = match settings.size() {
                _ if settings.borders => Scaler::new(in_w, in_h, out_w, out_h, matrix, full_range),
                Some((w, h)) => Scaler::picture(in_w, in_h, w, h, matrix, full_range),
                None => {
                    return Err(gst::loggable_error!(
                        CAT,
                        "borders=false needs the letterbox's size: set the width and height properties"
                    ))
                }
            };
            let g = scaler.geometry();
            if (g.dst_w, g.dst_h) != (out_w, out_h) {
                return Err(gst::loggable_error!(
                    CAT,
                    "the output is {out_w}x{out_h}, the letterbox's picture of {in_w}x{in_h} is {}x{}",
                    g.dst_w,
                    g.dst_h
                ));
            }
            let rgb_out = out_info.format() == gst_video::VideoFormat::Rgb;
            gst::debug!(CAT, imp = self, "{incaps} -> {outcaps}: {:?}, full range {full_range}", matrix);
            *self.state.lock().expect("poisoned") = Some(State { scaler, rgb_out });
            Ok(())
        }

        fn transform_frame(
            &self,
            inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
            outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let mut guard = self.state.lock().expect("poisoned");
            let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            let fail = |what: String| {
                gst::element_imp_error!(self, gst::StreamError::Format, ("letterbox: {}", what));
                gst::FlowError::Error
            };
            let (w, h) = (inframe.width(), inframe.height());
            gst::log!(CAT, imp = self, "{w}x{h}, strides {:?}", inframe.plane_stride());
            let plane = |i: u32| -> Result<Plane, gst::FlowError> {
                let data = inframe.plane_data(i).map_err(|e| fail(format!("input plane {i}: {e}")))?;
                let (pw, ph) = if i == 0 { (w, h) } else { (w.div_ceil(2), h.div_ceil(2)) };
                Ok(Plane { data, stride: inframe.plane_stride()[i as usize] as usize, width: pw, height: ph })
            };
            state.scaler.scale(plane(0)?, plane(1)?, plane(2)?).map_err(fail)?;
            let strides: [usize; 3] =
                std::array::from_fn(|i| outframe.plane_stride().get(i).map_or(0, |&s| s as usize));
            if state.rgb_out {
                let out = outframe.plane_data_mut(0).map_err(|e| fail(format!("output: {e}")))?;
                state.scaler.write_rgb(out, strides[0]).map_err(fail)?;
            } else {
                state.scaler.to_jpeg_colours().map_err(fail)?;
                for i in 0..3 {
                    let out = outframe.plane_data_mut(i).map_err(|e| fail(format!("output plane {i}: {e}")))?;
                    state.scaler.write_i420_plane(i as usize, out, strides[i as usize]).map_err(fail)?;
                }
            }
            Ok(gst::FlowSuccess::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(data: &[u8], stride: usize, width: u32, height: u32) -> Plane<'_> {
        Plane { data, stride, width, height }
    }

    /// A flat I420 picture of one colour.
    fn flat(w: u32, h: u32, yuv: [u8; 3]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
        (vec![yuv[0]; (w * h) as usize], vec![yuv[1]; cw * ch], vec![yuv[2]; cw * ch])
    }

    #[test]
    fn a_wide_picture_is_centred_between_black_bars() {
        // Limited-range BT.709 white-ish grey: Y 180, no colour.
        let (y, u, v) = flat(1920, 1080, [180, 128, 128]);
        let mut s = Scaler::new(1920, 1080, 640, 640, Matrix::Bt709, false);
        assert_eq!((s.geometry().scaled_h, s.geometry().pad_y), (360, 140));
        s.scale(plane(&y, 1920, 1920, 1080), plane(&u, 960, 960, 540), plane(&v, 960, 960, 540)).unwrap();
        let mut rgb = vec![7u8; 640 * 640 * 3];
        s.write_rgb(&mut rgb, 640 * 3).unwrap();
        let px = |x: usize, y: usize| &rgb[(y * 640 + x) * 3..(y * 640 + x) * 3 + 3];
        assert_eq!(px(0, 0), [0, 0, 0]);
        assert_eq!(px(639, 139), [0, 0, 0]);
        assert_eq!(px(320, 500), [0, 0, 0]);
        assert_eq!(px(0, 639), [0, 0, 0]);
        // (180 - 16) * 255 / 219 = 191
        for p in [px(0, 140), px(320, 320), px(639, 499)] {
            assert!(p.iter().all(|&c| (190..=192).contains(&c)), "{p:?}");
        }
    }

    #[test]
    fn a_tall_picture_gets_bars_left_and_right_and_padded_rows_are_read_right() {
        // 540x960 (portrait), rows padded to 576 bytes, chroma to 320.
        let (w, h) = (540u32, 960u32);
        let mut y = vec![255u8; 576 * h as usize]; // padding is bright: it must not show
        for row in 0..h as usize {
            y[row * 576..row * 576 + w as usize].fill(16);
        }
        let mut u = vec![255u8; 320 * 480];
        let mut v = vec![0u8; 320 * 480];
        for row in 0..480 {
            u[row * 320..row * 320 + 270].fill(128);
            v[row * 320..row * 320 + 270].fill(128);
        }
        let mut s = Scaler::new(w, h, 640, 640, Matrix::Bt601, false);
        let g = s.geometry();
        assert_eq!((g.scaled_w, g.scaled_h, g.pad_x, g.pad_y), (360, 640, 140, 0));
        s.scale(plane(&y, 576, w, h), plane(&u, 320, 270, 480), plane(&v, 320, 270, 480)).unwrap();
        let mut rgb = vec![7u8; 640 * 640 * 3];
        s.write_rgb(&mut rgb, 640 * 3).unwrap();
        let lit: Vec<(usize, u8)> = rgb.iter().copied().enumerate().filter(|&(_, c)| c != 0).take(5).collect();
        assert!(lit.is_empty(), "the picture is black and so are the bars; lit: {lit:?}");
    }

    #[test]
    fn odd_sizes_fill_every_row_of_the_picture() {
        // 704x576 (PAL D1) to 640x640: a picture of 640x523 at row 58.
        let (y, u, v) = flat(704, 576, [235, 128, 128]);
        let mut s = Scaler::new(704, 576, 640, 640, Matrix::Bt601, false);
        let g = s.geometry();
        assert_eq!((g.scaled_w, g.scaled_h, g.pad_x, g.pad_y), (640, 523, 0, 58));
        s.scale(plane(&y, 704, 704, 576), plane(&u, 352, 352, 288), plane(&v, 352, 352, 288)).unwrap();
        let mut rgb = vec![7u8; 640 * 640 * 3];
        s.write_rgb(&mut rgb, 640 * 3).unwrap();
        for (row, line) in rgb.chunks_exact(640 * 3).enumerate() {
            let want = if (58..581).contains(&row) { 255 } else { 0 };
            assert!(line.iter().all(|&c| c == want), "row {row}: {:?}", &line[..6]);
        }
    }

    #[test]
    fn odd_source_sizes_and_upscaling_work_too() {
        for (w, h, dst) in [(641u32, 361u32, 320u32), (33, 17, 64), (1, 1, 8), (3, 1001, 100)] {
            let (y, u, v) = flat(w, h, [235, 128, 128]);
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut s = Scaler::new(w, h, dst, dst, Matrix::Bt709, false);
            let g = s.geometry();
            s.scale(plane(&y, w as usize, w, h), plane(&u, cw as usize, cw, ch), plane(&v, cw as usize, cw, ch))
                .unwrap();
            let mut rgb = vec![7u8; (dst * dst * 3) as usize];
            s.write_rgb(&mut rgb, dst as usize * 3).unwrap();
            for (row, line) in rgb.chunks_exact(dst as usize * 3).enumerate() {
                for (x, p) in line.chunks_exact(3).enumerate() {
                    let inside = (g.pad_y as usize..(g.pad_y + g.scaled_h) as usize).contains(&row)
                        && (g.pad_x as usize..(g.pad_x + g.scaled_w) as usize).contains(&x);
                    assert_eq!(p, if inside { [255; 3] } else { [0; 3] }, "{w}x{h}: pixel {x},{row}");
                }
            }
        }
    }

    #[test]
    fn i420_output_has_limited_range_black_borders_and_the_picture_in_place() {
        let (y, u, v) = flat(960, 540, [100, 90, 160]);
        let mut s = Scaler::new(960, 540, 640, 640, Matrix::Bt709, false);
        s.scale(plane(&y, 960, 960, 540), plane(&u, 480, 480, 270), plane(&v, 480, 480, 270)).unwrap();
        let mut oy = vec![1u8; 640 * 640];
        let mut ou = vec![1u8; 320 * 320];
        let mut ov = vec![1u8; 320 * 320];
        s.write_i420_plane(0, &mut oy, 640).unwrap();
        s.write_i420_plane(1, &mut ou, 320).unwrap();
        s.write_i420_plane(2, &mut ov, 320).unwrap();
        assert_eq!((oy[0], oy[139 * 640], oy[140 * 640], oy[499 * 640 + 639], oy[500 * 640]), (16, 16, 100, 100, 16));
        assert_eq!((ou[69 * 320], ou[70 * 320], ou[249 * 320], ou[250 * 320]), (128, 90, 90, 128));
        assert_eq!((ov[69 * 320], ov[70 * 320 + 319], ov[250 * 320]), (128, 160, 128));
    }

    #[test]
    fn i420_for_jpeg_is_in_jpegs_colours_and_the_picture_alone_has_no_bars() {
        // Limited-range BT.709 (an HD camera): Y 180 grey, and a colour.
        for (yuv, matrix) in
            [([180u8, 128, 128], Matrix::Bt709), ([81, 90, 240], Matrix::Bt709), ([81, 90, 240], Matrix::Bt601)]
        {
            let (y, u, v) = flat(1280, 720, yuv);
            let mut s = Scaler::picture(1280, 720, 640, 640, matrix, false);
            let g = s.geometry();
            assert_eq!((g.dst_w, g.dst_h, g.scaled_w, g.scaled_h, g.pad_x, g.pad_y), (640, 360, 640, 360, 0, 0));
            s.scale(plane(&y, 1280, 1280, 720), plane(&u, 640, 640, 360), plane(&v, 640, 640, 360)).unwrap();
            let mut want = vec![0u8; 640 * 360 * 3];
            s.write_rgb(&mut want, 640 * 3).unwrap();
            s.to_jpeg_colours().unwrap();
            let (mut oy, mut ou, mut ov) = (vec![1u8; 640 * 360], vec![1u8; 320 * 180], vec![1u8; 320 * 180]);
            s.write_i420_plane(0, &mut oy, 640).unwrap();
            s.write_i420_plane(1, &mut ou, 320).unwrap();
            s.write_i420_plane(2, &mut ov, 320).unwrap();
            // What a JPEG decoder makes of it (JFIF: full range, BT.601) is the
            // RGB the source's colours say.
            let (yf, cb, cr) = (f64::from(oy[1000]), f64::from(ou[500]) - 128.0, f64::from(ov[500]) - 128.0);
            let decoded = [yf + 1.402 * cr, yf - 0.344_136 * cb - 0.714_136 * cr, yf + 1.772 * cb];
            for (c, (d, w)) in decoded.iter().zip(&want[..3]).enumerate() {
                assert!((d - f64::from(*w)).abs() <= 2.0, "{yuv:?} {matrix:?} channel {c}: {d:.1} vs {w}");
            }
            assert!(oy.iter().all(|&b| b == oy[0]) && ou.iter().all(|&b| b == ou[0]), "no bars, no change");
        }
        // The picture of a size that rounds: the letterbox's, not a fit of its own.
        let s = Scaler::picture(704, 576, 640, 640, Matrix::Bt601, false);
        let g = s.geometry();
        assert_eq!((g.dst_w, g.dst_h, g.pad_x, g.pad_y), (640, 523, 0, 0));
        assert_eq!((g.dst_w, g.dst_h), (Letterbox::fit(704, 576, 640, 640).scaled_w, 523));
        // With bars, black is full-range black once in JPEG's colours.
        let (y, u, v) = flat(960, 540, [100, 90, 160]);
        let mut s = Scaler::new(960, 540, 640, 640, Matrix::Bt709, false);
        s.scale(plane(&y, 960, 960, 540), plane(&u, 480, 480, 270), plane(&v, 480, 480, 270)).unwrap();
        s.to_jpeg_colours().unwrap();
        let mut oy = vec![1u8; 640 * 640];
        s.write_i420_plane(0, &mut oy, 640).unwrap();
        assert_eq!((oy[0], oy[639 * 640]), (0, 0));
    }

    #[test]
    fn a_gradient_is_scaled_like_bilinear_interpolation() {
        // A horizontal ramp, halved: each output pixel averages two neighbours.
        let (w, h) = (64u32, 8u32);
        let y: Vec<u8> = (0..h).flat_map(|_| (0..w).map(|x| (x * 4) as u8)).collect();
        let (_, u, v) = flat(w, h, [0, 128, 128]);
        let mut s = Scaler::new(w, h, 32, 4, Matrix::Bt601, true);
        s.scale(plane(&y, 64, w, h), plane(&u, 32, 32, 4), plane(&v, 32, 32, 4)).unwrap();
        let mut oy = vec![0u8; 32 * 4];
        s.write_i420_plane(0, &mut oy, 32).unwrap();
        for (x, &got) in oy[..32].iter().enumerate() {
            let want = (x * 8 + 2) as i32; // mean of 8x and 8x + 4
            assert!((i32::from(got) - want).abs() <= 1, "x {x}: {got} vs {want}");
        }
    }

    #[test]
    fn integer_ratios_give_what_bilinear_interpolation_gives() {
        // The shortcut and the weighted path agree exactly. Noise, so that any
        // other weighting or rounding would show.
        let mut seed = 7u32;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect()
        };
        let sizes = [
            (1920u32, 1080u32, 3u32),
            (960, 540, 3),
            (1280, 720, 2),
            (3840, 2160, 6),
            (300, 200, 5),
            (64, 48, 1),
            (640, 480, 8),
            (630, 420, 7),
        ];
        for (w, h, k) in sizes {
            assert_eq!(integer_ratio(w, h, w / k, h / k), Some(k as usize));
            let stride = w as usize + 32;
            let data = noise(stride * h as usize);
            let src = Plane { data: &data, stride, width: w, height: h };
            let fast = PlaneScaler::new(w, h, w / k, h / k);
            assert_eq!(fast.integer, Some(k as usize));
            let general = PlaneScaler { integer: None, ..PlaneScaler::new(w, h, w / k, h / k) };
            let (mut a, mut b) = (vec![0u8; (w / k * h / k) as usize], vec![1u8; (w / k * h / k) as usize]);
            fast.scale(src, &mut a, &mut Vec::new()).unwrap();
            general.scale(src, &mut b, &mut Vec::new()).unwrap();
            assert!(a == b, "{w}x{h} by {k}");
            // Without AVX2: the same.
            let mut c = vec![2u8; a.len()];
            fast.scale_rows(src, &mut c, &mut Vec::new());
            assert!(a == c, "{w}x{h} by {k}, baseline x86-64");
        }
        assert_eq!(integer_ratio(1920, 1080, 640, 361), None);
        assert_eq!(integer_ratio(960, 540, 640, 360), None);
        assert_eq!(integer_ratio(320, 180, 640, 360), None, "upscaling takes the general path");
    }

    #[test]
    fn the_weights_are_those_of_bilinear_interpolation_centre_on_centre() {
        // 3 to 2: outputs at inputs 0.25 and 1.75.
        assert_eq!(taps(3, 2), [Tap { first: 0, second: 1, weight: 64 }, Tap { first: 1, second: 2, weight: 192 }]);
        // Upscaling 2 to 4: the edges are clamped.
        let up = taps(2, 4);
        assert_eq!(up[0], Tap { first: 0, second: 1, weight: 0 });
        assert_eq!(up[1], Tap { first: 0, second: 1, weight: 64 });
        assert_eq!(up[3], Tap { first: 1, second: 1, weight: 0 });
        assert_eq!(taps(1, 3), vec![Tap { first: 0, second: 0, weight: 0 }; 3]);
        // A ramp 0, 3, 6, ... scaled 3 to 2 stays a ramp: 0.75 * 3 steps apart.
        let (w, h) = (96u32, 4u32);
        let data: Vec<u8> = (0..h).flat_map(|_| (0..w).map(|x| (x * 2) as u8)).collect();
        let s = PlaneScaler::new(w, h, 64, 4);
        let mut out = vec![0u8; 64 * 4];
        s.scale(Plane { data: &data, stride: 96, width: w, height: h }, &mut out, &mut Vec::new()).unwrap();
        for (x, &got) in out.iter().enumerate().take(63).skip(1) {
            let want = ((x as f64 + 0.5) * 1.5 - 0.5) * 2.0;
            assert!((f64::from(got) - want).abs() <= 0.5, "x {x}: {got} vs {want}");
        }
    }

    #[test]
    fn planes_that_do_not_match_the_size_are_refused() {
        let (y, u, v) = flat(64, 64, [0, 128, 128]);
        let mut s = Scaler::new(64, 64, 32, 32, Matrix::Bt601, false);
        let e = s.scale(plane(&y, 64, 64, 64), plane(&u, 32, 32, 16), plane(&v, 32, 32, 32)).unwrap_err();
        assert!(e.contains("do not make an I420 picture of 64x64"), "{e}");
        let e = s.scale(plane(&y[..100], 64, 64, 64), plane(&u, 32, 32, 32), plane(&v, 32, 32, 32)).unwrap_err();
        assert!(e.starts_with("scaling the Y plane: 100 bytes"), "{e}");
        let mut small = vec![0u8; 10];
        s.scale(plane(&y, 64, 64, 64), plane(&u, 32, 32, 32), plane(&v, 32, 32, 32)).unwrap();
        assert!(s.write_rgb(&mut small, 96).unwrap_err().contains("cannot hold 32x32"));
    }
}
