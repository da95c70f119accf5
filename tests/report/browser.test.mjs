// report.html in a real browser (Debian's chromium driven by playwright-core),
// on a report written by `streetscope report`'s library from a simulated study
// (crates/report/examples/simulated_study.rs):
// - the page loads with the network off and asks for nothing but itself;
// - its figures equal the CSV outputs beside it: the turning-movement diagram
//   (tmc-totals.csv over the counted bins), the bars by approach (each bin),
//   the peak-hour table (peak-hours.csv), control delay, stopped time and LOS (delay.csv),
//   queues (queues.csv), the flagged bins (tmc-totals.csv's flags), and every
//   flagged bin is visible: a grey "no count" bar where the count is not given,
//   a red "!" over the bar where it is given, listed with its flags either way;
// - it prints: page.pdf() gives a PDF;
// - a screenshot (into SCREENSHOTS_DIR when set).
//
// usage: node browser.test.mjs REPORT_DIR
// env: NODE_PATH must hold playwright-core (scripts/install-browser-test.sh).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const [dir] = process.argv.slice(2);
const shots = process.env.SCREENSHOTS_DIR;
const started = Date.now();
const log = (...a) => console.log(`[report test ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

// RFC 4180 CSV: rows of objects keyed by the header.
function csv(name) {
  const text = readFileSync(join(dir, name), "utf8");
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n") { row.push(field.replace(/\r$/, "")); rows.push(row); row = []; field = ""; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  const [head, ...body] = rows;
  return body.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i] ?? ""])));
}

const totals = csv("tmc-totals.csv");
const peaks = csv("peak-hours.csv");
const delay = csv("delay.csv");
const queues = csv("queues.csv");

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  await context.setOffline(true);
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const url = pathToFileURL(join(dir, "report.html")).href;
  await page.goto(url, { waitUntil: "load" });
  assert.deepEqual(requests, [url], "the page asks for nothing but itself");
  log("loaded offline; requests:", requests.length);

  // Bins: counted (total given) or not, from tmc-totals.csv.
  const bins = [...new Set(totals.map((r) => r.bin_start))];
  const flagsOf = Object.fromEntries(totals.map((r) => [r.bin_start, r.flags]));
  const counted = bins.filter((b) => totals.some((r) => r.bin_start === b && r.total !== ""));
  const empty = bins.filter((b) => !counted.includes(b));
  assert.ok(empty.length >= 1, "the study has a bin whose count is not given");
  assert.ok(counted.some((b) => flagsOf[b].includes("dropped_frames")), "and counted bins flagged dropped_frames");

  // The diagram: per movement, the sum over the counted bins.
  const diagram = await page.$$eval("#tmc-diagram text.mv", (ts) => ts.map((t) => [t.dataset.movement, t.textContent]));
  assert.equal(diagram.length, 16, "sixteen movements (U-turns included) of a four-way junction");
  for (const [mv, text] of diagram) {
    const want = totals
      .filter((r) => r.direction + r.movement === mv && r.total !== "")
      .reduce((s, r) => s + Number(r.total), 0);
    assert.equal(Number(text.split(" ")[1]), want, `diagram ${mv}`);
  }
  log(`diagram: ${diagram.length} movements equal tmc-totals.csv`);

  // Bars by approach (the first chart): one group per bin, in order; a bin
  // without a count is a grey "no count" bar titled with its flags.
  const charts = await page.$$eval("svg[role=img]:not(#tmc-diagram)", (svgs) =>
    svgs.map((s) => [...s.querySelectorAll("rect")].map((r) => [r.getAttribute("x"), r.getAttribute("class"), r.querySelector("title")?.textContent ?? ""])),
  );
  assert.equal(charts.length, 2, "volumes by approach and by class group");
  const nodata = charts.map((c) => c.filter(([, cls]) => cls === "nodata"));
  for (const n of nodata) {
    assert.equal(n.length, empty.length, "one grey bar per bin without a count");
    for (const [i, b] of empty.entries()) assert.equal(n[i][2], `no count: ${flagsOf[b]}`);
  }
  // A bin counted but flagged (frames lost in short runs) is marked "!" above its bar.
  const marks = await page.$$eval("svg[role=img]:not(#tmc-diagram)", (svgs) =>
    svgs.map((s) => [...s.querySelectorAll("text.flagged")].map((t) => t.querySelector("title")?.textContent)),
  );
  const countedFlagged = counted.filter((b) => flagsOf[b] !== "");
  for (const m of marks) assert.deepEqual(m, countedFlagged.map((b) => `counted, flagged: ${flagsOf[b]}`));
  const byX = new Map();
  for (const [x, cls, title] of charts[0]) {
    if (cls === "nodata") continue;
    const [name, v] = title.split(" ");
    byX.set(x, { ...(byX.get(x) ?? {}), [name]: Number(v) });
  }
  const groups = [...byX.entries()].sort((a, b) => Number(a[0]) - Number(b[0])).map(([, v]) => v);
  assert.equal(groups.length, counted.length, "one stack per counted bin");
  for (const [i, b] of counted.entries()) {
    for (const dirn of ["NB", "SB", "EB", "WB"]) {
      const want = totals.filter((r) => r.bin_start === b && r.direction === dirn).reduce((s, r) => s + Number(r.total), 0);
      assert.equal(groups[i][dirn], want, `${b} ${dirn}`);
    }
  }
  log(`bars: ${counted.length} counted bins by approach equal tmc-totals.csv; ${empty.length} grey`);

  // Peak hours: the intersection rows and each approach's PHF.
  const peakRows = await page.$$eval("#peaks tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
  const inter = peaks.filter((r) => r.level === "intersection");
  assert.ok(inter.length >= 1, "a peak hour");
  assert.equal(peakRows.length, inter.length);
  const dash = (s) => (s === "" ? "–" : s);
  for (const [i, p] of inter.entries()) {
    const [period, hour, volume, phf, hv, bus, appr] = peakRows[i];
    assert.equal(period, p.period);
    assert.equal(hour, `${p.peak_start.slice(0, 10)} ${p.peak_start.slice(11, 16)}–${p.peak_end.slice(11, 16)}`);
    assert.deepEqual([volume, phf, hv, bus], [p.volume, dash(p.phf), dash(p.heavy_pct), dash(p.bus_pct)]);
    const approaches = peaks
      .filter((r) => r.level === "approach" && r.period === p.period && r.peak_start === p.peak_start)
      .map((r) => `${r.direction} ${dash(r.phf)}`);
    assert.equal(appr, approaches.join(", "));
  }
  log(`peak hours: ${inter.length} equal peak-hours.csv`);

  // Control delay and LOS: the study's rows of delay.csv (bin_start empty).
  const losRows = await page.$$eval("#los tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
  const whole = delay.filter((r) => r.bin_start === "" && Number(r.vehicles) > 0);
  assert.ok(whole.length >= 8, "delays of most movements");
  assert.equal(losRows.length, whole.length);
  for (const [i, r] of whole.entries()) {
    const row = [`${r.direction}${r.movement}`, r.vehicles, Number(r.mean_delay_s).toFixed(1)];
    assert.deepEqual(losRows[i], [...row, Number(r.mean_stopped_s).toFixed(1), r.los]);
  }
  log(`delay: ${whole.length} movements equal delay.csv`);

  // Queues: per lane, over the counted bins.
  const qRows = await page.$$eval("#queues tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
  const lanes = [...new Set(queues.map((r) => r.lane))];
  assert.equal(qRows.length, lanes.length);
  for (const [lane, mean, max, maxM] of qRows) {
    const rows = queues.filter((r) => r.lane === lane && r.mean_vehicles !== "");
    const wantMean = rows.reduce((s, r) => s + Number(r.mean_vehicles), 0) / rows.length;
    const wantMax = Math.max(...rows.map((r) => Number(r.max_vehicles)));
    assert.ok(Math.abs(Number(mean) - wantMean) <= 0.01, `${lane} mean ${mean} vs ${wantMean}`);
    assert.equal(Number(max), wantMax, `${lane} max`);
    assert.equal(maxM, Math.max(...rows.map((r) => Number(r.max_m))).toFixed(1), `${lane} max (m)`);
  }
  log(`queues: ${qRows.length} lanes equal queues.csv`);

  // Every flagged bin listed with its flags, and whether its count is given.
  const flagged = await page.$$eval("#flagged tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
  const wantFlagged = bins.filter((b) => flagsOf[b] !== "");
  assert.deepEqual(
    flagged.map((r) => [r[0], r[2], r[3]]),
    wantFlagged.map((b) => [b, flagsOf[b], counted.includes(b) ? "given" : "not given"]),
  );
  log(`data quality: ${flagged.length} flagged bins listed as in tmc-totals.csv`);

  // It prints.
  const pdf = await page.pdf({ format: "A4", printBackground: true });
  assert.equal(pdf.subarray(0, 5).toString(), "%PDF-");
  const pages = (pdf.toString("latin1").match(/\/Type\s*\/Page[^s]/g) ?? []).length;
  assert.ok(pages >= 1, "a page at least");
  log(`printed: ${pdf.length} bytes, ${pages} A4 pages`);
  if (shots) {
    await page.screenshot({ path: join(shots, "report.png"), fullPage: true });
    writeFileSync(join(shots, "report.pdf"), pdf);
    log("screenshot in", shots);
  }
} finally {
  await browser.close();
}
log("ok");
