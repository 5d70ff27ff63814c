// Reconnect done right: a cut connection and a dead link resume with no gap and no
// duplicate while a publisher keeps publishing; a server SIGKILLed and restarted on the
// same port is reconnected with bounded backoff, the subscription comes back and the lost
// history is reported as history_gap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { connect } from '../../../../clients/js/ringcast.js';
import { BASE, SCALE, control, next, portOf, proxy, publish, publishMany, waitFor } from './helpers.mjs';

const fast = { WebSocket, minDelay: 50, maxDelay: 500 };

test('cut connections: every event exactly once, in order, while publishing', async () => {
  const px = await proxy(portOf(BASE));
  const c = connect(Object.assign({ url: px.url }, fast));
  const got = [];
  const gaps = [];
  const downs = [];
  c.on('history_gap', (g) => gaps.push(g));
  c.on('disconnected', (d) => downs.push(d));
  try {
    const sub = c.subscribe('resume.t', {}, (ev) => got.push(ev.id));
    await sub.ready;
    const ids = await publishMany(BASE, 'resume.t', 150, 4, async (i) => {
      if (i === 30 || i === 70 || i === 110) px.cut();
    });
    await waitFor(() => got.length >= ids.length, 15000, `all ${ids.length} events (got ${got.length})`);
    await publish(BASE, 'resume.t', 'marker').then((m) => waitFor(() => got.includes(m), 5000, 'the marker'));
    assert.deepEqual(got.slice(0, ids.length), ids, 'each event once, in publish order');
    assert.equal(got.length, ids.length + 1, 'nothing twice');
    assert.deepEqual(gaps, [], 'no history_gap: the history covered every cut');
    assert.ok(c.reconnects >= 3, `reconnected after each cut (${c.reconnects})`);
    assert.ok(downs.length >= 3 && downs.every((d) => d.delay >= 0 && d.delay < 500), JSON.stringify(downs));
    assert.equal(sub.state, 'active');
  } finally {
    c.close();
    await px.close();
  }
});

test('a dead link (no traffic, socket open) is detected and resumed', async () => {
  const px = await proxy(portOf(BASE));
  const c = connect(Object.assign({ url: px.url, pingInterval: 300, pongTimeout: 300 }, fast));
  const got = [];
  try {
    const sub = c.subscribe('dead.t', {}, (ev) => got.push(ev.id));
    await sub.ready;
    const a = await publish(BASE, 'dead.t', 1);
    await waitFor(() => got.length === 1, 5000, 'the first event');
    px.freeze();
    const t0 = Date.now();
    const b = await publish(BASE, 'dead.t', 2);
    const dead = await next(c, 'error', 5000, (e) => e.code === 'dead_link');
    assert.equal(dead.code, 'dead_link');
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 2000 * SCALE, `detected after ${took} ms (pingInterval + pongTimeout = 600)`);
    await next(c, 'connected', 5000);
    const d = await publish(BASE, 'dead.t', 3);
    await waitFor(() => got.length >= 3, 5000, 'the events after the dead link');
    assert.deepEqual(got, [a, b, d], 'the event sent into the dead link was replayed, once');
  } finally {
    c.close();
    await px.close();
  }
});

test('the server answers pings: a quiet connection stays up', async () => {
  // the server's heartbeat is 1 s here (the driver's --heartbeat-interval); no client ping
  const c = connect(Object.assign({ url: BASE, pingInterval: 60000 }, fast));
  const downs = [];
  c.on('disconnected', (d) => downs.push(d));
  try {
    await next(c, 'connected');
    const sent = [];
    const real = c._sendNow.bind(c);
    c._sendNow = (m) => {
      sent.push(m.action);
      return real(m);
    };
    await waitFor(() => sent.includes('pong'), 5000, 'a pong for the server ping');
    assert.deepEqual(downs, []);
  } finally {
    c.close();
  }
});

test('SIGKILL and restart on the same port: backoff, resubscribe, history_gap, live again', async () => {
  const c = connect({ url: BASE, WebSocket, minDelay: 100, maxDelay: 800 });
  const got = [];
  const downs = [];
  c.on('disconnected', (d) => downs.push(d));
  try {
    const sub = c.subscribe('restart.t', {}, (ev) => got.push(ev.id));
    await sub.ready;
    const a = await publish(BASE, 'restart.t', 1);
    await waitFor(() => got.length === 1, 5000, 'the event before the kill');
    const down = next(c, 'disconnected', 5000);
    await control('kill');
    const d0 = await down;
    assert.equal(d0.willReconnect, true);
    // a few failed attempts while the server is down, each within the bound
    await waitFor(() => downs.length >= 3, 10000, 'reconnect attempts while down');
    const up = next(c, 'connected', 15000);
    const gap = next(sub, 'gap', 15000);
    await control('start');
    const hello = await up;
    assert.equal(hello.reconnect, true);
    const g = await gap;
    assert.equal(g.code, 'history_gap', 'the restarted server lost the topic history');
    assert.equal(g.local, false, 'reported by the server');
    const b = await publish(BASE, 'restart.t', 2);
    await waitFor(() => got.length === 2, 5000, 'the event after the restart');
    assert.deepEqual(got, [a, b]);
    assert.ok(downs.every((d) => d.delay >= 0 && d.delay < 800), `delays ${downs.map((d) => d.delay)}`);
  } finally {
    c.close();
  }
});
