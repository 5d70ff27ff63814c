// The client in headless Chromium (Debian's, driven by puppeteer-core from the lock file):
// a page served on another origin (RC_PAGE_PORT, listed in the server's allowed_origins)
// imports clients/js/ringcast.js as an ES module, connects with the browser's own
// WebSocket, subscribes and receives an event published over the HTTP API; then the same
// with connectSSE and the browser's EventSource.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { BASE, SCALE, env, publish, token } from './helpers.mjs';

const JS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../clients/js');
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>ringcast client</title>
<script type="module">
import * as ringcast from '/ringcast.js';
window.ringcast = ringcast;
window.ready = true;
</script></head><body>ringcast client</body></html>`;

function serve(port) {
  return new Promise((resolve, reject) => {
    const srv = http.createServer((req, res) => {
      const name = req.url.split('?')[0];
      if (name === '/favicon.ico') {
        res.writeHead(204);
        res.end();
        return;
      }
      if (name === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(PAGE);
        return;
      }
      const file = path.join(JS_DIR, path.basename(name));
      if (!name.endsWith('.js') || !fs.existsSync(file)) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
      res.end(fs.readFileSync(file));
    });
    srv.on('error', reject);
    srv.listen(Number(port), '127.0.0.1', () => resolve(srv));
  });
}

// Runs in the page: connect, subscribe, report when subscribed, resolve with the event.
function inPage(base, tok, transport) {
  return new Promise((resolve, reject) => {
    const rc = window.ringcast;
    const c = transport === 'ws' ? rc.connect({ url: base, token: tok }) : rc.connectSSE({ url: base, token: tok });
    const t = setTimeout(() => reject(new Error('no event within 20 s')), 20000);
    c.on('error', (e) => console.log('client error ' + e.code + ' ' + e.message));
    const sub = c.subscribe('browser.' + transport, {}, (ev) => {
      clearTimeout(t);
      c.close();
      resolve({ id: ev.id, data: ev.data, userId: c.userId || null, lastEventId: sub.lastEventId });
    });
    sub.ready.then(() => { window.subscribed = true; });
  });
}

test('Chromium: the module on another origin receives events over WebSocket and SSE', async () => {
  const server = await serve(env.RC_PAGE_PORT);
  const browser = await puppeteer.launch({
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error' || /client error/.test(m.text())) problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
    await page.goto(`http://127.0.0.1:${env.RC_PAGE_PORT}/`, { waitUntil: 'load', timeout: 30000 * SCALE });
    await page.waitForFunction('window.ready === true', { timeout: 10000 * SCALE });
    for (const transport of ['ws', 'sse']) {
      await page.evaluate('window.subscribed = false');
      const result = page.evaluate(inPage, BASE, token('browser-user'), transport);
      await page.waitForFunction('window.subscribed === true', { timeout: 15000 * SCALE });
      const id = await publish(BASE, 'browser.' + transport, { from: 'backend', transport });
      const got = await result;
      assert.equal(got.id, id, transport);
      assert.deepEqual(got.data, { from: 'backend', transport });
      assert.equal(got.lastEventId, id);
      if (transport === 'ws') assert.equal(got.userId, 'browser-user');
    }
    assert.deepEqual(problems, [], 'no console errors in the page');
  } finally {
    await browser.close();
    server.close();
  }
});
