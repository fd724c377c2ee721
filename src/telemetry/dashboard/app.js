// sidewatch dashboard: plain JavaScript, no build step. Every chart is one
// PromQL range query against this endpoint's /api/v1/query_range, drawn by
// uPlot; the RED table is instant queries; alerts and checks come from
// /api/v1/alerts and /checks. A query with no answer shows "no data" in
// its panel, never a dialog. `window.sidewatchDashboard` exposes the
// charts and a refresh counter so the browser test can read what was drawn.
"use strict";

// `$rate` becomes a range-selector window that fits the step (4 steps, at
// least a minute), so rates stay smooth at every zoom level.
const PANELS = [
  { view: "overview", id: "cpu", title: "Host CPU utilization by mode", unit: "ratio",
    query: 'avg by (cpu_mode) (system_cpu_utilization_ratio{cpu_mode!="idle"})' },
  { view: "overview", id: "memory", title: "Host memory utilization by state", unit: "ratio",
    query: "sum by (system_memory_state) (system_memory_utilization_ratio)" },
  { view: "overview", id: "filesystem", title: "Filesystem utilization by mount point", unit: "ratio",
    query: "max by (system_filesystem_mountpoint) (system_filesystem_utilization_ratio)" },
  { view: "overview", id: "disk", title: "Disk I/O (bytes/s)", unit: "bytes",
    query: "sum by (disk_io_direction) (rate(system_disk_io_bytes_total[$rate]))" },
  { view: "overview", id: "network", title: "Network I/O (bytes/s)", unit: "bytes",
    query: "sum by (network_io_direction) (rate(system_network_io_bytes_total[$rate]))" },
  { view: "overview", id: "throughput", title: "sidewatch: items accepted and sent per second", unit: "",
    queries: [
      { query: "sum by (receiver) (rate(sidewatch_receiver_accepted_items_total[$rate]))", prefix: "accepted " },
      { query: "sum by (exporter) (rate(sidewatch_exporter_sent_items_total[$rate]))", prefix: "sent " },
    ] },
  { view: "overview", id: "queues", title: "sidewatch: exporter queue depth (batches)", unit: "",
    query: "sum by (exporter) (sidewatch_exporter_queue_size)" },
  { view: "red", id: "red-rate", title: "Requests per second (1 m window)", unit: "",
    query: 'sum by (service_name, operation) (red_request_rate_per_second{window="1m"})' },
  { view: "red", id: "red-errors", title: "Error ratio (1 m window)", unit: "ratio",
    query: 'max by (service_name, operation) (red_error_ratio{window="1m"})' },
  { view: "red", id: "red-latency", title: "Duration p50 / p95 / p99 (seconds, 1 m window)", unit: "seconds",
    query: 'max by (service_name, operation, quantile) (red_duration_quantile_seconds{window="1m", quantile=~"0.5|0.95|0.99"})' },
  { view: "anomalies", id: "anomaly-score", title: "Anomaly score per series (alarm at 0.3)", unit: "",
    query: "anomaly_score" },
];

const state = { refreshes: 0, charts: {}, timer: null, inflight: false };
window.sidewatchDashboard = state;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child == null ? "" : child);
  return node;
}

// The chosen range as [start, end] unix seconds and a step giving about
// 240 points per chart.
function timeRange() {
  const seconds = Number(document.getElementById("range").value);
  const endText = document.getElementById("end").value;
  const end = endText ? new Date(endText).getTime() / 1000 : Date.now() / 1000;
  const step = Math.max(1, Math.round(seconds / 240));
  return { start: end - seconds, end, step };
}

async function api(path, params) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params || {})) url.searchParams.set(k, v);
  const response = await fetch(url);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: handled below */ }
  if (!response.ok || !body || body.status === "error") {
    const reason = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new Error(reason);
  }
  return body;
}

// A legend label: the series' labels without the metric name.
function seriesLabel(metric, prefix) {
  const parts = Object.entries(metric)
    .filter(([k]) => k !== "__name__")
    .map(([k, v]) => `${k}=${v}`);
  return (prefix || "") + (parts.length ? parts.join(", ") : "value");
}

// Prometheus matrices as uPlot's columns: one shared, sorted x axis and a
// column per series with null where a series has no point.
function toColumns(results) {
  const times = new Set();
  for (const r of results) for (const [t] of r.values) times.add(t);
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const columns = results.map((r) => {
    const column = new Array(xs.length).fill(null);
    for (const [t, v] of r.values) column[index.get(t)] = Number(v);
    return column;
  });
  return [xs, ...columns];
}

const COLOURS = ["#2e86c1", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#17a589", "#7f8c8d", "#e84393", "#2c3e50", "#a04000"];

function formatValue(unit, v) {
  if (v == null || Number.isNaN(v)) return "–";
  if (unit === "ratio") return (v * 100).toFixed(1) + " %";
  if (unit === "seconds") return v < 1 ? (v * 1000).toPrecision(3) + " ms" : v.toPrecision(3) + " s";
  if (unit === "bytes") {
    const steps = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < steps.length - 1) { v /= 1024; i++; }
    return v.toPrecision(3) + " " + steps[i];
  }
  return Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? Number(v.toPrecision(3)).toString() : v.toFixed(2);
}

function panelNode(panel) {
  let node = document.getElementById("panel-" + panel.id);
  if (!node) {
    node = el("div", { class: "panel", id: "panel-" + panel.id },
      el("h3", {}, panel.title),
      el("div", { class: "query" }, panel.queries ? panel.queries.map((q) => q.query).join("  |  ") : panel.query),
      el("div", { class: "body" }));
    document.querySelector(`.grid[data-view="${panel.view}"]`).append(node);
  }
  return node;
}

function showNoData(panel, reason) {
  const body = panelNode(panel).querySelector(".body");
  if (state.charts[panel.id]) {
    state.charts[panel.id].destroy();
    delete state.charts[panel.id];
  }
  body.replaceChildren(el("div", { class: "nodata", title: reason || "" }, "no data"));
}

async function drawPanel(panel, range) {
  const window_ = Math.max(60, 4 * range.step) + "s";
  const queries = panel.queries || [{ query: panel.query, prefix: "" }];
  let results = [];
  try {
    for (const q of queries) {
      const body = await api("/api/v1/query_range", {
        query: q.query.replaceAll("$rate", window_),
        start: range.start.toFixed(3), end: range.end.toFixed(3), step: range.step,
      });
      for (const r of body.data.result) results.push({ ...r, label: seriesLabel(r.metric, q.prefix) });
    }
  } catch (e) {
    showNoData(panel, e.message);
    return;
  }
  if (results.length === 0) {
    showNoData(panel, "the store has no series for this query in the range");
    return;
  }
  results.sort((a, b) => a.label.localeCompare(b.label));
  const data = toColumns(results);
  const body = panelNode(panel).querySelector(".body");
  const width = Math.max(300, body.clientWidth || 400);
  const old = state.charts[panel.id];
  const sameSeries = old && old.series.length === results.length + 1 &&
    results.every((r, i) => old.series[i + 1].label === r.label);
  // The x axis spans the chosen range, not just the points found in it.
  const showRange = (u) => u.setScale("x", { min: range.start, max: range.end });
  if (sameSeries) {
    old.setData(data);
    showRange(old);
    return;
  }
  if (old) old.destroy();
  body.replaceChildren();
  const options = {
    width, height: 200,
    // Ratios start at 0 and keep a visible height when all zero.
    scales: { x: { time: true }, y: panel.unit === "ratio" ? { range: (_, min, max) => [0, Math.max(max * 1.1, 0.01)] } : {} },
    series: [{}, ...results.map((r, i) => ({
      label: r.label, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: false,
      value: (_, v) => formatValue(panel.unit, v),
    }))],
    axes: [{}, { size: 70, values: (_, ticks) => ticks.map((v) => formatValue(panel.unit, v)) }],
    legend: { live: true },
  };
  state.charts[panel.id] = new uPlot(options, data, body);
  showRange(state.charts[panel.id]);
}

// Latest RED figures per service and route, one row each.
async function drawRedTable(range) {
  const tbody = document.querySelector("#red-table tbody");
  const at = { time: range.end.toFixed(3) };
  const by = "service_name, operation";
  const asks = {
    rate: `sum by (${by}) (red_request_rate_per_second{window="1m"})`,
    errors: `max by (${by}) (red_error_ratio{window="1m"})`,
    p50: `max by (${by}) (red_duration_quantile_seconds{window="1m", quantile="0.5"})`,
    p95: `max by (${by}) (red_duration_quantile_seconds{window="1m", quantile="0.95"})`,
    p99: `max by (${by}) (red_duration_quantile_seconds{window="1m", quantile="0.99"})`,
  };
  const rows = new Map();
  try {
    for (const [column, query] of Object.entries(asks)) {
      const body = await api("/api/v1/query", { query, ...at });
      for (const r of body.data.result) {
        const key = `${r.metric.service_name || ""}\u0000${r.metric.operation || ""}`;
        if (!rows.has(key)) rows.set(key, { service: r.metric.service_name || "", route: r.metric.operation || "" });
        rows.get(key)[column] = Number(r.value[1]);
      }
    }
  } catch (e) {
    rows.clear();
  }
  if (rows.size === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no data")));
    return;
  }
  tbody.replaceChildren(...[...rows.values()].map((r) => el("tr", {},
    el("td", {}, r.service), el("td", {}, r.route),
    el("td", { class: "num" }, formatValue("", r.rate)),
    el("td", { class: "num" }, formatValue("ratio", r.errors)),
    el("td", { class: "num" }, formatValue("seconds", r.p50)),
    el("td", { class: "num" }, formatValue("seconds", r.p95)),
    el("td", { class: "num" }, formatValue("seconds", r.p99)))));
}

function labelText(labels) {
  return Object.entries(labels || {})
    .filter(([k]) => k !== "alertname")
    .map(([k, v]) => `${k}="${v}"`).join(", ");
}

async function acknowledge(fingerprint, button) {
  button.disabled = true;
  button.textContent = "acknowledging…";
  try {
    const response = await fetch(`/api/v1/alerts/${encodeURIComponent(fingerprint)}/ack`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ by: "dashboard", comment: "acknowledged from the dashboard" }),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  } catch (e) {
    button.disabled = false;
    button.textContent = "acknowledge";
    button.title = "failed: " + e.message;
    return;
  }
  await drawAlerts();
}

async function drawAlerts() {
  const tbody = document.querySelector("#alerts-table tbody");
  let alerts;
  try {
    alerts = (await api("/api/v1/alerts")).data.alerts || [];
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted", title: e.message }, "no data")));
    return;
  }
  if (alerts.length === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no active alerts")));
    return;
  }
  tbody.replaceChildren(...alerts.map((a) => {
    let action;
    if (a.acknowledged) {
      action = el("span", { class: "acknowledged muted" }, `acknowledged by ${a.acknowledged.by || "someone"}`);
    } else {
      action = el("button", { type: "button", class: "ack", "data-fingerprint": a.fingerprint }, "acknowledge");
      action.addEventListener("click", () => acknowledge(a.fingerprint, action));
    }
    const labels = a.labels || {};
    return el("tr", { "data-fingerprint": a.fingerprint || "" },
      el("td", {}, labels.alertname || ""),
      el("td", { class: "state-" + a.state }, a.state || ""),
      el("td", {}, a.severity || labels.severity || ""),
      el("td", { class: "num" }, a.value == null ? "" : formatValue("", Number(a.value))),
      el("td", {}, a.activeAt ? new Date(a.activeAt).toLocaleString() : ""),
      el("td", { class: "labels" }, labelText(labels)),
      el("td", {}, action));
  }));
}

async function drawChecks() {
  const tbody = document.querySelector("#checks-table tbody");
  let checks;
  try {
    const response = await fetch("/checks");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    checks = (await response.json()).checks || [];
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted", title: e.message }, "no data")));
    return;
  }
  if (checks.length === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no checks configured")));
    return;
  }
  tbody.replaceChildren(...checks.map((c) => el("tr", {},
    el("td", {}, c.receiver), el("td", {}, c.kind), el("td", {}, c.target),
    el("td", { class: "status-" + c.status }, c.status),
    el("td", { class: "num" }, c.duration_seconds == null ? "" : formatValue("seconds", c.duration_seconds)),
    el("td", {}, c.time ? new Date(c.time).toLocaleString() : ""),
    el("td", {}, c.error ? `${c.error.code}: ${c.error.message}` : ""))));
}

async function refresh() {
  if (state.inflight) return;
  state.inflight = true;
  try {
    const range = timeRange();
    await Promise.all([
      ...PANELS.map((p) => drawPanel(p, range)),
      drawRedTable(range), drawAlerts(), drawChecks(),
    ]);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } finally {
    state.inflight = false;
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
  }
}

function schedule() {
  clearInterval(state.timer);
  const seconds = Number(document.getElementById("refresh").value);
  if (seconds > 0) state.timer = setInterval(refresh, seconds * 1000);
}

// Settings live in the URL's query (`?range=3600&refresh=0&end=...`), so a
// view can be bookmarked and shared.
function loadSettings() {
  const params = new URLSearchParams(window.location.search);
  for (const id of ["range", "refresh", "end"]) {
    if (params.has(id)) document.getElementById(id).value = params.get(id);
  }
}

function saveSettings() {
  const params = new URLSearchParams();
  for (const id of ["range", "refresh", "end"]) {
    const value = document.getElementById(id).value;
    if (value) params.set(id, value);
  }
  history.replaceState(null, "", "?" + params.toString() + window.location.hash);
}

function resizeCharts() {
  for (const chart of Object.values(state.charts)) {
    const width = chart.root.parentElement.clientWidth;
    if (width > 0) chart.setSize({ width, height: 200 });
  }
}

window.addEventListener("DOMContentLoaded", () => {
  loadSettings();
  for (const panel of PANELS) panelNode(panel);
  for (const id of ["range", "refresh", "end"]) {
    document.getElementById(id).addEventListener("change", () => { saveSettings(); schedule(); refresh(); });
  }
  document.getElementById("reload").addEventListener("click", refresh);
  window.addEventListener("resize", resizeCharts);
  schedule();
  refresh();
});
