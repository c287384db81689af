// page_driver.js: headless Chromium (Debian's, driven by playwright-core)
// under the control of a test script.  Reads one JSON command per line on
// stdin and answers each with one JSON line on stdout: {"ok":true,"value":…}
// or {"ok":false,"error":"…"}.  Pages are numbered in the order opened.
//   {"op":"open","url":U,"w":W,"h":H}       a new page (its own storage)
//   {"op":"eval","page":N,"js":EXPR}        the value of a JS expression
//   {"op":"wait","page":N,"js":EXPR,"ms":T} until EXPR is truthy; its value
//   {"op":"fill"|"click"|"press","page":N,"sel":S,"text":X,"key":K}
//   {"op":"viewport","page":N,"w":W,"h":H}
//   {"op":"shot","page":N,"path":P}        a PNG of the viewport
//   {"op":"events"}                         native dialogs, page errors, outside requests
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'axon-page-'));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ARGS });
  const pages = [];
  const events = { dialogs: [], errors: [], external: [] };
  const run = {
    async open(c) {
      const ctx = await browser.newContext({ viewport: { width: c.w || 1280, height: c.h || 800 } });
      const page = await ctx.newPage();
      const origin = new URL(c.url).origin;
      page.on('dialog', (d) => { events.dialogs.push(d.type() + ': ' + d.message()); d.dismiss().catch(() => {}); });
      page.on('pageerror', (e) => events.errors.push(String(e)));
      page.on('request', (r) => { if (!r.url().startsWith(origin)) events.external.push(r.url()); });
      await page.goto(c.url);
      pages.push(page);
      return pages.length - 1;
    },
    eval: (c, p) => p.evaluate(c.js),
    async wait(c, p) {
      const h = await p.waitForFunction(c.js, null, { timeout: c.ms || 10000, polling: 50 });
      return h.jsonValue();
    },
    fill: (c, p) => p.fill(c.sel, c.text),
    click: (c, p) => p.click(c.sel),
    press: (c, p) => p.press(c.sel, c.key),
    viewport: (c, p) => p.setViewportSize({ width: c.w, height: c.h }),
    shot: (c, p) => p.screenshot({ path: c.path }).then(() => c.path),
    events: () => events,
  };
  const rl = readline.createInterface({ input: process.stdin });
  console.log(JSON.stringify({ ok: true, value: 'ready' }));
  try {
    for await (const line of rl) {
      const c = JSON.parse(line);
      if (c.op === 'quit') break;
      let reply;
      try {
        const v = await run[c.op](c, pages[c.page || 0]);
        reply = { ok: true, value: v === undefined ? null : v };
      } catch (e) {
        reply = { ok: false, error: String(e && e.message || e).slice(0, 2000) };
      }
      console.log(JSON.stringify(reply));
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => { console.log(JSON.stringify({ ok: false, error: 'FAIL ' + (e.stack || e) })); process.exit(1); });
