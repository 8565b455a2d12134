/**
 * The HTTP edge shared by every corral daemon: a small router on node:http.
 *
 * Why not express for everything: on this 2-core machine this router serves
 * 2.6–4.9× the pipelined JSON POSTs/s of express 5 (`npx tsx
 * bench/http-servers.ts`, docs/benchmarks.md); the master's scheduler API must absorb >20k
 * acknowledgements per second. This module keeps what the daemons need from a
 * framework — routing, bounded body reading, JSON errors, metrics — and nothing else.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Socket, type AddressInfo } from 'node:net';
import { CorralError, isCorralError, errorMessage } from '../../contracts/errors.js';
import { parseJson } from '../validate.js';
import { logger, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { corkForThisTurn } from './cork.js';
import { readBody, readText } from './body.js';
import { discountTlsBuffers } from './tls-buffers.js';
import { acceptWebSocket, refuseUpgradeWithBody, type WebSocket } from './websocket.js';
import { HTTP_LIMIT_DEFAULTS, isRefusedSocket, limiterOf, ServerLimiter, writeRaw, type HttpLimits, type LimitsHint, type StreamKind } from './limits.js';
import type { TlsMaterial } from '../tls/load.js';

/**
 * A daemon's TLS: its certificate and key, and the CA its clients' certificates
 * must come from. `clientCerts`:
 * - "off": no client certificate asked for;
 * - "request" (the master: agents present one, frameworks and operators may not):
 *   asked for, a connection without one is served, one with an invalid one
 *   (expired, not yet valid, another CA, not for client use) is refused with a
 *   401 saying why; routes read the verified peer through `ctx.peer()`;
 * - "require": as "request", and a connection without one is refused too.
 * The handshake itself never fails over a client certificate: node would then
 * close without a word, and the client would not learn what is wrong.
 */
export interface HttpTlsOptions {
  material: TlsMaterial;
  clientCerts?: 'off' | 'request' | 'require';
}

/** The client certificate of a TLS connection, as the server judged it. */
export interface PeerCertificate {
  /** Issued by the configured CA, within its validity, for client use. */
  authorized: boolean;
  /** The subject CN: the principal a certificate-authenticated client speaks as. */
  commonName: string | undefined;
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Path without the query string, percent-decoding left to the route. */
  path: string;
  query: URLSearchParams;
  /** For prefix routes: the part of the path after the prefix. */
  rest: string;
  /** Name of the matched route, used for metrics labels. */
  route: string;
  /** The body's bytes. */
  body(): Promise<Buffer>;
  /** The body as UTF-8 text (see readText in body.ts); what json() parses. */
  text(): Promise<string>;
  json(): Promise<unknown>;
  /**
   * Count this request as long-lived (an event stream, watch or blocking
   * query) against the server's caps until its response closes: throws
   * RESOURCE_EXHAUSTED (429) or UNAVAILABLE (503) over a cap. `principal`:
   * the authenticated client, counted instead of its address.
   */
  admit(kind: StreamKind, principal?: string): void;
  /** The verified client certificate (TLS servers asking for one); undefined when none was presented or TLS is off. */
  peer(): PeerCertificate | undefined;
  /**
   * Take the connection as a WebSocket (RFC 6455), on a server that serves
   * upgrades (HttpServer.serveUpgrades) and a GET that asked for one; throws
   * UPGRADE_REQUIRED (426) otherwise. What the route checked before
   * (authentication, leadership) was answered over HTTP as on any route;
   * from here the route owns the connection.
   */
  webSocket(opts?: { maxPayload?: number }): WebSocket;
}

type Handler = (ctx: RequestContext) => unknown | Promise<unknown>;

/** How a route family reports errors (Docker wants {Err}, CNI wants its own shape). */
export type ErrorFormatter = (err: CorralError, ctx: RequestContext) => { status: number; body: string; contentType: string };

const jsonErrorFormatter: ErrorFormatter = (err) => ({
  status: err.httpStatus,
  body: JSON.stringify(err.toJSON()),
  contentType: 'application/json',
});

interface Route {
  method: string | '*';
  path: string;
  prefix: boolean;
  name: string;
  handler: Handler;
  formatError: ErrorFormatter;
}

interface HttpServerOptions {
  name: string;
  maxBodyBytes?: number;
  metrics?: Metrics;
  log?: Logger;
  formatError?: ErrorFormatter;
  /** Timeouts and caps (limits.ts); the kit's defaults when not given. */
  limits?: HttpLimits;
  /** Where the daemon's config sets `limits`, named in over-limit errors (default "limits", env CORRAL_). */
  limitsHint?: LimitsHint;
  /** Serve HTTPS with this certificate (see HttpTlsOptions); plain HTTP without. */
  tls?: HttpTlsOptions | undefined;
}

type ListenTarget = { host: string; port: number } | { socketPath: string; mode?: number };

export class HttpServer {
  readonly server: http.Server;
  private readonly routes: Route[] = [];
  private readonly exact = new Map<string, Route>();
  private readonly log: Logger;
  private readonly maxBody: number;
  private readonly defaultFormatError: ErrorFormatter;
  private readonly requestCounter;
  private readonly metrics: Metrics | undefined;
  private readonly extraServers: http.Server[] = [];
  private readonly socketPaths: string[] = [];
  /** Requests that asked to switch protocols, with what the client sent past their headers. */
  private readonly upgrades = new WeakMap<IncomingMessage, Buffer>();
  private servesUpgrades = false;
  /** Connections node's HTTP server has let go of (upgraded): close() ends them too. */
  private readonly upgradedSockets = new Set<Socket>();
  readonly limiter: ServerLimiter;
  readonly tls: HttpTlsOptions | undefined;

  constructor(opts: HttpServerOptions) {
    this.tls = opts.tls;
    this.limiter = new ServerLimiter(opts.limits ?? { ...HTTP_LIMIT_DEFAULTS }, opts.limitsHint ?? { configPath: 'limits', envPrefix: 'CORRAL_' }, opts.metrics);
    this.log = opts.log ?? logger(opts.name);
    this.maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;
    this.defaultFormatError = opts.formatError ?? jsonErrorFormatter;
    this.metrics = opts.metrics;
    this.requestCounter = opts.metrics?.counter('http_requests_total', 'HTTP requests served', ['route', 'code']);
    this.server = this.createNodeServer();
  }

  private createNodeServer(plain = false): http.Server {
    // The request timeout bounds receiving a request, never a response: RecordIO streams stay open for hours.
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => void this.dispatch(req, res);
    if (!this.tls || plain) {
      const server = http.createServer(this.limiter.nodeOptions(), onRequest);
      this.limiter.attach(server);
      if (this.servesUpgrades) this.listenForUpgrades(server);
      return server;
    }
    const { material, clientCerts = 'off' } = this.tls;
    const limits = this.limiter.nodeOptions();
    const server = https.createServer(
      {
        ...limits,
        ...(material.ca !== undefined && { ca: material.ca }),
        ...(material.cert !== undefined && { cert: material.cert }),
        ...(material.key !== undefined && { key: material.key }),
        ...(material.crl !== undefined && { crl: material.crl }),
        // A connection that never finishes its handshake is closed as one that never sends its headers.
        handshakeTimeout: limits.headersTimeout,
        requestCert: clientCerts !== 'off',
        rejectUnauthorized: false,
      },
      onRequest,
    );
    this.limiter.attach(server, true);
    // Node's HTTP parser reads a TLS connection straight from its TLS layer. When it stops reading
    // because a client pipelines calls faster than their answers leave (over 16 KB queued), that
    // layer still hands it what it had already decrypted, the parser fails with HPE_PAUSED and node
    // cuts the connection: a framework pipelining ACCEPTs lost its connection every few hundred ms
    // (node 20; test/tls/pipelining.test.ts). With a 'data' listener on the socket, node feeds the
    // parser from the socket's stream instead, which holds what arrives while it is paused.
    server.on('secureConnection', (socket: TLSSocket) => socket.on('data', ignoreData));
    // Open connections' TLS buffers are freed at close, never by a collection: V8 is not to count them (tls-buffers.ts).
    const noDiscount = discountTlsBuffers(server, this.metrics);
    if (noDiscount) this.log.debug(`open TLS connections' buffers stay in V8's external-memory count: ${noDiscount}`);
    // After the limiter's own listener: a connection it refused has had its answer.
    if (clientCerts !== 'off') server.on('secureConnection', (socket: TLSSocket) => this.judgeClientCertificate(socket, clientCerts));
    // Handshakes that fail (a client that distrusts our certificate, port scans) are the client's problem: logged at debug.
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      this.log.debug({ remote: socket.remoteAddress, err: err.message }, 'TLS handshake failed');
      if (err.code === 'ERR_SSL_HTTP_REQUEST') answerPlainHttp(socket);
    });
    if (this.servesUpgrades) this.listenForUpgrades(server);
    return server;
  }

  /**
   * Let routes take their connection as a WebSocket (ctx.webSocket()). With
   * this on, node hands every request that asks to switch protocols to
   * onUpgrade rather than to the router, so it is on only for daemons that
   * serve one.
   */
  serveUpgrades(): this {
    if (this.servesUpgrades) return this;
    this.servesUpgrades = true;
    for (const server of [this.server, ...this.extraServers]) this.listenForUpgrades(server);
    return this;
  }

  private listenForUpgrades(server: http.Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  /**
   * A request that asks to switch protocols goes through the router like any
   * other, answered on its connection, which ends with the answer unless the
   * route takes it (ctx.webSocket()): node's parser has left it.
   */
  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    // Refused over a cap or its certificate: answered already, and cut after a grace (writeRaw); what it sends is dropped.
    if (isRefusedSocket(socket)) {
      socket.resume();
      return;
    }
    // Its body would be read by nobody: node's parser stopped at the headers.
    if (refuseUpgradeWithBody(req, socket)) return;
    this.upgradedSockets.add(socket);
    socket.once('close', () => this.upgradedSockets.delete(socket));
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', () => socket.end());
    this.upgrades.set(req, head);
    // Nothing more arrives for the request itself: handlers that read a body read an empty one.
    req.push(null);
    void this.dispatch(req, res);
  }

  /** Refuse, with a readable 401, a connection whose client certificate is invalid (or missing where required). */
  private judgeClientCertificate(socket: TLSSocket, mode: 'request' | 'require'): void {
    if (isRefusedSocket(socket) || socket.authorized) return;
    const code = String(socket.authorizationError ?? '');
    const none = code === 'UNABLE_TO_GET_ISSUER_CERT' && Object.keys(socket.getPeerCertificate()).length === 0;
    if (none && mode === 'request') return;
    const message = none
      ? 'this server requires a client certificate issued by the cluster CA (mutual TLS); configure the client with one (tls.cert and tls.key)'
      : `client certificate refused: ${describeVerifyError(code, socket)}`;
    this.log.warn({ remote: socket.remoteAddress, reason: code, subject: socket.getPeerCertificate().subject?.CN }, 'TLS client refused: %s', message);
    writeRaw(socket, 401, 'Unauthorized', { code: 'UNAUTHENTICATED', message, details: { reason: none ? 'NO_CLIENT_CERTIFICATE' : code } });
  }

  /** Register an exact-path route (`path`) or a prefix route (`path` ending in `*`). */
  route(method: string | '*', path: string, handler: Handler, opts: { name?: string; formatError?: ErrorFormatter } = {}): this {
    const prefix = path.endsWith('*');
    const clean = prefix ? path.slice(0, -1) : path;
    const r: Route = { method, path: clean, prefix, name: opts.name ?? path, handler, formatError: opts.formatError ?? this.defaultFormatError };
    if (prefix) {
      this.routes.push(r);
      // Longest prefix first so /v1/kv/ wins over /v1/.
      this.routes.sort((a, b) => b.path.length - a.path.length);
    } else {
      this.exact.set(`${method} ${clean}`, r);
    }
    return this;
  }

  private match(method: string, path: string): { route: Route; rest: string } | { allowed: string[] } | undefined {
    const hit = this.exact.get(`${method} ${path}`) ?? this.exact.get(`* ${path}`);
    if (hit) return { route: hit, rest: '' };
    for (const r of this.routes) {
      if (path.startsWith(r.path) && (r.method === '*' || r.method === method)) return { route: r, rest: path.slice(r.path.length) };
    }
    const allowed = [...this.exact.values()].filter((r) => r.path === path).map((r) => r.method);
    for (const r of this.routes) if (path.startsWith(r.path)) allowed.push(r.method);
    return allowed.length ? { allowed } : undefined;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A connection refused over a cap (or timed out) has had its answer; what it still sends is dropped.
    if (isRefusedSocket(req.socket)) {
      req.resume();
      return;
    }
    corkForThisTurn(req.socket);
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
    const method = req.method ?? 'GET';
    const found = this.match(method, path);
    // A body is read once, as bytes or as text; asked for the other way too, it is converted.
    let bodyPromise: Promise<Buffer> | undefined;
    let textPromise: Promise<string> | undefined;
    /** The route took the connection as a WebSocket: nothing more is written here. */
    let taken = false;
    const ctx: RequestContext = {
      req,
      res,
      method,
      path,
      query,
      rest: '',
      route: 'unmatched',
      body: () => (bodyPromise ??= textPromise ? textPromise.then((t) => Buffer.from(t, 'utf8')) : readBody(req, this.maxBody)),
      text: () => (textPromise ??= bodyPromise ? bodyPromise.then((b) => b.toString('utf8')) : readText(req, this.maxBody)),
      json: async () => {
        const text = await ctx.text();
        if (text.length === 0) throw new CorralError('MALFORMED_REQUEST', 'request body is empty; expected JSON');
        return parseJson(text);
      },
      admit: (kind, principal) => {
        // A client already gone has had its 'close': a slot taken now would never be given back.
        if (res.destroyed || req.socket.destroyed) return;
        const release = (limiterOf(req.socket) ?? this.limiter).admit(req.socket, kind, principal);
        res.once('close', release);
      },
      peer: () => peerOf(req.socket as TLSSocket),
      webSocket: (opts) => {
        const ws = acceptWebSocket(req, res, this.upgrades.get(req), { maxPayload: opts?.maxPayload ?? this.maxBody, log: this.log });
        taken = true;
        return ws;
      },
    };
    let formatError = this.defaultFormatError;
    try {
      if (!found) throw new CorralError('NOT_FOUND', `no such endpoint: ${method} ${path}`);
      if ('allowed' in found) {
        res.setHeader('Allow', found.allowed.join(', '));
        throw new CorralError('METHOD_NOT_ALLOWED', `method ${method} not allowed on ${path}; use ${found.allowed.join(' or ')}`);
      }
      ctx.rest = found.rest;
      ctx.route = found.route.name;
      formatError = found.route.formatError;
      const out = await found.route.handler(ctx);
      if (taken) return;
      if (!res.headersSent && !res.writableEnded) {
        if (out === undefined) {
          res.statusCode = res.statusCode === 200 ? 204 : res.statusCode;
          res.end();
        } else {
          sendJson(res, res.statusCode || 200, out);
        }
      }
    } catch (err) {
      const cerr = isCorralError(err) ? err : new CorralError('INTERNAL', 'internal error', undefined, { cause: err });
      if (cerr.code === 'INTERNAL') this.log.error({ err, path, method }, 'request failed: %s', errorMessage(err));
      else this.log.debug({ path, method, code: cerr.code }, 'request rejected: %s', cerr.message);
      if (taken) {
        // The connection is a WebSocket now; its route closes it.
      } else if (isRefusedSocket(req.socket)) {
        // Timed out while the handler read the body: the 408 is sent, nothing more goes out.
      } else if (!res.headersSent) {
        const { status, body, contentType } = formatError(cerr, ctx);
        if (cerr.code === 'RESOURCE_EXHAUSTED' || cerr.code === 'UNAVAILABLE') res.setHeader('Retry-After', '1');
        res.statusCode = status;
        res.setHeader('Content-Type', contentType);
        res.setHeader('Content-Length', Buffer.byteLength(body));
        // The rest of a body over the limit is not read: the connection ends with the answer.
        if (cerr.code === 'PAYLOAD_TOO_LARGE' && !req.readableEnded) res.setHeader('Connection', 'close');
        res.end(body);
      } else if (!res.writableEnded) {
        res.destroy();
      }
      // Drain an unread body (not one over the limit) so a keep-alive connection stays usable.
      if (!req.readableEnded && cerr.code !== 'PAYLOAD_TOO_LARGE') req.resume();
    } finally {
      this.requestCounter?.inc({ route: ctx.route, code: String(res.statusCode) });
    }
  }

  /**
   * Serve on `target`. Called again, it serves the same routes on one more
   * address (e.g. TCP for the cluster and a unix socket for node-local peers
   * in other network namespaces). A unix socket is served in plain HTTP even by
   * a TLS server: its file mode guards it, and its clients (dockerd, CNI plugins)
   * speak plain HTTP.
   */
  async listen(target: ListenTarget): Promise<string> {
    let server = this.server;
    const plain = 'socketPath' in target && this.tls !== undefined;
    if (server.listening || plain) {
      server = this.createNodeServer(plain);
      this.extraServers.push(server);
    }
    if ('socketPath' in target) {
      mkdirSync(dirname(target.socketPath), { recursive: true });
      rmSync(target.socketPath, { force: true });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(target.socketPath, () => resolve());
      });
      chmodSync(target.socketPath, target.mode ?? 0o600);
      this.socketPaths.push(target.socketPath);
      return `unix://${target.socketPath}`;
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(target.port, target.host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `${this.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await Promise.all(
      [this.server, ...this.extraServers].map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
            // node's closeAllConnections() knows only the connections its HTTP parser still holds.
            for (const socket of this.upgradedSockets) socket.destroy();
          }),
      ),
    );
    for (const path of this.socketPaths) rmSync(path, { force: true });
  }
}

/**
 * The peer of each TLS connection, judged once: getPeerCertificate() builds a
 * fresh object from the certificate on every call, and an agent makes
 * thousands of calls on one connection (TLS 1.3 has no renegotiation, so the
 * peer cannot change under it).
 */
const peers = new WeakMap<TLSSocket, PeerCertificate | null>();

/** The certificate a TLS client presented, if any; plain HTTP and unix sockets have none. */
function peerOf(socket: TLSSocket): PeerCertificate | undefined {
  if (!socket.encrypted) return undefined;
  let peer = peers.get(socket);
  if (peer === undefined) {
    const cert = socket.getPeerCertificate();
    const cn = cert && Object.keys(cert).length > 0 ? cert.subject?.CN : undefined;
    peer = cert && Object.keys(cert).length > 0 ? { authorized: socket.authorized, commonName: Array.isArray(cn) ? cn[0] : cn } : null;
    peers.set(socket, peer);
  }
  return peer ?? undefined;
}

/**
 * A plain HTTP request on the TLS port: answered in plain HTTP on the
 * connection under the TLS layer (node's TLSSocket keeps it as `_parent`), so
 * `curl http://…` reads what to do instead of an empty reply.
 */
function answerPlainHttp(socket: TLSSocket): void {
  const raw = (socket as TLSSocket & { _parent?: unknown })._parent;
  if (!(raw instanceof Socket) || !raw.writable) return;
  writeRaw(raw, 400, 'Bad Request', {
    code: 'MALFORMED_REQUEST',
    message: "this port serves HTTPS: use an https:// URL and trust the cluster's CA (--tls-ca, CORRAL_TLS_CA or tls.ca; curl --cacert)",
  });
}

/** OpenSSL's verification codes, in words an operator acts on. */
function describeVerifyError(code: string, socket: TLSSocket): string {
  const cert = socket.getPeerCertificate();
  const who = cert.subject?.CN ? `"${String(cert.subject.CN)}"` : 'the certificate';
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return `${who} expired on ${new Date(cert.valid_to).toISOString()} (CERT_HAS_EXPIRED); issue a new one`;
    case 'CERT_NOT_YET_VALID':
      return `${who} is not valid before ${new Date(cert.valid_from).toISOString()} (CERT_NOT_YET_VALID); check the clocks`;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'CERT_SIGNATURE_FAILURE':
      return `${who} was not issued by this cluster's CA (${code})`;
    case 'INVALID_PURPOSE':
      return `${who} is not for client use (no clientAuth in extendedKeyUsage) (INVALID_PURPOSE)`;
    case 'CERT_REVOKED':
      return `${who} (serial ${cert.serialNumber}) has been revoked by the cluster CA (CERT_REVOKED)`;
    default:
      return `${who} failed verification (${code})`;
  }
}

/** A 'data' listener that leaves the data to node's HTTP parser (see createNodeServer). */
const ignoreData = (): void => undefined;

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
