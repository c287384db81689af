// ws_client.js URL DEFLATE(0|1): Node's `ws` client against an axon
// WebSocket echo server.  Prints one line per check; exits 0 when all pass.
'use strict';
const WebSocket = require('ws');
const assert = require('assert');

const [url, deflate] = process.argv.slice(2);
// DEFLATE: 0 off, 1 on with the defaults, 2 on with no context takeover
// both ways and small windows.
const pmd = deflate === '2'
  ? { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 11, threshold: 0 }
  : deflate === '1';
const ws = new WebSocket(url, { perMessageDeflate: pmd, maxPayload: 64 << 20 });
const inbox = [];
let waiting = null;

ws.on('message', (data, isBinary) => {
  inbox.push({ data, isBinary });
  if (waiting) { const w = waiting; waiting = null; w(); }
});

function next() {
  if (inbox.length) return Promise.resolve(inbox.shift());
  return new Promise((resolve) => { waiting = () => resolve(inbox.shift()); });
}

function send(data, opts) {
  return new Promise((resolve, reject) => ws.send(data, opts || {}, (e) => (e ? reject(e) : resolve())));
}

async function run() {
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const ext = ws.extensions || '';
  assert.strictEqual(ext.includes('permessage-deflate'), deflate !== '0', `extensions: ${ext}`);
  if (deflate === '2') { // what the server granted (ws keeps it in a private field)
    const params = JSON.stringify(((ws._extensions || {})['permessage-deflate'] || {}).params || {});
    assert.ok(params.includes('"server_max_window_bits":10') && params.includes('server_no_context_takeover'), params);
    console.log(`ok granted ${params}`);
  }
  console.log(`ok negotiated extensions=${JSON.stringify(ext)}`);

  await send('hello ✓');
  let m = await next();
  assert.strictEqual(m.isBinary, false);
  assert.strictEqual(m.data.toString(), 'hello ✓');
  console.log('ok text');

  const bin = Buffer.alloc(100000);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) & 0xff;
  await send(bin, { binary: true });
  m = await next();
  assert.strictEqual(m.isBinary, true);
  assert.ok(m.data.equals(bin));
  console.log('ok binary 100000');

  await send('frag', { fin: false });
  await send('ment', { fin: false });
  await send('ed', { fin: true });
  m = await next();
  assert.strictEqual(m.data.toString(), 'fragmented');
  console.log('ok fragmented');

  const big = Buffer.alloc(8 << 20, 'a');
  await send(big, { binary: true });
  m = await next();
  assert.ok(m.data.equals(big));
  console.log('ok binary 8 MiB');

  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping('are you there');
  assert.strictEqual((await pong).toString(), 'are you there');
  console.log('ok ping');

  for (let i = 0; i < 1000; i++) ws.send(`n${i}`);
  for (let i = 0; i < 1000; i++) assert.strictEqual((await next()).data.toString(), `n${i}`);
  console.log('ok 1000 in flight');

  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])));
  ws.close(4321, 'done here');
  const [code, reason] = await closed;
  assert.strictEqual(code, 4321);
  assert.strictEqual(reason, 'done here');
  console.log('ok close 4321');
}

run().then(() => process.exit(0), (e) => { console.log(`FAIL ${e.stack || e}`); process.exit(1); });
setTimeout(() => { console.log('FAIL timeout'); process.exit(1); }, 30000).unref();
