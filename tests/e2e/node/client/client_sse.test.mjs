// The SSE variant (EventSource from the eventsource package): resume with `since` after cut
// streams, no gap and no duplicate while publishing; a restarted server's history_gap
// record; short tokens (the stream reopens with a fresh one before exp).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import EventSource from 'eventsource';
import { connectSSE } from '../../../../clients/js/ringcast.js';
import { BASE, control, next, portOf, proxy, publish, publishMany, token, waitFor } from './helpers.mjs';

const fast = { EventSource, minDelay: 50, maxDelay: 500 };

test('SSE: cut streams resume from the last id, each event once, in order', async () => {
  const px = await proxy(portOf(BASE));
  const c = connectSSE(Object.assign({ url: px.url }, fast));
  const got = [];
  const gaps = [];
  c.on('history_gap', (g) => gaps.push(g));
  try {
    const sub = c.subscribe('sse.t', { types: ['message', 'tick'] }, (ev) => got.push(ev.id));
    await sub.ready;
    const ids = await publishMany(BASE, 'sse.t', 100, 4, async (i) => {
      if (i === 30 || i === 65) px.cut();
    });
    const m = await publish(BASE, 'sse.t', 'marker', 'tick');
    await waitFor(() => got.includes(m), 15000, `the marker (got ${got.length})`);
    assert.deepEqual(got, [...ids, m], 'each event once, in order');
    assert.deepEqual(gaps, []);
    assert.ok(sub.reconnects >= 2, `reopened after each cut (${sub.reconnects})`);
  } finally {
    c.close();
    await px.close();
  }
});

test('SSE: a restarted server answers the resume with history_gap; live events follow', async () => {
  const c = connectSSE({ url: BASE, EventSource, minDelay: 100, maxDelay: 800 });
  const got = [];
  try {
    const sub = c.subscribe('sse.r', {}, (ev) => got.push(ev.id));
    await sub.ready;
    const a = await publish(BASE, 'sse.r', 1);
    await waitFor(() => got.length === 1, 5000, 'the first event');
    const gap = next(sub, 'gap', 20000);
    await control('restart');
    const g = await gap;
    assert.equal(g.code, 'history_gap');
    const b = await publish(BASE, 'sse.r', 2);
    await waitFor(() => got.length === 2, 5000, 'the event after the restart');
    assert.deepEqual(got, [a, b]);
  } finally {
    c.close();
  }
});

test('SSE: short tokens, the stream reopens with a fresh one, no gap', async () => {
  let calls = 0;
  const c = connectSSE(Object.assign({ getToken: () => { calls += 1; return token('frank', 3); }, url: BASE }, fast));
  const got = [];
  const errors = [];
  c.on('error', (e) => errors.push(e.code));
  try {
    const sub = c.subscribe('user.frank.feed', {}, (ev) => got.push(ev.id));
    await sub.ready;
    const ids = await publishMany(BASE, 'user.frank.feed', 60, 80);
    await waitFor(() => got.length >= ids.length, 5000, `all events (got ${got.length})`);
    assert.deepEqual(got, ids);
    assert.ok(calls >= 3, `getToken called ${calls} times over ~5 s of 3 s tokens`);
    assert.ok(!errors.includes('unauthorized'), `${errors}`);
  } finally {
    c.close();
  }
});

test('SSE: bad options and publish are refused', async () => {
  assert.throws(() => connectSSE({ EventSource }), /url is required/);
  assert.throws(() => connectSSE({ url: BASE }), /no EventSource implementation/);
  await assert.rejects(connectSSE({ url: BASE, EventSource }).publish('a', 1), (e) => e.code === 'not_supported');
});
