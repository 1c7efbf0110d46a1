// Sentinel's dashboard: the newest anomalies, counters and charts from the REST API, kept
// live by the GraphQL subscription (graphql-transport-ws). No framework, no CDN.
"use strict";

const ROWS = 50;
const state = {
  key: null,
  rows: [], // the anomalies shown, newest first (by detection time, then id), as the API orders them
  live: 0,
  chartsDue: null,
  rateChart: null,
  costChart: null,
};

function readKey() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) {
    sessionStorage.setItem("sentinel-key", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  state.key = sessionStorage.getItem("sentinel-key");
}

function say(text) {
  document.getElementById("message").textContent = text || "";
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    document.getElementById("key-form").hidden = false;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (body.error && body.error.message) || response.statusText);
  }
  return body;
}

function order(a, b) {
  // Newest first, ties by id descending: the API's order.
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function rowFor(a, fresh) {
  const tr = document.createElement("tr");
  tr.dataset.anomalyId = a.id;
  if (fresh) tr.className = "fresh";
  tr.append(cell(a.timestamp.replace("T", " ").replace(/\.\d+Z$/, "Z")));
  const sev = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "severity";
  badge.dataset.severity = a.severity;
  badge.textContent = a.severity;
  sev.append(badge);
  tr.append(sev, cell(a.detector_id), cell(a.affected_entity.type + ":" + a.affected_entity.id), cell(a.title));
  tr.append(cell(Number(a.score).toFixed(2)), cell(a.status, "status"));
  const act = document.createElement("td");
  const button = document.createElement("button");
  button.className = "acknowledge";
  button.textContent = "Acknowledge";
  button.disabled = a.status !== "active" && a.status !== "suppressed";
  button.addEventListener("click", () => acknowledge(a.id, button));
  act.append(button);
  tr.append(act);
  return tr;
}

function render(freshId) {
  const body = document.querySelector("#anomalies tbody");
  body.replaceChildren(...state.rows.map((a) => rowFor(a, a.id === freshId)));
}

async function counters() {
  const [all, critical, active, acknowledged] = await Promise.all([
    api("/api/v1/anomalies?limit=1"),
    api("/api/v1/anomalies?limit=1&severity=critical"),
    api("/api/v1/anomalies?limit=1&status=active"),
    api("/api/v1/anomalies?limit=1&status=acknowledged"),
  ]);
  document.getElementById("count-total").textContent = all.total;
  document.getElementById("count-critical").textContent = critical.total;
  document.getElementById("count-active").textContent = active.total;
  document.getElementById("count-acknowledged").textContent = acknowledged.total;
}

async function loadList() {
  const page = await api("/api/v1/anomalies?limit=" + ROWS);
  state.rows = page.anomalies;
  render(null);
}

function chart(id, series, old) {
  if (old) old.destroy();
  const el = document.getElementById(id);
  return new uPlot({ width: 560, height: 220, series, scales: { x: { time: true } } }, [[]], el);
}

async function charts() {
  if (state.rows.length === 0) return;
  // Event time, not the wall clock: a replayed trace is shown where its anomalies are.
  const newest = Date.parse(state.rows[0].timestamp);
  const oldest = Date.parse(state.rows[state.rows.length - 1].timestamp);
  const end = new Date(Math.ceil((newest + 1) / 60000) * 60000);
  // The span of the anomalies shown, with half an hour before, two hours at most.
  const span = Math.min(2 * 3600 * 1000, end.getTime() - oldest + 1800 * 1000);
  const start = new Date(Math.floor((end.getTime() - span) / 60000) * 60000);
  const range = { start: start.toISOString(), end: end.toISOString(), aggregation: "sum" };
  const rate = await api("/api/v1/metrics/query", {
    method: "POST",
    body: JSON.stringify({ ...range, metrics: ["anomaly_rate"], granularity: "1m" }),
  });
  const points = rate.series[0].datapoints;
  state.rateChart = chart("chart-rate", [{}, { label: "anomalies/min", stroke: "#c0392b" }], state.rateChart);
  state.rateChart.setData([points.map((p) => Date.parse(p.timestamp) / 1000), points.map((p) => p.value)]);
  await costChart(range);
}

async function costChart(range) {
  let answer;
  try {
    answer = await api("/api/v1/metrics/query", {
      method: "POST",
      body: JSON.stringify({ ...range, metrics: ["cost"], granularity: "1m" }),
    });
  } catch (e) {
    if (e.status === 400) {
      document.getElementById("cost-empty").hidden = false;
      return;
    }
    throw e;
  }
  const series = answer.series.filter((s) => s.datapoints.length > 0);
  document.getElementById("cost-empty").hidden = series.length > 0;
  const times = [...new Set(series.flatMap((s) => s.datapoints.map((p) => Date.parse(p.timestamp) / 1000)))].sort(
    (a, b) => a - b,
  );
  const colours = ["#2471a3", "#28b463", "#af7ac5", "#d68910", "#5d6d7e", "#17a589"];
  const lines = series.map((s, i) => {
    const byTime = new Map(s.datapoints.map((p) => [Date.parse(p.timestamp) / 1000, p.value]));
    return { label: s.dimensions.application_id || s.name, stroke: colours[i % colours.length], values: times.map((t) => byTime.get(t) ?? null) };
  });
  // Anomalies marked: a point on the chart's floor in each bucket holding one.
  const anomalyTimes = state.rows.map((a) => Date.parse(a.timestamp) / 1000);
  const marks = times.map((t, i) => {
    const next = i + 1 < times.length ? times[i + 1] : Infinity;
    return anomalyTimes.some((at) => at >= t && at < next) ? 0 : null;
  });
  const spec = [{}, ...lines.map((l) => ({ label: l.label, stroke: l.stroke })), { label: "anomaly", stroke: "#c0392b", width: 0, points: { show: true, size: 8, fill: "#c0392b" } }];
  state.costChart = chart("chart-cost", spec, state.costChart);
  state.costChart.setData([times, ...lines.map((l) => l.values), marks]);
}

function chartsSoon() {
  if (state.chartsDue) return;
  state.chartsDue = setTimeout(() => {
    state.chartsDue = null;
    charts().catch((e) => say("charts: " + e.message));
  }, 3000);
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    const who = document.getElementById("who").value.trim() || "dashboard";
    const updated = await api("/api/v1/anomalies/" + encodeURIComponent(id) + "/acknowledge", {
      method: "POST",
      body: JSON.stringify({ acknowledged_by: who }),
    });
    const at = state.rows.findIndex((a) => a.id === id);
    if (at >= 0) state.rows[at] = updated;
    render(null);
    say("");
    await counters();
  } catch (e) {
    button.disabled = false;
    say("acknowledge: " + e.message);
  }
}

function arrived(node) {
  const a = {
    id: node.id,
    timestamp: node.timestamp,
    severity: node.severity.toLowerCase(),
    status: node.status.toLowerCase(),
    detector_id: node.detectorId,
    title: node.title,
    score: node.score,
    affected_entity: node.affectedEntity,
  };
  if (state.rows.some((r) => r.id === a.id)) return;
  state.rows.push(a);
  state.rows.sort(order);
  state.rows.length = Math.min(state.rows.length, ROWS);
  state.live += 1;
  document.getElementById("count-live").textContent = state.live;
  render(a.id);
  counters().catch(() => {});
  chartsSoon();
}

const SUBSCRIPTION = `subscription { anomalyDetected {
  id timestamp severity status title score detectorId affectedEntity { type id name } } }`;

function connect() {
  const status = document.getElementById("connection");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(scheme + "//" + location.host + "/graphql", "graphql-transport-ws");
  socket.onopen = () => {
    const payload = state.key ? { Authorization: "Bearer " + state.key } : {};
    socket.send(JSON.stringify({ type: "connection_init", payload }));
  };
  socket.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "connection_ack") {
      socket.send(JSON.stringify({ id: "anomalies", type: "subscribe", payload: { query: SUBSCRIPTION } }));
      // Anything stored between the first load and the subscription is read once more.
      setTimeout(() => loadList().catch(() => {}), 300);
      status.dataset.state = "live";
      status.textContent = "live";
    } else if (msg.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    } else if (msg.type === "next" && msg.payload.data) {
      arrived(msg.payload.data.anomalyDetected);
    } else if (msg.type === "next" && msg.payload.errors) {
      // Behind: everything missed follows; the list is reloaded so nothing shown is stale.
      say(msg.payload.errors[0].message);
      loadList().catch(() => {});
    }
  };
  socket.onclose = () => {
    status.dataset.state = "offline";
    status.textContent = "offline, reconnecting";
    // What arrived while away is read again on reconnecting.
    setTimeout(() => {
      refresh().catch(() => {});
      connect();
    }, 2000);
  };
}

async function refresh() {
  await loadList();
  await counters();
  await charts();
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("sentinel-key", document.getElementById("key").value);
  location.reload();
});

readKey();
refresh()
  .then(() => say(""))
  .catch((e) => say(e.message));
connect();
