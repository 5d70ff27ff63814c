// Types of the ringcast client (ringcast.js). Documented in docs/CLIENT.md.

/** Reconnect, request and heartbeat defaults in milliseconds. */
export interface Defaults {
  minDelay: number;
  maxDelay: number;
  drainJitter: number;
  stableAfter: number;
  requestTimeout: number;
  pingInterval: number;
  pongTimeout: number;
  connectTimeout: number;
  refreshBefore: number;
}
export const DEFAULTS: Readonly<Defaults>;

export type TokenSource =
  | { token?: string | null; getToken?: undefined }
  | { token?: undefined; getToken: () => string | null | Promise<string | null> };

export type ClientOptions = TokenSource & Partial<Defaults> & {
  /** Base (`wss://rt.example.com`) or full endpoint URL; http(s) becomes ws(s). A function is called at each connect. */
  url: string | (() => string);
  /** A WebSocket constructor (Node < 22: the `ws` package); default globalThis.WebSocket. */
  WebSocket?: new (url: string) => WebSocketLike;
  /** Random source for the jitter, in [0, 1). */
  random?: () => number;
};

export type SSEClientOptions = TokenSource & Partial<Defaults> & {
  url: string | (() => string);
  /** An EventSource constructor (Node: the `eventsource` package); default globalThis.EventSource. */
  EventSource?: new (url: string, init?: unknown) => EventSourceLike;
  /** Passed to the EventSource constructor (e.g. {headers} with the eventsource package). */
  eventSourceInit?: unknown;
  /** Event types to listen for on every stream (EventSource only reports named events). Default ["message"]. */
  types?: string[];
};

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface EventSourceLike {
  addEventListener(type: string, fn: (ev: { data?: string }) => void): void;
  close(): void;
}

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A topic event, as the server sends it. */
export interface RingcastEvent<D = Json> {
  id: string;
  topic: string;
  collection?: string;
  type: string;
  data: D;
  subscription?: string;
  initial?: boolean;
  priority?: string;
}

export interface SubscribeOptions {
  /** A filter over the event's data (docs/PROTOCOL.md, "Filters"). */
  filter?: Record<string, Json>;
  /** Resume after this event id (exact topics). */
  since?: string;
  /** First the retained latest event of each matching topic. */
  includeInitial?: boolean;
}

export interface SSESubscribeOptions extends SubscribeOptions {
  types?: string[];
}

export interface GapInfo {
  code: 'history_gap';
  message: string;
  /** true when the client itself knows events may be missing (a pattern cannot resume). */
  local: boolean;
  topic: string;
}

export class RingcastError extends Error {
  constructor(code: string, message?: string, details?: unknown);
  /** The server's code (`forbidden`, `bad_topic`...) or the client's: `timeout`, `disconnected`, `closed`, `dead_link`, `transport`, `token_failed`, `queue_full`, `not_supported`, `bad_message`. */
  code: string;
  details?: unknown;
}

type Off = () => void;

interface Emitting<M> {
  on<K extends keyof M>(name: K, fn: (arg: M[K]) => void): Off;
  off<K extends keyof M>(name: K, fn: (arg: M[K]) => void): void;
  once<K extends keyof M>(name: K): Promise<M[K]>;
}

export interface SubscriptionEvents<D> {
  event: RingcastEvent<D>;
  subscribed: { subscription?: string; resumed: boolean };
  gap: GapInfo;
  error: RingcastError;
}

export interface Subscription<D = Json> extends Emitting<SubscriptionEvents<D>> {
  readonly topic: string;
  /** The server's subscription id on the current connection (null while disconnected). */
  readonly id: string | null;
  readonly lastEventId: string | null;
  readonly state: 'pending' | 'active' | 'closed';
  readonly duplicatesDropped: number;
  /** Resolves once first subscribed; rejects when the server refuses the subscription. */
  readonly ready: Promise<void>;
  unsubscribe(): Promise<void>;
}

export interface SSESubscription<D = Json> extends Emitting<SubscriptionEvents<D>> {
  readonly topic: string;
  readonly lastEventId: string | null;
  readonly state: 'pending' | 'active' | 'closed';
  readonly reconnects: number;
  readonly duplicatesDropped: number;
  readonly ready: Promise<void>;
  unsubscribe(): Promise<void>;
}

export interface ClientEvents {
  connected: { connectionId: string; userId: string | null; reconnect: boolean };
  disconnected: { code: number; reason: string; willReconnect: boolean; delay?: number };
  error: RingcastError;
  notification: Record<string, Json>;
  /** Events not delivered to a Subscription object: broadcasts, events for users, durable subscriptions. */
  event: RingcastEvent;
  history_gap: GapInfo & { subscription: Subscription };
  token_refreshed: { userId: string | null; expiresAt: number | null };
  /** Durable subscriptions announced by the server. */
  subscribed: Record<string, Json>;
  unsubscribed: Record<string, Json>;
}

export interface PresenceAnswer {
  topic: string;
  users: { user_id: string | null; connections: number; connection_id?: string }[];
  total_users: number;
  total_connections: number;
}

export class Client implements Emitting<ClientEvents> {
  constructor(opts: ClientOptions);
  readonly state: 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';
  readonly connectionId: string | null;
  readonly userId: string | null;
  readonly expiresAt: number | null;
  readonly reconnects: number;
  open(): this;
  on<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): Off;
  off<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): void;
  once<K extends keyof ClientEvents>(name: K): Promise<ClientEvents[K]>;
  subscribe<D = Json>(topic: string, onEvent?: (ev: RingcastEvent<D>, sub: Subscription<D>) => void): Subscription<D>;
  subscribe<D = Json>(topic: string, opts: SubscribeOptions, onEvent?: (ev: RingcastEvent<D>, sub: Subscription<D>) => void): Subscription<D>;
  publish(topic: string, data: Json, opts?: { type?: string; timeout?: number }): Promise<{ id: string; topic: string }>;
  presence(topic: string, opts?: { timeout?: number }): Promise<PresenceAnswer>;
  ping(opts?: { timeout?: number }): Promise<{ timestamp: string }>;
  request(msg: { action: string; [k: string]: Json }, opts?: { timeout?: number }): Promise<Record<string, Json>>;
  close(): void;
}

export interface SSEClientEvents {
  connected: { subscription: SSESubscription; reconnect: boolean };
  disconnected: { subscription: SSESubscription; willReconnect: boolean; delay: number; reason?: string };
  error: RingcastError;
  notification: Record<string, Json>;
  history_gap: GapInfo & { subscription: SSESubscription };
}

export class SSEClient implements Emitting<SSEClientEvents> {
  constructor(opts: SSEClientOptions);
  on<K extends keyof SSEClientEvents>(name: K, fn: (arg: SSEClientEvents[K]) => void): Off;
  off<K extends keyof SSEClientEvents>(name: K, fn: (arg: SSEClientEvents[K]) => void): void;
  once<K extends keyof SSEClientEvents>(name: K): Promise<SSEClientEvents[K]>;
  subscribe<D = Json>(topic: string, onEvent?: (ev: RingcastEvent<D>, sub: SSESubscription<D>) => void): SSESubscription<D>;
  subscribe<D = Json>(topic: string, opts: SSESubscribeOptions, onEvent?: (ev: RingcastEvent<D>, sub: SSESubscription<D>) => void): SSESubscription<D>;
  /** Always rejects with code `not_supported`: SSE is receive-only. */
  publish(topic: string, data: Json): Promise<never>;
  close(): void;
}

/** Creates a WebSocket client and starts connecting. */
export function connect(opts: ClientOptions): Client;
/** Creates an SSE client; each subscribe() opens one stream. */
export function connectSSE(opts: SSEClientOptions): SSEClient;

export class Backoff {
  constructor(opts?: { minDelay?: number; maxDelay?: number; random?: () => number });
  attempt: number;
  ceiling(): number;
  next(): number;
  reset(): void;
}

export function parseEventId(id: unknown): { epoch: string; seq: number } | null;
export function isAtOrBefore(id: string, last: string): boolean;
export function isExactTopic(topic: string): boolean;
export function jwtExpiry(token: string): number | null;
