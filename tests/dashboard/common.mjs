// What the dashboard's browser tests share (browser.test.mjs: `streetscope run
// --ui` on the demo clip; kafka.test.mjs: `streetscope dashboard` on a broker):
// Debian's chromium driven by playwright-core (NODE_PATH must hold it:
// scripts/install-browser-test.sh) with a record of every request that leaves
// the dashboard, the intersection page's counts, and the colour the counting
// lines are drawn in.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Headless chromium in a profile of its own. `foreign` gathers every request
// to anywhere but `base` (nothing may leave for the internet); `close()` ends
// the browser and removes its profile.
export async function openBrowser(base) {
  const profile = mkdtempSync(join(tmpdir(), "streetscope-chromium-"));
  const removeProfile = () => rmSync(profile, { recursive: true, force: true });
  let browser;
  try {
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  } catch (e) {
    removeProfile();
    throw e;
  }
  const foreign = [];
  browser.on("request", (r) => {
    if (!r.url().startsWith(base)) foreign.push(r.url());
  });
  const close = async () => {
    await browser.close().catch(() => {});
    removeProfile();
  };
  return { browser, foreign, close };
}

// The counts of an intersection page, keyed "camera|line|direction|class".
export async function pageCounts(page) {
  return new Map(await page.locator('[data-testid="count"]').evaluateAll((rows) =>
    rows.map((r) => [`${r.dataset.camera}|${r.dataset.line}|${r.dataset.direction}|${r.dataset.class}`, Number(r.dataset.count)])));
}

// A pixel of a counting line as drawn (LINE_COLOUR, 255, 214, 0), after JPEG.
export const isLineColour = (p) => Math.abs(p[0] - 255) < 40 && Math.abs(p[1] - 214) < 40 && p[2] < 80;
