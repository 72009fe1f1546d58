// The live view: every number comes from the API this page is served by.
// No build step and no dependencies; charts are hand-drawn SVG.
"use strict";

const REFRESH_MS = 5000;
const HISTORY_HOURS = 6;
const SVG = "http://www.w3.org/2000/svg";
let token = sessionStorage.getItem("clickstream-token") || "";

const $ = (id) => document.getElementById(id);
const number = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"));
const percent = (x) => (100 * x).toFixed(1) + " %";
const clock = (iso) => iso.slice(11, 16);

async function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    $("token-form").hidden = false;
    throw new Error("this API needs a token");
  }
  if (response.status === 404) return null;
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || "HTTP " + response.status);
  }
  return response.json();
}

function setText(id, text, value) {
  const element = $(id);
  element.textContent = text;
  if (value !== undefined) element.dataset.value = String(value);
}

function fillTable(id, counts, limit) {
  const table = $(id);
  const rows = Object.entries(counts || {}).slice(0, limit || 10);
  const top = rows.length ? rows[0][1] : 1;
  table.replaceChildren(
    ...rows.map(([name, count]) => {
      const row = document.createElement("tr");
      const label = document.createElement("td");
      label.textContent = name;
      label.title = name;
      const bar = document.createElement("td");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = ((100 * count) / top).toFixed(1) + "%";
      bar.append(fill);
      const figure = document.createElement("td");
      figure.className = "n";
      figure.textContent = number(count);
      figure.dataset.value = String(count);
      row.append(label, bar, figure);
      return row;
    })
  );
}

function showLatest(window) {
  if (!window) {
    setText("latest-span", "none published yet");
    return;
  }
  setText("latest-span", `${window.window_start} – ${clock(window.window_end)}`);
  setText("latest-revision", "revision " + window.revision, window.revision);
  setText("latest-final", window.final ? "· final" : "· may still be amended");
  setText("latest-total", number(window.total_events), window.total_events);
  setText("latest-users", number(window.unique_users), window.unique_users);
  setText("latest-sessions", number(window.unique_sessions), window.unique_sessions);
  setText("latest-duration", number(window.avg_duration_ms) + " ms", window.avg_duration_ms);
  setText("latest-cart", percent(window.cart_conversion), window.cart_conversion);
  setText("latest-purchase", percent(window.purchase_conversion), window.purchase_conversion);
  setText("latest-late", number(window.late_events), window.late_events);
  fillTable("event-types", window.event_types);
  fillTable("devices", window.devices);
  fillTable("referrers", window.top_referrers);
  fillTable("pages", window.top_pages);
}

function showCurrent(window) {
  if (!window) {
    setText("current-span", "no window in progress");
    ["current-total", "current-users", "current-sessions"].forEach((id) => setText(id, "–"));
    $("current-progress").style.width = "0";
    return;
  }
  setText("current-span", `${window.window_start} – ${clock(window.window_end)}`);
  setText("current-total", number(window.total_events), window.total_events);
  setText("current-users", number(window.unique_users), window.unique_users);
  setText("current-sessions", number(window.unique_sessions), window.unique_sessions);
  $("current-progress").style.width = (100 * window.progress.fraction).toFixed(1) + "%";
  setText("current-note", "partial: " + percent(window.progress.fraction) + " of the window");
}

// Bars for `values` (oldest first) and, when given, a line for `line` on its own scale.
function drawChart(id, labels, values, line) {
  const svg = $(id);
  const width = 900, height = 180, bottom = 18;
  const top = Math.max(1, ...values);
  const step = width / Math.max(1, values.length);
  const shapes = [];
  values.forEach((value, i) => {
    const rect = document.createElementNS(SVG, "rect");
    const barHeight = ((height - bottom) * value) / top;
    rect.setAttribute("x", (i * step + 1).toFixed(1));
    rect.setAttribute("y", (height - bottom - barHeight).toFixed(1));
    rect.setAttribute("width", Math.max(1, step - 2).toFixed(1));
    rect.setAttribute("height", barHeight.toFixed(1));
    rect.dataset.value = String(value);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${labels[i]}: ${number(value)}`;
    rect.append(title);
    shapes.push(rect);
  });
  if (line && line.length) {
    const lineTop = Math.max(1, ...line);
    const points = line.map((value, i) =>
      `${(i * step + step / 2).toFixed(1)},${(height - bottom - ((height - bottom) * value) / lineTop).toFixed(1)}`
    );
    const polyline = document.createElementNS(SVG, "polyline");
    polyline.setAttribute("points", points.join(" "));
    shapes.push(polyline);
  }
  const every = Math.max(1, Math.ceil(values.length / 12));
  labels.forEach((label, i) => {
    if (i % every) return;
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", (i * step + 2).toFixed(1));
    text.setAttribute("y", String(height - 4));
    text.textContent = label;
    shapes.push(text);
  });
  svg.replaceChildren(...shapes);
  svg.dataset.points = String(values.length);
}

function showHistory(page) {
  const windows = (page ? page.windows : []).slice().reverse();
  drawChart("history-chart", windows.map((w) => clock(w.window_start)), windows.map((w) => w.total_events));
}

function showRollup(rollup) {
  const buckets = rollup ? rollup.buckets : [];
  drawChart(
    "rollup-chart",
    buckets.map((b) => clock(b.window_start)),
    buckets.map((b) => b.total_events),
    buckets.map((b) => b.unique_users)
  );
  const header = document.createElement("tr");
  header.innerHTML = "<td>hour</td><td class=n>events</td><td class=n>unique users</td><td class=n>windows</td>";
  $("rollup-table").replaceChildren(
    header,
    ...buckets.slice(-6).reverse().map((b) => {
      const row = document.createElement("tr");
      row.className = "bucket";
      for (const [text, value] of [
        [b.window_start, null],
        [number(b.total_events), b.total_events],
        [number(b.unique_users), b.unique_users],
        [number(b.windows), b.windows],
      ]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (value !== null) {
          cell.className = "n";
          cell.dataset.value = String(value);
        }
        row.append(cell);
      }
      return row;
    })
  );
}

async function refresh() {
  const now = Math.floor(Date.now() / 1000);
  try {
    const [latest, current, history, rollup] = await Promise.all([
      api("/v1/windows/latest"),
      api("/v1/windows/current"),
      api(`/v1/windows?from=${now - HISTORY_HOURS * 3600}&limit=500`),
      api("/v1/rollups?resolution=1h"),
    ]);
    showLatest(latest);
    showCurrent(current);
    showHistory(history);
    showRollup(rollup);
    const status = $("status");
    status.className = "status";
    status.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    document.body.dataset.loaded = "true";
  } catch (error) {
    const status = $("status");
    status.className = "status error";
    status.textContent = error.message;
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value;
  sessionStorage.setItem("clickstream-token", token);
  $("token-form").hidden = true;
  refresh();
});
$("history-hours").textContent = String(HISTORY_HOURS);
refresh();
setInterval(refresh, REFRESH_MS);
