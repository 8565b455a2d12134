/**
 * Client side of the v1 streaming APIs: one long POST whose response is a
 * RecordIO event stream, and short calls that echo its Mesos-Stream-Id.
 * Used by framework schedulers, simulated agents and the corral agent.
 *
 * Both go through undici's dispatch() with small handlers rather than
 * request(): no Readable body stream and no promise per chunk. In the
 * placement benchmark that cut the simulated agents' CPU by ~15%, which
 * matters to a framework sending thousands of ACCEPTs a second too.
 */
import { Pool, getGlobalDispatcher, type Dispatcher } from 'undici';
import { CorralError, type ErrorCode } from '../errors.js';
import { RecordIODecoder } from '../recordio.js';
import { basicAuthHeader } from './auth-header.js';
import { LeaderRedirect, LeaderTracker, redirectTarget, trackerFor, viaLeader, type MasterSpec } from './masters.js';
import { tlsAgent, tlsConnect, tlsFailure, type ClientTls } from './tls.js';

export interface ConnectionOptions {
  /**
   * Master URL, e.g. http://127.0.0.1:5050; or several (an array, or one
   * string separated by commas), or a tracker shared with other clients: the
   * connection follows the leader among them (see masters.ts).
   */
  master: MasterSpec | LeaderTracker;
  path: string;
  principal?: string | undefined;
  secret?: string | undefined;
  /** Calls in flight per connection (HTTP pipelining) and connections for calls. */
  pipelining?: number;
  connections?: number;
  /**
   * Share one HTTP dispatcher among many connections (thousands of simulated
   * agents in one process). With several masters it must serve any origin
   * (an undici Agent, not a Pool).
   */
  dispatcher?: Dispatcher;
  /**
   * Dispatcher for the long-lived event stream, when it should not be the
   * calls' one: thousands of open streams in a pool make every call scan them
   * for a free connection.
   */
  streamDispatcher?: Dispatcher;
  /** CA to trust and client certificate to present (https masters); applies to the pools made here, not to a given dispatcher. */
  tls?: ClientTls | undefined;
}

export class CallError extends CorralError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(codeFor(status), message, { status });
  }
}

function codeFor(status: number): ErrorCode {
  if (status === 400) return 'INVALID_ARGUMENT';
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status >= 500) return 'UNAVAILABLE';
  return 'FAILED_PRECONDITION';
}

export function errorText(body: string): string {
  try {
    const j = JSON.parse(body) as { message?: string };
    if (j.message) return j.message;
  } catch {
    // not JSON: use the text as it is
  }
  return body.slice(0, 2000);
}

/** Largest answer to a non-streaming call that is read (the APIs answer these with no body or a small one). */
const MAX_CALL_RESPONSE_BYTES = 16 * 1024 * 1024;
/** Enough of a refused stream's answer for its error message. */
const MAX_STREAM_ERROR_BYTES = 64 * 1024;

/** A response body gathered up to a limit. */
export class BodyText {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit: number) {}

  /** Keep `chunk`; false (and not kept) once the body is over the limit. */
  add(chunk: Buffer): boolean {
    this.size += chunk.length;
    if (this.size > this.limit) return false;
    this.chunks.push(chunk);
    return true;
  }

  text(): string {
    return this.chunks.length === 1 ? this.chunks[0]!.toString('utf8') : Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Collects a call's answer: resolves with its JSON on 2xx, rejects with CallError otherwise. */
class CallHandler implements Dispatcher.DispatchHandler {
  private status = 0;
  private location: string | string[] | undefined;
  private readonly body = new BodyText(MAX_CALL_RESPONSE_BYTES);

  constructor(
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (err: Error) => void,
    /** The master asked, to resolve a relative Location. */
    private readonly url: string,
  ) {}

  // undici takes a handler for the current (non-deprecated) interface by this method's presence.
  onRequestStart(): void {}

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = statusCode;
    if (statusCode === 307 || statusCode === 308) this.location = headers.location;
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.body.add(chunk)) c.abort(new CorralError('PAYLOAD_TOO_LARGE', `the master's answer exceeds ${MAX_CALL_RESPONSE_BYTES} bytes`));
  }

  onResponseEnd(): void {
    const text = this.body.text();
    const leader = redirectTarget(this.status, this.location, this.url);
    if (leader !== undefined) return this.reject(new LeaderRedirect(this.status, leader, String(this.location)));
    if (this.status >= 300) return this.reject(new CallError(this.status, errorText(text)));
    try {
      this.resolve(text ? (JSON.parse(text) as unknown) : undefined);
    } catch {
      this.reject(new CorralError('UNAVAILABLE', `the master answered ${this.status} with a body that is not JSON: ${text.slice(0, 200)}`));
    }
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.reject(tlsFailure(err, this.url) ?? err);
  }
}

class StreamAborted extends Error {
  override name = 'AbortError';
}

/**
 * Reads the event stream: chunks go straight into the RecordIO decoder and
 * each record to `onEvent`. `opened` resolves with the stream id once the
 * master answers 200 (and rejects otherwise); `done` settles when the
 * stream ends (an abort by disconnect() is a normal end).
 */
class StreamHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private aborted = false;
  private status = 0;
  private location: string | string[] | undefined;
  private readonly decoder = new RecordIODecoder();
  private readonly errorBody = new BodyText(MAX_STREAM_ERROR_BYTES);
  private settleOpen!: { resolve: (streamId: string) => void; reject: (err: Error) => void };
  private settleDone!: { resolve: () => void; reject: (err: Error) => void };
  readonly opened = new Promise<string>((resolve, reject) => (this.settleOpen = { resolve, reject }));
  readonly done = new Promise<void>((resolve, reject) => (this.settleDone = { resolve, reject }));

  constructor(
    private readonly onEvent: (event: Record<string, unknown>) => void,
    /** Called with the stream id before the first record is handed on: a record's handler may already make calls. */
    private readonly onOpen: (streamId: string) => void,
    /** The master asked, to resolve a relative Location. */
    private readonly url: string,
  ) {
    // Nobody awaits `done` when opening fails.
    this.done.catch(() => undefined);
  }

  abort(): void {
    this.aborted = true;
    if (this.controller) StreamHandler.close(this.controller);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // disconnect() while the request was still queued for a connection.
    if (this.aborted) StreamHandler.close(controller);
  }

  private static close(controller: Dispatcher.DispatchController): void {
    controller.abort(new StreamAborted('event stream closed by the client'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = statusCode;
    if (statusCode === 307 || statusCode === 308) this.location = headers.location;
    if (statusCode !== 200) return;
    const streamId = String(headers['mesos-stream-id'] ?? '');
    this.onOpen(streamId);
    this.settleOpen.resolve(streamId);
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.status !== 200) {
      this.errorBody.add(chunk);
      return;
    }
    try {
      this.decoder.push(chunk, (record) => this.onEvent(JSON.parse(record) as Record<string, unknown>));
    } catch (err) {
      c.abort(err as Error);
    }
  }

  onResponseEnd(): void {
    if (this.status !== 200) {
      const leader = redirectTarget(this.status, this.location, this.url);
      this.settleOpen.reject(leader !== undefined ? new LeaderRedirect(this.status, leader, String(this.location)) : new CallError(this.status, errorText(this.errorBody.text())));
    }
    this.settleDone.resolve();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    err = tlsFailure(err, this.url) ?? err;
    this.settleOpen.reject(err);
    if (err instanceof StreamAborted) this.settleDone.resolve();
    else this.settleDone.reject(err);
  }
}

interface Pools {
  calls: Dispatcher;
  /**
   * A connection of its own for acknowledgements, so they never wait behind
   * a burst of other calls: a framework that answers 10,000 offers at once
   * would otherwise hold every acknowledgement until the last ACCEPT is sent,
   * and the agents would resend their updates.
   */
  acks: Dispatcher | undefined;
}

export class V1Connection {
  /** Which master to talk to: the leader, found through the list. */
  readonly leader: LeaderTracker;
  /** Pools by master URL (one while the leader stays where it is). */
  private readonly pools = new Map<string, Pools>();
  private readonly ownsPool: boolean;
  /** The event stream's dispatcher when TLS is configured and none was given (the global one has no CA). */
  private tlsStreams: Dispatcher | undefined;
  private readonly headers: Record<string, string>;
  streamId: string | undefined;
  /** The calls' headers with the current stream's id, made once per stream (every call carries them). */
  private withStreamId: { streamId: string; headers: Record<string, string> } | undefined;
  private stream: StreamHandler | undefined;
  /** The master the current stream was opened at. */
  streamMaster: string | undefined;
  /** Bumped by disconnect() and close(): a search for the leader under way stops there. */
  private generation = 0;
  private closed = false;

  constructor(private readonly opts: ConnectionOptions) {
    this.leader = trackerFor(opts.master);
    this.ownsPool = opts.dispatcher === undefined;
    this.poolsFor(this.leader.url);
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
  }

  private poolsFor(url: string): Pools {
    let p = this.pools.get(url);
    if (!p) {
      if (this.closed) throw new CorralError('UNAVAILABLE', 'the connection to the master is closed');
      const o = this.opts;
      p = o.dispatcher
        ? { calls: o.dispatcher, acks: undefined }
        : {
            calls: new Pool(url, { connections: o.connections ?? 2, pipelining: o.pipelining ?? 1, keepAliveTimeout: 60_000, ...tlsConnect(o.tls) }),
            acks: new Pool(url, { connections: 1, pipelining: o.pipelining ?? 1, keepAliveTimeout: 60_000, ...tlsConnect(o.tls) }),
          };
      this.pools.set(url, p);
    }
    return p;
  }

  /**
   * Open the event stream at the leader (following redirects, moving along
   * the list of masters); `onEvent` gets each record in order; resolves when
   * the stream is open, with `done` settling when it ends.
   */
  async subscribe(call: unknown, onEvent: (event: Record<string, unknown>) => void, extraHeaders?: Record<string, string>): Promise<{ streamId: string; done: Promise<void> }> {
    const body = JSON.stringify(call);
    const generation = this.generation;
    const headers = extraHeaders ? { ...this.headers, ...extraHeaders } : this.headers;
    return viaLeader(this.leader, (url) => this.openStream(url, body, headers, onEvent, generation), { what: `to ${this.opts.path}` });
  }

  private async openStream(
    url: string,
    body: string,
    headers: Record<string, string>,
    onEvent: (event: Record<string, unknown>) => void,
    generation: number,
  ): Promise<{ streamId: string; done: Promise<void> }> {
    if (this.closed || generation !== this.generation) throw new StreamAborted('event stream closed by the client');
    // The first records may arrive with the headers and be handled before `opened` settles.
    const stream = new StreamHandler(onEvent, (streamId) => ((this.streamId = streamId), (this.streamMaster = url)), url);
    this.stream = stream;
    const dispatcher = this.opts.streamDispatcher ?? this.opts.dispatcher ?? (this.opts.tls ? (this.tlsStreams ??= tlsAgent(this.opts.tls)) : getGlobalDispatcher());
    const { origin, pathname } = new URL(this.opts.path, url);
    dispatcher.dispatch({ origin, path: pathname, method: 'POST', headers, body, bodyTimeout: 0, headersTimeout: 30_000 }, stream);
    const streamId = await stream.opened;
    return { streamId, done: stream.done };
  }

  /** A non-streaming call at the leader; resolves on 2xx, throws CallError with the server's message otherwise. */
  call(body: unknown, lane: 'calls' | 'acknowledgements' = 'calls'): Promise<unknown> {
    const payload = JSON.stringify(body);
    const url = this.leader.url;
    // The common case goes straight to the known leader, with no promise chained on; only a failure takes the slow path.
    return new Promise((resolve, reject) => {
      const retry = (error: Error): void => void viaLeader(this.leader, (u) => this.send(u, payload, lane), { what: `to ${this.opts.path}` }, { url, error }).then(resolve, reject);
      this.dispatchCall(url, payload, lane, resolve, retry);
    });
  }

  private send(url: string, payload: string, lane: 'calls' | 'acknowledgements'): Promise<unknown> {
    return new Promise((resolve, reject) => this.dispatchCall(url, payload, lane, resolve, reject));
  }

  private streamHeaders(streamId: string): Record<string, string> {
    if (this.withStreamId?.streamId !== streamId) this.withStreamId = { streamId, headers: { ...this.headers, 'mesos-stream-id': streamId } };
    return this.withStreamId.headers;
  }

  private dispatchCall(url: string, payload: string, lane: 'calls' | 'acknowledgements', resolve: (v: unknown) => void, reject: (err: Error) => void): void {
    const headers = this.streamId ? this.streamHeaders(this.streamId) : this.headers;
    let pools: Pools;
    try {
      pools = this.poolsFor(url);
    } catch (err) {
      reject(err as Error);
      return;
    }
    const pool = lane === 'acknowledgements' ? (pools.acks ?? pools.calls) : pools.calls;
    // undici pipelines only calls that are idempotent and not blocking (a POST is neither by default): without
    // both it holds every call until the one before it is answered, whatever `pipelining` says. The v1 calls are
    // delivered at least once already (a call whose connection fails is sent again, above), which is what undici's
    // resending of idempotent calls needs. A slow answer delays the calls behind it on its connection: that is what
    // asking for pipelining accepts (the default is 1).
    pool.dispatch({ origin: url, path: this.opts.path, method: 'POST', headers, body: payload, idempotent: true, blocking: false }, new CallHandler(resolve, reject, url));
  }

  /** Drop the stream (the master sees the scheduler or agent disconnect). */
  disconnect(): void {
    this.generation++;
    this.stream?.abort();
    this.stream = undefined;
    this.streamId = undefined;
    this.streamMaster = undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.disconnect();
    if (this.ownsPool) await Promise.all([...this.pools.values()].flatMap((p) => [p.calls.close(), p.acks?.close()]));
    await this.tlsStreams?.close();
  }
}
