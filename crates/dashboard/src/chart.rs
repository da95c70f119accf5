//! Charts drawn on the server as SVG.
//!
//! Why not a charting library in the browser: the one chart (96 bars) is a few
//! dozen lines of SVG, drawn here it needs no bundle to vendor, pin and audit,
//! works on a closed city network, and its output is tested with data like the
//! rest of the view model.

use std::fmt::Write;

use crate::view::{BINS, BIN_MS};

const W: f64 = 960.0;
const H: f64 = 220.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

/// A bar chart of crossings per 15 minutes over the day starting at
/// `day_start_ms` (empty bins: an empty chart with its axes).
pub fn bins_svg(bins: &[u64], day_start_ms: Option<i64>) -> String {
    let max = bins.iter().copied().max().unwrap_or(0).max(1);
    // A round top for the axis: 1, 2, 5, 10, 20, 50, …
    let mut top = 1u64;
    while top < max {
        top = match top.to_string().as_bytes()[0] {
            b'1' => top * 2,
            b'2' => top * 5 / 2,
            _ => top * 2,
        };
    }
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let bar_w = plot_w / BINS as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" class="chart" role="img" aria-label="Crossings per 15 minutes"><rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>"#
    );
    for k in 0..=4 {
        let v = top as f64 * f64::from(k) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(k) / 4.0;
        let _ = write!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            W - 8.0,
            LEFT - 4.0,
            y + 4.0,
            if v.fract() == 0.0 { format!("{v}") } else { format!("{v:.1}") }
        );
    }
    for h in (0..=24).step_by(3) {
        let x = LEFT + bar_w * 4.0 * f64::from(h);
        let _ = write!(s, r#"<text x="{x:.1}" y="{}" class="tick" text-anchor="middle">{h:02}:00</text>"#, H - 6.0);
    }
    for (k, &n) in bins.iter().enumerate().take(BINS) {
        if n == 0 {
            continue;
        }
        let bh = plot_h * n as f64 / top as f64;
        let x = LEFT + bar_w * k as f64;
        let start = day_start_ms.map(|d| d + BIN_MS * k as i64).unwrap_or(0);
        let _ = write!(
            s,
            r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" data-bin="{k}" data-count="{n}" data-start-ms="{start}"><title>{:02}:{:02} {n}</title></rect>"#,
            x + 0.5,
            TOP + plot_h - bh,
            (bar_w - 1.0).max(1.0),
            k / 4,
            (k % 4) * 15
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_non_empty_bin_with_its_count() {
        let mut bins = vec![0u64; BINS];
        bins[0] = 3;
        bins[33] = 7; // 08:15
        let svg = bins_svg(&bins, Some(86_400_000));
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert!(svg.contains(r#"data-bin="33" data-count="7""#), "{svg}");
        assert!(svg.contains("<title>08:15 7</title>"));
        assert!(svg.contains(&format!(r#"data-start-ms="{}""#, 86_400_000 + 33 * BIN_MS)));
        // The axis tops at a round number at or above the highest bar: 10.
        assert!(svg.contains(">10</text>"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn an_empty_day_has_axes_and_no_bars() {
        let svg = bins_svg(&[], None);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 0);
        assert!(svg.contains(">12:00</text>"));
    }
}
