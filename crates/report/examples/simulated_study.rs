//! Writes the report of a simulated study into a folder: two hours (06:00–08:00
//! New York) of the simulator's default junction with typical noise through the
//! real aggregator, the frames of 06:50–06:51 lost (its bin empty and flagged
//! `gap`; the other bins counted and flagged `dropped_frames`), the queue zones
//! as detectors and delay zones. What the browser check of `report.html`
//! (tests/report/browser.test.mjs) reads, and a study to look at.
//!
//! ```sh
//! cargo run --release -p streetscope-report --example simulated_study -- OUT_DIR
//! ```

use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::TrackerConfig;
use streetscope_contracts::records::ResultRecord;
use streetscope_report::config::DelayZone;
use streetscope_report::{read_results, report_to_dir, Scope, StudyConfig};
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec, Simulation};

/// 2026-01-01T06:00:00-05:00.
const SIX_AM_NEW_YORK: i64 = 1_767_265_200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: simulated_study OUT_DIR")?;
    let spec = IntersectionSpec { duration_s: 121.0 * 60.0, epoch_ms: SIX_AM_NEW_YORK, ..scenario::default_four_way() };
    let sim = Simulation::new(spec, NoiseSpec::typical(), 12)?;
    let cam = sim.camera(sim.spec().queue_zones());
    let analytics = sim.study_analytics(&cam.id);
    let (frames, _) = sim.run_to_end();
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
    let mut jsonl = String::new();
    let mut put = |records: Vec<ResultRecord>| {
        for r in records {
            jsonl += &serde_json::to_string(&r).expect("serialises");
            jsonl.push('\n');
        }
    };
    // 06:50:00–06:51:00 at 10 frames/s: never arrive.
    for f in frames.iter().filter(|f| !(30_000..30_600).contains(&f.seq)) {
        let c = agg.process(f)?;
        put(agg.drain(c));
    }
    let c = agg.finish();
    put(agg.drain(c));

    let mut cfg = StudyConfig::new("America/New_York");
    cfg.delay_zones = cam
        .zones
        .iter()
        .map(|z| DelayZone { camera: cam.id.clone(), zone: z.name.clone(), free_flow_s: None })
        .collect();
    let scope = Scope { from_ms: Some(SIX_AM_NEW_YORK), to_ms: Some(SIX_AM_NEW_YORK + 7_200_000), ..Scope::default() };
    let results = read_results("simulated.jsonl", &jsonl)?;
    let dir = std::path::Path::new(&out);
    for name in report_to_dir(&results, &analytics.approaches, &cfg, &scope, None, dir)? {
        println!("{}", dir.join(name).display());
    }
    Ok(())
}
