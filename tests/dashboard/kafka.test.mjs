// `streetscope dashboard` (the distributed deployment's dashboard, reading the
// result topics, the registry's cameras and the camera snapshots from a real
// Kafka-protocol broker) in a real browser: Debian's chromium driven by
// playwright-core. Driven by crates/cli/tests/dashboard_kafka.rs
// (`the_kafka_dashboard_in_a_browser`), which writes the records, starts the
// dashboard with a token and passes what the pages must show:
// - the token, given once as ?token=, leaves the address bar (a cookie holds it);
// - the overview and the intersection page show the day so far: counts per
//   line, direction and class and the total equal to the crossing records;
// - a crossing produced while the page is open shows within LIVE_LIMIT_MS
//   (this script prints "READY" and the Rust test produces it);
// - the camera page's snapshot is the detector's picture with the counting
//   line drawn and the aggregator's track ids on its boxes;
// - nothing is fetched from anywhere but the dashboard.
//
// usage: node kafka.test.mjs BASE_URL TOKEN EXPECTED_JSON [SCREENSHOTS_DIR]
// env: NODE_PATH must hold playwright-core (scripts/install-browser-test.sh).
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { isLineColour, openBrowser, pageCounts, sleep } from "./common.mjs";

const [base, token, expectedPath, shots] = process.argv.slice(2);
const want = JSON.parse(readFileSync(expectedPath, "utf8"));
const LIVE_LIMIT_MS = 5000;
const started = Date.now();
const log = (...a) => console.error(`[kafka dashboard test ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
async function until(what, cond, ms = 15_000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await cond();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}
const killer = setTimeout(() => {
  console.error("the test ran too long; stopping");
  process.exit(1);
}, 50_000);

let session;
let failed = false;
try {
  session = await openBrowser(base);
  const { browser, foreign } = session;

  // The token once in the address; the dashboard sets its cookie and drops it from the address.
  const overview = await browser.newPage();
  await overview.goto(`${base}/?token=${encodeURIComponent(token)}`);
  assert.ok(!overview.url().includes("token"), `the token left the address bar: ${overview.url()}`);
  const total = () => overview
    .locator(`[data-testid="intersection"][data-id="${want.intersection}"] [data-testid="intersection-total"]`)
    .textContent().then(Number).catch(() => -1);
  await until("the overview's total of the day so far", async () => (await total()) === want.total);
  log(`overview: ${want.intersection} shows ${want.total} crossings`);

  // The intersection page: the counts of the records, cell by cell.
  const page = await browser.newPage();
  await page.goto(`${base}/intersection/${encodeURIComponent(want.intersection)}`);
  await page.locator('[data-testid="count"]').first().waitFor({ timeout: 15_000 });
  assert.deepEqual(await pageCounts(page), new Map(Object.entries(want.counts)), "counts per line, direction and class");
  assert.equal(Number(await page.locator('[data-testid="total"]').textContent()), want.total, "total");

  // Live: the Rust side produces one more crossing once told.
  console.log("READY");
  const asked = Date.now();
  await until("the live crossing", async () =>
    Number(await page.locator('[data-testid="total"]').textContent().catch(() => -1)) === want.total + 1, LIVE_LIMIT_MS + 5000);
  const live = Date.now() - asked;
  log(`a crossing produced to Kafka showed on the open page ${live} ms after the test asked for it`);
  assert.ok(live <= LIVE_LIMIT_MS, `the live crossing took ${live} ms`);

  // The camera page: the detector's picture, the line drawn, the aggregator's track ids.
  const cam = await browser.newPage();
  await cam.goto(`${base}/camera/${encodeURIComponent(want.camera)}`);
  await cam.locator('#snapshot[data-loaded="1"]').waitFor({ timeout: 15_000 });
  assert.equal(await cam.locator("#snapshot").getAttribute("data-seq"), String(want.snapshot_seq), "the snapshot's frame");
  assert.equal(await cam.locator("#snapshot").getAttribute("data-tracks"), want.track_ids.join(","), "the aggregator's track ids");
  const heading = await cam.locator(".snapshot h2").textContent();
  for (const id of want.track_ids) assert.ok(heading.includes(`#${id}`), `track #${id} named above the picture: ${heading}`);
  const px = await cam.evaluate((l) => {
    const img = document.getElementById("snapshot");
    const c = document.createElement("canvas");
    [c.width, c.height] = [img.naturalWidth, img.naturalHeight];
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const at = (x, y) => Array.from(g.getImageData(Math.round(x * c.width), Math.round(y * c.height), 1, 1).data.slice(0, 3));
    return { size: [c.width, c.height], on: at((l.x1 + l.x2) / 2, (l.y1 + l.y2) / 2), off: at(0.05, 0.05) };
  }, want.line);
  assert.deepEqual(px.size, want.snapshot_size, "the picture, cut out of its letterbox");
  assert.ok(isLineColour(px.on), `the counting line drawn (pixel ${px.on})`);
  assert.ok(!isLineColour(px.off), `the picture beside it (pixel ${px.off})`);
  log(`camera page: frame ${want.snapshot_seq}, tracks #${want.track_ids.join(" #")}, line pixel ${px.on}`);
  assert.deepEqual(foreign, [], "no request left the dashboard");

  if (shots) {
    mkdirSync(shots, { recursive: true });
    await cam.screenshot({ path: join(shots, "camera-kafka.png"), fullPage: true });
  }
  log("ok");
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  if (session) await session.close();
  clearTimeout(killer);
  process.exit(failed ? 1 : 0);
}
