// browser_cors.js BASE_URL TOKEN LISTED_PORT UNLISTED_PORT TIMEOUT_S
// Serves one small page on 127.0.0.1:LISTED_PORT and one on 127.0.0.1:UNLISTED_PORT
// (two origins other than ringcast's own), opens each in headless Chromium (Debian's,
// driven by puppeteer-core; no browser download) and, from inside the page, tries the
// three ways a web app reaches ringcast on another origin: fetch of the user's
// notifications with its JWT in Authorization (a preflighted request; reads the
// X-Total-Count header), an EventSource on /api/realtime/events?token=..., and a
// WebSocket on /api/realtime/ws?token=.... Prints one JSON line:
// {"listed": {fetch, total, sse, ws}, "unlisted": {...}, "console": {listed: [...], unlisted: [...]}}
// where fetch is the HTTP status or "TypeError: ..." (the browser refused to let the
// page read the answer), sse is "open" + the first record's event name or "error",
// ws is "open" or "error".
'use strict';
const http = require('http');
const puppeteer = require('puppeteer-core');

const [base, token, listedPortS, unlistedPortS, timeoutS] = process.argv.slice(2);
const timeoutMs = Number(timeoutS || 60) * 1000;

const page = `<!doctype html><html><head><meta charset="utf-8"><title>cors probe</title></head>
<body><p>cors probe</p></body></html>`;

function serve(port) {
  return new Promise((resolve, reject) => {
    const srv = http.createServer((req, res) => {
      if (req.url === '/favicon.ico') {
        res.writeHead(204);
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(page);
    });
    srv.on('error', reject);
    srv.listen(Number(port), '127.0.0.1', () => resolve(srv));
  });
}

// Runs inside the page.
async function probe(base, token, waitMs) {
  const out = {};
  try {
    const r = await fetch(base + '/api/realtime/notifications?page_size=5', {
      headers: { Authorization: 'Bearer ' + token },
    });
    out.fetch = r.status;
    out.total = r.headers.get('X-Total-Count');
    out.body = await r.json();
  } catch (e) {
    out.fetch = String(e);
  }
  out.sse = await new Promise((resolve) => {
    const es = new EventSource(base + '/api/realtime/events?token=' + encodeURIComponent(token));
    const t = setTimeout(() => { es.close(); resolve('timeout'); }, waitMs);
    es.addEventListener('connection', () => { clearTimeout(t); es.close(); resolve('open:connection'); });
    es.onerror = () => { clearTimeout(t); es.close(); resolve('error'); };
  });
  out.ws = await new Promise((resolve) => {
    const url = base.replace(/^http/, 'ws') + '/api/realtime/ws?token=' + encodeURIComponent(token);
    const ws = new WebSocket(url);
    const t = setTimeout(() => { ws.close(); resolve('timeout'); }, waitMs);
    ws.onopen = () => { clearTimeout(t); ws.close(); resolve('open'); };
    ws.onerror = () => { clearTimeout(t); resolve('error'); };
  });
  return out;
}

async function main() {
  const servers = [await serve(listedPortS), await serve(unlistedPortS)];
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const result = { console: {} };
  try {
    for (const [name, port] of [['listed', listedPortS], ['unlisted', unlistedPortS]]) {
      const p = await browser.newPage();
      const logs = [];
      p.on('console', (m) => { if (m.type() === 'error') logs.push(m.text()); });
      p.on('pageerror', (e) => logs.push('pageerror: ' + e.message));
      await p.goto(`http://127.0.0.1:${port}/`, { waitUntil: 'load', timeout: timeoutMs });
      result[name] = await p.evaluate(probe, base, token, Math.min(10000, timeoutMs / 4));
      result.console[name] = logs;
      await p.close();
    }
  } finally {
    await browser.close();
    for (const s of servers) s.close();
  }
  console.log(JSON.stringify(result));
}

const guard = setTimeout(() => {
  console.error('browser_cors: timeout');
  process.exit(3);
}, timeoutMs + 30000);
main().then(() => { clearTimeout(guard); }, (e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
});
