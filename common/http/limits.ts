/**
 * Resource limits of a daemon's HTTP server, so that one client cannot
 * exhaust it: timeouts for receiving a request, caps on connections, and caps
 * on long-lived requests (event streams, watches, blocking queries).
 *
 * What node:http does by itself (Node 20, checked against its source and a
 * probe): `headersTimeout` and `requestTimeout` are enforced by a sweep every
 * `connectionsCheckingInterval` over connections whose request is not yet
 * fully received — including a connection that has sent nothing at all — and
 * answer 408. Once a request is complete neither applies, so a streaming
 * response is never cut by them. `keepAliveTimeout` bounds the idle time
 * between requests. `maxConnections` drops a connection at accept, without a
 * reply. So the timeouts are node's, given a JSON body here; the caps are
 * counted here, so an over-cap client is told why (503/429 with a JSON body
 * naming the limit and its config key) and node's own `maxConnections` is
 * only the hard ceiling behind them.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { z } from '../validate.js';
import { CorralError } from '../../contracts/errors.js';
import type { Metrics } from '../metrics.js';

export const HTTP_LIMIT_DEFAULTS = {
  /** Time to receive a request's headers (also: a connection that sends nothing is closed after it). */
  headersTimeoutMs: 10_000,
  /** Time to receive a whole request, headers and body; 0 = no limit. Responses (streams) are not bounded by it. */
  requestTimeoutMs: 60_000,
  /** Idle time of a kept-alive connection between requests. */
  keepAliveTimeoutMs: 65_000,
  /** Open connections in total; over it a new connection gets 503 and is closed. */
  maxConnections: 4096,
  /** Open connections from one remote address (TCP only); over it 429 and closed. */
  maxConnectionsPerClient: 512,
  /** Long-lived requests (event streams, watches, blocking queries) in total; over it 503. */
  maxStreams: 2048,
  /** Long-lived requests per client: the authenticated principal where the route knows it, else the remote address; over it 429. */
  maxStreamsPerClient: 256,
} as const;

export type HttpLimits = { -readonly [K in keyof typeof HTTP_LIMIT_DEFAULTS]: number };
export const HTTP_LIMIT_KEYS = Object.keys(HTTP_LIMIT_DEFAULTS) as (keyof HttpLimits)[];

const ms = (min: number) => z.number().int().min(min).max(3_600_000);
const count = z.number().int().min(1).max(1_000_000);

/** The `limits` section of a daemon's config; `defaults` override the kit's for that daemon. */
export function httpLimitsSchema(defaults: Partial<HttpLimits> = {}) {
  const d: HttpLimits = { ...HTTP_LIMIT_DEFAULTS, ...defaults };
  return z
    .object({
      headersTimeoutMs: ms(100).default(d.headersTimeoutMs),
      requestTimeoutMs: z.union([z.literal(0), ms(100)]).default(d.requestTimeoutMs),
      keepAliveTimeoutMs: ms(100).default(d.keepAliveTimeoutMs),
      maxConnections: count.default(d.maxConnections),
      maxConnectionsPerClient: count.default(d.maxConnectionsPerClient),
      maxStreams: count.default(d.maxStreams),
      maxStreamsPerClient: count.default(d.maxStreamsPerClient),
    })
    .default(d)
    .superRefine((l, ctx) => {
      // node refuses headersTimeout > requestTimeout (ERR_OUT_OF_RANGE) when both are set.
      if (l.requestTimeoutMs > 0 && l.headersTimeoutMs > l.requestTimeoutMs) {
        ctx.addIssue({ code: 'custom', path: ['headersTimeoutMs'], message: `must not exceed requestTimeoutMs (${l.requestTimeoutMs})` });
      }
    });
}

/** Where an operator raises a limit: the config key path of the section and the daemon's env prefix. */
export interface LimitsHint {
  /** e.g. "limits" or "http.limits". */
  configPath: string;
  /** e.g. "CORRAL_MASTER_"; the env name is derived as common/config.ts does. */
  envPrefix: string;
}

export type StreamKind = 'stream' | 'watch' | 'blocking';

const snake = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** A refused connection is given this long to read the answer and close before it is cut. */
const LINGER_MS = 2_000;

/** Which limiter governs a socket (one per HttpServer, shared by its TCP and unix listeners). */
const bySocket = new WeakMap<Socket, ServerLimiter>();
/** Sockets refused at accept: requests that still arrive on them are ignored. */
const refusedSockets = new WeakSet<Socket>();

export const isRefusedSocket = (socket: Socket): boolean => refusedSockets.has(socket);

/** One remote address per client; IPv4-mapped IPv6 addresses count as their IPv4 address. */
function addressOf(socket: Socket): string | undefined {
  const a = socket.remoteAddress;
  if (!a) return undefined;
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

interface LimiterMetrics {
  open: { inc(): void; dec(): void };
  refused: { inc(labels: { reason: string }): void };
  streams: { inc(labels: { kind: string }): void; dec(labels: { kind: string }): void };
}

function instruments(metrics: Metrics): LimiterMetrics {
  // Several servers of one daemon may share a registry: reuse what is registered.
  const reuse = <T>(name: string, make: () => T): T => (metrics.registry.getSingleMetric(`${metrics.prefix}_${name}`) as T | undefined) ?? make();
  return {
    open: reuse('http_connections_open', () => metrics.gauge('http_connections_open', 'HTTP connections open')),
    refused: reuse('http_refused_total', () => metrics.counter('http_refused_total', 'HTTP connections and requests refused or cut by a server limit', ['reason'])),
    streams: reuse('http_streams_open', () => metrics.gauge('http_streams_open', 'Long-lived HTTP requests open (event streams, watches, blocking queries)', ['kind'])),
  };
}

export class ServerLimiter {
  private connections = 0;
  private readonly perAddress = new Map<string, number>();
  private streams = 0;
  private readonly perClientStreams = new Map<string, number>();
  private readonly m: LimiterMetrics | undefined;

  constructor(
    readonly limits: HttpLimits,
    private readonly hint: LimitsHint,
    metrics?: Metrics,
  ) {
    this.m = metrics && instruments(metrics);
  }

  /** The node:http options these limits set (see the module comment for what node does with them). */
  nodeOptions(): { headersTimeout: number; requestTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number } {
    const l = this.limits;
    const shortest = Math.min(l.headersTimeoutMs, l.requestTimeoutMs || l.headersTimeoutMs);
    // The sweep's period is the timeouts' precision: a quarter of the shortest, within [100 ms, 5 s].
    return {
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(shortest / 4))),
    };
  }

  /**
   * Watch a node server's connections: count them, refuse over the caps, explain timeouts.
   * `tls`: an HTTPS server's connections are counted once their handshake is done, so a
   * refusal is an answer the client can read; until then node's hard ceiling and the
   * handshake timeout bound them.
   */
  attach(server: Server, tls = false): void {
    // The hard ceiling behind the polite caps: refused connections linger a moment and count to node.
    server.maxConnections = this.limits.maxConnections + Math.max(64, Math.ceil(this.limits.maxConnections / 4));
    server.on('drop', () => this.m?.refused.inc({ reason: 'max_connections' }));
    server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => this.onConnection(socket));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
  }

  private onConnection(socket: Socket): void {
    const l = this.limits;
    // A unix socket's peers have no address: only the total cap applies to them.
    const address = addressOf(socket);
    if (this.connections >= l.maxConnections) {
      this.refuse(socket, 503, 'max_connections', `this server has ${this.connections} connections open, its limit`, l.maxConnections);
      return;
    }
    const mine = address === undefined ? 0 : (this.perAddress.get(address) ?? 0);
    if (address !== undefined && mine >= l.maxConnectionsPerClient) {
      this.refuse(socket, 429, 'max_connections_per_client', `${address} has ${mine} connections open, the limit per client`, l.maxConnectionsPerClient);
      return;
    }
    this.connections++;
    if (address !== undefined) this.perAddress.set(address, mine + 1);
    this.m?.open.inc();
    bySocket.set(socket, this);
    socket.once('close', () => {
      this.connections--;
      this.m?.open.dec();
      if (address === undefined) return;
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, n);
    });
  }

  /** The config key and environment variable that set `limit`, for error messages. */
  private where(limit: keyof HttpLimits): { config: string; env: string } {
    const path = [...this.hint.configPath.split('.'), limit];
    return { config: path.join('.'), env: this.hint.envPrefix + path.map(snake).join('__') };
  }

  private error(code: 'RESOURCE_EXHAUSTED' | 'UNAVAILABLE', limit: keyof HttpLimits, what: string, value: number): CorralError {
    const w = this.where(limit);
    return new CorralError(code, `${what} (${limit} = ${value}); retry later, or raise ${w.config} (env ${w.env}) on this daemon`, { limit, value, config: w.config, env: w.env });
  }

  /** Answer a connection over a cap at once, then close it (after it has had a moment to read the answer). */
  private refuse(socket: Socket, status: 429 | 503, reason: 'max_connections' | 'max_connections_per_client', what: string, value: number): void {
    this.m?.refused.inc({ reason });
    const err = this.error(status === 429 ? 'RESOURCE_EXHAUSTED' : 'UNAVAILABLE', reason === 'max_connections' ? 'maxConnections' : 'maxConnectionsPerClient', what, value);
    writeRaw(socket, status, status === 429 ? 'Too Many Requests' : 'Service Unavailable', err.toJSON());
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // With a listener here node leaves the answer to us (it would write a bare status line and destroy).
    if (refusedSockets.has(socket) || !socket.writable) {
      socket.destroy();
      return;
    }
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage;
    if (inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // Headers complete means the body was what came too slowly.
      const incoming = (socket as Socket & { parser?: { incoming?: { complete: boolean } | null } | null }).parser?.incoming;
      const body = incoming != null && !incoming.complete;
      const limit = body ? 'requestTimeoutMs' : 'headersTimeoutMs';
      this.m?.refused.inc({ reason: body ? 'request_timeout' : 'headers_timeout' });
      const w = this.where(limit);
      const message = `${body ? 'request' : 'request headers'} not received within ${this.limits[limit]} ms (${limit}); the connection is closed. Raise ${w.config} (env ${w.env}) for slower clients`;
      writeRaw(socket, 408, 'Request Timeout', { code: 'TIMEOUT', message, details: { limit, value: this.limits[limit], config: w.config, env: w.env } });
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    writeRaw(socket, tooLarge ? 431 : 400, tooLarge ? 'Request Header Fields Too Large' : 'Bad Request', {
      code: 'MALFORMED_REQUEST',
      message: tooLarge ? 'request headers are too large' : `malformed HTTP request: ${err.code ?? err.message}`,
    });
  }

  /**
   * Count one long-lived request of `socket`'s client until `release` is
   * called; throws RESOURCE_EXHAUSTED (429) over the per-client cap,
   * UNAVAILABLE (503) over the total.
   */
  admit(socket: Socket, kind: StreamKind, principal?: string): () => void {
    const l = this.limits;
    const client = principal !== undefined ? `principal ${principal}` : (addressOf(socket) ?? 'local socket');
    const noun = kind === 'watch' ? 'watches' : kind === 'blocking' ? 'blocking queries' : 'event streams';
    if (this.streams >= l.maxStreams) {
      this.m?.refused.inc({ reason: 'max_streams' });
      throw this.error('UNAVAILABLE', 'maxStreams', `this server has ${this.streams} event streams, watches and blocking queries open, its limit; cannot open more ${noun}`, l.maxStreams);
    }
    const mine = this.perClientStreams.get(client) ?? 0;
    if (mine >= l.maxStreamsPerClient) {
      this.m?.refused.inc({ reason: 'max_streams_per_client' });
      throw this.error(
        'RESOURCE_EXHAUSTED',
        'maxStreamsPerClient',
        `${client} has ${mine} event streams, watches and blocking queries open, the limit per client; cannot open more ${noun}`,
        l.maxStreamsPerClient,
      );
    }
    this.streams++;
    this.perClientStreams.set(client, mine + 1);
    this.m?.streams.inc({ kind });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.streams--;
      this.m?.streams.dec({ kind });
      const n = (this.perClientStreams.get(client) ?? 1) - 1;
      if (n <= 0) this.perClientStreams.delete(client);
      else this.perClientStreams.set(client, n);
    };
  }

  /** Open connections and long-lived requests, for tests and status views. */
  get counts(): { connections: number; streams: number } {
    return { connections: this.connections, streams: this.streams };
  }
}

/** The limiter of the server a socket was accepted by, if it has one. */
export const limiterOf = (socket: Socket | null | undefined): ServerLimiter | undefined => (socket ? bySocket.get(socket) : undefined);

/** A complete HTTP response written straight to the socket (no request may have been parsed yet), then a polite close. */
export function writeRaw(socket: Socket, status: number, reason: string, body: unknown): void {
  refusedSockets.add(socket);
  const text = JSON.stringify(body);
  const head = `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n${status === 429 || status === 503 ? 'Retry-After: 1\r\n' : ''}\r\n`;
  socket.end(head + text);
  // What the client still sends is read and dropped (closing with unread input would reset the
  // connection, and could lose the answer on its way); the socket is cut after a short grace.
  const cut = setTimeout(() => socket.destroy(), LINGER_MS);
  cut.unref();
  socket.once('close', () => clearTimeout(cut));
}
