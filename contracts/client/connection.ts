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

export interface ConnectionOptions {
  /** Master URL, e.g. http://127.0.0.1:5050 */
  master: string;
  path: string;
  principal?: string | undefined;
  secret?: string | undefined;
  /** Calls in flight per connection (HTTP pipelining) and connections for calls. */
  pipelining?: number;
  connections?: number;
  /** Share one HTTP dispatcher among many connections (thousands of simulated agents in one process). */
  dispatcher?: Dispatcher;
  /**
   * Dispatcher for the long-lived event stream, when it should not be the
   * calls' one: thousands of open streams in a pool make every call scan them
   * for a free connection.
   */
  streamDispatcher?: Dispatcher;
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

function errorText(body: string): string {
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
class BodyText {
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
  private readonly body = new BodyText(MAX_CALL_RESPONSE_BYTES);

  constructor(
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  // undici takes a handler for the current (non-deprecated) interface by this method's presence.
  onRequestStart(): void {}

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.body.add(chunk)) c.abort(new CorralError('PAYLOAD_TOO_LARGE', `the master's answer exceeds ${MAX_CALL_RESPONSE_BYTES} bytes`));
  }

  onResponseEnd(): void {
    const text = this.body.text();
    if (this.status >= 300) return this.reject(new CallError(this.status, errorText(text)));
    try {
      this.resolve(text ? (JSON.parse(text) as unknown) : undefined);
    } catch {
      this.reject(new CorralError('UNAVAILABLE', `the master answered ${this.status} with a body that is not JSON: ${text.slice(0, 200)}`));
    }
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.reject(err);
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
    if (this.status !== 200) this.settleOpen.reject(new CallError(this.status, errorText(this.errorBody.text())));
    this.settleDone.resolve();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.settleOpen.reject(err);
    if (err instanceof StreamAborted) this.settleDone.resolve();
    else this.settleDone.reject(err);
  }
}

export class V1Connection {
  private readonly pool: Dispatcher;
  private readonly ownsPool: boolean;
  /**
   * A connection of its own for acknowledgements, so they never wait behind
   * a burst of other calls: a framework that answers 10,000 offers at once
   * would otherwise hold every acknowledgement until the last ACCEPT is sent,
   * and the agents would resend their updates.
   */
  private readonly ackPool: Dispatcher | undefined;
  private readonly headers: Record<string, string>;
  streamId: string | undefined;
  private stream: StreamHandler | undefined;

  constructor(private readonly opts: ConnectionOptions) {
    this.ownsPool = opts.dispatcher === undefined;
    this.pool = opts.dispatcher ?? new Pool(opts.master, { connections: opts.connections ?? 2, pipelining: opts.pipelining ?? 1, keepAliveTimeout: 60_000 });
    this.ackPool = opts.dispatcher ? undefined : new Pool(opts.master, { connections: 1, pipelining: opts.pipelining ?? 1, keepAliveTimeout: 60_000 });
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
  }

  /** Open the event stream; `onEvent` gets each record in order; resolves when the stream ends. */
  async subscribe(call: unknown, onEvent: (event: Record<string, unknown>) => void): Promise<{ streamId: string; done: Promise<void> }> {
    // The first records may arrive with the headers and be handled before `opened` settles.
    const stream = new StreamHandler(onEvent, (streamId) => (this.streamId = streamId));
    this.stream = stream;
    const dispatcher = this.opts.streamDispatcher ?? this.opts.dispatcher ?? getGlobalDispatcher();
    const { origin, pathname } = new URL(this.opts.path, this.opts.master);
    dispatcher.dispatch({ origin, path: pathname, method: 'POST', headers: this.headers, body: JSON.stringify(call), bodyTimeout: 0, headersTimeout: 30_000 }, stream);
    const streamId = await stream.opened;
    return { streamId, done: stream.done };
  }

  /** A non-streaming call; resolves on 2xx, throws CallError with the server's message otherwise. */
  call(body: unknown, lane: 'calls' | 'acknowledgements' = 'calls'): Promise<unknown> {
    const headers = this.streamId ? { ...this.headers, 'mesos-stream-id': this.streamId } : this.headers;
    const pool = lane === 'acknowledgements' ? (this.ackPool ?? this.pool) : this.pool;
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      pool.dispatch({ origin: this.opts.master, path: this.opts.path, method: 'POST', headers, body: payload }, new CallHandler(resolve, reject));
    });
  }

  /** Drop the stream (the master sees the scheduler or agent disconnect). */
  disconnect(): void {
    this.stream?.abort();
    this.stream = undefined;
    this.streamId = undefined;
  }

  async close(): Promise<void> {
    this.disconnect();
    if (this.ownsPool) await Promise.all([this.pool.close(), this.ackPool?.close()]);
  }
}
