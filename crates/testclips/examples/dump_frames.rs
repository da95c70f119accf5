//! Dumps frames of the built-in clips as PNG, with a `boxes.json` manifest of
//! where each vehicle is, for eyeballing a scene or checking a detector on it.
//!
//! ```text
//! cargo run --release -p streetscope-testclips --example dump_frames -- OUT_DIR [SAMPLE_FPS]
//! ```
//!
//! Writes `OUT_DIR/<clip>_<frame>.png` for the frames a sampler at `SAMPLE_FPS`
//! (default 10) would pick (`frame = round(k * fps / SAMPLE_FPS)`), plus the empty
//! scene as `OUT_DIR/<clip>_background.png`. `bus.jpg` is found as
//! `streetscope_testclips::default_bus_image_path` says.

use std::path::PathBuf;

use serde_json::json;
use streetscope_testclips::{builtin_clips, default_bus_image_path, ClipRenderer, Facing, Sprite};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: dump_frames OUT_DIR [SAMPLE_FPS]")?);
    let sample_fps: f64 = args.next().map_or(Ok(10.0), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;
    let sprite = Sprite::load_bus(&default_bus_image_path())?;
    let mut manifest = Vec::new();
    for spec in builtin_clips() {
        let start = std::time::Instant::now();
        let renderer = ClipRenderer::new(&spec, &sprite);
        let setup = start.elapsed();
        renderer.background().save(out.join(format!("{}_background.png", spec.name)))?;
        let step = f64::from(spec.fps) / sample_fps;
        let mut render_time = std::time::Duration::ZERO;
        let mut k = 0u32;
        loop {
            let index = (f64::from(k) * step).round() as u32;
            if index >= spec.frame_count() {
                break;
            }
            let t0 = std::time::Instant::now();
            let frame = renderer.frame(index);
            render_time += t0.elapsed();
            let file = format!("{}_{index:04}.png", spec.name);
            frame.save(out.join(&file))?;
            let boxes: Vec<_> = spec
                .visible_in_frame(index)
                .into_iter()
                .map(|(v, r)| {
                    let vis = r.clip(spec.width, spec.height).expect("visible");
                    json!({
                        "id": v.id,
                        "box": [r.x, r.y, r.right(), r.bottom()],
                        "visible_box": [vis.x, vis.y, vis.right(), vis.bottom()],
                        "visible_fraction": f64::from(vis.width) / f64::from(r.width),
                        "mirrored": Facing::of_travel(v.travel()) != sprite.facing(),
                    })
                })
                .collect();
            manifest.push(json!({
                "clip": spec.name, "frame": index, "file": file,
                "width": spec.width, "height": spec.height, "vehicles": boxes,
            }));
            k += 1;
        }
        eprintln!(
            "{}: set-up {:.1} ms, {k} frames rendered in {:.1} ms ({:.2} ms/frame)",
            spec.name,
            setup.as_secs_f64() * 1e3,
            render_time.as_secs_f64() * 1e3,
            render_time.as_secs_f64() * 1e3 / f64::from(k.max(1)),
        );
    }
    std::fs::write(out.join("boxes.json"), serde_json::to_string_pretty(&manifest)?)?;
    Ok(())
}
