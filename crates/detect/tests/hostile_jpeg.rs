//! Hostile input against the detector's decoding of a frame's JPEG payload
//! (`streetscope.frames`: anyone who can write the topic chooses the bytes):
//! mutations of real JPEGs of the letterbox's picture alone and of the whole
//! letterbox, in colour and greyscale, and random bytes. None may panic, take
//! long, or allocate more than a bounded multiple of the model's input, and
//! every refusal names the frame and what was wrong.
//!
//! Seeded: `STREETSCOPE_FUZZ_SEED` and `STREETSCOPE_FUZZ_CASES` (scripts/fuzz.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use streetscope_contracts::{CaptureClock, Frame, FrameEncoding, Letterbox};
use streetscope_detect::{InputBuf, Precision, Preprocessor};
use streetscope_hostile::{hostile, measure, Dictionary, Fuzz, Verdict};

#[global_allocator]
static ALLOC: streetscope_hostile::Meter = streetscope_hostile::Meter;

/// No single input may take this long: a hang detector, with room for a loaded CI machine.
const SLOW: Duration = Duration::from_secs(10);

/// The model's input: small, so that many inputs run.
const SIZE: u32 = 64;

fn letterbox() -> Letterbox {
    Letterbox::fit(1280, 720, SIZE, SIZE)
}

fn jpeg(img: image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&img).unwrap();
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let lb = letterbox();
    let colour = |w, h| {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 7) as u8, ((x ^ y) * 3) as u8])
        }))
    };
    let grey = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(lb.scaled_w, lb.scaled_h, |x, _| {
        image::Luma([(x * 4) as u8])
    }));
    vec![jpeg(colour(lb.scaled_w, lb.scaled_h)), jpeg(colour(SIZE, SIZE)), jpeg(grey), jpeg(colour(17, 9))]
}

fn frame(payload: &[u8]) -> Frame {
    Frame {
        camera_id: Arc::from("cam-5th-main-ne"),
        intersection_id: Arc::from("5th-and-main"),
        seq: 4242,
        pts_ns: 0,
        capture_time_ms: 1_795_893_140_044,
        clock: CaptureClock::CameraNtp,
        letterbox: letterbox(),
        encoding: FrameEncoding::Jpeg,
        payload: Arc::from(payload),
    }
}

#[test]
fn frame_jpeg_payloads() {
    let u8_pre = Preprocessor { width: SIZE, height: SIZE, precision: Precision::U8 };
    let f32_pre = Preprocessor { precision: Precision::F32, ..u8_pre };
    let (mut u8_buf, mut f32_buf) = (u8_pre.buffer(), f32_pre.buffer());
    let bufs = std::sync::Mutex::new((&mut u8_buf, &mut f32_buf));
    // JPEG's markers: start and end of image, frame headers (baseline,
    // progressive, lossless), tables, restart interval, start of scan.
    let mut dict = Dictionary::binary();
    for marker in [0xd8u8, 0xd9, 0xc0, 0xc2, 0xc3, 0xc4, 0xdb, 0xdd, 0xda, 0xe0, 0xfe, 0xd0] {
        dict.0.push(vec![0xff, marker]);
    }
    // A frame header claiming 65,535 x 65,535 pixels, three components.
    dict.0.push(vec![0xff, 0xc0, 0, 17, 8, 0xff, 0xff, 0xff, 0xff, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    // Enough for the letterbox of the model's input in floats, twice, and the
    // decoder's own buffers: nothing grows with what a header claims.
    let bound = 8 * (SIZE * SIZE * 3) as usize * 4 + (1 << 20);
    Fuzz::new("frame_jpeg_payload", 100_000).run(hostile(seeds(), dict, 512), |bytes| {
        let f = frame(&bytes);
        let mut guard = bufs.lock().unwrap();
        let (u8_buf, f32_buf) = &mut *guard;
        let start = Instant::now();
        let ((as_u8, as_f32), usage) = measure(|| (u8_pre.prepare(&f, u8_buf), f32_pre.prepare(&f, f32_buf)));
        prop_assert!(start.elapsed() < SLOW, "{:?} for {} bytes", start.elapsed(), bytes.len());
        prop_assert!(usage.largest <= bound && usage.total <= 4 * bound, "{usage:?} for {} bytes", bytes.len());
        // The same bytes, the same verdict, whatever the model's input type.
        prop_assert_eq!(as_u8.is_ok(), as_f32.is_ok(), "{:?} / {:?}", as_u8, as_f32);
        match as_u8 {
            Ok(()) => {
                // A picture alone is put in its letterbox: the bars are black,
                // whatever the buffer held before.
                let lb = letterbox();
                let header = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&bytes[..]));
                let size = header.map(|d| image::ImageDecoder::dimensions(&d));
                prop_assert!(matches!(size, Ok(s) if s == (SIZE, SIZE) || s == (lb.scaled_w, lb.scaled_h)), "{size:?}");
                if size.is_ok_and(|s| s != (SIZE, SIZE)) {
                    let InputBuf::U8(px) = &**u8_buf else { unreachable!() };
                    let row = (SIZE * 3) as usize;
                    let (top, bottom) = (lb.pad_y as usize * row, (lb.pad_y + lb.scaled_h) as usize * row);
                    prop_assert!(px[..top].iter().chain(&px[bottom..]).all(|&b| b == 0), "bars not black");
                }
                Ok(Verdict::Accepted)
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.contains("cam-5th-main-ne") && text.contains("4242"), "{text}");
                prop_assert!(text.contains("JPEG"), "{text}");
                Ok(Verdict::Refused)
            }
        }
    });
}

#[test]
fn a_jpeg_claiming_a_huge_picture_is_refused_before_it_is_decoded() {
    let mut bytes = seeds().swap_remove(0);
    let sof = bytes.windows(2).position(|w| w == [0xff, 0xc0]).expect("a baseline frame header");
    // Marker, length (2), precision (1), then height and width (2 each).
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let pre = Preprocessor { width: SIZE, height: SIZE, precision: Precision::U8 };
    let mut buf = pre.buffer();
    let (e, usage) = measure(|| pre.prepare(&frame(&bytes), &mut buf).unwrap_err().to_string());
    assert!(e.contains("JPEG is 65535x65535: neither the letterbox (64x64) nor its picture (64x36)"), "{e}");
    assert!(usage.largest < 64 << 10, "{usage:?}");
}
