/**
 * One contract watch over etcd's raw Watch RPC. The etcd3 client's high-level
 * watcher hides compact_revision behind a generic "Watcher canceled" error and
 * does not group events by revision, so this drives the stream directly: one
 * gRPC stream per watch, events grouped per revision, and after a dropped
 * connection the watch resumes from the next undelivered revision (so callers
 * neither lose nor repeat a revision). Only when etcd stays unreachable past
 * the retry budget does it end with UNAVAILABLE.
 */
import { reportWatchError } from './watch-hub.js';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import type { Logger } from '../log.js';
import type { IDuplexStream, IKeyValue, IWatchRequest, IWatchResponse, WatchClient } from 'etcd3';
import type { KeyValue, Watch, WatchEvent, WatchOptions } from '../../contracts/store/types.js';

interface EtcdWatchDeps {
  watchClient: WatchClient;
  range: { key: Buffer; range_end: Buffer };
  decode(kv: IKeyValue): KeyValue;
  log: Logger;
  /** Called once when the watch ends for any reason. */
  onDone(w: EtcdWatch): void;
  /** A failure no retry can mend (TLS, credentials, permission) as its typed error, else undefined. */
  fatal?(err: unknown): CorralError | undefined;
  /** Drop the client's auth token so the next stream fetches a new one. */
  reauthenticate?(): void;
}

const RETRY_BUDGET_MS = 30_000;
const MAX_BACKOFF_MS = 2_000;

export class EtcdWatch implements Watch {
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failingSince: number | undefined;
  private attempt = 0;
  private done = false;

  /** @param nextRev first revision still to deliver; 0 = "from now" (only until the first create). */
  constructor(
    private readonly deps: EtcdWatchDeps,
    private readonly opts: WatchOptions,
    private nextRev: number,
  ) {
    void this.connect();
  }

  cancel(): void {
    this.finish();
  }

  /** Ends the watch and reports `err` (asynchronously) to onError. */
  fail(err: Error): void {
    if (this.done) return;
    this.finish();
    reportWatchError(this.opts, this.deps.log, err);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    const stream = this.stream;
    this.stream = undefined;
    // Ending the request side first: the client library takes an error on a stream still open for
    // writing (the CANCELLED that cancel() causes) for a broken host, and closes every channel to it,
    // failing the other calls in flight.
    stream?.end();
    stream?.cancel();
    this.deps.onDone(this);
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (this.done) return;
    let stream: IDuplexStream<IWatchRequest, IWatchResponse>;
    try {
      stream = await this.deps.watchClient.watch();
    } catch (err) {
      this.retry(err);
      return;
    }
    // Keep an error listener for the stream's whole life: an unhandled 'error' would crash the process.
    stream.on('error', (err) => this.onBroken(stream, err));
    if (this.done) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    stream.on('data', (res) => this.onResponse(stream, res));
    stream.on('end', () => this.onBroken(stream, new Error('watch stream ended')));
    stream.write({
      create_request: {
        key: this.deps.range.key,
        range_end: this.deps.range.range_end,
        start_revision: this.nextRev,
        prev_kv: this.opts.prevKv === true,
        progress_notify: true,
      },
    });
  }

  private onBroken(stream: IDuplexStream<IWatchRequest, IWatchResponse>, err: unknown): void {
    if (this.done || stream !== this.stream) return;
    this.stream = undefined;
    stream.cancel();
    this.retry(err);
  }

  private retry(err: unknown): void {
    if (this.done) return;
    const fatal = this.deps.fatal?.(err);
    if (fatal) {
      this.fail(fatal);
      return;
    }
    const now = Date.now();
    this.failingSince ??= now;
    if (now - this.failingSince > RETRY_BUDGET_MS) {
      this.fail(new CorralError('UNAVAILABLE', `etcd watch lost and not re-established: ${errorMessage(err)}`, undefined, { cause: err }));
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.attempt++);
    this.deps.log.debug({ err: errorMessage(err), delay, nextRevision: this.nextRev }, 'etcd watch stream broken, reconnecting');
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  private onResponse(stream: IDuplexStream<IWatchRequest, IWatchResponse>, res: IWatchResponse): void {
    if (this.done || stream !== this.stream) return;
    const compactRev = Number(res.compact_revision || 0);
    if (compactRev > 0) {
      this.fail(
        new CorralError('STORE_COMPACTED', `revision ${this.nextRev} has been compacted (oldest available: ${compactRev})`, {
          fromRevision: this.nextRev,
          compactRevision: compactRev,
        }),
      );
      return;
    }
    if (res.canceled) {
      // etcd forgot the token this stream was made with (it restarted, or the token expired unused):
      // the client would offer it again forever, as it renews tokens only for unary calls.
      if (res.cancel_reason?.includes('invalid auth token') && this.deps.reauthenticate) {
        this.deps.reauthenticate();
        this.onBroken(stream, new Error(res.cancel_reason));
        return;
      }
      this.fail(this.deps.fatal?.(new Error(res.cancel_reason)) ?? new CorralError('UNAVAILABLE', `etcd canceled the watch${res.cancel_reason ? `: ${res.cancel_reason}` : ''}`));
      return;
    }
    if (res.created) {
      this.failingSince = undefined;
      this.attempt = 0;
      if (this.nextRev === 0) this.nextRev = Number(res.header.revision) + 1;
      return;
    }
    if (res.events.length === 0) {
      // Progress notification: nothing for us up to this revision, so a reconnect may start after it.
      const rev = Number(res.header?.revision ?? 0);
      if (rev >= this.nextRev) this.nextRev = rev + 1;
      return;
    }
    let batch: WatchEvent[] = [];
    let batchRev = 0;
    for (const e of res.events) {
      const rev = Number(e.kv.mod_revision);
      if (rev !== batchRev) {
        this.deliver(batch, batchRev);
        batch = [];
        batchRev = rev;
      }
      const ev: WatchEvent = { type: e.type === 'Delete' ? 'delete' : 'put', kv: this.deps.decode(e.kv) };
      if (this.opts.prevKv && e.prev_kv) ev.prevKv = this.deps.decode(e.prev_kv);
      batch.push(ev);
    }
    this.deliver(batch, batchRev);
  }

  private deliver(events: WatchEvent[], revision: number): void {
    // After a reconnect etcd may resend a revision we already delivered.
    if (events.length === 0 || this.done || revision < this.nextRev) return;
    this.nextRev = revision + 1;
    try {
      this.opts.onEvents(events, revision);
    } catch (err) {
      this.deps.log.error({ revision, err: errorMessage(err) }, 'watch onEvents handler threw');
    }
  }
}
