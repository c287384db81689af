// mqtt_scram.js URL USER PASSWORD (ok|refused): Node's `mqtt` package
// signs in to axon serve's broker with MQTT 5 enhanced authentication,
// SCRAM-SHA-512 (RFC 5802 with SHA-512): the client side of the exchange
// is written here from the RFC with Node's crypto, and the client checks
// the server's signature in the CONNACK.  "ok": the exchange succeeds and a
// message goes round; "refused": CONNACK 0x86.  One line per check; exit 0
// when all pass.
'use strict';
const crypto = require('crypto');
const mqtt = require('mqtt');

const [url, user, password, want] = process.argv.slice(2);
const METHOD = 'SCRAM-SHA-512';
let failed = 0;
function check(ok, what) {
  console.log((ok ? 'ok ' : 'not ok ') + what);
  if (!ok) failed++;
}

const hmac = (key, text) => crypto.createHmac('sha512', key).update(text).digest();
const sha512 = (b) => crypto.createHash('sha512').update(b).digest();
const saslname = (s) => s.replace(/=/g, '=3D').replace(/,/g, '=2C');

const cnonce = crypto.randomBytes(18).toString('base64');
const firstBare = `n=${saslname(user)},r=${cnonce}`;
let authMessage = null;
let salted = null;

function attrs(text) {
  const out = {};
  for (const part of text.split(',')) out[part[0]] = part.slice(2);
  return out;
}

const c = mqtt.connect(url, {
  protocolVersion: 5,
  reconnectPeriod: 0,
  connectTimeout: 5000,
  clientId: 'scram-' + user,
  properties: { authenticationMethod: METHOD, authenticationData: Buffer.from('n,,' + firstBare) },
});

c.handleAuth = (packet, callback) => {
  const serverFirst = packet.properties.authenticationData.toString();
  const a = attrs(serverFirst);
  check(a.r && a.r.startsWith(cnonce) && a.r.length > cnonce.length, 'server-first: our nonce extended');
  check(Number(a.i) >= 1 && a.s, 'server-first: salt and iterations (' + a.i + ')');
  salted = crypto.pbkdf2Sync(password, Buffer.from(a.s, 'base64'), Number(a.i), 64, 'sha512');
  const clientKey = hmac(salted, 'Client Key');
  const finalNoProof = `c=${Buffer.from('n,,').toString('base64')},r=${a.r}`;
  authMessage = `${firstBare},${serverFirst},${finalNoProof}`;
  const sig = hmac(sha512(clientKey), authMessage);
  const proof = Buffer.alloc(64);
  for (let i = 0; i < 64; i++) proof[i] = clientKey[i] ^ sig[i];
  callback(null, {
    cmd: 'auth',
    reasonCode: 0x18,
    properties: {
      authenticationMethod: METHOD,
      authenticationData: Buffer.from(`${finalNoProof},p=${proof.toString('base64')}`),
    },
  });
};

const timer = setTimeout(() => { check(false, 'finished within 8 s'); process.exit(1); }, 8000);

c.on('connect', (ack) => {
  if (want !== 'ok') { check(false, 'refused (got CONNACK 0)'); c.end(true); process.exit(1); }
  const data = ack.properties && ack.properties.authenticationData;
  check(ack.properties && ack.properties.authenticationMethod === METHOD, 'CONNACK names ' + METHOD);
  const expect = 'v=' + hmac(hmac(salted, 'Server Key'), authMessage).toString('base64');
  check(data && data.toString() === expect, "CONNACK carries the server's signature (it holds the hash)");
  c.subscribe('scram/' + user, { qos: 1 }, (err) => {
    check(!err, 'subscribed as ' + user);
    c.publish('scram/' + user, 'signed in', { qos: 1 });
  });
  c.on('message', (topic, payload) => {
    check(payload.toString() === 'signed in', 'a message goes round');
    clearTimeout(timer);
    c.end(false, () => process.exit(failed ? 1 : 0));
  });
});

c.on('error', (err) => {
  clearTimeout(timer);
  if (want === 'refused') {
    check(err.code === 134, 'refused with 0x86 bad user name or password (code ' + err.code + ')');
  } else {
    check(false, 'no error: ' + err.message);
  }
  c.end(true);
  process.exit(failed ? 1 : 0);
});
