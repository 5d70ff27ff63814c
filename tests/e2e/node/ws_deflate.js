// ws_deflate.js URL TOPIC COUNT PUBLISH_SIZE TIMEOUT_S
// Connects with the `ws` client (permessage-deflate on, its default), subscribes
// to TOPIC, publishes one message of about PUBLISH_SIZE bytes itself (compressed:
// threshold 0) and a second, small one, collects COUNT events and prints one JSON
// line: {"extensions", "events": [event data...], "close_code"}.
'use strict';
const WebSocket = require('ws');

const [url, topic, countS, sizeS, timeoutS] = process.argv.slice(2);
const count = Number(countS);
const out = { extensions: null, events: [] };
const ws = new WebSocket(url, { perMessageDeflate: { threshold: 0 } });

const timer = setTimeout(() => {
  console.error(`timeout: ${JSON.stringify(out)}`);
  process.exit(2);
}, Number(timeoutS || 60) * 1000);

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

ws.on('upgrade', (res) => {
  out.extensions = res.headers['sec-websocket-extensions'] || null;
});
ws.on('message', (buf, isBinary) => {
  if (isBinary) fail('unexpected binary message');
  const m = JSON.parse(buf.toString('utf8'));
  if (m.type === 'connected') {
    ws.send(JSON.stringify({ action: 'subscribe', topic, id: 1 }));
  } else if (m.type === 'subscribed') {
    const pad = 'n'.repeat(Number(sizeS));
    ws.send(JSON.stringify({ action: 'publish', topic, type: 'node', data: { pad }, id: 2 }));
    ws.send(JSON.stringify({ action: 'publish', topic, type: 'node', data: { small: 1 }, id: 3 }));
  } else if (m.type === 'ping') {
    ws.send(JSON.stringify({ action: 'pong' }));
  } else if (m.type === 'event') {
    out.events.push(m.data);
    if (out.events.length === count) ws.close(1000);
  }
});
ws.on('close', (code) => {
  clearTimeout(timer);
  out.close_code = code;
  console.log(JSON.stringify(out));
  process.exit(0);
});
ws.on('error', (e) => fail(`ws error: ${e.message}`));
