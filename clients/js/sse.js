// sse.js: the Server-Sent Events variant, for environments without WebSocket
// (docs/CLIENT.md, "SSE"; the stream in docs/PROTOCOL.md, "Server-Sent Events").
//
// Each subscription is its own EventSource on GET /api/realtime/events?topic=...: the
// client never leaves a stream to EventSource's own reconnect (it would reuse a token
// that may have expired) but closes it on any error and opens a new one after a
// full-jitter backoff, with `since` = the last event id delivered (exact topics), a fresh
// token from getToken, and drops events at or before that id. EventSource only reports
// named events it was told about: list the event types you publish in `types`.

import { Backoff, DEFAULTS, Emitter, RingcastError, SubscriptionBase, endpoint, jwtExpiry, refreshDelay, resolveToken } from './backoff.js';

const SSE_PATH = '/api/realtime/events';

/** One SSE stream: a topic (or pattern) with its filter. */
export class SSESubscription extends SubscriptionBase {
  constructor(client, topic, opts, onEvent) {
    super(client, topic, opts, onEvent);
    this.types = opts.types || client.opts.types || ['message'];
    this.reconnects = 0;
    this._backoff = new Backoff(client.opts);
    this._es = null;
    this._t = {};
    this._wasOpen = false;
    this.ready = new Promise((resolve) => {
      this._resolveReady = resolve;
    });
    this._open();
  }

  _timer(name, ms, fn) {
    clearTimeout(this._t[name]);
    this._t[name] = setTimeout(() => {
      delete this._t[name];
      fn();
    }, ms);
  }

  _clear() {
    for (const n of Object.keys(this._t)) clearTimeout(this._t[n]);
    this._t = {};
  }

  async _open() {
    if (this.state === 'closed') return;
    let token;
    try {
      token = await resolveToken(this.client.opts);
    } catch (e) {
      this._report(new RingcastError('token_failed', 'getToken() failed: ' + (e && e.message), e));
      this._retry();
      return;
    }
    if (this.state === 'closed') return;
    const u = endpoint(this.client.opts.url, SSE_PATH, false);
    u.searchParams.set('topic', this.topic);
    if (this.filter !== undefined && this.filter !== null) u.searchParams.set('filter', JSON.stringify(this.filter));
    const since = this.exact ? this._lastIds.get(this.topic) : undefined;
    if (since) u.searchParams.set('since', since);
    else if (this.includeInitial) u.searchParams.set('include_initial', 'true');
    if (token) u.searchParams.set('token', token);
    let es;
    try {
      es = new this.client._ES(u.toString(), this.client.opts.eventSourceInit);
    } catch (e) {
      this._report(new RingcastError('transport', 'cannot open the EventSource: ' + (e && e.message), e));
      this._retry();
      return;
    }
    this._es = es;
    const mine = (fn) => (ev) => {
      if (this._es === es) fn(ev);
    };
    es.addEventListener('connection', mine(() => this._connected(token)));
    es.addEventListener('error', mine((ev) => this._onError(ev)));
    es.addEventListener('notification', mine((ev) => this._json(ev, (d) => this.client.emit('notification', d))));
    for (const t of this.types) es.addEventListener(t, mine((ev) => this._json(ev, (d) => this._deliver(d))));
  }

  _json(ev, fn) {
    let d;
    try {
      d = JSON.parse(ev.data);
    } catch {
      this._report(new RingcastError('bad_message', 'an SSE record whose data is not JSON'));
      return;
    }
    fn(d);
  }

  _connected(token) {
    const again = this._wasOpen;
    this._wasOpen = true;
    this.state = 'active';
    if (again) this.reconnects += 1;
    this._timer('stable', this.client.opts.stableAfter, () => this._backoff.reset());
    this.emit('subscribed', { resumed: again });
    this.client.emit('connected', { subscription: this, reconnect: again });
    this._resolveReady();
    if (again && !this.exact) {
      this._gap({ code: 'history_gap', local: true, message: `pattern ${this.topic} cannot resume; fetch the current state again` });
    }
    // SSE cannot re-authenticate: an exact topic reopens with a fresh token before exp
    const exp = jwtExpiry(token);
    if (exp != null && this.exact && typeof this.client.opts.getToken === 'function') {
      this._timer('refresh', refreshDelay(exp, this.client.opts.refreshBefore), () => this._reopen(0, 'token refresh'));
    }
  }

  _onError(ev) {
    if (ev && typeof ev.data === 'string' && ev.data !== '') { // an `event: error` record
      let d = {};
      try {
        d = JSON.parse(ev.data);
      } catch {
        // keep d empty
      }
      if (d.code === 'history_gap') {
        this._gap(d);
        return;
      }
      this._report(new RingcastError(d.code || 'error', d.message, d));
      if (d.code === 'token_expired' && typeof this.client.opts.getToken === 'function') this._reopen(0, 'token expired');
      return;
    }
    this._retry(); // the transport failed (or the stream ended): our own backoff
  }


  _report(err) {
    this.emit('error', err);
    this.client.emit('error', err);
  }


  _drop() {
    const es = this._es;
    this._es = null;
    if (es) es.close();
  }

  _retry() {
    if (this.state === 'closed') return;
    const wasActive = this.state === 'active';
    this._drop();
    this._clear();
    this.state = 'pending';
    const delay = this._backoff.next();
    if (wasActive) this.client.emit('disconnected', { subscription: this, willReconnect: true, delay });
    this._timer('reconnect', delay, () => this._open());
  }

  _reopen(delay, why) {
    if (this.state === 'closed') return;
    this._drop();
    this._clear();
    this.state = 'pending';
    this.client.emit('disconnected', { subscription: this, willReconnect: true, delay, reason: why });
    this._timer('reconnect', delay, () => this._open());
  }

  unsubscribe() {
    if (this.state === 'closed') return Promise.resolve();
    this.state = 'closed';
    this._clear();
    this._drop();
    this.client._subs.delete(this);
    return Promise.resolve();
  }
}

/** The SSE client: subscribe() opens one stream per subscription. */
export class SSEClient extends Emitter {
  constructor(opts = {}) {
    super();
    if (!opts.url) throw new TypeError('connectSSE({url}): url is required');
    if (opts.token != null && opts.getToken != null) throw new TypeError('give token or getToken, not both');
    this.opts = Object.assign({}, DEFAULTS, opts);
    this._ES = opts.EventSource || globalThis.EventSource;
    if (typeof this._ES !== 'function') {
      throw new TypeError('no EventSource implementation: pass {EventSource} (in Node: the eventsource package)');
    }
    this._subs = new Set();
    this.state = 'open';
  }

  /** opts: {filter, since, includeInitial, types}; onEvent(event, sub). */
  subscribe(topic, opts, onEvent) {
    if (typeof opts === 'function') {
      onEvent = opts;
      opts = {};
    }
    if (this.state === 'closed') throw new RingcastError('closed', 'the client was closed');
    const sub = new SSESubscription(this, topic, opts || {}, onEvent);
    this._subs.add(sub);
    return sub;
  }

  publish() {
    return Promise.reject(new RingcastError('not_supported', 'an SSE client cannot publish: use connect() (WebSocket) or the HTTP API'));
  }

  close() {
    this.state = 'closed';
    for (const s of [...this._subs]) s.unsubscribe();
  }
}

/** Creates an SSE client (no connection until the first subscribe). */
export function connectSSE(opts) {
  return new SSEClient(opts);
}
