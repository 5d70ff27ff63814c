// helpers.mjs: what the client tests share. The Python driver (tests/e2e/test_client_js.py)
// starts the real servers and passes them in the environment:
//   RC_URL        http://127.0.0.1:PORT of the (first) server
//   RC_URL2       a second server (the drain test's other node), when there is one
//   RC_SECRET     its jwt_secret (HS256)
//   RC_CONTROL    http://127.0.0.1:PORT of the driver's control endpoint (POST /kill, /start,
//                 /restart, /drain): it stops and starts the servers for the test
//   RC_TIMEOUT_SCALE  > 1 under slow builds (TSan)
import crypto from 'node:crypto';
import net from 'node:net';

export const env = process.env;
export const SCALE = Number(env.RC_TIMEOUT_SCALE || 1);
export const BASE = env.RC_URL;
export const BASE2 = env.RC_URL2;
export const SECRET = env.RC_SECRET;

/** An HS256 JWT for sub expiring in ttl seconds (plain HMAC, like harness.hs256_token). */
export function token(sub, ttl = 600, claims = {}) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const h = b64u({ alg: 'HS256', typ: 'JWT' });
  const c = b64u(Object.assign({ sub, iat: now, exp: now + ttl }, claims));
  const sig = crypto.createHmac('sha256', SECRET).update(`${h}.${c}`).digest('base64url');
  return `${h}.${c}.${sig}`;
}

/** Polls cond() until it is truthy (returns it); throws naming what after timeout ms. */
export async function waitFor(cond, timeout, what) {
  const deadline = Date.now() + timeout * SCALE;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout * SCALE} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The next `name` event of an emitter (for which pred holds) within timeout ms. */
export function next(emitter, name, timeout = 10000, pred = () => true) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`no '${name}' event within ${timeout * SCALE} ms`));
    }, timeout * SCALE);
    const off = emitter.on(name, (v) => {
      if (!pred(v)) return;
      clearTimeout(t);
      off();
      resolve(v);
    });
  });
}

/** Publishes over the HTTP API (a backend: loopback without api_keys); the event id. */
export async function publish(base, topic, data, type = 'message') {
  const r = await fetch(base + '/api/realtime/publish', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ topic, type, data }),
  });
  const body = await r.json();
  if (r.status !== 200 && r.status !== 202) throw new Error(`publish ${topic}: ${r.status} ${JSON.stringify(body)}`);
  return body.id;
}

/** Asks the driver to act on the servers: kill, start, restart, drain. */
export async function control(what, args = {}) {
  const r = await fetch(`${env.RC_CONTROL}/${what}`, { method: 'POST', body: JSON.stringify(args) });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`control ${what}: ${r.status} ${body}`);
  return JSON.parse(body || '{}');
}

/**
 * A TCP proxy on 127.0.0.1 (a load balancer / a network path the test can break):
 * cut() resets every connection through it, freeze() stops forwarding on the open ones (a
 * dead link that stays open; new connections go through), target = another port re-points
 * new connections.
 */
export async function proxy(targetPort) {
  const conns = new Set();
  const p = { target: targetPort, accepted: 0 };
  const srv = net.createServer((c) => {
    p.accepted += 1;
    const up = net.connect(p.target, '127.0.0.1');
    const pair = { c, up, frozen: false };
    conns.add(pair);
    const fwd = (from, to) => from.on('data', (d) => {
      if (!pair.frozen) to.write(d);
    });
    fwd(c, up);
    fwd(up, c);
    const end = () => {
      conns.delete(pair);
      c.destroy();
      up.destroy();
    };
    c.on('error', end);
    up.on('error', end);
    c.on('close', end);
    up.on('close', end);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  p.port = srv.address().port;
  p.url = `http://127.0.0.1:${p.port}`;
  p.open = () => conns.size;
  p.cut = () => {
    for (const { c, up } of conns) {
      c.resetAndDestroy ? c.resetAndDestroy() : c.destroy();
      up.destroy();
    }
    conns.clear();
  };
  p.freeze = () => {
    for (const pair of conns) pair.frozen = true;
  };
  p.close = () => {
    p.cut();
    return new Promise((r) => srv.close(r));
  };
  return p;
}

/** The port of an http://host:port URL. */
export function portOf(url) {
  return Number(new URL(url).port);
}

/**
 * Publishes n events to topic one after another (each answered before the next), pausing
 * `gap` ms between them; returns the ids in order.
 */
export async function publishMany(base, topic, n, gap = 5, onEach) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    ids.push(await publish(base, topic, { n: i }));
    if (onEach) await onEach(i);
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
  return ids;
}
