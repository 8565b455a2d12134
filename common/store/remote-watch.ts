/**
 * One contract watch over the master's store API: one RecordIO stream per
 * watch (a V1Connection on the RemoteStore's stream pool). The stream tells
 * where it starts (CREATED), then brings one EVENTS record per revision, which
 * is handed on as one onEvents call. When the stream breaks — the master
 * restarts, the connection drops, heartbeats stop — the watch reconnects and
 * resumes from the next undelivered revision, so callers neither lose nor
 * repeat a revision (the same scheme as etcd-watch.ts). It ends with
 * UNAVAILABLE only when the master stays unreachable past the retry budget,
 * with STORE_COMPACTED when its resume point has been compacted away, and
 * with the master's answer when that is final (FORBIDDEN, UNAUTHENTICATED, …).
 */
import { reportWatchError } from './watch-hub.js';
import { CorralError, errorMessage, isCorralError } from '../../contracts/errors.js';
import type { Logger } from '../log.js';
import { formatIssues } from '../validate.js';
import type { V1Connection } from '../../contracts/client/connection.js';
import { eventsFromWire, watchRecordSchema, type StoreCall } from '../../contracts/store/wire.js';
import type { Watch, WatchEvent, WatchOptions } from '../../contracts/store/types.js';

interface RemoteWatchDeps {
  /** A fresh connection for one stream attempt (sharing the store's stream pool). */
  connection(): V1Connection;
  /** Key namespace prepended to the prefix and stripped from event keys. */
  ns: string;
  log: Logger;
  /** Called once when the watch ends for any reason. */
  onDone(w: RemoteWatch): void;
}

const RETRY_BUDGET_MS = 30_000;
const MAX_BACKOFF_MS = 2_000;
/** A stream silent for this many heartbeat intervals is taken for dead. */
const MISSED_HEARTBEATS = 3;

/** Errors the master reports in-band that mean "it is going away", not "this watch is wrong". */
const TRANSIENT = new Set(['STORE_CLOSED', 'UNAVAILABLE']);

export class RemoteWatch implements Watch {
  private conn: V1Connection | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastRecordAt = 0;
  private failingSince: number | undefined;
  private attempt = 0;
  private done = false;

  /** @param nextRev first revision still to deliver; 0 = "from now" (until the master pins it). */
  constructor(
    private readonly deps: RemoteWatchDeps,
    private readonly opts: WatchOptions,
    private readonly prefix: string,
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
    clearTimeout(this.retryTimer);
    this.drop();
    this.deps.onDone(this);
  }

  private drop(): void {
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    const conn = this.conn;
    this.conn = undefined;
    conn?.disconnect();
    void conn?.close();
  }

  private call(): StoreCall {
    const watch = { prefix: this.deps.ns + this.prefix, ...(this.nextRev > 0 && { from_revision: this.nextRev }), ...(this.opts.prevKv && { prev_kv: true }) };
    return { type: 'WATCH', watch };
  }

  private async connect(): Promise<void> {
    this.retryTimer = undefined;
    if (this.done) return;
    const conn = this.deps.connection();
    this.conn = conn;
    let done: Promise<void>;
    try {
      ({ done } = await conn.subscribe(this.call(), (record) => this.onRecord(conn, record)));
    } catch (err) {
      if (conn !== this.conn) return;
      const fatal = finalOpenError(err);
      if (fatal) this.fail(fatal);
      else this.onBroken(conn, err);
      return;
    }
    done.then(
      () => this.onBroken(conn, new Error('the master ended the watch stream')),
      (err: unknown) => this.onBroken(conn, err),
    );
  }

  private onBroken(conn: V1Connection, err: unknown): void {
    if (this.done || conn !== this.conn) return;
    this.drop();
    const now = Date.now();
    this.failingSince ??= now;
    if (now - this.failingSince > RETRY_BUDGET_MS) {
      this.fail(new CorralError('UNAVAILABLE', `store watch lost and not re-established: ${errorMessage(err)}`, undefined, { cause: err }));
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.attempt++);
    this.deps.log.debug({ err: errorMessage(err), delay, nextRevision: this.nextRev }, 'store watch stream broken, reconnecting');
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private onRecord(conn: V1Connection, raw: unknown): void {
    if (this.done || conn !== this.conn) return;
    this.lastRecordAt = Date.now();
    const parsed = watchRecordSchema.safeParse(raw);
    if (!parsed.success) {
      this.onBroken(conn, new Error(`malformed watch record from the master: ${formatIssues(parsed.error)}`));
      return;
    }
    const rec = parsed.data;
    switch (rec.type) {
      case 'CREATED':
        this.failingSince = undefined;
        this.attempt = 0;
        if (this.nextRev === 0) this.nextRev = rec.created.start_revision;
        this.watchHeartbeats(conn, rec.created.heartbeat_interval_ms);
        return;
      case 'HEARTBEAT':
        return;
      case 'EVENTS':
        this.deliver(eventsFromWire(rec.events.events, this.deps.ns), rec.events.revision);
        return;
      case 'ERROR': {
        const { code, message, details } = rec.error;
        if (TRANSIENT.has(code)) this.onBroken(conn, new Error(`${code}: ${message}`));
        else if (code === 'STORE_COMPACTED') this.fail(new CorralError('STORE_COMPACTED', message, details));
        else this.fail(new CorralError('UNAVAILABLE', `the master ended the watch: ${code}: ${message}`, details));
      }
    }
  }

  private watchHeartbeats(conn: V1Connection, intervalMs: number): void {
    clearInterval(this.idleTimer);
    const every = Math.max(100, intervalMs);
    this.idleTimer = setInterval(() => {
      if (Date.now() - this.lastRecordAt > every * MISSED_HEARTBEATS) this.onBroken(conn, new Error(`no heartbeat from the master for ${every * MISSED_HEARTBEATS} ms`));
    }, every);
    this.idleTimer.unref();
  }

  private deliver(events: WatchEvent[], revision: number): void {
    // After a reconnect the master replays from nextRev; anything older was delivered already.
    if (events.length === 0 || revision < this.nextRev) return;
    this.nextRev = revision + 1;
    try {
      this.opts.onEvents(events, revision);
    } catch (err) {
      this.deps.log.error({ revision, err: errorMessage(err) }, 'watch onEvents handler threw');
    }
  }
}

/** The master refused to open the stream for a reason a retry cannot fix; undefined = retry. */
function finalOpenError(err: unknown): CorralError | undefined {
  if (!isCorralError(err)) return undefined;
  switch (err.code) {
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN':
    case 'INVALID_ARGUMENT':
      return new CorralError(err.code, err.message, err.details);
    case 'NOT_FOUND':
      return new CorralError('UNAVAILABLE', `the master does not serve the store API: ${err.message}`);
    case 'UNAVAILABLE':
      return undefined;
    default:
      return new CorralError('INVALID_ARGUMENT', err.message, err.details);
  }
}
