/**
 * A server-side RecordIO event stream (the Mesos v1 streaming response):
 * 200 with chunked records, closed when either side ends it. A reader that
 * stops reading is cut off once too much is buffered, so one stuck client
 * cannot grow the daemon's memory without bound.
 *
 * Every record is an HTTP chunk of its own, as Mesos sends them: clients
 * written against Mesos may read one record per chunk (see
 * encodeChunkedRecord). The stream frames the chunks itself — node frames
 * each res.write() as one chunk, and a write per record cost ~2 µs a record
 * more than one write per burst — so a burst of records is still one write,
 * and with the socket corked for the turn, one syscall.
 */
import type { ServerResponse } from 'node:http';
import { encodeChunkedRecord, encodeRecord } from '../../contracts/recordio.js';
import { corkForThisTurn } from './cork.js';
import { limiterOf, type StreamKind } from './limits.js';
import { isCorralError } from '../../contracts/errors.js';

interface EventStreamOptions {
  headers?: Record<string, string>;
  maxBufferedBytes?: number;
  onClose?: () => void;
  /** What the stream counts as against the server's caps (default "stream"). */
  kind?: StreamKind;
  /** The authenticated client, counted instead of its address. */
  principal?: string;
  /** The route has counted this request already (RequestContext.admit). */
  admitted?: boolean;
}

/** The chunk that ends a chunked body (no trailers). */
const LAST_CHUNK = '0\r\n\r\n';

export class EventStream {
  private closed = false;
  /** Refused over a server cap: answered with the error, nothing is sent. */
  private refused = false;
  private readonly maxBuffered: number;
  /** The body is chunked and this stream writes the chunk framing (node's is turned off after the headers). */
  private readonly framing: boolean;
  /**
   * Over TLS records are written as Buffers. Node writes a string to a plain
   * socket in place, but to a TLS socket only after copying it into a native
   * buffer of its own for each write; converted here instead, the 10,000-agent
   * placement bench's master spent 5.8 s of CPU against 6.1–6.4 s (and as
   * Buffers over plain TCP 3.8–4.1 s against 3.4–3.6 s, so plain stays strings).
   */
  private readonly binary: boolean;

  constructor(
    private readonly res: ServerResponse,
    opts: EventStreamOptions = {},
  ) {
    this.maxBuffered = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    const done = (): void => {
      if (this.closed) return;
      this.closed = true;
      opts.onClose?.();
    };
    res.on('close', done);
    res.on('error', done);
    // Over the server's cap the stream is answered 429/503 and is closed from the start: to its
    // owner it is a stream whose client left at once (onClose follows), never a thrown error
    // after the owner has registered it.
    const limiter = opts.admitted ? undefined : limiterOf(res.socket);
    // A client already gone has had its 'close' (a slot taken now would never be given back).
    if (limiter && res.socket && !res.destroyed && !res.socket.destroyed) {
      try {
        res.once('close', limiter.admit(res.socket, opts.kind ?? 'stream', opts.principal));
      } catch (err) {
        if (!isCorralError(err)) throw err;
        this.framing = false;
        this.binary = false;
        const body = JSON.stringify(err.toJSON());
        res.writeHead(err.httpStatus, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Retry-After': '1' });
        res.end(body);
        this.refused = true;
        return;
      }
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Connection', 'keep-alive');
    for (const [k, v] of Object.entries(opts.headers ?? {})) res.setHeader(k, v);
    res.flushHeaders();
    // The headers say "Transfer-Encoding: chunked" (an HTTP/1.0 client gets a plain body that ends
    // with the connection). From here node writes the body as given; the chunks are framed below.
    this.framing = res.chunkedEncoding;
    res.chunkedEncoding = false;
    this.binary = (res.socket as { encrypted?: boolean } | null)?.encrypted === true;
    res.socket?.setNoDelay(true);
  }

  get isOpen(): boolean {
    return !this.closed && !this.refused;
  }

  private encode(event: unknown): string {
    return this.framing ? encodeChunkedRecord(event) : encodeRecord(event);
  }

  /** Whether the reader keeps up; one that does not is cut off. */
  private writable(): boolean {
    if (this.closed || this.refused) return false;
    if (this.res.writableLength > this.maxBuffered) {
      this.res.destroy(new Error('event stream reader is too slow'));
      return false;
    }
    corkForThisTurn(this.res.socket);
    return true;
  }

  send(event: unknown): boolean {
    if (!this.writable()) return false;
    const record = this.encode(event);
    this.res.write(this.binary ? Buffer.from(record, 'utf8') : record);
    return true;
  }

  /** Send several records, each its own chunk, in one write (one syscall for a burst of updates). */
  sendAll(events: unknown[]): boolean {
    if (events.length === 0) return this.isOpen;
    if (!this.writable()) return false;
    let out = '';
    for (const e of events) out += this.encode(e);
    this.res.write(this.binary ? Buffer.from(out, 'utf8') : out);
    return true;
  }

  end(last?: unknown): void {
    if (this.closed || this.refused) return;
    const tail = last !== undefined ? this.encode(last) : '';
    this.res.end(this.framing ? tail + LAST_CHUNK : tail);
  }
}
