// backoff.js: reconnect delays (exponential backoff with full jitter) and the small
// helpers both transports share: an event emitter, event-id ordering, JWT expiry.
// No state outside the objects; no runtime dependencies.

/** Defaults, in milliseconds. Documented in docs/CLIENT.md ("Options"). */
export const DEFAULTS = Object.freeze({
  minDelay: 250,         // first reconnect delay bound
  maxDelay: 20000,       // the bound never grows past this
  drainJitter: 500,      // after close 1012 (a draining node): retry within [0, drainJitter)
  stableAfter: 5000,     // a connection open this long resets the backoff
  requestTimeout: 10000, // a request's promise rejects with code "timeout" after this
  pingInterval: 20000,   // silence this long: send a ping
  pongTimeout: 10000,    // no traffic this long after that ping: the link is dead, reconnect
  connectTimeout: 10000, // no greeting this long after the connect started: give up, reconnect
  refreshBefore: 30000,  // fetch a fresh token this long before its exp (at most half its lifetime)
});

/**
 * Full-jitter exponential backoff: attempt n (0-based) waits a uniformly random
 * time in [0, min(maxDelay, minDelay * 2^n)). random is injectable for tests.
 */
export class Backoff {
  constructor({ minDelay = DEFAULTS.minDelay, maxDelay = DEFAULTS.maxDelay, random = Math.random } = {}) {
    if (!(minDelay > 0) || !(maxDelay >= minDelay)) {
      throw new RangeError('backoff needs 0 < minDelay <= maxDelay');
    }
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.random = random;
    this.attempt = 0;
  }

  /** The bound of the next delay (without jitter). */
  ceiling() {
    return Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(this.attempt, 30));
  }

  /** The next delay; counts an attempt. */
  next() {
    const d = Math.floor(this.random() * this.ceiling());
    this.attempt += 1;
    return d;
  }

  reset() {
    this.attempt = 0;
  }
}

/** A minimal event emitter: on(name, fn) returns a function that removes fn. */
export class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(name, fn) {
    if (typeof fn !== 'function') throw new TypeError('on(name, fn): fn must be a function');
    let set = this._handlers.get(name);
    if (!set) {
      set = new Set();
      this._handlers.set(name, set);
    }
    set.add(fn);
    return () => this.off(name, fn);
  }

  /** A promise of the next `name` event's first argument. */
  once(name) {
    return new Promise((resolve) => {
      const off = this.on(name, (v) => {
        off();
        resolve(v);
      });
    });
  }

  off(name, fn) {
    const set = this._handlers.get(name);
    if (set) set.delete(fn);
  }

  /** Calls every handler; a throwing handler is reported on 'error' (never loops on 'error'). */
  emit(name, ...args) {
    const set = this._handlers.get(name);
    if (!set || set.size === 0) return false;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        if (name !== 'error') this.emit('error', e);
      }
    }
    return true;
  }
}

/** An error with the server's (or the client's) code: "timeout", "disconnected", "forbidden"... */
export class RingcastError extends Error {
  constructor(code, message, details) {
    super(message || code);
    this.name = 'RingcastError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/**
 * Parses a topic event id "<epoch>-<seq>" (epoch base 36, seq decimal).
 * Broadcast / user ids ("<epoch>-b1-7", "<epoch>-u0-3") and garbage give null.
 */
export function parseEventId(id) {
  if (typeof id !== 'string') return null;
  const m = /^([0-9a-z]{1,15})-([0-9]{1,16})$/.exec(id);
  if (!m) return null;
  return { epoch: m[1], seq: Number(m[2]) };
}

/**
 * True when event id `id` is at or before `last` in the same incarnation of a topic
 * (a duplicate to drop). Another epoch is a new incarnation: never a duplicate.
 */
export function isAtOrBefore(id, last) {
  const a = parseEventId(id);
  const b = parseEventId(last);
  if (!a || !b || a.epoch !== b.epoch) return false;
  return a.seq <= b.seq;
}

/** True when a subscription pattern is an exact topic (resumable with since). */
export function isExactTopic(topic) {
  return typeof topic === 'string' && !/(^|\.)(\*|>)(\.|$)/.test(topic);
}

function b64urlDecode(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  if (typeof atob === 'function') {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }
  /* c8 ignore next */
  return globalThis.Buffer.from(b64, 'base64').toString('utf8');
}

/** The `exp` claim of a JWT (unix seconds), or null when absent or unreadable. */
export function jwtExpiry(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(b64urlDecode(parts[1]));
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}

/**
 * Milliseconds from now until a token with expiry `exp` (unix s) should be refreshed:
 * refreshBefore ahead of exp; a token with less than twice that left is refreshed at half
 * of the time it has left (short-lived tokens).
 */
export function refreshDelay(exp, refreshBefore, now = Date.now()) {
  const left = exp * 1000 - now;
  if (left <= 0) return 0;
  return left > 2 * refreshBefore ? left - refreshBefore : left / 2;
}

/**
 * The endpoint URL: `url` may be a full URL, or a base (scheme://host[:port][/]) to which
 * `path` is appended; http(s) becomes ws(s) when `ws` is true. `url` may be a function
 * returning the URL (called at each connect: pick a node).
 */
export function endpoint(url, path, ws) {
  const raw = typeof url === 'function' ? url() : url;
  if (typeof raw !== 'string' || raw === '') throw new TypeError('url must be a non-empty string');
  const u = new URL(raw);
  if (ws && (u.protocol === 'http:' || u.protocol === 'https:')) {
    u.protocol = u.protocol === 'http:' ? 'ws:' : 'wss:';
  }
  if (!ws && (u.protocol === 'ws:' || u.protocol === 'wss:')) {
    u.protocol = u.protocol === 'ws:' ? 'http:' : 'https:';
  }
  if (u.pathname === '' || u.pathname === '/') u.pathname = path;
  return u;
}

/** Resolves a token option: a string, or getToken() (sync or async). null = anonymous. */
export async function resolveToken(opts) {
  if (typeof opts.getToken === 'function') {
    const t = await opts.getToken();
    if (t != null && typeof t !== 'string') throw new TypeError('getToken() must return a string (or null)');
    return t || null;
  }
  return opts.token || null;
}

/**
 * What both transports' subscriptions share: the topic and options, the last delivered event id per
 * topic (a pattern spans topics) with duplicate dropping, and the gap event. Subclasses open the
 * transport and call _deliver / _gap.
 */
export class SubscriptionBase extends Emitter {
  constructor(client, topic, opts, onEvent) {
    super();
    if (typeof topic !== 'string' || topic === '') throw new TypeError('subscribe(topic): topic must be a non-empty string');
    this.client = client;
    this.topic = topic;
    this.filter = opts.filter;
    this.includeInitial = !!opts.includeInitial;
    this.exact = isExactTopic(topic);
    this.lastEventId = opts.since || null; // of the last event delivered (any topic of a pattern)
    this.state = 'pending';     // 'active' once subscribed, 'closed' after unsubscribe/refusal
    this.duplicatesDropped = 0; // events dropped because their id was at or before the last one
    this._lastIds = new Map();  // topic -> last delivered event id
    if (opts.since) this._lastIds.set(topic, opts.since);
    this._onEvent = onEvent;
  }

  _gap(data) {
    const info = { code: data.code, message: data.message, local: !!data.local, topic: this.topic };
    this.emit('gap', info);
    this.client.emit('history_gap', Object.assign({ subscription: this }, info));
  }

  _deliver(ev) {
    const topic = ev.topic || this.topic;
    const last = this._lastIds.get(topic);
    if (last && isAtOrBefore(ev.id, last)) {
      this.duplicatesDropped += 1;
      return;
    }
    if (ev.id) {
      this._lastIds.set(topic, ev.id);
      this.lastEventId = ev.id;
    }
    if (this._onEvent) {
      try {
        this._onEvent(ev, this);
      } catch (e) {
        this.client.emit('error', e);
      }
    }
    this.emit('event', ev);
  }
}
