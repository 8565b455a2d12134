/**
 * A server-side RecordIO event stream (the Mesos v1 streaming response):
 * 200 with chunked records, closed when either side ends it. A reader that
 * stops reading is cut off once too much is buffered, so one stuck client
 * cannot grow the daemon's memory without bound.
 */
import type { ServerResponse } from 'node:http';
import { encodeRecord } from './recordio.js';
import { corkForThisTurn } from './cork.js';

export interface EventStreamOptions {
  headers?: Record<string, string>;
  maxBufferedBytes?: number;
  onClose?: () => void;
}

export class EventStream {
  private closed = false;
  private readonly maxBuffered: number;

  constructor(
    private readonly res: ServerResponse,
    opts: EventStreamOptions = {},
  ) {
    this.maxBuffered = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Connection', 'keep-alive');
    for (const [k, v] of Object.entries(opts.headers ?? {})) res.setHeader(k, v);
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    const done = (): void => {
      if (this.closed) return;
      this.closed = true;
      opts.onClose?.();
    };
    res.on('close', done);
    res.on('error', done);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  send(event: unknown): boolean {
    if (this.closed) return false;
    if (this.res.writableLength > this.maxBuffered) {
      this.res.destroy(new Error('event stream reader is too slow'));
      return false;
    }
    corkForThisTurn(this.res.socket);
    this.res.write(encodeRecord(event));
    return true;
  }

  /** Send several records in one write (one syscall for a burst of updates). */
  sendAll(events: unknown[]): boolean {
    if (this.closed || events.length === 0) return !this.closed;
    if (this.res.writableLength > this.maxBuffered) {
      this.res.destroy(new Error('event stream reader is too slow'));
      return false;
    }
    corkForThisTurn(this.res.socket);
    this.res.write(events.map(encodeRecord).join(''));
    return true;
  }

  end(last?: unknown): void {
    if (this.closed) return;
    if (last !== undefined) this.res.write(encodeRecord(last));
    this.res.end();
  }
}
