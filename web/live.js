// live.js: the player of /live/NAME: fragmented MP4 over a WebSocket
// (/live/NAME/ws) into Media Source Extensions, kept near the live edge,
// and the stream's numbers from /live/NAME/stats.
"use strict";
(() => {
  const name = decodeURIComponent(location.pathname.replace(/^\/live\//, "").replace(/\/$/, ""));
  const q = location.search;
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const state = (window.liveState = { fragments: 0, bytes: 0, errors: [], opened: 0 });
  $("name").textContent = name;
  document.title = "axon live: " + name;

  const base = location.origin + "/live/" + encodeURIComponent(name);
  for (const [what, url] of [["HTTP-FLV", base + ".flv"], ["MPEG-TS", base + ".ts"],
                             ["HLS", base + "/index.m3u8"],
                             ["RTMP", "rtmp://" + location.hostname + ":1935/live/" + name]]) {
    const li = document.createElement("li");
    li.append(what + " ");
    const c = document.createElement("code");
    c.textContent = url;
    li.append(c);
    $("urls").append(li);
  }

  // ?mode=hls: HLS through hls.js (or the browser's own, Safari), else
  // the lowest latency: fragmented MP4 over the WebSocket.
  const hlsMode = new URLSearchParams(q).get("mode") === "hls";
  state.mode = hlsMode ? "hls" : "ws";
  $("mode").innerHTML = hlsMode ? 'HLS · <a href="?">low latency</a>'
                                : 'low latency · <a href="?mode=hls">HLS</a>';

  function playHls() {
    const src = base + "/index.m3u8";
    const native = () => {
      if (!video.canPlayType("application/vnd.apple.mpegurl")) {
        status("this browser cannot play HLS", "down");
        return;
      }
      video.src = src; // Safari, iOS
      status("live (HLS)", "up");
    };
    if (!window.MediaSource) return native();
    const s = document.createElement("script");
    s.src = "/static/hls.js"; // web/vendor: hls.js from npm, compiled in
    s.onload = () => {
      if (!window.Hls || !Hls.isSupported()) return native();
      const hls = new Hls({ liveSyncDurationCount: 2, enableWorker: false });
      hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) state.errors.push(d.details); });
      hls.on(Hls.Events.MANIFEST_PARSED, () => status("live (HLS)", "up"));
      hls.loadSource(src);
      hls.attachMedia(video);
    };
    s.onerror = native;
    document.head.append(s);
  }

  function status(text, cls) {
    $("status").textContent = text;
    $("status").className = "status " + cls;
  }

  function play() {
    const ws = new WebSocket(base.replace(/^http/, "ws") + "/ws" + q);
    ws.binaryType = "arraybuffer";
    let ms = null, sb = null;
    const queue = [];
    state.opened++;
    function pump() {
      if (!sb || sb.updating || !queue.length) return;
      try {
        sb.appendBuffer(queue.shift());
      } catch (e) {
        state.errors.push(String(e));
      }
    }
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        const m = JSON.parse(ev.data);
        if (m.type !== "init") return;
        if (!window.MediaSource || !MediaSource.isTypeSupported(m.mime)) {
          status("this browser cannot play " + m.mime, "down");
          state.errors.push("unsupported " + m.mime);
          ws.close();
          return;
        }
        ms = new MediaSource();
        video.src = URL.createObjectURL(ms);
        ms.addEventListener("sourceopen", () => {
          sb = ms.addSourceBuffer(m.mime);
          sb.mode = "segments";
          sb.addEventListener("updateend", pump);
          pump();
        });
        status("live", "up");
        return;
      }
      state.fragments++;
      state.bytes += ev.data.byteLength;
      queue.push(ev.data);
      if (queue.length > 300) queue.splice(1, queue.length - 1); // far behind: a fresh start is better
      pump();
    };
    ws.onclose = () => {
      status("reconnecting", "down");
      setTimeout(play, 2000);
    };
  }

  // Stay near the live edge.  Any stall (a busy machine, a slow decode)
  // leaves the player behind for good unless it catches up: a little
  // faster (5%, not heard) while more than LAG is buffered ahead, a jump
  // when far behind.  HLS: hls.js keeps its own distance.
  const LAG = 0.25;
  setInterval(() => {
    const b = video.buffered;
    if (!b.length) return;
    const end = b.end(b.length - 1), ahead = end - video.currentTime;
    if (!hlsMode && ahead > 1.5) video.currentTime = end - 0.1;
    else if (!hlsMode) video.playbackRate = ahead > LAG ? 1.05 : 1;
    if (video.paused && end > 0) video.play().catch(() => {});
    state.ahead = ahead;
    $("delay").textContent = Math.max(0, ahead).toFixed(2) + " s buffered";
  }, 250);

  let last = null;
  async function stats() {
    try {
      const r = await fetch(base + "/stats" + q, { cache: "no-store" });
      if (!r.ok) throw new Error(r.status);
      const s = await r.json();
      $("size").textContent = s.width && s.height ? s.width + "×" + s.height : "–";
      $("codecs").textContent = (s.mime.match(/codecs="([^"]*)"/) || [, "–"])[1];
      $("fps").textContent = s.fps ? s.fps.toFixed(0) : "–";
      $("viewers").textContent = s.viewers;
      $("skipped").textContent = s.skipped;
      if (last) {
        const kbit = ((s.bytes - last.bytes) * 8) / 1000 / ((Date.now() - last.at) / 1000);
        $("rate").textContent = kbit.toFixed(0) + " kbit/s";
      }
      last = { bytes: s.bytes, at: Date.now() };
    } catch (e) {
      $("size").textContent = "not live";
    }
  }
  stats();
  setInterval(stats, 1000);
  if (hlsMode) playHls();
  else play();
})();
