// client.js: the WebSocket client (docs/CLIENT.md; wire protocol in docs/PROTOCOL.md).
//
// One Client owns at most one WebSocket at a time (this._ws); every handler of a socket
// first checks that it is still the current one, so a socket given up (dead link,
// connect timeout) can never act on the client again. Subscriptions outlive
// connections: after every (re)connect each one is sent again, an exact topic resuming
// with `since` = the last event id it delivered, and events at or before that id are
// dropped (no duplicate). Requests carry integer ids; their promises settle on the
// answer echoing the id, on a timeout, or on the loss of the connection they were sent on.

import {
  Backoff, DEFAULTS, Emitter, RingcastError, SubscriptionBase, endpoint, jwtExpiry, refreshDelay,
  resolveToken,
} from './backoff.js';

const WS_PATH = '/api/realtime/ws';
const MAX_OUTBOX = 1000;

/** A subscription of a Client; lives until unsubscribe() (or a refusal by the server). */
export class Subscription extends SubscriptionBase {
  constructor(client, topic, opts, onEvent) {
    super(client, topic, opts, onEvent);
    this.id = null;             // the server's subscription id on the current connection
    this._wasActive = false;    // subscribed on an earlier connection
    this._reqId = null;
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // a refusal is also an 'error' event; never unhandled
  }

  /** The subscribe message for the current connection (resuming where possible). */
  _message() {
    const msg = { action: 'subscribe', topic: this.topic };
    if (this.filter !== undefined && this.filter !== null) msg.filter = this.filter;
    const since = this.exact ? this._lastIds.get(this.topic) : undefined;
    if (since) msg.since = since;
    else if (this.includeInitial) msg.include_initial = true;
    return msg;
  }

  _subscribed(data) {
    const again = this._wasActive;
    this.id = data.subscription;
    this.state = 'active';
    this._wasActive = true;
    this.emit('subscribed', { subscription: this.id, resumed: again });
    this._resolveReady();
    if (again && !this.exact) {
      this._gap({
        code: 'history_gap', local: true,
        message: `pattern ${this.topic} cannot resume: events published while disconnected are not replayed; fetch the current state again`,
      });
    }
  }



  _refused(err) {
    this.state = 'closed';
    this.client._forget(this);
    this.emit('error', err);
    this._rejectReady(err);
  }

  /** Stops the subscription (here and on the server). Resolves once the server answered. */
  unsubscribe() {
    if (this.state === 'closed') return Promise.resolve();
    this.state = 'closed';
    const sid = this.id;
    this.client._forget(this);
    this._rejectReady(new RingcastError('unsubscribed', 'unsubscribed before the server answered'));
    if (sid && this.client.state === 'connected') {
      return this.client._request({ action: 'unsubscribe', subscription: sid }).then(() => undefined, (e) => {
        if (e.code !== 'disconnected' && e.code !== 'closed') throw e;
      });
    }
    return Promise.resolve();
  }
}

/** The WebSocket client. Create it with connect(opts). */
export class Client extends Emitter {
  constructor(opts = {}) {
    super();
    if (!opts.url) throw new TypeError('connect({url}): url is required (e.g. "wss://rt.example.com")');
    if (opts.token != null && opts.getToken != null) throw new TypeError('give token or getToken, not both');
    this.opts = Object.assign({}, DEFAULTS, opts);
    this._WS = opts.WebSocket || globalThis.WebSocket;
    if (typeof this._WS !== 'function') {
      throw new TypeError('no WebSocket implementation: pass {WebSocket} (in Node < 22: import WebSocket from "ws")');
    }
    this._backoff = new Backoff(this.opts);
    this._random = opts.random || Math.random;
    this.state = 'idle';          // connecting | connected | disconnected | closed
    this.connectionId = null;
    this.userId = null;
    this.expiresAt = null;        // unix s, from the server's `authenticated`
    this.reconnects = 0;          // successful connects after the first
    this._subs = new Set();
    this._bySid = new Map();      // server subscription id -> Subscription
    this._byReq = new Map();      // subscribe request id -> Subscription (history_gap routing)
    this._pending = new Map();    // request id -> {resolve, reject, timer, sent}
    this._outbox = [];            // messages waiting for the connection
    this._nextId = 1;
    this._ws = null;
    this._token = null;
    this._awaitAuth = false;
    this._everConnected = false;
    this._refreshing = false;
    this._t = {};                 // timers by name
  }

  // ---- timers ----

  _timer(name, ms, fn) {
    clearTimeout(this._t[name]);
    this._t[name] = setTimeout(() => {
      delete this._t[name];
      fn();
    }, ms);
  }

  _clear(...names) {
    for (const n of names.length ? names : Object.keys(this._t)) {
      clearTimeout(this._t[n]);
      delete this._t[n];
    }
  }

  // ---- connection ----

  /** Starts connecting (connect() calls it). */
  open() {
    if (this.state === 'idle') this._connect();
    return this;
  }

  async _connect() {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    let token;
    try {
      token = await resolveToken(this.opts);
    } catch (e) {
      this.emit('error', new RingcastError('token_failed', 'getToken() failed: ' + (e && e.message), e));
      this._disconnected(1006, 'getToken() failed');
      return;
    }
    if (this.state === 'closed') return;
    this._token = token;
    let ws;
    try {
      const u = endpoint(this.opts.url, WS_PATH, true);
      if (token) u.searchParams.set('token', token);
      ws = new this._WS(u.toString());
    } catch (e) {
      this.emit('error', new RingcastError('transport', 'cannot open the WebSocket: ' + (e && e.message), e));
      this._disconnected(1006, 'cannot open');
      return;
    }
    this._ws = ws;
    this._awaitAuth = !!token;
    this._timer('connect', this.opts.connectTimeout, () => {
      if (this._ws !== ws) return;
      this._abandon(`no greeting within ${this.opts.connectTimeout} ms (connectTimeout)`);
    });
    ws.onmessage = (ev) => {
      if (this._ws === ws) this._onMessage(ev.data);
    };
    ws.onerror = (ev) => {
      if (this._ws !== ws) return;
      this.emit('error', new RingcastError('transport', (ev && ev.message) || 'WebSocket error'));
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._disconnected(ev.code, ev.reason);
    };
  }

  /** Gives up the current socket (dead link, connect timeout) and reconnects. */
  _abandon(why) {
    const ws = this._ws;
    this._ws = null;
    this.emit('error', new RingcastError('dead_link', why));
    try {
      if (typeof ws.terminate === 'function') ws.terminate();
      else ws.close(4000, 'dead link');
    } catch {
      // already closed
    }
    this._disconnected(1006, why);
  }

  _ready() {
    this._clear('connect');
    this.state = 'connected';
    const reconnect = this._everConnected;
    if (reconnect) this.reconnects += 1;
    this._everConnected = true;
    this._timer('stable', this.opts.stableAfter, () => this._backoff.reset());
    this._scheduleRefresh();
    for (const sub of this._subs) this._sendSubscribe(sub);
    const queued = this._outbox;
    this._outbox = [];
    for (const m of queued) this._flushOne(m);
    this.emit('connected', { connectionId: this.connectionId, userId: this.userId, reconnect });
  }

  _disconnected(code, reason) {
    const was = this.state;
    this._clear();
    this._ws = null;
    for (const [id, p] of this._pending) {
      if (!p.sent) continue;
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new RingcastError('disconnected', `the connection closed (${code}) before the answer`));
    }
    for (const sub of this._subs) {
      sub.id = null;
      if (sub.state === 'active') sub.state = 'pending';
    }
    this._bySid.clear();
    this._byReq.clear();
    if (was === 'closed') return;
    this.state = 'disconnected';
    let delay;
    if (code === 1012) {
      delay = Math.floor(this._random() * this.opts.drainJitter); // a draining node: go now
    } else {
      delay = this._backoff.next();
    }
    this.emit('disconnected', { code, reason: reason || '', willReconnect: true, delay });
    this._timer('reconnect', delay, () => this._connect());
  }

  /** Closes for good: no reconnect; pending requests reject with code "closed". */
  close() {
    if (this.state === 'closed') return;
    const ws = this._ws;
    const was = this.state;
    this.state = 'closed';
    this._ws = null;
    this._clear();
    for (const [, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new RingcastError('closed', 'the client was closed'));
    }
    this._pending.clear();
    this._outbox = [];
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // not open yet
      }
    }
    if (was !== 'disconnected' && was !== 'idle') {
      this.emit('disconnected', { code: 1000, reason: 'closed by the client', willReconnect: false });
    }
  }

  // ---- heartbeat: any message is traffic; silence -> ping; more silence -> dead ----

  _traffic() {
    this._clear('pong');
    this._timer('idle', this.opts.pingInterval, () => {
      if (this.state !== 'connected') return;
      this._sendNow({ action: 'ping' });
      this._timer('pong', this.opts.pongTimeout, () => {
        this._abandon(`no traffic for ${this.opts.pingInterval + this.opts.pongTimeout} ms (pingInterval + pongTimeout)`);
      });
    });
  }

  // ---- messages ----

  _onMessage(raw) {
    let m;
    try {
      m = JSON.parse(typeof raw === 'string' ? raw : new TextDecoder().decode(raw));
    } catch {
      this.emit('error', new RingcastError('bad_message', 'the server sent a message that is not JSON'));
      return;
    }
    this._traffic();
    const data = m.data || {};
    switch (m.type) {
      case 'connected':
        this.connectionId = data.connection_id;
        this.userId = null; // this connection's user comes with its `authenticated`
        this.expiresAt = null;
        if (!this._awaitAuth) this._ready();
        return;
      case 'authenticated':
        this.userId = data.user_id;
        this.expiresAt = data.expires_at == null ? null : data.expires_at;
        if (m.id != null) this._answer(m.id, data);
        else if (this._awaitAuth) {
          this._awaitAuth = false;
          this._ready();
        }
        return;
      case 'ping':
        this._sendNow({ action: 'pong' });
        return;
      case 'event':
        this._onEvent(data);
        return;
      case 'notification':
        this.emit('notification', data);
        return;
      case 'error':
        this._onError(data);
        return;
      default:
        if (m.id != null) this._answer(m.id, data);
        else if (m.type === 'subscribed' || m.type === 'unsubscribed') this.emit(m.type, data); // durable
    }
  }

  _onEvent(ev) {
    const sub = ev.subscription ? this._bySid.get(ev.subscription) : null;
    if (sub) sub._deliver(ev);
    else this.emit('event', ev); // broadcasts, events for users, durable subscriptions
  }

  _onError(data) {
    const err = new RingcastError(data.code, data.message, data);
    if (data.id != null) {
      if (this._pending.has(data.id)) {
        this._fail(data.id, err);
        return;
      }
      const sub = this._byReq.get(data.id);
      if (sub && data.code === 'history_gap') {
        sub._gap(data);
        return;
      }
      this.emit('error', err);
      return;
    }
    if (data.code === 'token_expired') this._refreshToken();
    this.emit('error', err);
    if (this._awaitAuth) { // the token at connect was refused: go on anonymous
      this._awaitAuth = false;
      this._ready();
    }
  }

  // ---- requests ----

  _sendNow(msg) {
    try {
      this._ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      this.emit('error', new RingcastError('transport', 'send failed: ' + (e && e.message), e));
      return false;
    }
  }

  /** Sends msg with a fresh id; the promise settles on its answer's data or an error. */
  _request(msg, timeout, onAnswer = null) {
    if (timeout == null) timeout = this.opts.requestTimeout;
    const id = this._nextId++;
    const out = Object.assign({}, msg, { id });
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, sent: false, out, onAnswer };
      p.timer = setTimeout(() => {
        this._pending.delete(id);
        this._outbox = this._outbox.filter((o) => o !== out);
        reject(new RingcastError('timeout', `no answer to ${msg.action} within ${timeout} ms`));
      }, timeout);
      this._pending.set(id, p);
      if (this.state === 'connected' && this._ws) {
        p.sent = this._sendNow(out);
      } else if (this.state === 'closed') {
        this._fail(id, new RingcastError('closed', 'the client was closed'));
      } else if (this._outbox.length >= MAX_OUTBOX) {
        this._fail(id, new RingcastError('queue_full', `${MAX_OUTBOX} requests wait for the connection`));
      } else {
        this._outbox.push(out);
      }
      return id;
    });
  }

  _answer(id, data) {
    const p = this._pending.get(id);
    if (!p) return;
    this._pending.delete(id);
    clearTimeout(p.timer);
    if (p.onAnswer) p.onAnswer(data);
    p.resolve(data);
  }

  _fail(id, err) {
    const p = this._pending.get(id);
    if (!p) return;
    this._pending.delete(id);
    clearTimeout(p.timer);
    p.reject(err);
  }

  _flushOne(out) { // outbox flush: the pending request now waits on this connection
    const p = this._pending.get(out.id);
    const ok = this._sendNow(out);
    if (p) p.sent = ok;
  }

  // ---- subscriptions ----

  _sendSubscribe(sub) {
    const id = this._nextId; // the id the _request below takes (synchronously)
    this._byReq.set(id, sub);
    sub._reqId = id;
    // the answer binds the subscription id synchronously: the replayed events right
    // behind `subscribed` (same read) must find it
    const onAnswer = (data) => {
      if (sub.state === 'closed') {
        // unsubscribed while the subscribe was in flight: drop it on the server too
        if (this.state === 'connected') this._request({ action: 'unsubscribe', subscription: data.subscription }).catch(() => {});
        return;
      }
      this._bySid.set(data.subscription, sub);
      sub._subscribed(data);
    };
    this._request(sub._message(), this.opts.requestTimeout, onAnswer).catch((err) => {
      if (err.code === 'disconnected' || err.code === 'closed' || sub.state === 'closed') return;
      if (err.code === 'timeout') {
        sub.emit('error', err);
        this.emit('error', err);
        return;
      }
      sub._refused(err);
      this.emit('error', err);
    });
  }

  _forget(sub) {
    this._subs.delete(sub);
    if (sub.id) this._bySid.delete(sub.id);
    if (sub._reqId != null) this._byReq.delete(sub._reqId);
  }

  /**
   * Subscribes to a topic or pattern. opts: {filter, since, includeInitial}. onEvent(event, sub)
   * is called once per event, in order, across reconnects.
   */
  subscribe(topic, opts, onEvent) {
    if (typeof opts === 'function') {
      onEvent = opts;
      opts = {};
    }
    if (this.state === 'closed') throw new RingcastError('closed', 'the client was closed');
    const sub = new Subscription(this, topic, opts || {}, onEvent);
    this._subs.add(sub);
    if (this.state === 'connected') this._sendSubscribe(sub);
    return sub;
  }

  /** Publishes (where the server allows client publishing). Resolves with {id, topic}. */
  publish(topic, data, opts = {}) {
    const msg = { action: 'publish', topic, data: data === undefined ? null : data };
    if (opts.type) msg.type = opts.type;
    return this._request(msg, opts.timeout);
  }

  /** The users subscribed to a topic with presence: {topic, users, total_users, total_connections}. */
  presence(topic, opts = {}) {
    return this._request({ action: 'presence', topic }, opts.timeout);
  }

  /** A round trip to the server: resolves with {timestamp}. */
  ping(opts = {}) {
    return this._request({ action: 'ping' }, opts.timeout);
  }

  /** Any client message (docs/PROTOCOL.md); resolves with its answer's data. */
  request(msg, opts = {}) {
    if (!msg || typeof msg.action !== 'string') throw new TypeError('request(msg): msg.action is required');
    return this._request(msg, opts.timeout);
  }

  // ---- tokens ----

  _scheduleRefresh() {
    this._clear('refresh');
    if (typeof this.opts.getToken !== 'function' || !this._token) return;
    const exp = jwtExpiry(this._token);
    if (exp == null) return;
    this._timer('refresh', refreshDelay(exp, this.opts.refreshBefore), () => this._refreshToken());
  }

  async _refreshToken() {
    if (this._refreshing || typeof this.opts.getToken !== 'function' || this.state !== 'connected') return;
    this._refreshing = true;
    try {
      const token = await resolveToken(this.opts);
      if (!token || this.state !== 'connected') return;
      this._token = token;
      await this._request({ action: 'auth', token });
      this.emit('token_refreshed', { userId: this.userId, expiresAt: this.expiresAt });
      this._scheduleRefresh();
    } catch (e) {
      this.emit('error', e instanceof RingcastError ? e : new RingcastError('token_failed', String(e && e.message), e));
      if (this.state === 'connected') this._timer('refresh', 1000, () => this._refreshToken());
    } finally {
      this._refreshing = false;
    }
  }
}

/** Creates a client and starts connecting. See docs/CLIENT.md for the options. */
export function connect(opts) {
  return new Client(opts).open();
}
