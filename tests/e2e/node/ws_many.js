// ws_many.js URL N TOPIC TIMEOUT_S
// Opens N `ws` connections (at most 200 handshakes in flight), subscribes each
// to TOPIC, then waits until every connection has received one event. Prints
// one JSON line: {"connected", "subscribed", "received", "event_ids": [...distinct],
// "subscriptions_distinct", "shards": {shard: count}, "errors"}.
'use strict';
const WebSocket = require('ws');

const [url, nS, topic, timeoutS] = process.argv.slice(2);
const N = Number(nS);
const st = { connected: 0, subscribed: 0, received: 0, errors: [], shards: {} };
const eventIds = new Set();
const subs = new Set();
const socks = [];
let started = 0;
let inflight = 0;
let done = false;

function finish(code) {
  if (done) return;
  done = true;
  st.event_ids = [...eventIds];
  st.subscriptions_distinct = subs.size;
  console.log(JSON.stringify(st));
  for (const s of socks) s.terminate();
  process.exit(code);
}

setTimeout(() => {
  st.errors.push('timeout');
  finish(0); // the test checks the counts
}, Number(timeoutS || 120) * 1000);

function openOne() {
  const idx = started;
  started++;
  inflight++;
  const ws = new WebSocket(url, { perMessageDeflate: false });
  socks.push(ws);
  let state = 0;
  ws.on('message', (buf) => {
    const m = JSON.parse(buf.toString('utf8'));
    if (m.type === 'ping') {
      ws.send('{"action":"pong"}');
      return;
    }
    if (state === 0) {
      if (m.type !== 'connected') st.errors.push(`first: ${buf}`);
      const sh = m.data.connection_id.slice(0, 2);
      st.shards[sh] = (st.shards[sh] || 0) + 1;
      st.connected++;
      state = 1;
      ws.send(JSON.stringify({ action: 'subscribe', topic }));
    } else if (state === 1) {
      if (m.type !== 'subscribed') st.errors.push(`subscribe: ${buf}`);
      st.subscribed++;
      subs.add(m.data.subscription + '@' + idx);
      state = 2;
      inflight--;
      pump();
    } else if (state === 2) {
      if (m.type !== 'event') {
        st.errors.push(`unexpected: ${buf}`);
        return;
      }
      eventIds.add(m.data.id);
      st.received++;
      state = 3;
      if (st.received === N) finish(0);
    } else {
      st.errors.push(`extra: ${buf}`);
    }
  });
  ws.on('error', (e) => {
    if (st.errors.length < 20) st.errors.push(`error: ${e.message}`);
  });
  ws.on('close', (code) => {
    if (!done && st.errors.length < 20) st.errors.push(`closed ${code} in state ${state}`);
  });
}

function pump() {
  while (started < N && inflight < 200) openOne();
}
pump();
