// chromium_ws.js URL: headless Chromium (Debian's, driven by playwright-core)
// opens a WebSocket to URL from a page, sends text and binary messages,
// receives their echoes, closes with a code; prints a JSON report.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const url = process.argv[2];

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'axon-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    const report = await page.evaluate(async (u) => {
      const ws = new WebSocket(u);
      ws.binaryType = 'arraybuffer';
      const got = [];
      let waiter = null;
      ws.onmessage = (e) => { got.push(e.data); if (waiter) waiter(); };
      const next = () => (got.length ? Promise.resolve(got.shift())
        : new Promise((r) => { waiter = () => { waiter = null; r(got.shift()); }; }));
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('open failed')); });
      const r = { protocol: ws.protocol, extensions: ws.extensions };
      ws.send('hello from chromium ✓');
      r.text = await next();
      const bytes = new Uint8Array(200000);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
      ws.send(bytes);
      const back = new Uint8Array(await next());
      r.binaryOk = back.length === bytes.length && back.every((v, i) => v === bytes[i]);
      const big = 'x'.repeat(1 << 20);
      ws.send(big);
      r.bigOk = (await next()) === big;
      const closed = new Promise((resolve) => { ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, clean: e.wasClean }); });
      ws.close(4000, 'bye ✓');
      r.close = await closed;
      return r;
    }, url);
    console.log(JSON.stringify(report));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => { console.log(`FAIL ${e.stack || e}`); process.exit(1); });
