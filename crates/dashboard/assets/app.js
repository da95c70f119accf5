// Streetscope dashboard: renders the figures the server pushes (server-sent
// events, one `state` event per change, the whole page's figures each time).
// No library, nothing fetched from elsewhere: the server holds the state and
// draws the chart; this script only lays it out.
"use strict";

const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");

const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
const page = parts[0] === "intersection" || parts[0] === "camera" ? parts[0] : "overview";
const id = page === "overview" ? null : parts[1];

// When each crossing first appeared on this page (ms since the epoch), by its key.
const shownAt = new Map();

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const time = (ms) => (ms == null ? "—" : new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC");
const clock = (ms) => new Date(ms).toISOString().slice(11, 19);
const link = (kind, id) => `<a href="/${kind}/${encodeURIComponent(id)}">${esc(id)}</a>`;
const state = (s) => `<span class="state ${esc(s)}" data-testid="camera-state">${esc(s.replace("_", " "))}</span>`;
const kpi = (label, value, testid) => `<div class="kpi"><div class="label">${label}</div><div class="big" data-testid="${testid}">${value}</div></div>`;

function alerts(list) {
  if (!list.length) return '<p class="muted">No open alerts.</p>';
  return list.map((a) => `<div class="alert" data-testid="alert">${esc(a.message)} <span class="muted">(${esc(a.camera_id)}, since ${time(a.time_ms)})</span></div>`).join("");
}

function countsTable(rows, withCamera) {
  if (!rows.length) return '<p class="muted">No crossings yet.</p>';
  const head = `<tr>${withCamera ? "<th>Camera</th>" : ""}<th>Line</th><th>Direction</th><th>Class</th><th class="n">Count</th></tr>`;
  const body = rows.map((r) =>
    `<tr data-testid="count" data-camera="${esc(r.camera_id)}" data-line="${esc(r.line)}" data-direction="${esc(r.direction_label)}" data-class="${esc(r.class_name)}" data-count="${r.count}">` +
    `${withCamera ? `<td>${link("camera", r.camera_id)}</td>` : ""}<td>${esc(r.line)}</td><td>${esc(r.direction_label)}</td><td>${esc(r.class_name)}</td><td class="n">${r.count}</td></tr>`).join("");
  return `<table id="counts"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function recentList(list) {
  if (!list.length) return '<p class="muted">None yet.</p>';
  const now = Date.now();
  return '<ul class="recent" id="recent">' + list.map((r) => {
    const key = `${r.camera_id}/${r.track_id}/${r.line}/${r.direction_label}`;
    const fresh = !shownAt.has(key);
    if (fresh) shownAt.set(key, now);
    const speed = r.speed_kmh == null ? "" : ` · ${r.speed_kmh.toFixed(0)} km/h`;
    return `<li data-testid="crossing" data-key="${esc(key)}" data-received-ms="${r.received_ms}" data-shown-ms="${shownAt.get(key)}" class="${fresh ? "new" : ""}">` +
      `${clock(r.capture_time_ms)} · ${esc(r.camera_id)} · <b>${esc(r.line)}</b> ${esc(r.direction_label)} · ${esc(r.class_name)} · track ${r.track_id}${speed}</li>`;
  }).join("") + "</ul>";
}

function turningMatrix(t) {
  if (!t.cells.length) return '<p class="muted">No turning movements yet (approaches are configured under <code>analytics.approaches</code>).</p>';
  const count = (f, to, c) => (t.cells.find((x) => x.from === f && x.to === to && x.class_name === c) || { count: 0 }).count;
  return t.classes.map((c) => {
    const head = `<tr><th>${esc(c)}: from ↓ to →</th>${t.approaches.map((a) => `<th class="n">${esc(a)}</th>`).join("")}</tr>`;
    const rows = t.approaches.map((f) => `<tr><th>${esc(f)}</th>${t.approaches.map((to) =>
      `<td class="n" data-testid="turn" data-from="${esc(f)}" data-to="${esc(to)}" data-class="${esc(c)}" data-count="${count(f, to, c)}">${f === to ? "·" : count(f, to, c)}</td>`).join("")}</tr>`).join("");
    return `<table class="turning">${head}${rows}</table>`;
  }).join("<br>");
}

function windowCard(w) {
  if (!w) return '<div class="card"><h2>Latest window</h2><p class="muted">No window closed yet.</p></div>';
  const quality = w.cameras.map((q) =>
    `<tr><td>${link("camera", q.camera_id)}</td><td class="n">${q.frames_received} / ${q.frames_expected}</td><td class="n">${q.frames_dropped}</td><td>${q.stale ? '<span class="flag bad">stale</span>' : ""}</td></tr>`).join("");
  const queues = (w.queues || []).map((q) => `<tr><td>${esc(q.camera_id)}</td><td>${esc(q.lane)}</td><td class="n">${q.mean_queue.toFixed(1)}</td><td class="n">${q.max_queue}</td></tr>`).join("");
  const speeds = (w.speeds || []).map((s) => `<tr><td>${esc(s.from)} → ${esc(s.to)}</td><td class="n">${s.vehicles}</td><td class="n">${s.p50_kmh.toFixed(0)}</td><td class="n">${s.p85_kmh.toFixed(0)}</td></tr>`).join("");
  const late = w.late.crossings + w.late.turning_movements + w.late.frames;
  return `<div class="card" data-testid="window"><h2>Latest window: ${time(w.window_start_ms)}, ${w.length_s} s ` +
    `<span class="flag ${w.complete ? "ok" : "bad"}" data-testid="window-complete">${w.complete ? "complete" : "incomplete"}</span></h2>` +
    `<table><tr><th>Camera</th><th class="n">Frames received / expected</th><th class="n">Dropped</th><th></th></tr>${quality}</table>` +
    (late ? `<p class="muted">${late} late records since the previous window.</p>` : "") +
    (queues ? `<h2 style="margin-top:10px">Queues</h2><table><tr><th>Camera</th><th>Lane</th><th class="n">Mean</th><th class="n">Max</th></tr>${queues}</table>` : "") +
    (speeds ? `<h2 style="margin-top:10px">Speeds (km/h)</h2><table><tr><th>Movement</th><th class="n">Vehicles</th><th class="n">p50</th><th class="n">p85</th></tr>${speeds}</table>` : "") +
    "</div>";
}

function renderOverview(v) {
  crumbs.innerHTML = "City overview";
  const cards = v.intersections.map((i) =>
    `<div class="card" data-testid="intersection" data-id="${esc(i.id)}"><h2>${link("intersection", i.id)}</h2>` +
    `<div class="kpis">${kpi("Vehicles so far", i.total, "intersection-total")}${kpi("Last hour", i.last_hour, "intersection-last-hour")}${kpi("Turning movements", i.turning_movements, "intersection-turns")}</div>` +
    `<table style="margin-top:8px"><tr><th>Camera</th><th>State</th><th>Latest frame counted</th></tr>` +
    i.cameras.map((c) => `<tr><td>${link("camera", c.id)}</td><td>${state(c.state)}</td><td class="muted">${time(c.last_capture_ms)}</td></tr>`).join("") +
    `</table><div style="margin-top:8px">${alerts(i.open_alerts)}</div></div>`).join("");
  app.innerHTML = `<h1>City overview</h1>` +
    `<p class="muted">${v.records} result records${v.replayed ? `, ${v.replayed} replays dropped` : ""}; newest capture ${time(v.newest_capture_ms)}${v.finished ? " · <b data-testid=\"finished\">run finished</b>" : ""}</p>` +
    `<div class="grid">${cards || '<p class="muted">No intersection yet.</p>'}</div>`;
}

function renderIntersection(v) {
  crumbs.innerHTML = `<a href="/">City</a> › ${esc(v.id)}`;
  app.innerHTML = `<h1>${esc(v.id)}</h1>` +
    `<div class="card"><div class="kpis">${kpi("Vehicles so far", v.total, "total")}${kpi("Last hour", v.last_hour, "last-hour")}${kpi("Windows closed", v.windows_seen, "windows")}</div>` +
    `<p class="muted">Cameras: ${v.cameras.map((c) => `${link("camera", c.id)} ${state(c.state)}`).join(" · ")}</p>${alerts(v.open_alerts)}</div>` +
    `<div class="card"><h2>Crossings per 15 minutes, ${v.day_start_ms == null ? "today" : time(v.day_start_ms).slice(0, 10)}</h2><div id="chart">${v.chart_svg}</div></div>` +
    `<div class="cols"><div class="card"><h2>Turning movements by class</h2><div id="turning">${turningMatrix(v.turning)}</div></div>` +
    `<div class="card"><h2>Latest crossings</h2>${recentList(v.recent)}</div></div>` +
    `<div class="cols"><div class="card"><h2>Counts per line and direction</h2>${countsTable(v.counts, true)}</div>${windowCard(v.latest_window)}</div>`;
}

let snapshotSeq = null;
function renderCamera(v) {
  const c = v.camera;
  crumbs.innerHTML = `<a href="/">City</a> › ${link("intersection", c.intersection_id)} › ${esc(c.id)}`;
  const snap = v.snapshot;
  const q = v.quality;
  app.innerHTML = `<h1>${esc(c.id)} ${state(c.state)}</h1>` +
    `<div class="cols"><div class="card snapshot"><h2>Latest snapshot${snap ? ` · frame ${snap.frame_seq} · ${time(snap.capture_time_ms)} · ${snap.objects} objects` : ""}${snap && snap.track_ids.length ? ` · tracks ${snap.track_ids.map((t) => `#${t}`).join(" ")}` : ""}</h2>` +
    (snap ? `<img id="snapshot" data-seq="${snap.frame_seq}" data-tracks="${snap.track_ids.join(",")}" alt="latest annotated frame of ${esc(c.id)}">` : '<p class="muted">No snapshot yet.</p>') + `</div>` +
    `<div><div class="card"><h2>Counts</h2>${countsTable(v.counts, false)}</div>` +
    `<div class="card"><h2>Data quality (latest window)</h2>${q ? `<p>${q.frames_received} of ${q.frames_expected} frames expected, ${q.frames_dropped} dropped${q.stale ? ', <span class="flag bad">stale</span>' : ""}</p>` : '<p class="muted">No window closed yet.</p>'}` +
    `<p class="muted">Lines: ${c.lines.map(esc).join(", ") || "none"} · zones: ${c.zones.map(esc).join(", ") || "none"} · ${c.calibrated ? "calibrated (speeds)" : "not calibrated"}</p></div>` +
    `<div class="card"><h2>Latest crossings</h2>${recentList(v.recent)}</div></div></div>`;
  const img = document.getElementById("snapshot");
  if (img) {
    // The same picture again comes from the browser's memory, a new one from the
    // server (a frame whose track ids came after it is drawn anew).
    img.onload = () => { img.dataset.loaded = "1"; };
    img.src = `/snapshot/${encodeURIComponent(c.id)}?seq=${snap.frame_seq}&tracks=${snap.track_ids.join(".")}`;
    snapshotSeq = snap.frame_seq;
  }
}

function render(v) {
  if (v.missing !== undefined) {
    app.innerHTML = `<h1>Not found</h1><p>No ${page} named <b>${esc(v.missing)}</b>. <a href="/">City overview</a></p>`;
    return;
  }
  if (page === "intersection") renderIntersection(v);
  else if (page === "camera") renderCamera(v);
  else renderOverview(v);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

const q = new URLSearchParams({ page });
if (id) q.set("id", id);
const events = new EventSource(`/api/events?${q}`);
events.addEventListener("state", (e) => render(JSON.parse(e.data)));
events.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
events.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
