/**
 * Watch fan-out for the embedded store. Writers hand each committed revision to
 * `publish`, which finds interested watchers through a prefix index (one map
 * lookup per distinct watched prefix length, not a scan of every watcher) and
 * queues the batch; delivery happens later on the event loop, never inside the
 * writer's call stack. A watch that starts in the past first pages through the
 * history table, then switches to live delivery in the same synchronous step
 * that observes it has caught up, so no revision is lost or repeated.
 */
import { CorralError, errorMessage } from '../../contracts/errors.js';
import type { Logger } from '../log.js';
import type { Watch, WatchEvent, WatchOptions } from '../../contracts/store/types.js';

export interface Batch {
  revision: number;
  events: WatchEvent[];
}

interface HistorySource {
  revision(): number;
  compactRevision(): number;
  /** Events of revisions from..to (inclusive) under `prefix`, one batch per revision, in order. */
  read(prefix: string, from: number, to: number, withPrev: boolean): Batch[];
}

/** Revisions read per catch-up step, so a long replay does not block the event loop. */
const PAGE_REVISIONS = 1000;

class HubWatcher implements Watch {
  state: 'catchup' | 'live' | 'done';
  queue: Batch[] = [];

  constructor(
    private readonly hub: WatchHub,
    readonly prefix: string,
    public nextRev: number,
    readonly withPrev: boolean,
    readonly onEvents: WatchOptions['onEvents'],
    readonly onError: WatchOptions['onError'],
    catchingUp: boolean,
  ) {
    this.state = catchingUp ? 'catchup' : 'live';
  }

  cancel(): void {
    this.hub.remove(this);
  }
}

export class WatchHub {
  private readonly byPrefix = new Map<string, Set<HubWatcher>>();
  /** Distinct watched prefix lengths, ascending, with how many prefixes have each. */
  private lengths: number[] = [];
  private readonly lengthRefs = new Map<number, number>();
  private readonly ready = new Set<HubWatcher>();
  private flushScheduled = false;

  constructor(
    private readonly source: HistorySource,
    private readonly log: Logger,
  ) {}

  add(prefix: string, fromRevision: number, opts: WatchOptions): Watch {
    const catchingUp = fromRevision <= this.source.revision();
    const w = new HubWatcher(this, prefix, fromRevision, opts.prevKv === true, opts.onEvents, opts.onError, catchingUp);
    let set = this.byPrefix.get(prefix);
    if (!set) {
      set = new Set();
      this.byPrefix.set(prefix, set);
      this.addLength(prefix.length);
    }
    set.add(w);
    if (catchingUp) setImmediate(() => this.catchUp(w));
    return w;
  }

  remove(w: HubWatcher): void {
    if (w.state === 'done') return;
    w.state = 'done';
    w.queue = [];
    this.ready.delete(w);
    const set = this.byPrefix.get(w.prefix);
    if (set?.delete(w) && set.size === 0) {
      this.byPrefix.delete(w.prefix);
      this.dropLength(w.prefix.length);
    }
  }

  /** Called after a write transaction committed `revision` with these events (prevKv filled). */
  publish(revision: number, events: WatchEvent[]): void {
    if (this.byPrefix.size === 0) return;
    const matched = new Map<HubWatcher, WatchEvent[]>();
    for (const ev of events) {
      const key = ev.kv.key;
      for (const len of this.lengths) {
        if (len > key.length) break;
        const set = this.byPrefix.get(len === key.length ? key : key.slice(0, len));
        if (!set) continue;
        for (const w of set) {
          if (w.state !== 'live' || revision < w.nextRev) continue;
          let list = matched.get(w);
          if (!list) matched.set(w, (list = []));
          list.push(w.withPrev ? ev : { type: ev.type, kv: ev.kv });
        }
      }
    }
    for (const [w, evs] of matched) {
      w.queue.push({ revision, events: evs });
      w.nextRev = revision + 1;
      this.ready.add(w);
    }
    if (matched.size > 0) this.scheduleFlush();
  }

  /** End every watch with `err`; resolves once their onError callbacks ran. */
  async closeAll(err: Error): Promise<void> {
    const all: HubWatcher[] = [];
    for (const set of this.byPrefix.values()) all.push(...set);
    for (const w of all) this.remove(w);
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const w of all) this.callOnError(w, err);
  }

  private catchUp(w: HubWatcher): void {
    if (w.state !== 'catchup') return;
    try {
      const compacted = this.source.compactRevision();
      if (w.nextRev < compacted) {
        this.fail(
          w,
          new CorralError('STORE_COMPACTED', `revision ${w.nextRev} has been compacted (oldest available: ${compacted})`, {
            fromRevision: w.nextRev,
            compactRevision: compacted,
          }),
        );
        return;
      }
      const current = this.source.revision();
      const to = Math.min(current, w.nextRev + PAGE_REVISIONS - 1);
      if (to >= w.nextRev) {
        for (const batch of this.source.read(w.prefix, w.nextRev, to, w.withPrev)) w.queue.push(batch);
        w.nextRev = to + 1;
      }
      // Same synchronous step as the read: no write can slip between the last page and going live.
      if (w.nextRev > current) w.state = 'live';
      else setImmediate(() => this.catchUp(w));
      if (w.queue.length > 0) {
        this.ready.add(w);
        this.scheduleFlush();
      }
    } catch (err) {
      this.fail(w, err instanceof CorralError ? err : new CorralError('UNAVAILABLE', `watch replay failed: ${errorMessage(err)}`, undefined, { cause: err }));
    }
  }

  private fail(w: HubWatcher, err: Error): void {
    this.remove(w);
    setImmediate(() => this.callOnError(w, err));
  }

  private callOnError(w: HubWatcher, err: Error): void {
    if (!w.onError) {
      this.log.warn({ prefix: w.prefix, err: errorMessage(err) }, 'watch ended with an error and has no onError handler');
      return;
    }
    try {
      w.onError(err);
    } catch (cbErr) {
      this.log.error({ prefix: w.prefix, err: errorMessage(cbErr) }, 'watch onError handler threw');
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const watchers = [...this.ready];
    this.ready.clear();
    for (const w of watchers) {
      // Batches queued by writes made from inside a callback land in a new array and go out next flush, still in order.
      const batches = w.queue;
      w.queue = [];
      for (const b of batches) {
        if (w.state === 'done') break;
        try {
          w.onEvents(b.events, b.revision);
        } catch (err) {
          this.log.error({ prefix: w.prefix, revision: b.revision, err: errorMessage(err) }, 'watch onEvents handler threw');
        }
      }
    }
  }

  private addLength(len: number): void {
    const n = this.lengthRefs.get(len) ?? 0;
    this.lengthRefs.set(len, n + 1);
    if (n === 0) this.lengths = [...this.lengths, len].sort((a, b) => a - b);
  }

  private dropLength(len: number): void {
    const n = (this.lengthRefs.get(len) ?? 1) - 1;
    if (n > 0) {
      this.lengthRefs.set(len, n);
    } else {
      this.lengthRefs.delete(len);
      this.lengths = this.lengths.filter((l) => l !== len);
    }
  }
}

/** Reports a watch's end to its onError handler, asynchronously, never letting the handler throw into the store. */
export function reportWatchError(opts: WatchOptions, log: Logger, err: Error): void {
  setImmediate(() => {
    if (!opts.onError) {
      log.warn({ err: errorMessage(err) }, 'watch ended with an error and has no onError handler');
      return;
    }
    try {
      opts.onError(err);
    } catch (cbErr) {
      log.error({ err: errorMessage(cbErr) }, 'watch onError handler threw');
    }
  });
}
