// axon chat page: one WebSocket to /ws speaking the JSON envelope of
// docs/protocol.md.  On (re)connect the room is subscribed again with the
// last sequence number seen, so nothing is missed or repeated.  What is
// typed while the connection is down waits in an outbox (shown as pending)
// and goes out when it is back.  Lines that start with "/" are the line
// chat's commands (/help lists them).  Direct messages: `/msg NAME text`
// (or a click on a name in the people list) publishes to user/NAME/inbox;
// the page subscribes to its own inbox and shows what comes in there,
// in whatever room it is, marked as private.
"use strict";

const params = new URLSearchParams(location.search);
const NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// A name that can stand in a topic level (auth_name_valid on the server).
const USER_RE = /^[^/+#%\s]{1,64}$/;
// ?token=T: sign in with a token (docs/security.md), sent as the first
// WebSocket message (a browser cannot set headers on a WebSocket); the
// name is then the token's.
const TOKEN = params.get("token") || "";
const LEAVE_GRACE = 4000;  // ms a "left" waits for the same name to come back
const state = {
  name: params.get("name") || localStorage.getItem("axon-name") || "",
  myNames: new Set(),   // every name this page has used: own messages
  room: params.get("room") || "lobby",
  lastSeq: {},          // topic -> last seq shown
  people: new Set(),    // present in the room, as far as this page knows
  leaving: new Map(),   // name -> {timer, time}: a leave that may be a reconnect
  outbox: [],           // {topic, payload, el, reqId}: publishes not yet acknowledged
  replies: new Map(),   // request id -> function(reply)
  ws: null,
  nextId: 1,
  backoff: 500,
  retryTimer: null,
  everConnected: false,
  lostShown: false,
  quit: false,
};
const $ = (id) => document.getElementById(id);
const topicOf = (room) => "chat/" + room;
const inboxOf = (name) => "user/" + name + "/inbox";
// The recipient of a direct message topic, or null.
function dmTarget(topic) {
  const m = /^user\/([^/]+)\/inbox$/.exec(topic || "");
  return m ? m[1] : null;
}

// ---- requests -----------------------------------------------------------------

function online() {
  return state.ws && state.ws.readyState === WebSocket.OPEN;
}

// Sends a request; `onReply` gets the reply that carries its id.
function request(obj, onReply) {
  if (!online()) return false;
  obj.id = state.nextId++;
  if (onReply) state.replies.set(obj.id, onReply);
  state.ws.send(JSON.stringify(obj));
  return obj.id;
}

// ---- the log --------------------------------------------------------------------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function append(div) {
  const log = $("log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  log.appendChild(div);
  if (atEnd) log.scrollTop = log.scrollHeight;
  return div;
}

function note(text, cls) {
  return append(el("div", "msg note " + (cls || ""), text));
}

function clock(ms) {
  const d = new Date(ms), two = (n) => String(n).padStart(2, "0");
  return two(d.getHours()) + ":" + two(d.getMinutes());
}

// A UDP device publishes as its address ("127.0.0.1:48376", "[::1]:5000").
const ADDR_RE = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;

function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) % 360;
  return h;
}

// time, sender, text: one message as the log shows it.
function messageLine(m, cls) {
  const div = el("div", "msg " + (cls || ""));
  div.appendChild(el("span", "time", clock(m.time)));
  const sender = m.sender || "";
  const mine = sender !== "" && state.myNames.has(sender);
  if (mine) div.classList.add("mine");
  let text = m.encoding === "base64" ? "<" + atob(m.payload).length + " bytes of binary data>" : m.payload;
  const action = text.startsWith("/me ");
  if (action) { text = text.slice(4); div.classList.add("action"); }
  const who = el("span", "who");
  if (ADDR_RE.test(sender)) {
    who.classList.add("device");
    who.title = "a UDP device at " + sender;
    who.appendChild(el("span", "badge", "udp"));
    who.appendChild(el("span", "addr", sender));
  } else {
    who.textContent = sender || "anonymous";
    if (!sender) who.classList.add("anon");
    else who.style.setProperty("--h", hue(sender));
  }
  const body = el("div", "body");
  if (action) body.appendChild(el("span", "star", "*"));
  body.appendChild(who);
  if (!action) body.appendChild(el("span", "sep", ":"));
  body.appendChild(el("span", "text", text));
  div.appendChild(body);
  if (m.seq) div.dataset.seq = m.seq;
  return div;
}

// A direct message: "private", sender → recipient, then the text.
// Clicking the other person's name starts a reply.
function dmLine(m, to, cls) {
  const div = messageLine(m, "dm " + (cls || ""));
  const other = to || m.sender || "";
  const tag = el("span", "dmtag", "private");
  tag.title = to ? "a direct message only " + to + " sees" : "a direct message only you see";
  const body = div.querySelector(".body");
  const from = div.querySelector(".who");
  body.insertBefore(tag, body.firstChild);
  const dest = el("span", "who to", to || "you");
  if (to) dest.style.setProperty("--h", hue(to));
  else dest.classList.add("you");
  from.after(el("span", "arrow", "\u2192"), dest);
  const link = to ? dest : from;
  if (other && !ADDR_RE.test(other)) {
    link.classList.add("reply");
    link.tabIndex = 0;
    link.title = "write to " + other + " privately";
    link.onclick = () => startDm(other);
    link.onkeydown = (e) => { if (e.key === "Enter") startDm(other); };
  }
  return div;
}

function showDm(m) {
  if (m.seq <= (state.lastSeq[m.topic] || 0)) return; // already shown
  state.lastSeq[m.topic] = m.seq;
  append(dmLine(m, null, "in"));
}

// Put "/msg NAME " in the message box.
function startDm(name) {
  const box = $("text");
  box.value = "/msg " + name + " ";
  closePanes();
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

function showMessage(m) {
  if (m.topic !== topicOf(state.room)) return;
  if (m.seq <= (state.lastSeq[m.topic] || 0)) return; // already shown
  state.lastSeq[m.topic] = m.seq;
  append(messageLine(m));
}

// ---- people ------------------------------------------------------------------------

function showPeople() {
  const ul = $("people");
  ul.textContent = "";
  for (const n of [...state.people].sort()) {
    const self = state.myNames.has(n) && n === state.name;
    const li = el("li", self ? "self" : "dmable", n);
    li.style.setProperty("--h", hue(n));
    if (!self) {
      li.tabIndex = 0;
      li.title = "send " + n + " a direct message";
      li.onclick = () => startDm(n);
      li.onkeydown = (e) => { if (e.key === "Enter") startDm(n); };
    }
    ul.appendChild(li);
  }
  $("count").textContent = state.people.size;
}

function joined(m) {
  const n = m.name;
  const pend = state.leaving.get(n);
  if (pend) { // back within the grace period: a reconnect, not news
    clearTimeout(pend.timer);
    state.leaving.delete(n);
    return;
  }
  if (state.people.has(n)) return;
  // a rename is a leave of the old name and a join of the new, together
  for (const [old, p] of state.leaving) {
    if (p.rename && Math.abs(p.time - m.time) <= 5) {
      clearTimeout(p.timer);
      state.leaving.delete(old);
      state.people.delete(old);
      state.people.add(n);
      showPeople();
      if (!state.myNames.has(n)) note(old + " is now known as " + n, "presence");
      return;
    }
  }
  state.people.add(n);
  showPeople();
  note(n + " joined", "presence");
}

// The leave is shown only if the name does not come back soon (a reload,
// a flaky network); until then the name stays in the list.
function left(name, time, rename) {
  if (!state.people.has(name) || state.leaving.has(name)) return;
  const timer = setTimeout(() => {
    state.leaving.delete(name);
    if (!state.people.delete(name)) return;
    showPeople();
    note(name + " left", "presence");
  }, LEAVE_GRACE);
  state.leaving.set(name, { timer, time, rename });
}

function clearPeople() {
  for (const p of state.leaving.values()) clearTimeout(p.timer);
  state.leaving.clear();
  state.people = new Set();
  showPeople();
}

// The server's list: whoever this page had but the server lacks left
// (with the same grace), whoever is new is added quietly.
function presence(names) {
  const now = new Set(names);
  for (const n of state.people) {
    if (now.has(n)) continue;
    if (state.myNames.has(n)) state.people.delete(n); // a name this page used before /nick
    else left(n, Date.now(), false);
  }
  for (const n of now) {
    const pend = state.leaving.get(n);
    if (pend) { clearTimeout(pend.timer); state.leaving.delete(n); }
    state.people.add(n);
  }
  showPeople();
}

// ---- rooms ---------------------------------------------------------------------------

let roomsSeen = [];

function refreshRooms() {
  const auth = TOKEN ? { headers: { Authorization: "Bearer " + TOKEN } } : {};
  return fetch("/api/topics?after=chat%2F", auth).then((r) => r.json()).then((j) => {
    const counts = new Map([[state.room, 0], ["lobby", 0]]);
    for (const t of j.topics) {
      const r = t.topic.slice(5);
      if (t.topic.startsWith("chat/") && ROOM_RE.test(r)) counts.set(r, t.subscribers);
    }
    roomsSeen = [...counts.keys()].sort().map((r) => [r, counts.get(r)]);
    const ul = $("rooms");
    ul.textContent = "";
    for (const [n] of roomsSeen) {
      const li = el("li", n === state.room ? "current" : "", n);
      li.tabIndex = 0;
      li.onclick = () => { join(n); closePanes(); };
      li.onkeydown = (e) => { if (e.key === "Enter") li.onclick(); };
      ul.appendChild(li);
    }
    return roomsSeen;
  }).catch(() => roomsSeen);
}

function setRoomLabels() {
  $("roomname").textContent = state.room;
  $("roomname2").textContent = state.room;
  $("text").placeholder = "Message #" + state.room;
  document.title = "#" + state.room + " · axon chat";
}

// Then the outbox goes out: its messages come back through the
// subscription, so they are shown with their seq like everyone else's.
function subscribeRoom() {
  const topic = topicOf(state.room);
  setRoomLabels();
  const live = () => {
    request({ type: "subscribe", topic, since: state.lastSeq[topic], presence: true });
    request({ type: "presence", topic }, (r) => { if (r.topic === topicOf(state.room)) presence(r.names || []); });
    for (const o of state.outbox) if (o.el) append(o.el); // pending after what came before
    flush();
  };
  if (state.lastSeq[topic] === undefined) {
    // first visit: the recent history, then live from where it ended
    request({ type: "history", topic, limit: 50 }, (m) => {
      if (m.topic !== topicOf(state.room)) return;
      for (const x of m.messages || []) showMessage(x);
      state.lastSeq[topic] = Math.max(state.lastSeq[topic] || 0, m.last_seq || 0);
      live();
    });
  } else {
    // a reconnect: resume from the last seq shown, unless the server
    // numbers the room from the start again (it lost its history)
    request({ type: "history", topic, limit: 1 }, (m) => {
      if (m.topic !== topicOf(state.room)) return;
      if ((m.last_seq || 0) < state.lastSeq[topic]) {
        note("the server restarted without this room's history", "error");
        state.lastSeq[topic] = 0;
      }
      live();
    });
  }
}

// Direct messages to this page's name; on a reconnect from the last one
// shown, so none is missed (the server subscribes a named client to its
// inbox too: this asks for the resume).
function subscribeInbox() {
  const topic = inboxOf(state.name);
  if (!state.name) return;
  const since = state.lastSeq[topic];
  // the server's own subscription (made with the name) does not resume
  if (since !== undefined) request({ type: "unsubscribe", topic });
  request({ type: "subscribe", topic, since: since === undefined ? -1 : since }, (r) => {
    if (r.type === "error") note("direct messages are off: " + r.error, "error");
  });
}

function join(room) {
  if (!ROOM_RE.test(room)) {
    note("a room name is 1 to 64 letters, digits, '_', '-' or '.'", "error");
    return;
  }
  if (room === state.room) return;
  request({ type: "unsubscribe", topic: topicOf(state.room) });
  state.room = room;
  localStorage.setItem("axon-room", room);
  const u = new URL(location.href);
  u.searchParams.set("room", room);
  history.replaceState(null, "", u);
  $("log").textContent = "";
  clearPeople();
  delete state.lastSeq[topicOf(room)];
  setRoomLabels();
  if (online()) subscribeRoom();
  refreshRooms();
}

// ---- the outbox: nothing typed is lost -------------------------------------------

const OUTBOX_KEY = "axon-outbox";

function saveOutbox() {
  try {
    sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(state.outbox.map((o) => ({ topic: o.topic, payload: o.payload, time: o.time }))));
  } catch (e) { /* storage full or off: the page still holds them */ }
}

function pendingLine(o) {
  const to = dmTarget(o.topic);
  const m = { time: o.time, sender: state.name, payload: o.payload };
  const div = to ? dmLine(m, to, "pending out") : messageLine(m, "pending");
  div.classList.add("mine");
  div.querySelector(".body").appendChild(el("span", "state", online() ? "sending…" : "waiting for the connection"));
  return div;
}

function queue(topic, payload) {
  const o = { topic, payload, time: Date.now(), el: null, reqId: 0 };
  if (topic === topicOf(state.room) || dmTarget(topic)) o.el = append(pendingLine(o));
  state.outbox.push(o);
  saveOutbox();
  flush();
  if (!online()) retryNow();
}

function settle(o, reply) {
  const i = state.outbox.indexOf(o);
  if (i >= 0) state.outbox.splice(i, 1);
  saveOutbox();
  if (reply.type === "error") {
    if (o.el) {
      o.el.classList.replace("pending", "failed");
      o.el.querySelector(".state").textContent = "not sent: " + reply.error;
    } else {
      note("not sent: " + reply.error, "error");
    }
  } else if (o.el && dmTarget(o.topic)) {
    // nobody but the recipient gets it back: the line stays, as sent
    o.el.classList.remove("pending");
    o.el.querySelector(".state").textContent = "sent";
    o.el.querySelector(".state").className = "state sent";
  } else if (o.el) {
    o.el.remove(); // the message itself comes back from the room, with its seq
  }
}

function flush() {
  if (!online()) return;
  for (const o of state.outbox) {
    if (o.reqId) continue;
    o.reqId = request({ type: "publish", topic: o.topic, payload: o.payload }, (r) => settle(o, r));
    if (o.el) o.el.querySelector(".state").textContent = "sending…";
  }
}

// After a lost connection an unacknowledged publish is sent again.
function requeue() {
  for (const o of state.outbox) {
    o.reqId = 0;
    if (o.el) o.el.querySelector(".state").textContent = "waiting for the connection";
  }
}

function restoreOutbox() {
  let saved = [];
  try { saved = JSON.parse(sessionStorage.getItem(OUTBOX_KEY) || "[]"); } catch (e) { saved = []; }
  for (const s of saved) {
    if (typeof s.topic !== "string" || typeof s.payload !== "string") continue;
    const o = { topic: s.topic, payload: s.payload, time: s.time || Date.now(), el: null, reqId: 0 };
    if (o.topic === topicOf(state.room) || dmTarget(o.topic)) o.el = append(pendingLine(o));
    state.outbox.push(o);
  }
}

// ---- commands: the line chat's, in the page ---------------------------------------

const HELP = [
  "/join ROOM — go to another room (made when first used)",
  "/nick NAME — change your name",
  "/msg NAME TEXT — a direct message, seen by NAME only (or click a name in the list)",
  "/who — who is in this room",
  "/rooms — the rooms and how many are in each",
  "/me ACTION — say what you do",
  "/history [N] — the last N messages of this room (default 20)",
  "/quit — leave (send anything to come back)",
  "//text — a message that starts with /",
];

function helpNote() {
  const div = el("div", "msg note help");
  div.appendChild(el("div", "", "commands:"));
  for (const h of HELP) div.appendChild(el("div", "cmd", h));
  append(div);
}

function needOnline(what) {
  if (online()) return true;
  note(what + " needs the connection; try again when it is back", "error");
  return false;
}

function rename(name) {
  if (!NAME_RE.test(name)) return "a name is 1 to 32 letters, digits, '_', '-' or '.'";
  if (name === state.name) return null;
  const old = state.name;
  state.myNames.add(name);
  setName(name);
  if (online())
    request({ type: "nick", name }, (r) => {
      if (r.type === "error") { note("cannot change your name: " + r.error, "error"); setName(old); return; }
      note("you are now " + name, "self");
      subscribeInbox();
    });
  else
    note("you are now " + name + " (others will see it when the connection is back)", "self");
  return null;
}

function showHistory(n) {
  const topic = topicOf(state.room);
  request({ type: "history", topic, limit: n }, (m) => {
    const block = el("div", "msg history");
    block.appendChild(el("div", "note", "the last messages of " + state.room + ":"));
    for (const x of m.messages || []) block.appendChild(messageLine(x));
    block.appendChild(el("div", "note", "end of history"));
    append(block);
  });
}

function command(line) {
  const sp = line.search(/\s/);
  const cmd = sp < 0 ? line : line.slice(0, sp);
  const arg = sp < 0 ? "" : line.slice(sp + 1).trim();
  switch (cmd) {
    case "/join":
      if (!arg) return note("usage: /join ROOM", "error");
      return join(arg);
    case "/nick": {
      if (!arg) return note("usage: /nick NAME", "error");
      const err = rename(arg);
      if (err) note(err, "error");
      return;
    }
    case "/who":
      if (!needOnline("/who")) return;
      request({ type: "presence", topic: topicOf(state.room) }, (r) => {
        const names = (r.names || []).slice().sort();
        note("in " + state.room + ": " + (names.length ? names.join(", ") : "nobody"), "who");
      });
      return;
    case "/rooms":
      refreshRooms().then((rs) => {
        note("rooms: " + (rs.length ? rs.map(([r, c]) => r + " (" + c + ")").join(", ") : "none yet"), "who");
      });
      return;
    case "/history": {
      const n = arg ? parseInt(arg, 10) : 20;
      if (!(n >= 1 && n <= 1000)) return note("usage: /history [N] (1 to 1000)", "error");
      if (needOnline("/history")) showHistory(n);
      return;
    }
    case "/msg": {
      const sp2 = arg.search(/\s/);
      const to = sp2 < 0 ? arg : arg.slice(0, sp2);
      const text = sp2 < 0 ? "" : arg.slice(sp2 + 1).trim();
      if (!to || !text) return note("usage: /msg NAME TEXT", "error");
      if (!USER_RE.test(to)) return note("'" + to + "' is not a user name", "error");
      return queue(inboxOf(to), text);
    }
    case "/me":
      if (!arg) return note("usage: /me ACTION", "error");
      return queue(topicOf(state.room), "/me " + arg);
    case "/quit":
      quit();
      return;
    case "/help":
      return helpNote();
    default:
      note("unknown command " + cmd + " (try /help)", "error");
  }
}

// ---- the connection -----------------------------------------------------------------

function setStatus(cls, text) {
  $("status").className = "status " + cls;
  $("status").textContent = text;
  document.body.classList.toggle("offline", cls !== "up");
}

function onEnvelope(m) {
  if (m.id !== undefined && state.replies.has(m.id)) {
    const f = state.replies.get(m.id);
    state.replies.delete(m.id);
    f(m);
    return;
  }
  const here = m.topic === topicOf(state.room);
  switch (m.type) {
    case "message": if (m.topic === inboxOf(state.name)) showDm(m); else showMessage(m); break;
    case "join": if (here) joined(m); break;
    case "leave": if (here) left(m.name, m.time, true); break;
    case "gap": if (here) note("some older messages are no longer kept"); break;
    case "error": note("error: " + m.error, "error"); break;
  }
}

function connect() {
  state.retryTimer = null;
  if (state.quit) return;
  setStatus("down", state.everConnected ? "reconnecting…" : "connecting…");
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws;
  ws.onopen = () => {
    state.backoff = 500;
    setStatus("up", "online");
    if (state.lostShown) note("reconnected", "conn up");
    state.lostShown = false;
    state.everConnected = true;
    if (TOKEN) {
      request({ type: "auth", token: TOKEN }, (r) => {
        if (r.type === "error") note("cannot sign in: " + r.error, "error");
        else { setName(r.name); subscribeInbox(); }
      });
    } else {
      request({ type: "nick", name: state.name });
      subscribeInbox();
    }
    subscribeRoom();
    refreshRooms();
  };
  ws.onmessage = (ev) => onEnvelope(JSON.parse(ev.data));
  ws.onclose = () => lost(ws);
  // a server that accepts but never answers the handshake
  setTimeout(() => { if (state.ws === ws && ws.readyState === WebSocket.CONNECTING) lost(ws); }, 8000);
}

// The connection is gone (closed, or silent: see heartbeat).
function lost(ws) {
  if (state.ws !== ws) return;
  state.ws = null;
  state.replies.clear();
  requeue();
  if (ws.readyState !== WebSocket.CLOSED) ws.close();
  if (state.quit) { setStatus("down", "left"); return; }
  if (state.everConnected && !state.lostShown) {
    note("connection lost — reconnecting; what you type is sent when it is back", "conn down");
    state.lostShown = true;
  }
  const wait = state.backoff;
  state.backoff = Math.min(state.backoff * 2, 4000);
  setStatus("down", "offline — retrying");
  state.retryTimer = setTimeout(connect, wait);
}

// A connection can die without a close (a phone changes networks, the
// server hangs): a ping every 10 s that is not answered within 5 s counts
// as a lost connection.
function heartbeat() {
  const ws = state.ws;
  if (!online()) return;
  let answered = false;
  request({ type: "ping" }, () => { answered = true; });
  setTimeout(() => { if (!answered && state.ws === ws) lost(ws); }, 5000);
}

// Try at once (the user is waiting for a message to go out).
function retryNow() {
  if (state.ws || state.quit) return;
  if (state.retryTimer) clearTimeout(state.retryTimer);
  connect();
}

function quit() {
  state.quit = true;
  note("you left. Send a message or /join a room to come back.", "conn down");
  if (state.ws) state.ws.close(1000, "bye");
  clearPeople();
}

function comeBack() {
  if (!state.quit) return;
  state.quit = false;
  state.backoff = 500;
  state.lostShown = false;
  connect();
}

// ---- the name -------------------------------------------------------------------------

function setName(name) {
  state.name = name;
  state.myNames.add(name);
  localStorage.setItem("axon-name", name);
  $("myname").textContent = name;
  showPeople();
}

function askName(first) {
  const dlg = $("namedlg");
  $("nameinput").value = state.name || "guest" + Math.floor(100 + Math.random() * 900);
  $("nameerr").textContent = "";
  $("namecancel").hidden = first;
  dlg.dataset.first = first ? "1" : "";
  dlg.showModal();
  $("nameinput").select();
}

$("nameform").onsubmit = (ev) => {
  ev.preventDefault();
  const name = $("nameinput").value.trim();
  const dlg = $("namedlg");
  if (dlg.dataset.first) {
    if (!NAME_RE.test(name)) { $("nameerr").textContent = "1 to 32 letters, digits, '_', '-' or '.'"; return; }
    dlg.close();
    setName(name);
    connect();
    return;
  }
  const err = rename(name);
  if (err) { $("nameerr").textContent = err; return; }
  dlg.close();
};
$("namecancel").onclick = () => $("namedlg").close();
$("namedlg").addEventListener("cancel", (ev) => { if ($("namedlg").dataset.first) ev.preventDefault(); });
$("me").onclick = () => askName(false);

// ---- panes (phone width: rooms and people are drawers) --------------------------------

function closePanes() {
  document.body.classList.remove("show-rooms", "show-people");
  $("menubtn").setAttribute("aria-expanded", "false");
  $("peoplebtn").setAttribute("aria-expanded", "false");
}

function togglePane(which, btn) {
  const open = !document.body.classList.contains(which);
  closePanes();
  if (open) {
    document.body.classList.add(which);
    $(btn).setAttribute("aria-expanded", "true");
  }
}

$("menubtn").onclick = () => togglePane("show-rooms", "menubtn");
$("peoplebtn").onclick = () => togglePane("show-people", "peoplebtn");
$("scrim").onclick = closePanes;
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closePanes(); });

// ---- input -----------------------------------------------------------------------------

function submit() {
  const box = $("text");
  const text = box.value.replace(/\s+$/, "");
  if (!text.trim()) return;
  box.value = "";
  grow();
  comeBack();
  if (text.startsWith("//")) queue(topicOf(state.room), text.slice(1));
  else if (text.startsWith("/")) command(text.trim());
  else queue(topicOf(state.room), text);
}

function grow() {
  const box = $("text");
  box.style.height = "";
  if (box.value.includes("\n") || box.scrollHeight > box.clientHeight + 2)
    box.style.height = Math.min(box.scrollHeight + 2, 160) + "px";
}

$("sendform").onsubmit = (ev) => { ev.preventDefault(); submit(); $("text").focus(); };
$("text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(); }
});
$("text").addEventListener("input", grow);
$("joinform").onsubmit = (ev) => {
  ev.preventDefault();
  const r = $("newroom").value.trim();
  if (!r) return;
  comeBack();
  join(r);
  $("newroom").value = "";
  closePanes();
};
window.addEventListener("online", retryNow);

// ---- start --------------------------------------------------------------------------------

if (!params.get("room") && localStorage.getItem("axon-room")) state.room = localStorage.getItem("axon-room");
if (!ROOM_RE.test(state.room)) state.room = "lobby";
setRoomLabels();
restoreOutbox();
setInterval(refreshRooms, 5000);
setInterval(heartbeat, 10000);
refreshRooms();
if (TOKEN) {
  connect(); // the name comes with the token
} else if (NAME_RE.test(state.name) || (state.name && params.get("name"))) {
  setName(state.name);
  connect();
} else {
  state.name = "";
  askName(true);
}
