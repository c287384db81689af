// chat_page.js BASE NAME: headless Chromium (Debian's, driven by
// playwright-core) opens axon serve's chat page as NAME, says hello, prints
// READY, then waits until the messages listed on stdin (one per line, sent
// by the other clients of the test) show up in the page, then reloads the
// page and checks the history shown on join; prints a JSON report.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const [base, name] = process.argv.slice(2);

async function logText(page) {
  return page.$$eval('#log .msg', (els) => els.map((e) => e.textContent));
}

async function waitFor(page, texts, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const log = await logText(page);
    if (texts.every((t) => log.some((l) => l.includes(t)))) return log;
    if (Date.now() > end) throw new Error('missing ' + JSON.stringify(texts) + ' in ' + JSON.stringify(log));
    await page.waitForTimeout(50);
  }
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'axon-chat-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const external = [];
  ctx.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  const report = {};
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    await page.goto(base + '/?name=' + encodeURIComponent(name));
    await page.waitForSelector('#status.up', { timeout: 20000 });
    await page.waitForFunction((n) => [...document.querySelectorAll('#people li')].some((li) => li.textContent === n), name, { timeout: 20000 });
    await page.fill('#text', 'hello from chromium');
    await page.click('#send');
    await waitFor(page, ['hello from chromium'], 20000);
    console.log('READY');
    const want = [];
    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) { if (line === 'END') break; want.push(line); }
    report.log = await waitFor(page, want, 20000);
    report.people = await page.$$eval('#people li', (els) => els.map((e) => e.textContent));
    // a fresh page: history on join, then live again
    await page.reload();
    await page.waitForSelector('#status.up', { timeout: 20000 });
    report.history = await waitFor(page, ['hello from chromium', ...want], 20000);
    report.rooms = await page.$$eval('#rooms li', (els) => els.map((e) => e.textContent));
    await page.goto(base + '/dashboard');
    await page.waitForSelector('#status.up', { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector('#topics tbody').textContent.includes('chat/lobby'), null, { timeout: 20000 });
    report.dashboard = await page.$eval('#gateways tbody', (e) => e.textContent);
    report.external = external;
    console.log(JSON.stringify(report));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => { console.log(`FAIL ${e.stack || e}`); process.exit(1); });
