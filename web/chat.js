// axon chat page: one WebSocket to /ws speaking the JSON envelope of
// docs/protocol.md.  On (re)connect every joined room is subscribed again
// with the last sequence number seen, so nothing is missed or repeated.
"use strict";

const params = new URLSearchParams(location.search);
const state = {
  name: params.get("name") || localStorage.getItem("axon-name") || "",
  room: params.get("room") || "lobby",
  lastSeq: {},          // topic -> last seq shown
  people: new Set(),
  ws: null,
  nextId: 1,
  backoff: 500,
};
const $ = (id) => document.getElementById(id);
const topicOf = (room) => "chat/" + room;

function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    obj.id = state.nextId++;
    state.ws.send(JSON.stringify(obj));
  }
}

function line(cls, parts) {
  const div = document.createElement("div");
  div.className = "msg " + (cls || "");
  for (const [c, text] of parts) {
    const span = document.createElement("span");
    if (c) span.className = c;
    span.textContent = text;
    div.appendChild(span);
  }
  const log = $("log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.appendChild(div);
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function showMessage(m) {
  if (m.topic !== topicOf(state.room)) return;
  if (m.seq <= (state.lastSeq[m.topic] || 0)) return; // already shown
  state.lastSeq[m.topic] = m.seq;
  const t = new Date(m.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  let text = m.encoding === "base64" ? "<" + atob(m.payload).length + " bytes of binary data>" : m.payload;
  if (text.startsWith("/me ")) {
    line("", [["time", t], ["who", "* " + m.sender], ["", text.slice(4)]]);
  } else {
    line("", [["time", t], ["who", m.sender + ":"], ["", text]]);
  }
}

function showPeople() {
  const ul = $("people");
  ul.textContent = "";
  for (const n of [...state.people].sort()) {
    const li = document.createElement("li");
    li.textContent = n;
    ul.appendChild(li);
  }
}

function refreshRooms() {
  fetch("/api/topics?after=chat%2F").then((r) => r.json()).then((j) => {
    const names = new Set([state.room, "lobby"]);
    for (const t of j.topics) if (t.topic.startsWith("chat/") && !t.topic.slice(5).includes("/")) names.add(t.topic.slice(5));
    const ul = $("rooms");
    ul.textContent = "";
    for (const n of [...names].sort()) {
      const li = document.createElement("li");
      li.textContent = n;
      if (n === state.room) li.className = "current";
      li.onclick = () => join(n);
      ul.appendChild(li);
    }
  }).catch(() => {});
}

function subscribeRoom() {
  const topic = topicOf(state.room);
  state.people = new Set();
  showPeople();
  $("roomname").textContent = state.room;
  if (state.lastSeq[topic] === undefined) {
    // first visit: the recent history, then live from where it ended
    send({ type: "history", topic, limit: 50 });
  } else {
    send({ type: "subscribe", topic, since: state.lastSeq[topic], presence: true });
    send({ type: "presence", topic });
  }
}

function join(room) {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(room) || room === state.room) return;
  send({ type: "unsubscribe", topic: topicOf(state.room) });
  state.room = room;
  $("log").textContent = "";
  delete state.lastSeq[topicOf(room)];
  subscribeRoom();
  refreshRooms();
}

function onEnvelope(m) {
  switch (m.type) {
    case "message": showMessage(m); break;
    case "join":
      if (m.topic === topicOf(state.room)) { state.people.add(m.name); showPeople(); line("note", [["", m.name + " joined"]]); }
      break;
    case "leave":
      if (m.topic === topicOf(state.room)) { state.people.delete(m.name); showPeople(); line("note", [["", m.name + " left"]]); }
      break;
    case "gap": line("note", [["", "some older messages are no longer kept"]]); break;
    case "history":
      if (m.topic !== topicOf(state.room)) break;
      for (const x of m.messages) showMessage(x);
      state.lastSeq[m.topic] = Math.max(state.lastSeq[m.topic] || 0, m.last_seq);
      send({ type: "subscribe", topic: m.topic, since: state.lastSeq[m.topic], presence: true });
      send({ type: "presence", topic: m.topic });
      break;
    case "presence":
      if (m.topic === topicOf(state.room)) { state.people = new Set(m.names); showPeople(); }
      break;
    case "error": line("note", [["", "error: " + m.error]]); break;
  }
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws;
  ws.onopen = () => {
    state.backoff = 500;
    $("status").textContent = "connected";
    $("status").className = "status up";
    send({ type: "nick", name: state.name });
    subscribeRoom();
    refreshRooms();
  };
  ws.onmessage = (ev) => onEnvelope(JSON.parse(ev.data));
  ws.onclose = () => {
    $("status").textContent = "reconnecting";
    $("status").className = "status down";
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 8000);
  };
}

$("sendform").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("text").value;
  if (!text) return;
  const m = /^\/join\s+(\S+)/.exec(text);
  if (m) join(m[1]);
  else send({ type: "publish", topic: topicOf(state.room), payload: text });
  $("text").value = "";
};
$("joinform").onsubmit = (ev) => {
  ev.preventDefault();
  join($("newroom").value.trim());
  $("newroom").value = "";
};

if (!state.name) state.name = (prompt("Your name?") || "").trim() || "guest" + Math.floor(Math.random() * 1000);
localStorage.setItem("axon-name", state.name);
$("me").textContent = state.name;
setInterval(refreshRooms, 5000);
connect();
