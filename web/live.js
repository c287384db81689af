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

  // ?mode=hls: HLS through hls.js (or the browser's own, Safari);
  // ?mode=llhls: Low-Latency HLS (ll.m3u8: fMP4 parts, blocking reloads)
  // through hls.js in its lowLatencyMode; else the lowest latency:
  // fragmented MP4 over the WebSocket.  ?mode=flv: HTTP-FLV (NAME.flv),
  // ?mode=ts: MPEG-TS (NAME.ts), both through mpegts.js (npm, compiled in),
  // which keeps its own distance to the edge.
  const modeArg = new URLSearchParams(q).get("mode");
  const llMode = modeArg === "llhls";
  const hlsMode = modeArg === "hls" || llMode;
  const flvMode = modeArg === "flv" || modeArg === "ts"; // mpegts.js
  state.mode = llMode ? "llhls" : hlsMode ? "hls" : flvMode ? modeArg : "ws";
  const flvWhat = modeArg === "ts" ? "MPEG-TS" : "HTTP-FLV";
  $("mode").innerHTML = llMode ? 'LL-HLS · <a href="?">low latency</a> · <a href="?mode=hls">HLS</a>'
                      : hlsMode ? 'HLS · <a href="?">low latency</a> · <a href="?mode=llhls">LL-HLS</a>'
                                : 'low latency · <a href="?mode=hls">HLS</a> · <a href="?mode=llhls">LL-HLS</a>';
  if (flvMode) $("mode").innerHTML = flvWhat + ' · <a href="?">low latency</a> · <a href="?mode=hls">HLS</a> · <a href="?mode=llhls">LL-HLS</a>';
  for (const [m, what] of [["flv", "HTTP-FLV"], ["ts", "MPEG-TS"]])
    if (modeArg !== m) $("mode").insertAdjacentHTML("beforeend", ' · <a href="?mode=' + m + '">' + what + "</a>");

  function playFlv() {
    const s = document.createElement("script");
    s.src = "/static/mpegts.js"; // web/vendor: mpegts.js from npm, compiled in
    s.onload = () => {
      if (!window.mpegts || !mpegts.getFeatureList().mseLivePlayback) {
        status("this browser cannot play " + flvWhat, "down");
        return;
      }
      const type = modeArg === "ts" ? "mpegts" : "flv";
      const p = mpegts.createPlayer({ type, isLive: true, url: base + "." + modeArg + q },
                                    { enableWorker: false, liveBufferLatencyChasing: true });
      window.flvPlayer = p; // tests read it
      p.on(mpegts.Events.ERROR, (type, detail) => {
        state.errors.push(type + ": " + detail);
        status(flvWhat + ": " + detail, "down");
      });
      p.on(mpegts.Events.MEDIA_INFO, () => status("live (" + flvWhat + ")", "up"));
      p.attachMediaElement(video);
      p.load();
    };
    s.onerror = () => status("mpegts.js is not built in", "down");
    document.head.append(s);
  }

  function playHls() {
    const src = base + (llMode ? "/ll.m3u8" : "/index.m3u8");
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
      // LL-HLS: hls.js keeps PART-HOLD-BACK behind the newest part; when
      // playback falls behind (a busy machine plays a little slow without a
      // stall) it may play up to 10% faster to get back there.
      const hls = llMode ? new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.1,
                                     enableWorker: false })
                         : new Hls({ liveSyncDurationCount: 2, enableWorker: false });
      window.hls = hls; // tests and the latency bench read hls.latency
      hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) state.errors.push(d.details); });
      hls.on(Hls.Events.MANIFEST_PARSED, () => status(llMode ? "live (LL-HLS)" : "live (HLS)", "up"));
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
        state.audio = /mp4a|opus/.test(m.mime);
        if (!window.MediaSource || !MediaSource.isTypeSupported(m.mime)) {
          // say which codec, in words: "H.265 (HEVC)", not a MIME type
          const names = { hvc1: "H.265 (HEVC)", hev1: "H.265 (HEVC)", avc1: "H.264",
                          opus: "Opus", "mp4a": "AAC" };
          const codecs = (m.mime.match(/codecs="([^"]*)"/) || [, ""])[1].split(",")
            .map((c) => names[c.trim().split(".")[0]] || c.trim());
          status("this browser cannot play " + codecs.join(" + ") +
                 ": try the .ts or HLS link in VLC or ffplay", "down");
          state.errors.push("unsupported " + m.mime);
          ws.onclose = null; // no use trying again (HEVC in most Chromium builds)
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
  // leaves the player behind unless it catches up.  With a sound track a
  // stall costs more: Chromium's audio renderer, once it runs dry, waits
  // for a larger buffer (0.7-0.8 s ahead here) before it plays again and
  // keeps that margin, so after a few stalls the delay had grown by
  // 0.3-0.5 s and took 10 s or more at 5% faster to come back (and the
  // rate, switched at every tick around one threshold, ran the buffer dry
  // again).  Now, with a sound track: a little faster (5%, not heard)
  // above `high` buffered ahead, normal speed again below `low`, and a jump to
  // `to` from the end when more than `far` is buffered (a stall just ended):
  // the seek also resets the audio renderer's margin.  Video alone runs dry
  // at no such cost and stays closest to the edge pulled on at every tick
  // (0.25 s; glass to glass p50 ~90 ms against ~220 ms with the margins
  // above).  HLS: hls.js keeps its own distance.
  const EDGE = { audio: { low: 0.22, high: 0.35, far: 0.6, to: 0.22 },
                 video: { low: 0.25, high: 0.25, far: 1.5, to: 0.1 } };
  state.jumps = 0;
  state.stalls = 0;
  video.addEventListener("waiting", () => state.stalls++);
  setInterval(() => {
    const b = video.buffered;
    if (!b.length) return;
    const end = b.end(b.length - 1), ahead = end - video.currentTime;
    const e = state.audio ? EDGE.audio : EDGE.video;
    // Never before the last range's start: a jump there (the first tick
    // may see only 0.1 s buffered: Opus from an MPEG-TS upload comes in
    // bursts) waits for data that never comes, seeking for ever.
    const start = b.start(b.length - 1), stuck = video.currentTime < start;
    const own = !hlsMode && !flvMode; // hls.js and mpegts.js chase the edge themselves
    if (own && ((ahead > e.far && !video.seeking) || stuck)) {
      video.currentTime = Math.max(end - e.to, start);
      video.playbackRate = 1;
      state.jumps++;
    } else if (own && ahead > e.high) video.playbackRate = 1.05;
    else if (own && ahead <= e.low) video.playbackRate = 1;
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
      $("codecs").textContent = (s.mime.match(/codecs="([^"]*)"/) || [, "–"])[1].replace(/,/g, ", ");
      $("fps").textContent = s.fps ? s.fps.toFixed(0) : "–";
      $("viewers").textContent = s.viewers;
      $("skipped").textContent = s.skipped;
      const L = s.latency_us;
      $("latency").textContent = L && L.n ? (L.p50 / 1000).toFixed(1) + " ms p50 · " +
        (L.p99 / 1000).toFixed(1) + " ms p99" : "–";
      if (last) {
        const kbit = ((s.bytes - last.bytes) * 8) / 1000 / ((Date.now() - last.at) / 1000);
        $("rate").textContent = kbit.toFixed(0) + " kbit/s";
      }
      last = { bytes: s.bytes, at: Date.now() };
    } catch (e) {
      $("size").textContent = "not live";
    }
  }

  // The chat room beside the stream: the hub topic chat/live/NAME over
  // the hub's WebSocket (/ws, docs/protocol.md), its recent history first;
  // and the stream's own topic live/NAME, whose start and stop events
  // show in the same list.
  const room = "chat/live/" + name, events = "live/" + name;
  const token = new URLSearchParams(q).get("token");
  const chat = (state.chat = { seq: 0, ws: null, lines: 0, backoff: 1000 });
  $("chatroom").textContent = room;
  $("chatname").value = localStorage.getItem("axon-name") || "";
  function line(cls, who, text, time) {
    const log = $("chatlog");
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const empty = log.querySelector(".empty");
    if (empty) empty.remove();
    const li = document.createElement("li");
    li.className = cls;
    if (time) {
      const at = document.createElement("span");
      at.className = "at";
      at.textContent = new Date(time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      li.append(at);
    }
    if (who) {
      const w = document.createElement("span");
      w.className = "who";
      w.textContent = who;
      li.append(w);
    }
    li.append(text);
    log.append(li);
    chat.lines++;
    while (log.children.length > 300) log.firstElementChild.remove();
    if (atEnd) log.scrollTop = log.scrollHeight;
  }
  function send(o) {
    if (chat.ws && chat.ws.readyState === WebSocket.OPEN) chat.ws.send(JSON.stringify(o));
  }
  function nick() {
    const n = $("chatname").value.trim();
    if (n && !token) send({ type: "nick", name: n });
  }
  function chatConnect() {
    const ws = (chat.ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws"));
    ws.onopen = () => {
      chat.backoff = 1000;
      if (token) send({ type: "auth", token });
      nick();
      send({ type: "subscribe", topic: room, since: chat.seq });
      send({ type: "subscribe", topic: events });
      $("chatsend").disabled = false;
      if (!$("chatlog").children.length) line("empty", "", "no messages yet: say hello");
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "message" && m.topic === room && m.seq > chat.seq) {
        chat.seq = m.seq;
        line("msg", m.sender, m.payload, m.time);
      } else if (m.type === "message" && m.topic === events) {
        let e = {};
        try { e = JSON.parse(m.payload); } catch (x) { return; }
        if (e.event === "start") line("event", "", "the stream started", m.time);
        if (e.event === "stop") line("event", "", "the stream ended", m.time);
      } else if (m.type === "error") {
        line("error", "", m.error);
      }
    };
    ws.onclose = () => {
      $("chatsend").disabled = true;
      if (chat.ws !== ws) return;
      setTimeout(chatConnect, chat.backoff);
      chat.backoff = Math.min(chat.backoff * 2, 15000);
    };
  }
  $("chatname").addEventListener("change", () => {
    localStorage.setItem("axon-name", $("chatname").value.trim());
    nick();
  });
  $("chatform").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chattext").value.trim();
    if (!text) return;
    send({ type: "publish", topic: room, payload: text });
    $("chattext").value = "";
  });
  chatConnect();

  stats();
  setInterval(stats, 1000);
  if (hlsMode) playHls();
  else if (flvMode) playFlv();
  else play();
})();
