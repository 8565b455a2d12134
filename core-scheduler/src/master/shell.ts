/**
 * The master's shell: the I/O around the pure core (master.ts). It runs
 * handlers, performs the effects they record — registry writes, sends on
 * streams, timers — and feeds stream closes, timers and the periodic ticks
 * back into the core.
 *
 * Writes before sends: a send or close recorded after a registry write waits
 * until that write is durable (writes complete in order: the registry commits
 * its batches one after another). What nobody waits on goes out at once, so
 * the hot path (offers, launches, updates: no registry write) pays one branch.
 * A write that fails means the registry and this master's state have parted
 * (lost leadership, or a Store that refuses writes): the master stops and
 * `onFatal` decides what happens to the process, as a Mesos master aborts
 * when its registrar fails.
 */
import { logger } from '../../../common/log.js';
import { errorMessage } from '../../../contracts/errors.js';
import type { Effect, TimerName } from './effects.js';
import type { Master, Clock, Tick } from './master.js';
import type { Registry } from './registry.js';

/** A live stream the shell can push events to. */
export interface Outbox<E> {
  readonly id: string;
  send(event: E): boolean;
  sendAll?(events: E[]): boolean;
  close(last?: E): void;
  readonly isOpen: boolean;
}

/** The longest delay a Node timer takes (a longer one fires at once): longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Waiter {
  upTo: number;
  resolve(): void;
  reject(err: unknown): void;
}

export class MasterShell {
  private readonly log = logger('master');
  private readonly conns = new Map<string, Outbox<unknown>>();
  private readonly timers = new Map<TimerName, ReturnType<typeof setTimeout>>();
  private intervals: Array<ReturnType<typeof setInterval>> = [];
  /** Registry writes issued and completed so far (they complete in order). */
  private issued = 0;
  private durable = 0;
  /** Sends and closes waiting for the writes issued before them. */
  private held: Array<{ after: number; effect: Effect }> = [];
  private heldHead = 0;
  private waiters: Waiter[] = [];
  private waitersHead = 0;
  private failed: Error | undefined;

  constructor(
    readonly core: Master,
    private readonly registry: Registry,
    private readonly clock: Clock,
    /** A registry write failed: the core has already stopped. */
    private readonly onFatal: (reason: string) => void,
  ) {}

  /**
   * Run handlers on the core and perform their effects. Resolves with the
   * handlers' result once the registry writes they made are durable; rejects
   * with the handlers' error (after performing what they recorded before it).
   */
  run<T>(fn: (m: Master) => T): Promise<T> {
    const { result, error, effects } = this.core.step(fn);
    this.perform(effects);
    if (error !== undefined) return Promise.reject(error);
    return this.durableUpTo(this.issued).then(() => result as T);
  }

  /** Like `run` for handlers whose writes nobody waits on (stream closes, timers, ticks). */
  fire(fn: (m: Master) => void): void {
    const { error, effects } = this.core.step(fn);
    this.perform(effects);
    if (error !== undefined) this.log.error({ err: error }, 'master handler failed');
  }

  /** Take a new stream; the core knows it by its id. `onClose` runs when it ends, for whichever reason. */
  open<E>(outbox: Outbox<E>): string {
    this.conns.set(outbox.id, outbox as Outbox<unknown>);
    return outbox.id;
  }

  /** The stream ended: forget it (the caller tells the core). */
  closed(conn: string): void {
    this.conns.delete(conn);
  }

  /** Drive the core's periodic work. */
  start(): void {
    const every = (ms: number, what: Tick): void => {
      const t = setInterval(() => this.fire((m) => m.tick(what)), ms);
      t.unref();
      this.intervals.push(t);
    };
    const c = this.core.config;
    every(c.allocation.intervalMs, 'allocate');
    every(Math.max(50, Math.floor(c.agents.heartbeatIntervalMs / 2)), 'agent-liveness');
    every(c.frameworks.heartbeatIntervalSeconds * 1000, 'framework-heartbeat');
    every(c.agents.heartbeatIntervalMs, 'agent-heartbeat');
  }

  stop(): void {
    for (const t of this.intervals) clearInterval(t);
    this.intervals = [];
    this.fire((m) => m.stop());
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
  }

  private perform(effects: Effect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'persist':
          this.write(e);
          break;
        case 'send':
        case 'close':
          if (this.failed) break;
          if (this.durable === this.issued && this.heldHead === this.held.length) this.deliver(e);
          else this.held.push({ after: this.issued, effect: e });
          break;
        case 'start-timer':
          this.arm(e.name, this.clock.now() + e.delayMs);
          break;
        case 'cancel-timer':
          this.clock.clearTimeout(this.timers.get(e.name));
          this.timers.delete(e.name);
          break;
      }
    }
  }

  private write(e: Extract<Effect, { kind: 'persist' }>): void {
    if (this.failed) return;
    this.issued++;
    this.registry.apply(e.write).then(
      () => {
        this.durable++;
        this.release();
      },
      (err: unknown) => this.fail(err),
    );
  }

  /**
   * Sends whose writes are durable go out, in order; callers waiting on those
   * writes resume. Both queues are in write order (`issued` only grows), so
   * each completion takes from the front: 10,000 agents re-registering at once
   * cost linear time, not a scan of every queue per write.
   */
  private release(): void {
    while (this.heldHead < this.held.length && this.held[this.heldHead]!.after <= this.durable) this.deliver(this.held[this.heldHead++]!.effect);
    if (this.heldHead === this.held.length) {
      this.held = [];
      this.heldHead = 0;
    }
    while (this.waitersHead < this.waiters.length && this.waiters[this.waitersHead]!.upTo <= this.durable) this.waiters[this.waitersHead++]!.resolve();
    if (this.waitersHead === this.waiters.length) {
      this.waiters = [];
      this.waitersHead = 0;
    }
  }

  private durableUpTo(n: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.durable >= n) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ upTo: n, resolve, reject }));
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed = err instanceof Error ? err : new Error(String(err));
    const reason = `registry write failed: ${errorMessage(err)}`;
    this.log.error({ err }, 'registry write failed; this master stops (its state is ahead of the registry)');
    this.held = [];
    this.heldHead = 0;
    for (const w of this.waiters.slice(this.waitersHead)) w.reject(this.failed);
    this.waiters = [];
    this.waitersHead = 0;
    for (const t of this.intervals) clearInterval(t);
    this.intervals = [];
    // The core's own stop closes every stream; nothing more is written or sent.
    const { effects } = this.core.step((m) => m.stop());
    for (const e of effects) if (e.kind === 'close') this.conns.get(e.conn)?.close();
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
    this.onFatal(reason);
  }

  private deliver(e: Effect): void {
    if (e.kind === 'send') {
      const o = this.conns.get(e.conn);
      if (!o?.isOpen) return; // closed meanwhile: the core learns it from the close
      if (e.events.length === 1) o.send(e.events[0]);
      else if (o.sendAll) o.sendAll(e.events);
      else for (const ev of e.events) o.send(ev);
    } else if (e.kind === 'close') {
      const o = this.conns.get(e.conn);
      if (o?.isOpen) o.close(e.last);
    }
  }

  private arm(name: TimerName, at: number): void {
    this.clock.clearTimeout(this.timers.get(name));
    const left = at - this.clock.now();
    const t = this.clock.setTimeout(
      () => {
        this.timers.delete(name);
        if (left > MAX_TIMER_MS) this.arm(name, at);
        else this.fire((m) => m.timerFired(name));
      },
      Math.max(0, Math.min(left, MAX_TIMER_MS)),
    );
    this.timers.set(name, t);
  }
}
