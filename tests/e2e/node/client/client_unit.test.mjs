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
