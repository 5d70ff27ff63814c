// ws_sub.js URL PATTERN COUNT REQ_ID TIMEOUT_S
// Connects with the `ws` client, subscribes to PATTERN (request id REQ_ID),
// collects COUNT events, prints one JSON line:
// {"connection_id", "subscribed", "events": [event data...]}.
'use strict';
const WebSocket = require('ws');

const [url, pattern, countS, reqId, timeoutS] = process.argv.slice(2);
const count = Number(countS);
const out = { connection_id: null, subscribed: null, events: [], pings: 0 };
const ws = new WebSocket(url);

const timer = setTimeout(() => {
  console.error(`timeout: ${JSON.stringify(out)}`);
  process.exit(2);
}, Number(timeoutS || 60) * 1000);

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

ws.on('message', (buf, isBinary) => {
  if (isBinary) fail('unexpected binary message');
  const m = JSON.parse(buf.toString('utf8'));
  if (out.connection_id === null) {
    if (m.type !== 'connected') fail(`first message is not connected: ${buf}`);
    out.connection_id = m.data.connection_id;
    ws.send(JSON.stringify({ action: 'subscribe', topic: pattern, id: reqId }));
    return;
  }
  if (m.type === 'ping') {
    out.pings++;
    ws.send(JSON.stringify({ action: 'pong' }));
    return;
  }
  if (out.subscribed === null) {
    if (m.type !== 'subscribed') fail(`answer is not subscribed: ${buf}`);
    out.subscribed = m;
    return;
  }
  if (m.type !== 'event') fail(`unexpected message: ${buf}`);
  out.events.push(m.data);
  if (out.events.length === count) {
    clearTimeout(timer);
    ws.close(1000);
  }
});
ws.on('close', (code) => {
  out.close_code = code;
  if (out.events.length !== count) fail(`closed early (${code}): ${JSON.stringify(out)}`);
  console.log(JSON.stringify(out));
  process.exit(0);
});
ws.on('error', (e) => fail(`ws error: ${e.message}`));
