// ringcast admin dashboard: served by ringcast itself at /admin/ (embedded in the
// binary, no external assets). Polls GET /api/realtime/stats and GET /metrics (for the
// latency percentiles) every second with the
// API key from this tab's sessionStorage (never in a URL), draws the rates, and calls
// the admin endpoints for the tools (publish, presence, disconnect). docs/OPERATIONS.md,
// "The admin dashboard".
'use strict';

const KEY_STORE = 'ringcast.apiKey';
const HISTORY = 120; // seconds of rates kept for the charts
const TOP = 20; // most subscribed patterns shown (?top=)
const LOOKUP_MAX = 100; // connections a lookup lists (?limit=)

const $ = (id) => document.getElementById(id);
let timer = null;
let prev = null; // the previous stats sample: {t, published, deliveries}
const rates = { pub: [], del: [] };

function apiKey() {
  return sessionStorage.getItem(KEY_STORE);
}

async function api(method, path, body) {
  const key = apiKey();
  const opt = { method, headers: key ? { Authorization: 'Bearer ' + key } : {} };
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(path, opt);
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (e) {
    json = null;
  }
  return { status: r.status, json, text };
}

function errorText(res) {
  const e = res.json && res.json.error;
  return e ? `${res.status} ${e.code}: ${e.message}` : `${res.status} ${res.text}`;
}

function fmt(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '-';
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  return Math.round(n * 10) / 10 + '';
}

function setText(id, v) {
  $(id).textContent = v;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.appendChild(c);
    else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

function fillTable(id, rows) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren(...rows);
}

function drawChart(canvas, values) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...values);
  ctx.strokeStyle = '#e3e5ea';
  ctx.beginPath();
  ctx.moveTo(0, h - 0.5);
  ctx.lineTo(w, h - 0.5);
  ctx.stroke();
  ctx.fillStyle = '#667';
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillText(fmt(max) + '/s', 4, 12);
  if (values.length < 2) return;
  ctx.strokeStyle = '#2f6fde';
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (HISTORY - 1)) * w;
    const y = h - 2 - (v / max) * (h - 18);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function push(arr, v) {
  arr.push(v);
  if (arr.length > HISTORY) arr.shift();
}

function render(st) {
  const c = st.counters || {};
  setText('v-connections', fmt(st.total_connections));
  setText('v-authenticated', fmt(st.authenticated_connections));
  setText('v-subscriptions', fmt(st.total_subscriptions || 0));
  setText('v-topics', fmt(st.topics || 0));
  setText('v-slow', fmt(c.slow_consumer_disconnects));
  setText('v-errors', fmt(c.http_errors));
  setText('node', st.node_name ? `node ${st.node_name}` : `${st.shard_count} shards, ${st.pubsub_backend}`);
  const now = performance.now() / 1000;
  if (prev) {
    const dt = Math.max(0.001, now - prev.t);
    const pub = Math.max(0, (c.published - prev.published) / dt);
    const del = Math.max(0, (c.deliveries - prev.deliveries) / dt);
    push(rates.pub, pub);
    push(rates.del, del);
    setText('v-pub-rate', fmt(pub));
    setText('v-del-rate', fmt(del));
  }
  prev = { t: now, published: c.published, deliveries: c.deliveries };
  drawChart($('c-pub'), rates.pub);
  drawChart($('c-del'), rates.del);

  fillTable('shards', (st.shards || []).map((s, i) => row([
    String(i), fmt(s.connections), fmt(s.topics), fmt(s.counters.published),
    fmt(s.counters.deliveries), fmt(s.counters.sends), fmt(s.counters.slow_consumer_disconnects),
  ])));

  fillTable('patterns', (st.top_subscriptions || []).map((t) => row([t.pattern, fmt(t.subscriptions)])));
}

// The connection lookup asks the server (exact over every connection): a connection id
// (16 hex digits) or else a user id; with nothing entered, the first 10 connections.
async function lookupQuery(q) {
  let url = `/api/realtime/stats?limit=${q ? LOOKUP_MAX : 10}`;
  if (/^[0-9a-fA-F]{16}$/.test(q)) {
    const res = await api('GET', `${url}&connection_id=${q}`);
    if (res.status !== 200 || Object.keys(res.json.connections || {}).length) return res;
  }
  if (q) url += '&user_id=' + encodeURIComponent(q);
  return api('GET', url);
}

async function showLookup() {
  const q = $('lookup').value.trim();
  const res = await lookupQuery(q);
  if (res.status !== 200) {
    setText('conn-result', 'lookup: ' + errorText(res));
    return;
  }
  const conns = res.json.connections || {};
  const rows = [];
  for (const [id, d] of Object.entries(conns)) {
    const btn = document.createElement('button');
    btn.textContent = 'disconnect';
    btn.dataset.conn = id;
    btn.addEventListener('click', () => disconnect({ connection_id: id }));
    rows.push(row([id, d.user_id === null ? '(anonymous)' : d.user_id,
      `${d.subscriptions.join(', ') || '-'} (${d.transport}, shard ${d.shard}, ${d.queued_bytes} B queued)`,
      btn]));
  }
  fillTable('conns', rows);
  setText('listed', String(rows.length));
  setText('conn-result', q && rows.length === 0 ? `no connection or user ${q} on this node` : '');
}

// publish-to-send latency from /metrics: the ringcast_publish_to_send_seconds
// histogram summed over the shards; percentiles of the last second's
// observations (the difference of two scrapes), or of all when none came.
let prevBuckets = null;

function parseBuckets(text, name) {
  const sums = new Map();
  const re = new RegExp('^' + name + '_bucket\\{([^}]*)\\} ([0-9.e+-]+)$', 'gm');
  let m;
  while ((m = re.exec(text)) !== null) {
    const le = /le="([^"]+)"/.exec(m[1]);
    if (!le) continue;
    const bound = le[1] === '+Inf' ? Infinity : Number(le[1]);
    sums.set(bound, (sums.get(bound) || 0) + Number(m[2]));
  }
  return [...sums.entries()].sort((a, b) => a[0] - b[0]);
}

function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (const [bound, count] of buckets) if (count >= rank) return bound;
  return null;
}

function fmtSeconds(s) {
  if (s === null) return '-';
  if (s === Infinity) return '> max';
  if (s < 1e-3) return (s * 1e6).toFixed(0) + ' us';
  if (s < 1) return (s * 1e3).toFixed(1) + ' ms';
  return s.toFixed(2) + ' s';
}

async function pollLatency() {
  const res = await api('GET', '/metrics');
  if (res.status !== 200) {
    setText('v-lat50', 'n/a');
    setText('v-lat99', 'n/a');
    return;
  }
  const now = parseBuckets(res.text, 'ringcast_publish_to_send_seconds');
  let use = now;
  if (prevBuckets && prevBuckets.length === now.length) {
    const delta = now.map(([b, c], i) => [b, c - prevBuckets[i][1]]);
    if (delta.length && delta[delta.length - 1][1] > 0) use = delta;
  }
  prevBuckets = now;
  setText('v-lat50', fmtSeconds(quantile(use, 0.5)));
  setText('v-lat99', fmtSeconds(quantile(use, 0.99)));
}

async function poll() {
  try {
    const res = await api('GET', `/api/realtime/stats?limit=0&top=${TOP}`);
    if (res.status === 401 || res.status === 403) {
      signOut(errorText(res));
      return;
    }
    if (res.status !== 200) {
      setText('status', 'stats: ' + errorText(res));
      return;
    }
    setText('status', 'live, updated ' + new Date().toLocaleTimeString());
    render(res.json);
    await showLookup();
    await pollLatency();
  } catch (e) {
    setText('status', 'unreachable: ' + e.message);
  }
}

async function disconnect(body) {
  const reason = $('dis-reason').value.trim();
  if (reason) body.reason = reason;
  const res = await api('POST', '/api/realtime/disconnect', body);
  setText('dis-result', res.status === 200 ? `closed ${res.json.closed} connection(s)` : errorText(res));
  poll();
}

function signIn() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  setText('status', 'connecting');
  poll();
  timer = setInterval(poll, 1000);
}

function signOut(why) {
  sessionStorage.removeItem(KEY_STORE);
  clearInterval(timer);
  timer = null;
  prev = null;
  prevBuckets = null;
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  setText('status', 'not signed in');
  setText('login-error', why || '');
}

function init() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    // empty: no key (a server without api_keys answers loopback clients)
    const key = $('key').value.trim();
    sessionStorage.setItem(KEY_STORE, key);
    $('key').value = '';
    const res = await api('GET', '/api/realtime/stats?limit=0');
    if (res.status !== 200) {
      signOut(errorText(res));
      return;
    }
    setText('login-error', '');
    signIn();
  });
  $('logout').addEventListener('click', () => signOut(''));
  $('lookup-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    showLookup();
  });
  $('publish-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let data;
    try {
      data = JSON.parse($('pub-data').value || 'null');
    } catch (e) {
      setText('pub-result', 'data is not JSON: ' + e.message);
      return;
    }
    const res = await api('POST', '/api/realtime/publish', { topic: $('pub-topic').value.trim(), data });
    setText('pub-result', res.status < 300 ? `published: ${res.text}` : errorText(res));
  });
  $('presence-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const topic = $('pres-topic').value.trim();
    const res = await api('GET', '/api/realtime/presence/' + encodeURIComponent(topic));
    setText('pres-result', res.status === 200 ? JSON.stringify(res.json, null, 1) : errorText(res));
  });
  $('disconnect-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const user = $('dis-user').value.trim();
    if (user) disconnect({ user_id: user });
  });
  if (apiKey() !== null) signIn();
}

document.addEventListener('DOMContentLoaded', init);
