// The WebSocket client against the real server: subscribe / publish / presence / unsubscribe,
// request ids with promise answers and timeouts, errors as rejected promises, bad options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { connect, RingcastError } from '../../../../clients/js/ringcast.js';
import { BASE, next, publish, token, waitFor } from './helpers.mjs';

function client(extra = {}) {
  return connect(Object.assign({ url: BASE, WebSocket }, extra));
}

test('subscribe, receive an HTTP-published event, publish from the client, presence', async () => {
  const c = client({ token: token('alice') });
  try {
    const hello = await next(c, 'connected');
    assert.equal(hello.reconnect, false);
    assert.equal(c.userId, 'alice');
    assert.match(c.connectionId, /^[0-9a-f]{16}$/);
    const got = [];
    const sub = c.subscribe('chat.room1', {}, (ev) => got.push(ev));
    await sub.ready;
    assert.equal(sub.state, 'active');
    assert.match(sub.id, /^s[0-9a-f]{15}$/);
    const id = await publish(BASE, 'chat.room1', { text: 'from the backend' }, 'said');
    await waitFor(() => got.some((e) => e.id === id), 5000, 'the published event');
    const ev = got.find((e) => e.id === id);
    assert.equal(ev.type, 'said');
    assert.deepEqual(ev.data, { text: 'from the backend' });
    const pub = await c.publish('chat.room1', { text: 'from the client' }, { type: 'said' });
    assert.equal(pub.topic, 'chat.room1');
    await waitFor(() => got.some((e) => e.id === pub.id), 5000, 'the client-published event');
    assert.equal(sub.lastEventId, got[got.length - 1].id);
    const pres = await c.presence('chat.room1');
    assert.equal(pres.topic, 'chat.room1');
    assert.deepEqual(pres.users.map((u) => u.user_id), ['alice']);
    const pong = await c.ping();
    assert.ok(pong.timestamp, 'ping answered with the server time');
  } finally {
    c.close();
  }
});

test('filters and includeInitial reach the server; unsubscribe stops delivery', async () => {
  const c = client();
  try {
    await next(c, 'connected');
    await publish(BASE, 'basic.state', { v: 1 });
    const initial = [];
    const s1 = c.subscribe('basic.state', { includeInitial: true }, (ev) => initial.push(ev));
    await waitFor(() => initial.length === 1, 5000, 'the retained event');
    assert.equal(initial[0].initial, true);
    const hot = [];
    const s2 = c.subscribe('basic.*', { filter: { hot: true } }, (ev) => hot.push(ev));
    await s2.ready;
    await publish(BASE, 'basic.x', { hot: false });
    const want = await publish(BASE, 'basic.x', { hot: true });
    await waitFor(() => hot.length === 1, 5000, 'the filtered event');
    assert.equal(hot[0].id, want);
    await s1.unsubscribe();
    assert.equal(s1.state, 'closed');
    const after = await publish(BASE, 'basic.state', { v: 2 });
    await publish(BASE, 'basic.x', { hot: true }); // a marker behind it on the same connection
    await waitFor(() => hot.length === 2, 5000, 'the marker');
    assert.ok(!initial.some((e) => e.id === after), 'no event after unsubscribe');
    await s1.unsubscribe(); // twice: no-op
    await s2.unsubscribe();
  } finally {
    c.close();
  }
});

test('errors reject the request promise with the server code; the client stays usable', async () => {
  const c = client();
  const errors = [];
  c.on('error', (e) => errors.push(e));
  try {
    await next(c, 'connected');
    const bad = c.subscribe('a..b', {}, () => {});
    await assert.rejects(bad.ready, (e) => e instanceof RingcastError && e.code === 'bad_topic');
    assert.equal(bad.state, 'closed');
    await assert.rejects(c.publish('a.*', 1), (e) => e.code === 'bad_topic' || e.code === 'bad_value');
    await assert.rejects(c.subscribe('p.1', { filter: { a: { $regex: 'x' } } }).ready, (e) => e.code === 'bad_filter');
    await assert.rejects(c.presence('nopresence.1'), (e) => e.code === 'not_enabled');
    await assert.rejects(c.request({ action: 'subscrbe' }), (e) => e.code === 'unknown_action');
    // a message the server never answers: the promise times out
    const t0 = Date.now();
    await assert.rejects(c.request({ action: 'pong' }, { timeout: 300 }),
      (e) => e.code === 'timeout' && /within 300 ms/.test(e.message));
    assert.ok(Date.now() - t0 >= 290, 'not before the timeout');
    const pong = await c.ping();
    assert.ok(pong.timestamp, 'still usable');
    assert.ok(errors.some((e) => e.code === 'bad_topic'), 'a refused subscription is also an error event');
  } finally {
    c.close();
  }
  await assert.rejects(c.ping(), (e) => e.code === 'closed');
  assert.throws(() => c.subscribe('x', {}, () => {}), (e) => e.code === 'closed');
});

test('requests made before the connection wait for it; close() rejects what is pending', async () => {
  const c = client();
  const p = c.ping(); // before 'connected'
  const got = [];
  const sub = c.subscribe('early.t', (ev) => got.push(ev));
  try {
    assert.ok((await p).timestamp, 'queued ping answered');
    await sub.ready;
    const id = await publish(BASE, 'early.t', 1);
    await waitFor(() => got.length === 1 && got[0].id === id, 5000, 'the event');
  } finally {
    c.close();
  }
  const c2 = client({ url: 'http://127.0.0.1:1' }); // nothing listens: the request waits, then close()
  const pending = c2.ping({ timeout: 60000 });
  c2.close();
  await assert.rejects(pending, (e) => e.code === 'closed');
});

test('bad options are refused at once', () => {
  assert.throws(() => connect({ WebSocket }), /url is required/);
  assert.throws(() => connect({ url: BASE, WebSocket, token: 'a', getToken: () => 'b' }), /not both/);
  const saved = globalThis.WebSocket;
  try {
    delete globalThis.WebSocket;
    assert.throws(() => connect({ url: BASE }), /no WebSocket implementation/);
  } finally {
    if (saved) globalThis.WebSocket = saved;
  }
  assert.throws(() => connect({ url: BASE, WebSocket, minDelay: 0 }), /minDelay/);
});

test('a refused token: an error event, then the connection goes on anonymous', async () => {
  const c = client({ token: 'not.a.jwt' });
  try {
    const [err] = await Promise.all([next(c, 'error'), next(c, 'connected')]);
    assert.equal(err.code, 'unauthorized');
    assert.equal(c.userId, null);
  } finally {
    c.close();
  }
});

test('a notification for the user arrives as a notification event', async () => {
  const c = client({ token: token('nora') });
  try {
    await next(c, 'connected');
    const got = next(c, 'notification', 5000);
    const r = await fetch(BASE + '/api/realtime/notifications', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ title: 'Reply', message: 'Jane replied', recipients: ['nora'] }),
    });
    assert.equal(r.status, 201, await r.clone().text());
    const created = await r.json();
    const n = await got;
    assert.equal(n.id, created.id);
    assert.equal(n.title, 'Reply');
    assert.deepEqual(n.recipients, ['nora']);
  } finally {
    c.close();
  }
});
