// The dashboard in a real browser (Debian's chromium driven by playwright-core),
// on a real run of the demo clip with the real model:
// - during the run, every crossing shows on an open page within a few seconds
//   of its record reaching the results file;
// - after the run, the page's numbers equal the results records (counts per
//   line, direction and class; the turning-movement matrix; the day's bins);
// - a page opened after the run shows the whole day so far;
// - the camera page's snapshot shows the counting lines (pixels in the line's
//   colour where the config puts the line), and its boxes carry the aggregate
//   stage's track ids: ids the crossing records of that camera carry;
// - screenshots of each page (into SCREENSHOTS_DIR when set).
//
// usage: node browser.test.mjs STREETSCOPE_BIN CONFIG
// env: NODE_PATH must hold playwright-core (scripts/install-browser-test.sh).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { isLineColour, openBrowser, pageCounts, sleep } from "./common.mjs";

const [bin, config] = process.argv.slice(2);
const LATENCY_LIMIT_MS = 3000;
const RUN_LIMIT_MS = 240_000;
const work = mkdtempSync(join(tmpdir(), "streetscope-dashboard-"));
const results = join(work, "results.jsonl");
const shots = process.env.SCREENSHOTS_DIR;
const started = Date.now();
const log = (...a) => console.log(`[dashboard test ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

const proc = spawn(bin, ["run", "--config", config, "--output", results, "--ui", "127.0.0.1:0"], {
  stdio: ["ignore", "pipe", "pipe"],
});
let stderr = "";
let over = false;
let exited = null;
proc.stderr.on("data", (d) => {
  stderr += d;
  if (stderr.includes("the run is over")) over = true;
});
proc.stdout.on("data", () => {});
proc.on("exit", (code, signal) => (exited = { code, signal }));
const killer = setTimeout(() => {
  console.error("the test ran too long; stopping");
  proc.kill("SIGKILL");
  process.exit(1);
}, RUN_LIMIT_MS);

async function until(what, cond, ms = 60_000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await cond();
    if (v) return v;
    if (exited) throw new Error(`streetscope exited (${JSON.stringify(exited)}) while waiting for ${what}:\n${stderr}`);
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}\n${stderr.slice(-2000)}`);
}

function records() {
  if (!existsSync(results)) return [];
  return readFileSync(results, "utf8").split("\n").filter((l) => l.trim()).flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return []; // a line being written
    }
  });
}
const keyOf = (c) => `${c.camera_id}/${c.track_id}/${c.line}/${c.direction_label}`;

let session;
let failed = false;
try {
  const base = await until("the dashboard's address", () => stderr.match(/dashboard: (http:\/\/[^\s]+)\//)?.[1], 120_000);
  log("dashboard at", base);
  session = await openBrowser(base);
  // Nothing may leave for the internet: every request goes to the dashboard.
  const { browser, foreign } = session;
  const overview = await browser.newPage();
  await overview.goto(`${base}/`);
  const junction = await until("an intersection on the overview", () =>
    overview.locator('[data-testid="intersection"]').first().getAttribute("data-id").catch(() => null));
  const live = await browser.newPage();
  await live.goto(`${base}/intersection/${encodeURIComponent(junction)}`);

  // During the run: each crossing in the file shows on the open page within the limit.
  const seen = new Set();
  const latencies = [];
  // The snapshots with track ids drawn, polled once a second: frame -> ids.
  const snapCamera = readFileSync(config, "utf8").match(/\[\[cameras\]\]\s*\nid = "([^"]+)"/)[1];
  const labelled = new Map();
  let polled = 0;
  async function pollSnapshot() {
    if (Date.now() - polled < 1000) return;
    polled = Date.now();
    const r = await fetch(`${base}/snapshot/${encodeURIComponent(snapCamera)}`).catch(() => null);
    if (!r || !r.ok) return;
    await r.arrayBuffer();
    const ids = (r.headers.get("x-track-ids") || "").split(",").filter((t) => t).map(Number);
    if (ids.length) labelled.set(Number(r.headers.get("x-frame-seq")), ids);
  }
  while (!over) {
    await pollSnapshot();
    for (const r of records().filter((r) => r.record === "crossing")) {
      const key = keyOf(r);
      if (seen.has(key)) continue;
      seen.add(key);
      const inFile = Date.now();
      // Read in one go in the page (the list is re-rendered on each update).
      let attrs = null;
      while (!attrs && Date.now() - inFile < LATENCY_LIMIT_MS + 2000) {
        attrs = await live.evaluate((k) => {
          const el = [...document.querySelectorAll("li[data-key]")].find((e) => e.dataset.key === k);
          return el ? [el.dataset.shownMs, el.dataset.receivedMs] : null;
        }, key);
        if (!attrs) await sleep(50);
      }
      const [shown, received] = (attrs || [NaN, NaN]).map(Number);
      assert.ok(Number.isFinite(shown), `crossing ${key} never showed on the page`);
      // From the record's arrival at the dashboard to the page, and at the latest
      // from when the test saw it in the file (which is written at the same time).
      const latency = shown - received;
      latencies.push(latency);
      log(`crossing ${key}: on the page ${latency} ms after the dashboard received it; ` +
        `${Math.max(0, shown - inFile)} ms after the test saw it in the file`);
      assert.ok(latency <= LATENCY_LIMIT_MS, `crossing ${key} took ${latency} ms to show`);
    }
    if (exited) throw new Error(`streetscope exited early: ${JSON.stringify(exited)}\n${stderr}`);
    await sleep(100);
  }
  log("run over;", seen.size, "crossings seen live; worst latency", Math.max(...latencies), "ms");

  const recs = records();
  const crossings = recs.filter((r) => r.record === "crossing");
  const turns = recs.filter((r) => r.record === "turning_movement");
  const summary = recs.find((r) => r.record === "summary");
  assert.ok(summary, "the run wrote its summary");
  assert.ok(crossings.length >= 2, `the demo clip has crossings (got ${crossings.length})`);
  assert.equal(seen.size, crossings.length, "every crossing was seen live");

  // The figures the records say, keyed as the page keys them.
  const want = new Map();
  for (const c of crossings) {
    const k = `${c.camera_id}|${c.line}|${c.direction_label}|${c.class_name}`;
    want.set(k, (want.get(k) || 0) + 1);
  }
  const wantSummary = new Map(summary.counts.map((c) => [`${c.camera_id}|${c.line}|${c.direction_label}|${c.class_name}`, c.count]));
  assert.deepEqual(want, wantSummary, "crossing records and the summary agree");
  // The chart is the day (UTC for `run --ui`) of the newest crossing: a new day
  // starts it again, so a run across midnight leaves the older day's crossings
  // off it (the totals and counts keep them).
  const DAY_MS = 86_400_000;
  const newestDay = Math.floor(Math.max(...crossings.map((c) => c.capture_time_ms)) / DAY_MS);
  const wantBins = crossings.filter((c) => Math.floor(c.capture_time_ms / DAY_MS) === newestDay).length;
  if (wantBins !== crossings.length) log(`the run crossed midnight UTC: ${wantBins} of ${crossings.length} crossings in the new day's bins`);
  const wantTurns = new Map();
  for (const t of turns) {
    const k = `${t.from}|${t.to}|${t.class_name}`;
    wantTurns.set(k, (wantTurns.get(k) || 0) + 1);
  }

  async function pageFigures(page) {
    await page.locator('[data-testid="count"]').first().waitFor();
    const counts = await pageCounts(page);
    const cells = await page.locator('[data-testid="turn"]').evaluateAll((tds) =>
      tds.map((t) => [`${t.dataset.from}|${t.dataset.to}|${t.dataset.class}`, Number(t.dataset.count)]));
    const turning = new Map(cells.filter(([, n]) => n > 0));
    const bins = await page.locator("#chart rect.bar").evaluateAll((bars) => bars.reduce((s, b) => s + Number(b.dataset.count), 0));
    const total = Number(await page.locator('[data-testid="total"]').textContent());
    return { counts, turning, bins, total };
  }
  async function checkFigures(page, label) {
    // The last update may still be on its way (coalesced by 200 ms).
    await until(`${label}: the final total`, async () =>
      Number(await page.locator('[data-testid="total"]').textContent().catch(() => -1)) === crossings.length, 10_000);
    const f = await pageFigures(page);
    assert.deepEqual(f.counts, want, `${label}: counts per line, direction and class`);
    assert.deepEqual(f.turning, wantTurns, `${label}: turning movements`);
    assert.equal(f.bins, wantBins, `${label}: the day's bins hold every crossing of the newest crossing's day`);
    assert.equal(f.total, crossings.length, `${label}: total`);
    log(`${label}: ${f.total} crossings in ${f.counts.size} cells, ${turns.length} turning movements: equal to the records`);
  }
  await checkFigures(live, "page open during the run");

  // A page opened after the run shows the whole day so far.
  const late = await browser.newPage();
  await late.goto(`${base}/intersection/${encodeURIComponent(junction)}`);
  await checkFigures(late, "page opened after the run");
  const recentShown = await late.locator('[data-testid="crossing"]').count();
  assert.equal(recentShown, Math.min(crossings.length, 30), "latest crossings listed");

  await overview.bringToFront();
  await until("the overview's final total", async () =>
    Number(await overview.locator(`[data-testid="intersection"][data-id="${junction}"] [data-testid="intersection-total"]`).textContent()) === crossings.length, 10_000);
  assert.equal(await overview.locator('[data-testid="finished"]').count(), 1, "the overview says the run finished");

  // The camera page: the snapshot is loaded and shows the counting lines.
  const camera = crossings[0].camera_id;
  const cam = await browser.newPage();
  await cam.goto(`${base}/camera/${encodeURIComponent(camera)}`);
  await cam.locator('#snapshot[data-loaded="1"]').waitFor({ timeout: 15_000 });
  const cfgLines = [...readFileSync(config, "utf8").matchAll(/name = "([^"]+)"\s*\nstart = \[([\d.]+), ([\d.]+)\]\s*\nend = \[([\d.]+), ([\d.]+)\]/g)]
    .map((m) => ({ name: m[1], x1: +m[2], y1: +m[3], x2: +m[4], y2: +m[5] }));
  assert.ok(cfgLines.length >= 1, "lines read from the config");
  const onLines = await cam.evaluate((lines) => {
    const img = document.getElementById("snapshot");
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    return lines.map((l) => {
      // The middle of the line, and a point well off it.
      const [x, y] = [((l.x1 + l.x2) / 2) * c.width, ((l.y1 + l.y2) / 2) * c.height];
      const on = Array.from(g.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3));
      const off = Array.from(g.getImageData(Math.round(x + 25), Math.round(y), 1, 1).data.slice(0, 3));
      return { name: l.name, on, off, size: [c.width, c.height] };
    });
  }, cfgLines);
  for (const l of onLines) {
    assert.ok(isLineColour(l.on), `snapshot: line ${l.name} drawn (pixel ${l.on} in ${l.size})`);
    assert.ok(!isLineColour(l.off), `snapshot: beside line ${l.name} is the picture (pixel ${l.off})`);
  }
  log("snapshot shows the lines:", onLines.map((l) => `${l.name} ${l.on}`).join(", "));

  // Track ids on the snapshots: the aggregate stage's, i.e. those its crossing
  // records of the camera carry.
  const crossed = new Set(crossings.filter((c) => c.camera_id === snapCamera).map((c) => c.track_id));
  const shownIds = [...new Set([...labelled.values()].flat())];
  assert.ok(labelled.size >= 1, `a snapshot of ${snapCamera} with track ids was shown during the run`);
  const strangers = shownIds.filter((id) => !crossed.has(id));
  assert.deepEqual(strangers, [], `track ids drawn on the snapshots (${shownIds}) are tracks that crossed (${[...crossed]})`);
  const pageTracks = await cam.locator("#snapshot").getAttribute("data-tracks");
  log(`snapshots with track ids: ${[...labelled].map(([s, ids]) => `frame ${s}: #${ids.join(" #")}`).join("; ")}; ` +
    `the camera page's: [${pageTracks}]`);
  assert.deepEqual(foreign, [], "no request left the dashboard");

  if (shots) {
    mkdirSync(shots, { recursive: true });
    await overview.screenshot({ path: join(shots, "overview.png"), fullPage: true });
    await late.screenshot({ path: join(shots, "intersection.png"), fullPage: true });
    await cam.screenshot({ path: join(shots, "camera.png"), fullPage: true });
    log("screenshots in", shots);
  }
  log("ok");
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  if (session) await session.close();
  clearTimeout(killer);
  if (!exited) {
    proc.kill("SIGINT");
    for (let i = 0; i < 100 && !exited; i++) await sleep(100);
    if (!exited) {
      failed = true;
      console.error("streetscope did not stop within 10 s of SIGINT");
      proc.kill("SIGKILL");
    } else if (exited.code !== 0 && !failed) {
      failed = true;
      console.error(`streetscope exited with ${JSON.stringify(exited)} after SIGINT`);
    }
  }
  rmSync(work, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}
