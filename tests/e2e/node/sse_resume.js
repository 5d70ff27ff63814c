// sse_resume.js URL LAST_EVENT_ID COUNT TIMEOUT_S
// Opens URL with the `eventsource` client sending Last-Event-ID (as a browser
// does when it reconnects) and collects COUNT "message" records. Prints one
// JSON line: {"events": [{"lastEventId","data"}], "errors": [...]}.
'use strict';
const EventSource = require('eventsource');

const [url, lastId, countS, timeoutS] = process.argv.slice(2);
const count = Number(countS);
const out = { events: [], errors: [] };
const es = new EventSource(url, { headers: { 'Last-Event-ID': lastId } });

function finish() {
  es.close();
  console.log(JSON.stringify(out));
  process.exit(0);
}
setTimeout(() => {
  out.errors.push('timeout');
  finish();
}, Number(timeoutS || 30) * 1000);
es.addEventListener('message', (e) => {
  out.events.push({ lastEventId: e.lastEventId, data: JSON.parse(e.data) });
  if (out.events.length >= count) finish();
});
es.addEventListener('error', (e) => {
  if (e && e.data) out.errors.push(`error record: ${e.data}`);
});
