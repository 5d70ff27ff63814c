// Compiled with `tsc --noEmit` by client_types.test.mjs: ringcast.d.ts describes the API the
// docs show. Lines marked @ts-expect-error must be refused by the types.
import { connect, connectSSE, RingcastError, type RingcastEvent, type Subscription } from '../../../../clients/js/ringcast.js';

interface Price { v: number }

const c = connect({ url: 'wss://rt.example.com', getToken: async () => 'jwt', maxDelay: 10000 });
const off: () => void = c.on('connected', (h) => { const id: string = h.connectionId; void id; });
off();
c.on('disconnected', (d) => { const code: number = d.code; void code; });
c.on('history_gap', (g) => { const s: Subscription = g.subscription; void s; });
c.on('error', (e: RingcastError) => { const code: string = e.code; void code; });
const sub = c.subscribe<Price>('prices.eur', { since: 'toywvf-2' }, (ev: RingcastEvent<Price>) => {
  const v: number = ev.data.v;
  void v;
});
sub.on('gap', (g) => { const m: string = g.message; void m; });
void sub.ready.then(() => sub.unsubscribe());
void c.publish('chat.room1', { text: 'hi' }, { type: 'said' }).then((r) => r.id.length);
void c.presence('chat.room1').then((p) => p.total_users + p.users.length);
c.subscribe('a.>', (ev) => ev.topic);
const s = connectSSE({ url: 'https://rt.example.com', token: 'jwt', types: ['message', 'price'] });
s.subscribe('prices.eur', { filter: { v: { $gt: 1 } } }, (ev) => ev.id);
c.close();

// @ts-expect-error url is required
connect({ token: 'x' });
// @ts-expect-error token and getToken together
connect({ url: 'x', token: 'a', getToken: () => 'b' });
// @ts-expect-error no such event
c.on('nope', () => {});
// @ts-expect-error since is a string
c.subscribe('t', { since: 5 });
