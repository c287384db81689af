// axon dashboard: reads /metrics (Prometheus text) and /api/topics every
// second and draws the message rate over time (an SVG with a time axis and
// a value axis).  When the server stops answering, the page says so and
// greys out the last numbers it saw instead of showing them as current.
// No libraries, no external requests.
"use strict";

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";
const WINDOW = 120000;  // ms of history on the chart
const STALE = 3000;     // ms without an answer before the data is stale
const samples = [];     // {t: ms since epoch, v: messages per second}
let last = null;        // the previous answer: {t, m}
let lastOk = 0;         // when the server last answered
let firstSample = 0;

function parseMetrics(text) {
  const out = {};
  for (const l of text.split("\n")) {
    if (!l || l[0] === "#") continue;
    const i = l.lastIndexOf(" ");
    out[l.slice(0, i)] = Number(l.slice(i + 1));
  }
  return out;
}

function rows(tbody, list, empty) {
  tbody.textContent = "";
  if (!list.length && empty) list = [[empty]];
  for (const cells of list) {
    const tr = document.createElement("tr");
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i > 0) td.className = "n";
      if (cells.length === 1) { td.colSpan = 3; td.className = "empty"; }
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
}

function duration(s) {
  s = Math.floor(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function rate(v) {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, "") || "0";
}

// ---- the chart ------------------------------------------------------------------

function node(parent, tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}

// A round step giving about `n` ticks over `span`.
function niceStep(span, n) {
  const raw = span / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function draw() {
  const svg = $("chart");
  const W = Math.max(200, svg.clientWidth), H = svg.clientHeight || 200;
  const m = { l: 44, r: 14, t: 10, b: 24 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.textContent = "";
  const defs = node(svg, "defs", {});
  const pat = node(defs, "pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
                                      patternTransform: "rotate(45)" });
  node(pat, "rect", { width: 6, height: 6, fill: "#fffbeb" });
  node(pat, "line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#fde68a", "stroke-width": 2 });

  const now = Date.now();
  // the window fills the width: the time since the first sample, up to two minutes
  const span = Math.min(WINDOW, Math.max(5000, now - (firstSample || now)));
  const t0 = now - span;
  $("window").textContent = span >= WINDOW ? "(last two minutes)" : "(last " + Math.round(span / 1000) + " s)";
  const shown = samples.filter((s) => s.t >= t0 - 2000);
  const top = Math.max(1, ...shown.map((s) => s.v));
  const ystep = niceStep(top, 4), ymax = Math.ceil(top / ystep) * ystep;
  const X = (t) => m.l + ((t - t0) / span) * pw, Y = (v) => m.t + ph - (v / ymax) * ph;

  const grid = node(svg, "g", { class: "grid" });
  const yaxis = node(svg, "g", { class: "axis y" });
  for (let v = 0; v <= ymax + 1e-9; v += ystep) {
    node(grid, "line", { x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v) });
    node(yaxis, "text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, String(+v.toFixed(3)));
  }
  node(yaxis, "line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph });
  const xaxis = node(svg, "g", { class: "axis x" });
  node(xaxis, "line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph });
  const xstep = niceStep(span / 1000, pw < 400 ? 3 : 6) * 1000;
  for (let ago = 0; ago <= span + 1; ago += xstep) {
    const x = X(now - ago);
    node(xaxis, "line", { x1: x, x2: x, y1: m.t + ph, y2: m.t + ph + 4 });
    const label = ago === 0 ? "now" : ago % 60000 === 0 ? "−" + ago / 60000 + " min" : "−" + ago / 1000 + " s";
    node(xaxis, "text", { x, y: H - 6, "text-anchor": ago === 0 ? "end" : "middle" }, label);
  }

  // no answers since lastOk: a hatched band, not a flat line
  if (lastOk && now - lastOk > STALE) {
    const x = Math.max(m.l, X(lastOk));
    node(svg, "rect", { class: "nodata", x, y: m.t, width: m.l + pw - x, height: ph });
    if (m.l + pw - x > 60)
      node(svg, "text", { class: "nodata-label", x: (x + m.l + pw) / 2, y: m.t + 16, "text-anchor": "middle" }, "no answer");
  }
  // the line, broken where samples are missing
  let d = "", area = "", run = [];
  const flushRun = () => {
    if (run.length > 1) {
      const seg = run.map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join("");
      d += seg;
      area += seg + "L" + run[run.length - 1][0].toFixed(1) + " " + Y(0) + "L" + run[0][0].toFixed(1) + " " + Y(0) + "Z";
    }
    run = [];
  };
  let prev = null;
  for (const s of shown) {
    if (prev && s.t - prev.t > 2500) { // the server did not answer in between
      flushRun();
      const x0 = Math.max(m.l, X(prev.t)), x1 = X(s.t);
      if (x1 > x0) node(svg, "rect", { class: "nodata gap", x: x0, y: m.t, width: x1 - x0, height: ph });
      if (x1 - x0 > 60)
        node(svg, "text", { class: "nodata-label", x: (x0 + x1) / 2, y: m.t + 16, "text-anchor": "middle" }, "no answer");
    }
    run.push([Math.max(m.l, X(s.t)), Y(s.v)]);
    prev = s;
  }
  flushRun();
  const clip = node(defs, "clipPath", { id: "plotclip" });
  node(clip, "rect", { x: m.l, y: m.t - 2, width: pw, height: ph + 4 });
  node(svg, "path", { class: "area", d: area || "M0 0", "clip-path": "url(#plotclip)" });
  node(svg, "path", { class: "plot", d: d || "M0 0", "clip-path": "url(#plotclip)" });
}

// ---- live streams (/live) ---------------------------------------------------------

const streamBytes = new Map(); // name -> {bytes, t}: for the bitrate

function streams(list, now) {
  const tbody = $("streams").tBodies[0];
  tbody.textContent = "";
  if (!list.length) {
    const td = tbody.insertRow().insertCell();
    td.colSpan = 6;
    td.className = "empty";
    td.textContent = "no live streams: ffmpeg -re -i IN -c copy -f flv rtmp://HOST:1935/live/NAME";
    return;
  }
  list.sort((a, b) => a.name.localeCompare(b.name));
  for (const s of list) {
    const tr = tbody.insertRow();
    const a = document.createElement("a");
    a.href = "/live/" + encodeURIComponent(s.name);
    a.textContent = s.name;
    tr.insertCell().append(a);
    const prev = streamBytes.get(s.name);
    const kbit = prev && now > prev.t ? ((s.bytes - prev.bytes) * 8) / (now - prev.t) : null;
    streamBytes.set(s.name, { bytes: s.bytes, t: now });
    const L = s.latency_us || {};
    const cells = [s.width && s.height ? s.width + "×" + s.height : s.video ? "–" : "audio",
                   kbit === null ? "–" : kbit.toFixed(0) + " kbit/s", s.viewers,
                   L.n ? (L.p50 / 1000).toFixed(1) + " ms" : "–",
                   duration(Math.max(0, (s.uptime_ms || 0) / 1000))];
    cells.forEach((c, i) => {
      const td = tr.insertCell();
      td.className = i === 0 || i === 4 ? "n opt" : "n"; // (not on a phone)
      td.textContent = c;
    });
  }
}

async function tickStreams(now) {
  try {
    const r = await fetch("/live", { cache: "no-store" });
    $("livecard").hidden = r.status === 404; // no live relay on this server
    if (r.ok) streams((await r.json()).streams, now);
  } catch (e) {
    // the server is away: showStale says so
  }
}

// ---- polling ---------------------------------------------------------------------

async function get(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 2500);
  try {
    const r = await fetch(path, { signal: ctl.signal, cache: "no-store" });
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r;
  } finally {
    clearTimeout(timer);
  }
}

function showStale() {
  const now = Date.now();
  const stale = !lastOk || now - lastOk > STALE;
  document.body.classList.toggle("stale", stale && lastOk > 0);
  if (!stale) return;
  const st = $("status");
  if (!lastOk) {
    st.className = "status down";
    st.textContent = "server unreachable";
    return;
  }
  const ago = Math.round((now - lastOk) / 1000);
  st.className = "status down stale";
  st.textContent = "disconnected — data " + ago + " s old";
  $("banner").textContent = "The server has not answered since " + clock(lastOk) + " (" + duration(ago) +
    " ago). The numbers below are the last ones it sent and are not current.";
}

async function tick() {
  try {
    const m = parseMetrics(await (await get("/metrics")).text());
    const t = await (await get("/api/topics")).json();
    const now = Date.now();
    if (last && now - last.t < 5000 && m.axon_uptime_seconds >= last.m.axon_uptime_seconds) {
      const dt = (now - last.t) / 1000;
      const r = Math.max(0, (m.axon_hub_published_total - last.m.axon_hub_published_total) / dt);
      const dr = Math.max(0, (m.axon_hub_delivered_total - last.m.axon_hub_delivered_total) / dt);
      $("rate").textContent = rate(r);
      $("drate").textContent = rate(dr);
      if (!firstSample) firstSample = now;
      samples.push({ t: now, v: r });
      while (samples.length && samples[0].t < now - WINDOW - 5000) samples.shift();
    }
    last = { t: now, m };
    lastOk = now;
    $("subs").textContent = m.axon_hub_subscribers;
    $("uptime").textContent = duration(m.axon_uptime_seconds);
    const gws = ["line", "udp", "http", "sse", "websocket", "rtmp", "live"]
      .filter((g, i) => i < 5 || ('axon_connections{gateway="' + g + '"}') in m);
    rows($("gateways").tBodies[0], gws.map((g) => [g, m['axon_connections{gateway="' + g + '"}'] || 0]));
    rows($("slow").tBodies[0], [
      ["disconnected", m['axon_hub_disconnects_total{policy="disconnect"}'] || 0],
      ["dropped (oldest)", m['axon_hub_dropped_total{policy="drop_oldest"}'] || 0],
      ["dropped (keep latest)", m['axon_hub_dropped_total{policy="keep_latest"}'] || 0],
    ]);
    t.topics.sort((a, b) => a.topic.localeCompare(b.topic));
    rows($("topics").tBodies[0], t.topics.map((x) => [x.topic, x.last_seq, x.subscribers]), "no topics yet");
    await tickStreams(now);
    $("status").textContent = "live";
    $("status").className = "status up";
  } catch (e) {
    // keep the last numbers, marked stale (showStale)
  }
  showStale();
  draw();
  setTimeout(tick, 1000);
}

window.addEventListener("resize", draw);
tick();
