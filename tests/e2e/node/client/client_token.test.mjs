// Token refresh: getToken is asked before the token's exp (read from the JWT) and the
// fresh token sent with `auth`, so a connection outlives many short tokens; a server
// `token_expired` is answered with a fresh token within token_grace; a failing getToken
// is retried. The driver runs the server with --jwt-leeway=0s --token-grace=2s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { connect } from '../../../../clients/js/ringcast.js';
import { BASE, next, publish, token, waitFor } from './helpers.mjs';

test('short-lived tokens are refreshed before expiry: one connection throughout', async () => {
  let calls = 0;
  const c = connect({ url: BASE, WebSocket, getToken: async () => { calls += 1; return token('carol', 3); } });
  const downs = [];
  const errors = [];
  const refreshed = [];
  c.on('disconnected', (d) => downs.push(d));
  c.on('error', (e) => errors.push(e.code));
  c.on('token_refreshed', (r) => refreshed.push(r));
  try {
    const got = [];
    const sub = c.subscribe('user.carol.inbox', {}, (ev) => got.push(ev.id));
    await sub.ready;
    assert.equal(c.userId, 'carol');
    const firstConn = c.connectionId;
    await waitFor(() => refreshed.length >= 4, 12000, `four refreshes (got ${refreshed.length})`);
    const id = await publish(BASE, 'user.carol.inbox', { n: 1 });
    await waitFor(() => got.includes(id), 5000, 'an event on the personal topic after the refreshes');
    assert.deepEqual(downs, [], 'never disconnected');
    assert.equal(c.connectionId, firstConn, 'the same connection');
    assert.ok(!errors.includes('token_expired'), `no expiry reached: ${errors}`);
    assert.ok(calls >= 5, `getToken called ${calls} times`);
    assert.ok(c.expiresAt * 1000 > Date.now(), 'the server holds an unexpired token');
  } finally {
    c.close();
  }
});

test('token_expired from the server: getToken, auth, the connection survives token_grace', async () => {
  let calls = 0;
  // refreshBefore far negative: never refresh early, so the server's token_expired comes
  const c = connect({ url: BASE, WebSocket, refreshBefore: -1e9, getToken: () => { calls += 1; return token('dave', 2); } });
  const downs = [];
  c.on('disconnected', (d) => downs.push(d));
  try {
    await next(c, 'connected');
    const conn = c.connectionId;
    const e1 = await next(c, 'error', 6000, (e) => e.code === 'token_expired');
    assert.match(e1.message, /fresh auth/);
    await next(c, 'token_refreshed', 3000);
    assert.equal(calls, 2);
    // past the grace of the first expiry (2 s): still the same connection
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(c.connectionId, conn);
    assert.deepEqual(downs.filter((d) => d.code === 1008), [], 'not closed for an expired token');
    assert.ok(await c.ping());
  } finally {
    c.close();
  }
});

test('a failing getToken is an error event and is retried with backoff', async () => {
  let calls = 0;
  const c = connect({
    url: BASE, WebSocket, minDelay: 50, maxDelay: 200,
    getToken: () => {
      calls += 1;
      if (calls <= 2) throw new Error('identity provider down');
      return token('erin', 600);
    },
  });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  try {
    await next(c, 'connected', 5000);
    assert.equal(c.userId, 'erin');
    assert.equal(errors.filter((e) => e.code === 'token_failed').length, 2);
    assert.match(errors[0].message, /identity provider down/);
  } finally {
    c.close();
  }
});

test('getToken returning a non-string is an error event', async () => {
  const c = connect({ url: BASE, WebSocket, minDelay: 50, maxDelay: 100, getToken: () => 42 });
  try {
    const e = await next(c, 'error', 5000);
    assert.equal(e.code, 'token_failed');
    assert.match(e.message, /must return a string/);
  } finally {
    c.close();
  }
});
