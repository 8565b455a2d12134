/**
 * Client side of the v1 streaming APIs: one long POST whose response is a
 * RecordIO event stream, and short calls that echo its Mesos-Stream-Id.
 * Used by framework schedulers, simulated agents and the corral agent.
 */
import { Pool, request, type Dispatcher } from 'undici';
import { CorralError, type ErrorCode } from '../../../common/errors.js';
import { RecordIODecoder } from '../../../common/http/recordio.js';
import { basicAuthHeader } from '../master/auth.js';

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
  constructor(readonly status: number, message: string) {
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
  private abort: AbortController | undefined;

  constructor(private readonly opts: ConnectionOptions) {
    this.ownsPool = opts.dispatcher === undefined;
    this.pool = opts.dispatcher ?? new Pool(opts.master, { connections: opts.connections ?? 2, pipelining: opts.pipelining ?? 1, keepAliveTimeout: 60_000 });
    this.ackPool = opts.dispatcher ? undefined : new Pool(opts.master, { connections: 1, pipelining: opts.pipelining ?? 1, keepAliveTimeout: 60_000 });
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
  }

  /** Open the event stream; `onEvent` gets each record in order; resolves when the stream ends. */
  async subscribe(call: unknown, onEvent: (event: Record<string, unknown>) => void): Promise<{ streamId: string; done: Promise<void> }> {
    this.abort = new AbortController();
    const res = await request(new URL(this.opts.path, this.opts.master), {
      method: 'POST',
      headers: this.headers,
      body: JSON.stringify(call),
      signal: this.abort.signal,
      ...((this.opts.streamDispatcher ?? this.opts.dispatcher) ? { dispatcher: this.opts.streamDispatcher ?? this.opts.dispatcher } : {}),
      bodyTimeout: 0,
      headersTimeout: 30_000,
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      throw new CallError(res.statusCode, errorText(text));
    }
    const streamId = String(res.headers['mesos-stream-id'] ?? '');
    this.streamId = streamId;
    const decoder = new RecordIODecoder();
    const done = (async () => {
      try {
        for await (const chunk of res.body) {
          for (const record of decoder.push(chunk as Buffer)) onEvent(JSON.parse(record) as Record<string, unknown>);
        }
      } catch (err) {
        if ((err as Error).name !== 'AbortError') throw err;
      }
    })();
    return { streamId, done };
  }

  /** A non-streaming call; resolves on 2xx, throws CallError with the server's message otherwise. */
  async call(body: unknown, lane: 'calls' | 'acknowledgements' = 'calls'): Promise<unknown> {
    const headers = this.streamId ? { ...this.headers, 'mesos-stream-id': this.streamId } : this.headers;
    const pool = lane === 'acknowledgements' ? (this.ackPool ?? this.pool) : this.pool;
    const res = await pool.request({ origin: this.opts.master, path: this.opts.path, method: 'POST', headers, body: JSON.stringify(body) });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new CallError(res.statusCode, errorText(text));
    return text ? (JSON.parse(text) as unknown) : undefined;
  }

  /** Drop the stream (the master sees the scheduler or agent disconnect). */
  disconnect(): void {
    this.abort?.abort();
    this.abort = undefined;
    this.streamId = undefined;
  }

  async close(): Promise<void> {
    this.disconnect();
    if (this.ownsPool) await Promise.all([this.pool.close(), this.ackPool?.close()]);
  }
}
