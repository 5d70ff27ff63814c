// sse_sub.js URL COUNT MIN_PINGS TIMEOUT_S [EVENT_TYPE ...]
// Opens URL with the `eventsource` client and collects the "connection"
// record, COUNT records of the given EVENT_TYPEs (default "message") and at
// least MIN_PINGS "ping" records. Prints one JSON line:
// {"connection": {...}, "events": [{"type","lastEventId","data"}], "pings": [ms...], "errors"}.
'use strict';
const EventSource = require('eventsource');

const [url, countS, minPingsS, timeoutS, ...types] = process.argv.slice(2);
const count = Number(countS);
const minPings = Number(minPingsS);
const out = { connection: null, events: [], pings: [], errors: [] };
const es = new EventSource(url);
const t0 = Date.now();

function finish() {
  es.close();
  console.log(JSON.stringify(out));
  process.exit(0);
}
function maybeDone() {
  if (out.connection && out.events.length >= count && out.pings.length >= minPings) finish();
}
setTimeout(() => {
  out.errors.push('timeout');
  finish();
}, Number(timeoutS || 60) * 1000);

es.addEventListener('connection', (e) => {
  if (out.connection) out.errors.push('second connection record (reconnected?)');
  out.connection = JSON.parse(e.data);
  maybeDone();
});
es.addEventListener('ping', (e) => {
  const d = JSON.parse(e.data);
  if (typeof d.timestamp !== 'string') out.errors.push(`ping without timestamp: ${e.data}`);
  out.pings.push(Date.now() - t0);
  maybeDone();
});
for (const t of types.length ? types : ['message']) {
  es.addEventListener(t, (e) => {
    out.events.push({ type: e.type, lastEventId: e.lastEventId, data: JSON.parse(e.data) });
    maybeDone();
  });
}
es.onerror = (e) => {
  out.errors.push(`error: ${e && (e.message || e.status || e.type)}`);
};
