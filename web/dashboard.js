// axon dashboard: reads /metrics (Prometheus text) and /api/topics every
// second and draws the message rate.  No libraries, no external requests.
"use strict";

const $ = (id) => document.getElementById(id);
const history = [];   // messages per second, newest last
let last = null;

function parseMetrics(text) {
  const out = {};
  for (const l of text.split("\n")) {
    if (!l || l[0] === "#") continue;
    const i = l.lastIndexOf(" ");
    out[l.slice(0, i)] = Number(l.slice(i + 1));
  }
  return out;
}

function rows(tbody, list) {
  tbody.textContent = "";
  for (const cells of list) {
    const tr = document.createElement("tr");
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i > 0) td.className = "n";
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
}

function draw() {
  const c = $("chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...history);
  g.strokeStyle = "#2563eb";
  g.lineWidth = 2;
  g.beginPath();
  history.forEach((v, i) => {
    const x = (i / 119) * (c.width - 10) + 5, y = c.height - 5 - (v / max) * (c.height - 20);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#6b7280";
  g.fillText("max " + max.toFixed(0) + "/s", 8, 12);
}

async function tick() {
  try {
    const m = parseMetrics(await (await fetch("/metrics")).text());
    const now = performance.now();
    if (last) {
      const dt = (now - last.t) / 1000;
      const rate = (m.axon_hub_published_total - last.m.axon_hub_published_total) / dt;
      const drate = (m.axon_hub_delivered_total - last.m.axon_hub_delivered_total) / dt;
      $("rate").textContent = rate.toFixed(0);
      $("drate").textContent = drate.toFixed(0);
      history.push(rate);
      if (history.length > 120) history.shift();
      draw();
    }
    last = { t: now, m };
    $("subs").textContent = m.axon_hub_subscribers;
    $("uptime").textContent = m.axon_uptime_seconds + " s";
    const gws = ["line", "udp", "http", "sse", "websocket"];
    rows($("gateways").tBodies[0], gws.map((g) => [g, m['axon_connections{gateway="' + g + '"}'] || 0]));
    rows($("slow").tBodies[0], [
      ["disconnected", m['axon_hub_disconnects_total{policy="disconnect"}'] || 0],
      ["dropped (oldest)", m['axon_hub_dropped_total{policy="drop_oldest"}'] || 0],
      ["dropped (keep latest)", m['axon_hub_dropped_total{policy="keep_latest"}'] || 0],
    ]);
    const t = await (await fetch("/api/topics")).json();
    t.topics.sort((a, b) => a.topic.localeCompare(b.topic));
    rows($("topics").tBodies[0], t.topics.map((x) => [x.topic, x.last_seq, x.subscribers]));
    $("status").textContent = "live";
    $("status").className = "status up";
  } catch (e) {
    $("status").textContent = "unreachable";
    $("status").className = "status down";
  }
}

tick();
setInterval(tick, 1000);
