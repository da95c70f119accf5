//! `report.html`: one self-contained page per study (no script, no font, no
//! image and no style sheet from outside: it opens the same offline and prints
//! on A4/Letter): the turning-movement diagram of the study, 15-minute volumes by
//! approach and by class group (SVG drawn here), the peak hours with PHF and
//! HV %, queues, control delay and LOS, and the data-quality notes.

use std::fmt::Write;

use crate::delay::{means, Delays, VehicleDelay};
use crate::los::los;
use crate::movement::{Turn, LEG_ORDER};
use crate::peak::{pct, PeakHour};
use crate::study::{IntersectionCounts, Study, BIN_MS};
use crate::time::iso;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}\
th{background:#eee}td.l,th.l{text-align:left}.flag{color:#a00}.muted{color:#666}\
svg text{font:11px system-ui,sans-serif}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}\
@media print{body{margin:8mm}section{break-inside:avoid}}";

/// The page.
pub fn report_html(study: &Study, peaks: &[PeakHour], delays: Option<&Delays>, notes: &[String]) -> String {
    let mut h = String::new();
    let title = study.intersections.iter().map(|ic| ic.site.as_str()).collect::<Vec<_>>().join(", ");
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} — traffic study</title>\
         <style>{STYLE}</style></head><body><h1>{t}</h1><p class=\"muted\">Traffic study {} to {} ({}), \
         15-minute bins. Made by streetscope report from video analytics; counts of flagged bins are not given.</p>",
        esc(&iso(study.from_ms, &study.tz)),
        esc(&iso(study.to_ms, &study.tz)),
        esc(&study.config.time_zone),
        t = esc(&title),
    );
    for (i, ic) in study.intersections.iter().enumerate() {
        let _ =
            write!(h, "<section id=\"intersection-{}\"><h2>{} ({})</h2>", i, esc(&ic.site), esc(&ic.intersection_id));
        diagram(&mut h, ic);
        let _ = write!(h, "<h3>15-minute volumes by approach</h3>");
        bars(&mut h, study, ic, &by_approach(ic), &["NB", "SB", "EB", "WB"]);
        let _ = write!(h, "<h3>15-minute volumes by class group</h3>");
        let groups: Vec<&str> = ic.groups.iter().map(String::as_str).collect();
        bars(&mut h, study, ic, &by_group(ic), &groups);
        peak_table(&mut h, study, ic, peaks.iter().filter(|p| p.intersection == i));
        if let Some(d) = delays {
            delay_table(&mut h, ic, &d[i]);
        }
        queue_table(&mut h, study, ic);
        quality(&mut h, study, ic);
        h.push_str("</section>");
    }
    h.push_str("<section><h2>Notes</h2><ul>");
    for n in notes {
        let _ = write!(h, "<li>{}</li>", esc(n));
    }
    h.push_str("</ul></section></body></html>\n");
    h
}

/// Per bin: the four approaches' volumes (NB, SB, EB, WB); `None` for a flagged bin.
fn by_approach(ic: &IntersectionCounts) -> Vec<Option<Vec<u64>>> {
    (0..ic.bins.len())
        .map(|b| {
            ic.bins[b].ok().then(|| {
                LEG_ORDER
                    .iter()
                    .map(|leg| {
                        (0..ic.movements.len())
                            .filter(|&m| ic.movements[m].leg() == *leg)
                            .map(|m| ic.total(b, m).unwrap_or(0))
                            .sum()
                    })
                    .collect()
            })
        })
        .collect()
}

fn by_group(ic: &IntersectionCounts) -> Vec<Option<Vec<u64>>> {
    (0..ic.bins.len())
        .map(|b| {
            ic.bins[b].ok().then(|| {
                (0..ic.groups.len()).map(|g| (0..ic.movements.len()).map(|m| ic.counts[b][m][g]).sum()).collect()
            })
        })
        .collect()
}

/// Stacked bars per bin; a flagged bin is a grey "no count" mark, never a zero bar.
fn bars(h: &mut String, study: &Study, ic: &IntersectionCounts, series: &[Option<Vec<u64>>], names: &[&str]) {
    let (w, ht, left, bottom) = (760.0, 220.0, 40.0, 30.0);
    let max = series.iter().flatten().map(|v| v.iter().sum::<u64>()).max().unwrap_or(0).max(1) as f64;
    let n = series.len().max(1) as f64;
    let bw = (w - left) / n;
    let _ = write!(h, "<svg role=\"img\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\">");
    let plot = ht - bottom - 10.0;
    let _ = write!(h, "<text x=\"2\" y=\"14\">{}</text>", max as u64);
    let _ = write!(h, "<line x1=\"{left}\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" stroke=\"#888\"/>", y = 10.0 + plot);
    for (b, s) in series.iter().enumerate() {
        let x = left + b as f64 * bw;
        match s {
            Some(v) => {
                let mut y = 10.0 + plot;
                for (k, val) in v.iter().enumerate() {
                    let hh = plot * *val as f64 / max;
                    y -= hh;
                    let _ = write!(
                        h,
                        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{hh:.1}\" fill=\"{}\"><title>{} {}</title></rect>",
                        (bw - 2.0).max(1.0),
                        COLOURS[k % COLOURS.len()],
                        esc(names.get(k).unwrap_or(&"")),
                        val
                    );
                }
                // Counted, but flagged (frames lost in short runs): a mark above the bar.
                if !ic.bins[b].flags.is_empty() {
                    let _ = write!(
                        h,
                        "<text class=\"flagged\" x=\"{:.1}\" y=\"{:.1}\" fill=\"#a00\" text-anchor=\"middle\">\
                         <title>counted, flagged: {}</title>!</text>",
                        x + bw / 2.0 - 1.0,
                        (y - 2.0).max(9.0),
                        esc(&ic.bins[b].flag_text())
                    );
                }
            }
            None => {
                let _ = write!(
                    h,
                    "<rect class=\"nodata\" x=\"{x:.1}\" y=\"10\" width=\"{:.1}\" height=\"{plot:.1}\" fill=\"#ddd\">\
                     <title>no count: {}</title></rect>",
                    (bw - 2.0).max(1.0),
                    esc(&ic.bins[b].flag_text())
                );
            }
        }
        if b % 4 == 0 {
            let label = iso(ic.bins[b].start_ms, &study.tz);
            let _ = write!(h, "<text x=\"{x:.1}\" y=\"{}\">{}</text>", ht - 12.0, esc(&label[11..16]));
        }
    }
    h.push_str("</svg><div class=\"legend\">");
    for (k, name) in names.iter().enumerate() {
        let _ = write!(h, "<span style=\"background:{}\"></span>{}", COLOURS[k % COLOURS.len()], esc(name));
    }
    h.push_str(
        "<span style=\"background:#ddd\"></span>no count (flagged) <b class=\"flag\">&nbsp;!</b> counted, flagged \
         (frames lost in short runs; see Data quality)</div>",
    );
}

/// The junction as a cross: each approach's study volumes by turn where it enters.
fn diagram(h: &mut String, ic: &IntersectionCounts) {
    let total = |m: usize| (0..ic.bins.len()).map(|b| ic.total(b, m).unwrap_or(0)).sum::<u64>();
    let counted = ic.bins.iter().filter(|b| b.ok()).count();
    let _ = write!(
        h,
        "<h3>Turning movements over the study's {counted} counted bins</h3><svg id=\"tmc-diagram\" role=\"img\" \
         width=\"420\" height=\"420\" viewBox=\"0 0 420 420\"><rect x=\"160\" y=\"0\" width=\"100\" height=\"420\" \
         fill=\"#e8e8e8\"/><rect x=\"0\" y=\"160\" width=\"420\" height=\"100\" fill=\"#e8e8e8\"/>"
    );
    // Where each entry leg's label goes: (x, y) of its first line.
    for leg in LEG_ORDER {
        let movs: Vec<usize> = (0..ic.movements.len()).filter(|&m| ic.movements[m].leg() == leg).collect();
        if movs.is_empty() {
            continue;
        }
        // One quadrant each: N top right, E bottom right, S bottom left, W top left.
        let (x, y) = match leg.letter() {
            "N" => (270.0, 20.0),
            "E" => (270.0, 280.0),
            "S" => (20.0, 280.0),
            _ => (20.0, 20.0),
        };
        let dir = ic.movements[movs[0]].bound();
        let sum: u64 = movs.iter().map(|&m| total(m)).sum();
        let _ = write!(h, "<text x=\"{x}\" y=\"{y}\" font-weight=\"bold\">{dir} (from {}) {sum}</text>", leg.letter());
        for (k, t) in Turn::ALL.iter().enumerate() {
            if let Some(&m) = movs.iter().find(|&&m| ic.movements[m].turn == *t) {
                let _ = write!(
                    h,
                    "<text class=\"mv\" data-movement=\"{}\" x=\"{x}\" y=\"{}\">{} {}</text>",
                    ic.movements[m].utdf(),
                    y + 14.0 * (k as f64 + 1.0),
                    t.letter(),
                    total(m)
                );
            }
        }
    }
    h.push_str("<text x=\"203\" y=\"215\">N↑</text></svg>");
}

fn peak_table<'a>(h: &mut String, study: &Study, ic: &IntersectionCounts, peaks: impl Iterator<Item = &'a PeakHour>) {
    h.push_str(
        "<h3>Peak hours</h3><table id=\"peaks\"><tr><th class=\"l\">period</th><th class=\"l\">hour</th>\
         <th>volume</th><th>PHF</th><th>HV %</th><th>bus %</th><th class=\"l\">approach PHF</th></tr>",
    );
    let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "–".into());
    for p in peaks {
        let start = iso(ic.bins[p.first_bin].start_ms, &study.tz);
        let end = iso(ic.bins[p.first_bin].start_ms + 4 * BIN_MS, &study.tz);
        let appr: Vec<String> = p.approaches.iter().map(|a| format!("{} {}", a.direction, f(a.phf, 3))).collect();
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{} {}–{}</td><td>{}</td><td class=\"phf\">{}</td><td>{}</td>\
             <td>{}</td><td class=\"l\">{}</td></tr>",
            esc(&p.period),
            esc(&p.date),
            &start[11..16],
            &end[11..16],
            p.volume,
            f(p.phf, 3),
            f(pct(p.heavy, p.volume), 1),
            f(pct(p.buses, p.volume), 1),
            esc(&appr.join(", "))
        );
    }
    h.push_str("</table>");
}

fn delay_table(
    h: &mut String,
    ic: &IntersectionCounts,
    d: &std::collections::BTreeMap<(usize, usize), Vec<VehicleDelay>>,
) {
    h.push_str(
        "<h3>Control delay and level of service</h3><table id=\"los\"><tr><th class=\"l\">movement</th>\
         <th>vehicles</th><th>mean delay (s)</th><th>mean stopped (s)</th><th>LOS</th></tr>",
    );
    for (m, mov) in ic.movements.iter().enumerate() {
        let v: Vec<VehicleDelay> =
            d.iter().filter(|((b, mm), _)| *mm == m && ic.bins[*b].ok()).flat_map(|(_, v)| v.iter().copied()).collect();
        let Some((mean, stopped)) = means(&v) else {
            continue;
        };
        let _ = write!(
            h,
            "<tr><td class=\"l\">{mov}</td><td>{}</td><td>{mean:.1}</td><td>{stopped:.1}</td><td>{}</td></tr>",
            v.len(),
            los(mean, ic.control)
        );
    }
    h.push_str("</table>");
}

fn queue_table(h: &mut String, study: &Study, ic: &IntersectionCounts) {
    let mut lanes: Vec<&(String, String)> = ic.queues.iter().flat_map(|m| m.keys()).collect();
    lanes.sort();
    lanes.dedup();
    if lanes.is_empty() {
        return;
    }
    h.push_str(
        "<h3>Queues (counted bins)</h3><table id=\"queues\"><tr><th class=\"l\">lane</th><th>mean (veh)</th>\
         <th>max (veh)</th><th>max (m)</th></tr>",
    );
    for key in lanes {
        let rows: Vec<(f64, u32)> = (0..ic.bins.len())
            .filter(|&b| ic.bins[b].ok())
            .filter_map(|b| ic.queues[b].get(key))
            .flatten()
            .map(|r| (r.0, r.1))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let per_veh = study
            .config
            .queues
            .lanes
            .iter()
            .find(|l| l.lane == key.1)
            .and_then(|l| l.vehicle_length_m)
            .unwrap_or(study.config.queues.vehicle_length_m);
        let mean = rows.iter().map(|r| r.0).sum::<f64>() / rows.len() as f64;
        let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{mean:.2}</td><td>{max}</td><td>{:.1}</td></tr>",
            esc(&key.1),
            f64::from(max) * per_veh
        );
    }
    h.push_str("</table>");
}

fn quality(h: &mut String, study: &Study, ic: &IntersectionCounts) {
    let flagged: Vec<usize> = (0..ic.bins.len()).filter(|&b| !ic.bins[b].flags.is_empty()).collect();
    let _ = write!(
        h,
        "<h3>Data quality</h3><p>{} bins, {} counted, {} flagged. The lowest coverage of a counted bin: {}.</p>",
        ic.bins.len(),
        ic.bins.iter().filter(|b| b.ok()).count(),
        flagged.len(),
        ic.bins
            .iter()
            .filter(|b| b.ok())
            .map(|b| b.coverage)
            .fold(None, |a: Option<f64>, c| Some(a.map_or(c, |a| a.min(c))))
            .map_or("–".into(), |c| format!("{:.1} %", 100.0 * c))
    );
    if !flagged.is_empty() {
        h.push_str("<table id=\"flagged\"><tr><th class=\"l\">bin</th><th>coverage</th><th class=\"l\">flags</th><th class=\"l\">count</th></tr>");
        for b in flagged {
            let bin = &ic.bins[b];
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{:.1} %</td><td class=\"l flag\">{}</td><td class=\"l\">{}</td></tr>",
                esc(&iso(bin.start_ms, &study.tz)),
                100.0 * bin.coverage,
                esc(&bin.flag_text()),
                if bin.ok() { "given" } else { "not given" }
            );
        }
        h.push_str("</table>");
    }
}
