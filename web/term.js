// term.js: the terminal page (/term/NAME): xterm.js on the hub's terminal
// WebSocket (/term/NAME/ws; docs/remote.md has the protocol).  Output
// frames carry their sequence number, so after a drop the page asks for
// what follows the last one it showed and gets exactly what it missed.
"use strict";
(function () {
  const name = decodeURIComponent(location.pathname.split("/")[2] || "");
  const $ = (id) => document.getElementById(id);
  const state = { role: "", last: 0, ended: false, open: false, agent: false, errors: [] };
  window.axonTerm = { state };
  $("name").textContent = name;

  function status(text, bad) {
    $("status").textContent = text;
    $("status").className = bad ? "bad" : "";
  }

  if (typeof Terminal === "undefined" || typeof FitAddon === "undefined") {
    status("xterm.js is not built into this axon (npm was not available at build time)", true);
    return;
  }
  // The token: ?token=, else #token=, else what this tab was given before.
  const params = new URLSearchParams(location.search);
  let token = params.get("token") || new URLSearchParams(location.hash.slice(1)).get("token") ||
    sessionStorage.getItem("axon-term-token") || "";
  if (!token) {
    $("login").style.display = "block";
    $("login").onsubmit = (e) => {
      e.preventDefault();
      sessionStorage.setItem("axon-term-token", $("token").value.trim());
      location.reload();
    };
    status("a token is needed", true);
    return;
  }

  const term = new Terminal({ cursorBlink: true, scrollback: 5000,
    fontFamily: "DejaVu Sans Mono, Liberation Mono, monospace", fontSize: 14 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($("screen"));
  fit.fit();
  window.axonTerm.term = term;
  const enc = new TextEncoder();
  let ws = null, backoff = 250;

  function showSize() { $("size").textContent = term.cols + "×" + term.rows; }
  showSize();

  function send(obj) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj));
  }

  function connect() {
    const q = new URLSearchParams({ token, cols: term.cols, rows: term.rows });
    if (state.last) q.set("since", state.last);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/term/" + encodeURIComponent(name) +
      "/ws?" + q.toString());
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { state.open = true; backoff = 250; };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") {
        const seq = Number(new DataView(ev.data).getBigUint64(0));
        if (seq <= state.last) return;
        state.last = seq;
        term.write(new Uint8Array(ev.data, 8));
        return;
      }
      const m = JSON.parse(ev.data);
      if (m.type === "hello") {
        state.role = m.role;
        state.agent = m.agent;
        status(m.role === "writer" ? "connected: you type" :
          "watching (read-only)" + (m.writer ? ": " + m.writer + " types" : ""));
        if (!m.agent) status("waiting for the agent…", true);
        if (m.role === "writer") send({ type: "resize", cols: term.cols, rows: term.rows });
      } else if (m.type === "exit") {
        state.ended = true;
        status("the session ended (exit code " + m.code + ")", true);
      } else if (m.type === "session") {
        status(state.role === "writer" ? "connected: you type" : "watching (read-only)");
      } else if (m.type === "agent") {
        state.agent = m.online;
        status(m.online ? "the agent is back" : "the agent is away", !m.online);
      } else if (m.type === "error" || m.type === "gap") {
        state.errors.push(m.error || "gap");
        status(m.error || "some output is no longer in the hub's history", true);
      }
    };
    ws.onclose = () => {
      state.open = false;
      if (state.ended) return;
      status("disconnected: reconnecting…", true);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  term.onData((d) => {
    if (ws && ws.readyState === 1 && state.role === "writer") ws.send(enc.encode(d));
  });
  term.onBinary((d) => {
    if (ws && ws.readyState === 1 && state.role === "writer")
      ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0)));
  });
  term.onResize(({ cols, rows }) => {
    showSize();
    if (state.role === "writer") send({ type: "resize", cols, rows });
  });
  window.addEventListener("resize", () => fit.fit());
  connect();
  term.focus();
})();
