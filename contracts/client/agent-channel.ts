/**
 * The agent's side of the agent channel: one WebSocket to the leading master
 * (GET /api/v1/agent with an upgrade) that carries the agent's calls one way,
 * each a text message with the call's JSON, and the master's events the
 * other. A call is sent and not answered; a call the master refuses comes
 * back as an ERROR event.
 *
 * A master that serves no channel (an older release, or `agents.channel`
 * off) answers the upgrade 404, 405 or 426: ChannelUnavailable, and the
 * agent registers over POST instead (V1Connection).
 */
import { isIP, type createConnection, type Socket } from 'node:net';
import { connect as tlsConnectTo, createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import { WebSocket } from 'ws';
import { CorralError } from '../errors.js';
import { basicAuthHeader } from './auth-header.js';
import { BodyText, CallError, errorText } from './connection.js';
import { LeaderRedirect, redirectTarget, viaLeader, type LeaderTracker } from './masters.js';
import { tlsConnect, tlsFailure, type ClientTls } from './tls.js';

export interface AgentChannelOptions {
  /** Where the leader is (shared with the agent's POST transport, so both follow the same one). */
  leader: LeaderTracker;
  path: string;
  principal?: string | undefined;
  secret?: string | undefined;
  tls?: ClientTls | undefined;
  /** Called with each channel's connection once open (a process of many simulated agents adjusts its sockets). */
  onSocket?: ((socket: Socket) => void) | undefined;
}

/**
 * One secure context per ClientTls: given ca/cert/key, node parses them into
 * a new context for every connection, and many agents of one process (or one
 * agent reconnecting) share theirs.
 */
const contexts = new WeakMap<ClientTls, SecureContext>();

/**
 * The last TLS session each ClientTls got from each master, to resume: a
 * channel that breaks comes back without a full handshake (undici does the
 * same for the POST transport).
 */
const sessions = new WeakMap<ClientTls, Map<string, Buffer>>();

/** tls.connect as `ws` makes it (servername unless an IP), with the shared context and session resumption. */
function tlsConnector(tls: ClientTls, origin: string): (options: ConnectionOptions) => Socket {
  let byOrigin = sessions.get(tls);
  if (!byOrigin) sessions.set(tls, (byOrigin = new Map()));
  const known = byOrigin;
  return (options) => {
    const host = options.host ?? '';
    const session = known.get(origin);
    const socket = tlsConnectTo({
      ...options,
      path: undefined,
      servername: options.servername || (isIP(host) ? '' : host),
      secureContext: secureContextFor(tls),
      ...(session && { session }),
    });
    socket.on('session', (s: Buffer) => known.set(origin, s));
    return socket;
  };
}

function secureContextFor(tls: ClientTls): SecureContext {
  let context = contexts.get(tls);
  if (!context) {
    // The options undici's connections get (tlsConnect), so both transports trust and present the same.
    context = createSecureContext(tlsConnect(tls).connect ?? {});
    contexts.set(tls, context);
  }
  return context;
}

/** The master serves no agent channel: register over POST. */
export class ChannelUnavailable extends CorralError {
  constructor(url: string, status: number) {
    super('NOT_FOUND', `${url} serves no agent channel (it answered the WebSocket upgrade with ${status})`, { status });
  }
}

/** Enough of a refused upgrade's answer for its error message. */
const MAX_REFUSAL_BYTES = 64 * 1024;
/** Larger than any event the master sends (its events are bounded like its event streams' records). */
const MAX_EVENT_BYTES = 256 * 1024 * 1024;

export class AgentChannelClient {
  private ws: WebSocket | undefined;
  /** Bumped by disconnect() and close(): a search for the leader under way stops there. */
  private generation = 0;
  private closed = false;
  private readonly headers: Record<string, string> = {};

  constructor(private readonly opts: AgentChannelOptions) {
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
  }

  /**
   * Open the channel at the leader and send `first` (REGISTER) on it;
   * resolves once it is open, with `done` settling when it ends (rejected
   * when it ended on an error or a close that was not normal).
   */
  subscribe(first: unknown, onEvent: (event: Record<string, unknown>) => void): Promise<{ done: Promise<void> }> {
    const generation = this.generation;
    const payload = JSON.stringify(first);
    return viaLeader(this.opts.leader, (url) => this.open(url, payload, onEvent, generation), { what: `to ${this.opts.path} (agent channel)` });
  }

  private open(url: string, first: string, onEvent: (event: Record<string, unknown>) => void, generation: number): Promise<{ done: Promise<void> }> {
    if (this.closed || generation !== this.generation) return Promise.reject(new CorralError('UNAVAILABLE', 'the agent channel was closed by the client'));
    const target = new URL(this.opts.path, url);
    target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:';
    const tls = this.opts.tls;
    const ws = new WebSocket(target, {
      headers: this.headers,
      perMessageDeflate: false,
      handshakeTimeout: 30_000,
      maxPayload: MAX_EVENT_BYTES,
      // `ws` calls it with one options object only; its typing is node's overloaded net.createConnection.
      ...(tls && target.protocol === 'wss:' && { createConnection: tlsConnector(tls, target.origin) as unknown as typeof createConnection }),
    });
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let opened = false;
      let failure: Error | undefined;
      let settleDone!: { resolve: () => void; reject: (err: Error) => void };
      const done = new Promise<void>((res, rej) => (settleDone = { resolve: res, reject: rej }));
      // Nobody awaits `done` when opening fails.
      done.catch(() => undefined);
      ws.on('unexpected-response', (req, res) => {
        const body = new BodyText(MAX_REFUSAL_BYTES);
        res.on('data', (c: Buffer) => body.add(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const location = res.headers.location;
          const leader = redirectTarget(status, location, url);
          if (leader !== undefined) failure = new LeaderRedirect(status, leader, String(location));
          else if (status === 404 || status === 405 || status === 426) failure = new ChannelUnavailable(url, status);
          else failure = new CallError(status, errorText(body.text()));
          reject(failure);
          req.destroy();
        });
        res.on('error', (err) => reject(err));
      });
      ws.on('upgrade', (res) => this.opts.onSocket?.(res.socket));
      ws.on('open', () => {
        opened = true;
        ws.send(first);
        resolve({ done });
      });
      ws.on('message', (data) => {
        try {
          onEvent(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>);
        } catch (err) {
          failure = err as Error;
          ws.terminate();
        }
      });
      ws.on('error', (err) => {
        failure ??= tlsFailure(err, url) ?? err;
        if (!opened) reject(failure);
      });
      ws.on('close', (code, reason) => {
        if (this.ws === ws) this.ws = undefined;
        if (!opened) return reject(failure ?? new CorralError('UNAVAILABLE', `the agent channel to ${url} closed before it opened (${code})`));
        // 1000: the master ended it; 1005 (no code) and 1006 (no close frame) end as a broken event stream does.
        if (code === 1000 || code === 1001 || generation !== this.generation) settleDone.resolve();
        else settleDone.reject(failure ?? new CorralError('UNAVAILABLE', `the master closed the agent channel (${code}${reason.length ? `: ${reason.toString('utf8')}` : ''})`));
      });
    });
  }

  /** Send a call; it is not answered (a refusal comes back as an ERROR event). */
  send(call: unknown): Promise<void> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new CorralError('UNAVAILABLE', 'the agent channel is not open'));
    ws.send(JSON.stringify(call));
    return Promise.resolve();
  }

  /** Drop the channel at once, as a crash would (the master sees the agent disconnect). */
  disconnect(): void {
    this.generation++;
    this.ws?.terminate();
    this.ws = undefined;
  }

  /** For good; `flush`: what was sent leaves first, and the channel ends with a close handshake. */
  close(flush = false): void {
    this.closed = true;
    if (flush && this.ws?.readyState === WebSocket.OPEN) {
      this.generation++;
      this.ws.close(1000);
      this.ws = undefined;
      return;
    }
    this.disconnect();
  }
}
