// Drain: two nodes sharing a Redis broker behind a TCP proxy (the load balancer). Node A is
// SIGTERMed while a publisher keeps publishing; the client gets close 1012, retries at once
// (within drainJitter, not the backoff), lands on node B through the proxy and resumes:
// every event exactly once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { connect } from '../../../../clients/js/ringcast.js';
import { BASE, BASE2, SCALE, control, portOf, proxy, publish, publishMany, waitFor } from './helpers.mjs';

test('close 1012: immediate jittered retry to the other node, resume without gap', async () => {
  const px = await proxy(portOf(BASE));
  // a large backoff: a reconnect faster than it can only be the 1012 path
  const c = connect({ url: px.url, WebSocket, minDelay: 5000, maxDelay: 20000, drainJitter: 300 });
  const got = [];
  const downs = [];
  const ups = [];
  const gaps = [];
  c.on('disconnected', (d) => downs.push(Object.assign({ at: Date.now() }, d)));
  c.on('connected', (h) => ups.push(Object.assign({ at: Date.now() }, h)));
  c.on('history_gap', (g) => gaps.push(g));
  try {
    const sub = c.subscribe('drain.t', {}, (ev) => got.push(ev.id));
    await sub.ready;
    let drained = null;
    const ids = await publishMany(BASE2, 'drain.t', 120, 2, async (i) => {
      if (i === 40) {
        px.target = portOf(BASE2); // the balancer took node A out
        drained = control('drain'); // SIGTERM node A; publishing goes on meanwhile
      }
    });
    await drained;
    await waitFor(() => got.length >= ids.length, 15000, `all ${ids.length} events (got ${got.length})`);
    const m = await publish(BASE2, 'drain.t', 'marker');
    await waitFor(() => got.includes(m), 5000, 'the marker');
    assert.deepEqual(got, [...ids, m], 'each event once, in order, across the drain');
    assert.equal(downs.length, 1, JSON.stringify(downs));
    assert.equal(downs[0].code, 1012, 'service restart');
    assert.ok(downs[0].delay < 300, `retry delay ${downs[0].delay} within drainJitter`);
    assert.equal(ups.length, 2);
    const took = ups[1].at - downs[0].at;
    assert.ok(took < 2000 * SCALE, `back within ${took} ms`);
    assert.deepEqual(gaps, []);
  } finally {
    c.close();
    await px.close();
  }
});
