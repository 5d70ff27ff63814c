// ringcast.js: the ringcast JavaScript client (ES module, no runtime dependencies).
// connect() speaks WebSocket, connectSSE() Server-Sent Events; docs/CLIENT.md.
export { connect, Client, Subscription } from './client.js';
export { connectSSE, SSEClient, SSESubscription } from './sse.js';
export { Backoff, DEFAULTS, RingcastError, isAtOrBefore, isExactTopic, jwtExpiry, parseEventId } from './backoff.js';
