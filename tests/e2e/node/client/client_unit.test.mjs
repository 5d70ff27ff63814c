// The pure parts of the client, without a server: backoff bounds and jitter, event-id
// ordering, JWT expiry and refresh timing, endpoint URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, DEFAULTS, isAtOrBefore, isExactTopic, jwtExpiry, parseEventId } from '../../../../clients/js/ringcast.js';
import { endpoint, refreshDelay } from '../../../../clients/js/backoff.js';

test('full-jitter backoff: bounded by min * 2^n, capped at max, reset', () => {
  const top = new Backoff({ minDelay: 250, maxDelay: 20000, random: () => 0.999999 });
  const want = [250, 500, 1000, 2000, 4000, 8000, 16000, 20000, 20000];
  assert.deepEqual(want.map(() => top.next()), want.map((w) => w - 1));
  top.reset();
  assert.equal(top.ceiling(), 250);
  const low = new Backoff({ random: () => 0 });
  assert.equal(low.next(), 0, 'full jitter reaches 0');
  assert.equal(DEFAULTS.minDelay, 250);
  assert.equal(DEFAULTS.maxDelay, 20000);
  // real randomness: spread over [0, ceiling)
  const b = new Backoff({ minDelay: 1000, maxDelay: 1000 });
  const ds = Array.from({ length: 200 }, () => b.next());
  assert.ok(ds.every((d) => d >= 0 && d < 1000), 'within the bound');
  assert.ok(Math.min(...ds) < 250 && Math.max(...ds) > 750, 'spread over the range');
  assert.throws(() => new Backoff({ minDelay: 0 }), RangeError);
  assert.throws(() => new Backoff({ minDelay: 10, maxDelay: 5 }), RangeError);
  const huge = new Backoff({ minDelay: 1, maxDelay: 5000, random: () => 0.5 });
  for (let i = 0; i < 100; i++) huge.next();
  assert.equal(huge.ceiling(), 5000, 'no overflow after many attempts');
});

test('event ids: same-epoch order, other epochs never duplicates, non-topic ids', () => {
  assert.deepEqual(parseEventId('toyuuc-42'), { epoch: 'toyuuc', seq: 42 });
  assert.equal(parseEventId('toyuuc-b0-1'), null);
  assert.equal(parseEventId('toywvf-u1-1'), null);
  assert.equal(parseEventId(7), null);
  assert.equal(isAtOrBefore('a1-9', 'a1-10'), true);
  assert.equal(isAtOrBefore('a1-10', 'a1-10'), true);
  assert.equal(isAtOrBefore('a1-11', 'a1-10'), false, 'numeric, not string order');
  assert.equal(isAtOrBefore('b2-1', 'a1-10'), false, 'a new incarnation');
  assert.equal(isAtOrBefore('a1-b0-1', 'a1-10'), false);
  assert.equal(isExactTopic('a.b.c'), true);
  assert.equal(isExactTopic('a.*.c'), false);
  assert.equal(isExactTopic('a.>'), false);
  assert.equal(isExactTopic('>'), false);
  assert.equal(isExactTopic('a*b.c'), true, 'a * inside a token is not a wildcard token');
});

test('JWT expiry and refresh timing', () => {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const tok = (claims) => `${b64u({ alg: 'HS256' })}.${b64u(claims)}.sig`;
  assert.equal(jwtExpiry(tok({ sub: 'a', exp: 1795462426 })), 1795462426);
  assert.equal(jwtExpiry(tok({ sub: 'a' })), null);
  assert.equal(jwtExpiry('not.a.jwt'), null);
  assert.equal(jwtExpiry('garbage'), null);
  assert.equal(jwtExpiry(tok({ sub: 'ü', exp: 5 })), 5, 'UTF-8 payload');
  const now = 1_000_000_000_000;
  assert.equal(refreshDelay(now / 1000 + 3600, 30000, now), 3600000 - 30000, 'refreshBefore ahead of exp');
  assert.equal(refreshDelay(now / 1000 + 10, 30000, now), 5000, 'a short token at half its time');
  assert.equal(refreshDelay(now / 1000 - 1, 30000, now), 0, 'already expired: now');
});

test('endpoint URLs', () => {
  assert.equal(endpoint('http://h:1', '/api/realtime/ws', true).toString(), 'ws://h:1/api/realtime/ws');
  assert.equal(endpoint('https://h/', '/api/realtime/ws', true).toString(), 'wss://h/api/realtime/ws');
  assert.equal(endpoint('wss://h/custom/ws', '/api/realtime/ws', true).toString(), 'wss://h/custom/ws');
  assert.equal(endpoint('ws://h:2', '/api/realtime/events', false).toString(), 'http://h:2/api/realtime/events');
  assert.equal(endpoint(() => 'http://n2:8080', '/x', true).toString(), 'ws://n2:8080/x');
  assert.throws(() => endpoint('', '/x', true), TypeError);
  assert.throws(() => endpoint('not a url', '/x', true), TypeError);
});

// A scripted WebSocket: the test plays the server.
class FakeWS {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    FakeWS.all.push(this);
  }
  send(s) { this.sent.push(JSON.parse(s)); }
  close() {}
  recv(m) { this.onmessage({ data: JSON.stringify(m) }); }
  drop(code) { this.onclose({ code, reason: '' }); }
}

test('resubscribe resumes from the last delivered id and drops replayed duplicates; 1012 retries at once', async () => {
  FakeWS.all = [];
  const { connect } = await import('../../../../clients/js/ringcast.js');
  const c = connect({ url: 'http://x', WebSocket: FakeWS, minDelay: 5000, maxDelay: 5000, drainJitter: 20 });
  const got = [];
  const ev = (id, sid) => ({ type: 'event', data: { id, topic: 't', type: 'm', data: null, subscription: sid } });
  try {
    await waitUntil(() => FakeWS.all.length === 1);
    const w1 = FakeWS.all[0];
    assert.equal(w1.url, 'ws://x/api/realtime/ws');
    w1.recv({ type: 'connected', data: { connection_id: '00' } });
    const sub = c.subscribe('t', {}, (e) => got.push(e.id));
    const req = w1.sent.find((m) => m.action === 'subscribe');
    assert.deepEqual(req, { action: 'subscribe', topic: 't', id: req.id });
    w1.recv({ type: 'subscribed', id: req.id, data: { subscription: 's1', topic: 't' } });
    w1.recv(ev('e1-1', 's1'));
    w1.recv(ev('e1-2', 's1'));
    w1.recv(ev('e1-3', 's1'));
    const downs = [];
    c.on('disconnected', (d) => downs.push(d));
    w1.drop(1012);
    assert.ok(downs[0].delay < 20, 'a draining node: retried within drainJitter, not the 5 s backoff');
    await waitUntil(() => FakeWS.all.length === 2);
    const w2 = FakeWS.all[1];
    w2.recv({ type: 'connected', data: { connection_id: '01' } });
    const again = w2.sent.find((m) => m.action === 'subscribe');
    assert.equal(again.since, 'e1-3', 'resumes after the last delivered event');
    w2.recv({ type: 'subscribed', id: again.id, data: { subscription: 's9', topic: 't' } });
    w2.recv(ev('e1-2', 's9')); // a replay overlapping what was delivered
    w2.recv(ev('e1-3', 's9'));
    w2.recv(ev('e1-4', 's9'));
    w2.recv({ type: 'error', data: { code: 'history_gap', message: 'gap', id: again.id } });
    assert.deepEqual(got, ['e1-1', 'e1-2', 'e1-3', 'e1-4'], 'each once');
    assert.equal(sub.duplicatesDropped, 2);
    w2.recv({ type: 'ping', data: {} });
    assert.deepEqual(w2.sent.at(-1), { action: 'pong' }, 'the server ping is answered');
    w2.recv(ev('e2-1', 's9')); // a new incarnation after a gap: delivered
    assert.deepEqual(got.at(-1), 'e2-1');
    w2.drop(1006);
    assert.ok(downs[1].delay < 5000 && downs.length === 2, 'other closes back off');
  } finally {
    c.close();
  }
});

async function waitUntil(cond) {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(cond(), 'condition');
}
