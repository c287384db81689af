// mqtt_client.js URL VERSION(4|5): Node's `mqtt` package against axon
// serve's broker (mqtt:// or ws://.../mqtt).  Two clients: one subscribes
// at QoS 2, the other publishes at QoS 0, 1 and 2 (a retained one too);
// then a persistent session collects QoS 1 messages while away.  Prints
// one line per check; exits 0 when all pass.
'use strict';
const mqtt = require('mqtt');

const [url, version] = process.argv.slice(2);
const pv = Number(version);
let failed = 0;
function check(ok, what) {
  console.log((ok ? 'ok ' : 'not ok ') + what);
  if (!ok) failed++;
}

function connect(opts, early) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, Object.assign({ protocolVersion: pv, reconnectPeriod: 0, connectTimeout: 5000 }, opts));
    if (early) early(c); // (a resumed session's messages may come with the CONNACK)
    c.once('connect', (ack) => resolve([c, ack]));
    c.once('error', reject);
  });
}

function collect(c, n, ms) {
  return new Promise((resolve) => {
    const got = [];
    const t = setTimeout(() => resolve(got), ms);
    c.on('message', (topic, payload, packet) => {
      got.push({ topic, payload: payload.toString('latin1'), qos: packet.qos, retain: packet.retain });
      if (got.length === n) { clearTimeout(t); resolve(got); }
    });
  });
}

async function main() {
  const [sub] = await connect({ clientId: 'node-sub-' + pv });
  const granted = await sub.subscribeAsync('node/#', { qos: 2 });
  check(granted[0].qos === 2, 'SUBACK grants QoS 2');
  const [pub] = await connect({ clientId: 'node-pub-' + pv });
  const arriving = collect(sub, 4, 5000);
  await pub.publishAsync('node/q0', 'zero', { qos: 0 });
  await pub.publishAsync('node/q1', 'one', { qos: 1 });
  await pub.publishAsync('node/q2', 'two', { qos: 2 });
  await pub.publishAsync('node/bin', Buffer.from([0, 1, 254, 255]), { qos: 1 });
  const got = await arriving;
  check(got.length === 4, 'four messages arrive (' + got.length + ')');
  const by = Object.fromEntries(got.map((m) => [m.topic, m]));
  check(by['node/q0'] && by['node/q0'].payload === 'zero' && by['node/q0'].qos === 0, 'QoS 0');
  check(by['node/q1'] && by['node/q1'].payload === 'one' && by['node/q1'].qos === 1, 'QoS 1');
  check(by['node/q2'] && by['node/q2'].payload === 'two' && by['node/q2'].qos === 2, 'QoS 2');
  check(by['node/bin'] && by['node/bin'].payload === '\x00\x01\xfe\xff', 'binary payload unchanged');
  await pub.publishAsync('node/ret', 'kept', { qos: 1, retain: true });
  const [late] = await connect({ clientId: 'node-late-' + pv });
  const r = collect(late, 1, 3000);
  await late.subscribeAsync('node/ret', { qos: 1 });
  const rg = await r;
  check(rg.length === 1 && rg[0].payload === 'kept' && rg[0].retain, 'retained message on subscribe');
  // a persistent session collects while away
  const sess = { clientId: 'node-away-' + pv, clean: false };
  if (pv === 5) sess.properties = { sessionExpiryInterval: 300 };
  let [away] = await connect(sess);
  await away.subscribeAsync('node/away', { qos: 1 });
  await away.endAsync();
  for (let i = 0; i < 3; i++) await pub.publishAsync('node/away', 'm' + i, { qos: 1 });
  let ack, arrived;
  [away, ack] = await connect(sess, (c) => { arrived = collect(c, 3, 5000); });
  check(ack.sessionPresent, 'session present');
  const back = await arrived;
  check(back.map((m) => m.payload).join(',') === 'm0,m1,m2', 'queued while away: ' + back.map((m) => m.payload).join(','));
  for (const c of [sub, pub, late, away]) await c.endAsync();
}

main().then(() => process.exit(failed ? 1 : 0), (e) => { console.log('not ok ' + e); process.exit(1); });
