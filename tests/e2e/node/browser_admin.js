// browser_admin.js BASE_URL API_KEY USER TOPIC SCREENSHOT TIMEOUT_S
// Drives ringcast's admin dashboard (BASE_URL/admin/) in headless Chromium (Debian's,
// through puppeteer-core). USER is a user with one live connection subscribed to TOPIC
// (the calling test holds it). Steps: a wrong key is refused with the server's reason
// (in a page of its own); the right key signs in; the numbers change while this script
// publishes to TOPIC; the connection lookup finds USER's connection and its
// subscription; the presence tool and the test-event tool answer; the latency
// percentiles show; a screenshot is saved; the disconnect tool closes USER's connection;
// then the page is reloaded and stays signed in (sessionStorage), and the key never
// appears in a URL. Prints one JSON line with what it saw; the Python test asserts.
'use strict';
const puppeteer = require('puppeteer-core');

const [base, key, user, topic, shot, timeoutS] = process.argv.slice(2);
const timeoutMs = Number(timeoutS || 60) * 1000;
const out = { steps: [], console: [], pageErrors: [], urls: [] };

async function text(page, id) {
  return page.$eval('#' + id, (e) => e.textContent);
}

async function waitText(page, id, pred, what) {
  const t0 = Date.now();
  for (;;) {
    const v = await text(page, id);
    if (pred(v)) return v;
    if (Date.now() - t0 > timeoutMs / 2) throw new Error(`timeout waiting for ${what}: #${id} = ${v}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function publish(n) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(base + '/api/realtime/publish', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: JSON.stringify({ topic, data: { i } }),
    });
    if (r.status >= 300) throw new Error('publish ' + r.status + ' ' + (await r.text()));
  }
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
    defaultViewport: { width: 1280, height: 1100 },
  });
  try {
    // 1. a wrong key, in a page of its own (its 401 is logged by the browser there)
    const bad = await browser.newPage();
    await bad.goto(base + '/admin/', { waitUntil: 'load', timeout: timeoutMs });
    await bad.type('#key', 'not-the-key');
    await bad.click('#login-form button');
    out.wrongKey = await waitText(bad, 'login-error', (v) => v.length > 0, 'the login error');
    out.wrongKeyMainHidden = await bad.$eval('#main', (e) => e.hidden);
    await bad.close();

    // 2. the right key
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') out.console.push(m.text()); });
    page.on('pageerror', (e) => out.pageErrors.push(e.message));
    page.on('request', (r) => out.urls.push(r.url()));
    await page.goto(base + '/admin', { waitUntil: 'load', timeout: timeoutMs }); // redirects to /admin/
    out.landed = page.url();
    await page.type('#key', key);
    await page.click('#login-form button');
    await waitText(page, 'status', (v) => v.startsWith('live'), 'live stats');
    out.connections = await waitText(page, 'v-connections', (v) => v !== '-' && Number(v) >= 1,
      'the connection count');
    out.publishedBefore = await text(page, 'v-pub-rate');

    // 3. the numbers move while we publish
    const pub = publish(200);
    out.pubRate = await waitText(page, 'v-pub-rate', (v) => Number(v) > 0, 'a publish rate');
    out.delRate = await waitText(page, 'v-del-rate', (v) => Number(v) > 0, 'a delivery rate');
    await pub;
    out.shardRows = await page.$$eval('#shards tbody tr', (rows) => rows.length);

    // 4. connection lookup (asked of the server): an unknown user finds nothing, then the user
    await page.type('#lookup', 'nobody-' + user);
    await page.click('#lookup-form button');
    out.lookupNone = await waitText(page, 'conn-result', (v) => v.startsWith('no connection'),
      'the lookup of an unknown user');
    out.lookupNoneRows = await page.$$eval('#conns tbody tr', (rows) => rows.length);
    await page.$eval('#lookup', (el) => { el.value = ''; });
    await page.type('#lookup', user);
    await page.click('#lookup-form button');
    await waitText(page, 'conn-result', (v) => v === '', 'the lookup of the user');
    await page.waitForFunction((u) => {
      const rows = [...document.querySelectorAll('#conns tbody tr')];
      return rows.length > 0 && rows.every((r) => r.querySelectorAll('td')[1].textContent === u);
    }, { timeout: timeoutMs / 2 }, user);
    out.lookup = await page.$$eval('#conns tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    // the lookup by the connection's id finds the same connection
    const connId = out.lookup[0][0];
    await page.$eval('#lookup', (el) => { el.value = ''; });
    await page.type('#lookup', connId);
    await page.click('#lookup-form button');
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll('#conns tbody tr')];
      return rows.length === 1 && rows[0].querySelectorAll('td')[0].textContent === id;
    }, { timeout: timeoutMs / 2 }, connId);
    out.lookupById = await page.$$eval('#conns tbody tr', (rows) => rows.length);
    out.patterns = await page.$$eval('#patterns tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));

    // 5. tools: presence and a test event
    await page.type('#pres-topic', topic);
    await page.click('#presence-form button');
    out.presence = await waitText(page, 'pres-result', (v) => v.length > 0, 'the presence answer');
    await page.click('#publish-form button');
    out.published = await waitText(page, 'pub-result', (v) => v.length > 0, 'the publish answer');

    out.lat50 = await waitText(page, 'v-lat50', (v) => /[0-9]/.test(v), 'the p50 latency');
    out.lat99 = await text(page, 'v-lat99');

    await page.screenshot({ path: shot, fullPage: true });

    // 6. disconnect the user from the dashboard
    await page.type('#dis-user', user);
    await page.type('#dis-reason', 'bye from the dashboard');
    await page.click('#disconnect-form button');
    out.disconnected = await waitText(page, 'dis-result', (v) => v.length > 0, 'the disconnect answer');
    out.connectionsAfter = await waitText(page, 'v-connections', (v) => v === '0',
      'the connection gone');

    // 7. a reload stays signed in (sessionStorage), the key is in no URL
    await page.reload({ waitUntil: 'load' });
    await waitText(page, 'status', (v) => v.startsWith('live'), 'live stats after a reload');
    out.reloadSignedIn = !(await page.$eval('#main', (e) => e.hidden));
    out.keyInUrl = out.urls.some((u) => u.includes(key));
    await page.click('#logout');
    out.afterLogout = await page.evaluate(() => sessionStorage.getItem('ringcast.apiKey'));
    await page.close();
  } finally {
    await browser.close();
  }
  delete out.urls;
  console.log(JSON.stringify(out));
}

const guard = setTimeout(() => {
  console.error('browser_admin: timeout');
  process.exit(3);
}, timeoutMs + 30000);
main().then(() => clearTimeout(guard), (e) => {
  console.error(e && e.stack ? e.stack : String(e));
  console.log(JSON.stringify(out));
  process.exit(2);
});
