/**
 * Detach convergence — desired state, then reconcile. A volume stays
 * attached to this host only while a reference holds it. Everything else is
 * released by this loop and retried until it is gone:
 *  - a detach that failed (an rbd-fuse unmount that found the filesystem
 *    still pinned by a short-lived mount namespace, Ceph slow to answer the
 *    unlock, a device busy for a moment) — retried with a bounded
 *    exponential backoff, not left for a slow periodic pass;
 *  - an attach a crash cut short, a mount of an earlier boot, one whose
 *    kernel mount is gone, one another host took over (recovery.ts);
 *  - a task's reference whose container the agent no longer runs — its
 *    unmount was lost (the driver was restarting, the request failed, the
 *    agent gave up on a destroy) — released once the container has been
 *    absent from the agent's list for a grace period, and never while
 *    another mount namespace still holds the filesystem.
 * The reconciler never takes a reference away that the agent reports alive
 * or that is not a task's; when the agent cannot be asked, it releases
 * nothing on its word that pass.
 */
import { errorMessage } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import type { Metrics } from '../../../common/metrics.js';
import type { KeyedMutex } from '../../../common/mutex.js';
import type { Backend } from './backend.js';
import { lostToAnotherHost, isStale } from './recovery.js';
import { containerOfReference } from './references.js';
import { currentBootId, type MountRecord, type MountState } from './state.js';
import type { BackendName } from './types.js';

/** Where the reconciler learns which containers run on this host (the agent's GET /api/v1/containers). Throws when it cannot tell. */
export interface LiveContainers {
  readonly name: string;
  list(): Promise<Set<string>>;
}

export interface ReconcileSettings {
  /** A pass at least this often (pending retries and the agent's list are also looked at sooner when due). */
  intervalMs: number;
  /** First retry of a failed detach; doubled per failure up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** How long a task's container must stay absent from the agent's list (seen absent on two passes at least this far apart) before its reference is released. */
  graceMs: number;
}

/** How often a mounted volume is checked for a takeover by another host (fenced here): the old recovery pass's pace. */
const TAKEOVER_CHECK_MS = 30_000;

const DEFAULT_RECONCILE: ReconcileSettings = { intervalMs: 10_000, backoffMs: 500, maxBackoffMs: 30_000, graceMs: 15_000 };

interface ReconcilerDeps {
  mounts: MountState;
  backend(name: BackendName): Backend;
  mutex: KeyedMutex;
  log: Logger;
  settings?: Partial<ReconcileSettings>;
  live?: LiveContainers;
  /** Other mount namespaces still holding a record's filesystem (descriptions); a volume is not released on the agent's word while any does. */
  holders?(m: MountRecord): string[];
  /** Processes (one per mount namespace) that have `device` mounted, for the log of a detach found busy. */
  mountedBy?(device: string): string[];
  metrics?: Metrics;
  now?(): number;
}

interface Retry {
  failures: number;
  nextAt: number;
  lastError: string;
}

interface PassReport {
  released: string[];
  failed: string[];
  orphanRefs: string[];
  /** Set when the agent could not be asked (no reference was released on its word). */
  liveError?: string;
}

export class DetachReconciler {
  readonly settings: ReconcileSettings;
  private readonly retries = new Map<string, Retry>();
  /** "volume\0ref" → when its container was first seen absent from the agent's list. */
  private readonly absentSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<PassReport> | undefined;
  private stopped = true;
  private liveFailing = false;
  private readonly lastTakeoverCheck = new Map<string, number>();
  private readonly now: () => number;
  private readonly attempts;
  private readonly orphans;
  private readonly passes;

  constructor(private readonly deps: ReconcilerDeps) {
    this.settings = { ...DEFAULT_RECONCILE, ...deps.settings };
    // Monotonic: a wall-clock step must not shorten the grace period before a reference is released.
    this.now = deps.now ?? (() => performance.now());
    const m = deps.metrics;
    this.attempts = m?.counter('volume_detach_retries_total', 'Detaches retried by the reconciler, by result', ['result']);
    this.orphans = m?.counter('volume_orphan_references_released_total', 'Task references released because the agent no longer runs their container');
    this.passes = m?.counter('volume_reconcile_passes_total', 'Reconcile passes over this host’s mount records');
    m?.gauge('volume_detaches_pending', 'Volumes whose detach failed and is being retried', [], (g) => g.set(this.retries.size));
  }

  /** First pass now (start-up recovery), then keep converging in the background. */
  start(): Promise<PassReport> {
    this.stopped = false;
    return this.runOnce(); // schedules the next pass when it ends
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Volumes with a detach pending, and why the last attempt failed. */
  pending(): Array<{ volume: string; failures: number; retryInMs: number; lastError: string }> {
    const now = this.now();
    return [...this.retries].map(([volume, r]) => ({ volume, failures: r.failures, retryInMs: Math.max(0, r.nextAt - now), lastError: r.lastError }));
  }

  /** One pass; a caller arriving during a pass gets the next one (what it wants released may have changed). */
  runOnce(): Promise<PassReport> {
    if (this.running)
      return this.running.then(
        () => this.runOnce(),
        () => this.runOnce(),
      );
    this.running = this.pass().finally(() => {
      this.running = undefined;
      this.schedule();
    });
    return this.running;
  }

  /**
   * Detach one record and forget it; the caller holds the volume's lock.
   * A failure is remembered and retried by the loop with backoff, then
   * rethrown for the caller.
   */
  async release(m: MountRecord): Promise<void> {
    try {
      const backend = this.deps.backend(m.backend);
      if (m.phase === 'mounted') await this.deps.mounts.put((m = { ...m, phase: 'detaching' }));
      await backend.detach(m.volume, m.attachment);
      await this.deps.mounts.delete(m.name);
    } catch (err) {
      this.failed(m.name, err, m);
      throw err;
    }
    if (this.retries.delete(m.name)) this.deps.log.info({ volume: m.name }, 'a detach that had failed went through');
    for (const k of this.absentSince.keys()) if (k.startsWith(`${m.name}\0`)) this.absentSince.delete(k);
  }

  private failed(name: string, err: unknown, m: MountRecord): void {
    const prev = this.retries.get(name);
    const failures = (prev?.failures ?? 0) + 1;
    const delay = Math.min(this.settings.maxBackoffMs, this.settings.backoffMs * 2 ** Math.min(failures - 1, 20));
    const why = errorMessage(err);
    this.retries.set(name, { failures, nextAt: this.now() + delay, lastError: why });
    // "Busy": say who still has the filesystem mounted (the first time), so a pinning process can be found.
    const device = typeof m.attachment.device === 'string' ? m.attachment.device : undefined;
    const pinnedBy = failures === 1 && device && /busy/i.test(why) ? this.deps.mountedBy?.(device) : undefined;
    this.deps.log.warn({ volume: name, failures, retryInMs: delay, err: why, ...(pinnedBy?.length ? { pinnedBy } : {}) }, 'detach failed; retrying');
    this.schedule();
  }

  private due(name: string, now: number): boolean {
    const r = this.retries.get(name);
    return !r || r.nextAt <= now;
  }

  private async pass(): Promise<PassReport> {
    const report: PassReport = { released: [], failed: [], orphanRefs: [] };
    this.passes?.inc();
    let live: Set<string> | undefined;
    if (this.deps.live) {
      try {
        live = await this.deps.live.list();
        if (this.liveFailing) this.deps.log.info({ source: this.deps.live.name }, 'the agent answers again: task references are checked against its containers');
        this.liveFailing = false;
      } catch (err) {
        report.liveError = errorMessage(err);
        // Once per outage, not every pass (the agent starts after the driver, and restarts).
        if (!this.liveFailing)
          this.deps.log.warn({ source: this.deps.live.name, err: report.liveError }, 'cannot ask the agent which containers run: no task reference is released on its word meanwhile');
        this.liveFailing = true;
      }
    }
    const bootId = currentBootId();
    const records = await this.deps.mounts.all();
    const known = new Set(records.map((r) => r.name));
    for (const name of this.retries.keys()) if (!known.has(name)) this.retries.delete(name);
    for (const name of this.lastTakeoverCheck.keys()) if (!known.has(name)) this.lastTakeoverCheck.delete(name);
    for (const first of records) {
      await this.deps.mutex
        .run(first.name, () => this.reconcileOne(first.name, live, bootId, report))
        .catch((err: unknown) => {
          report.failed.push(first.name);
          this.deps.log.warn({ volume: first.name, err: errorMessage(err) }, 'cannot reconcile this volume now');
        });
    }
    // Forget absences of references that are gone.
    for (const k of this.absentSince.keys()) if (!known.has(k.split('\0')[0]!)) this.absentSince.delete(k);
    return report;
  }

  /** One volume, under its lock: release it if nothing should hold it any more. */
  private async reconcileOne(name: string, live: Set<string> | undefined, bootId: string, report: PassReport): Promise<void> {
    let m = await this.deps.mounts.get(name);
    if (!m) return;
    if (m.phase === 'mounted' && !isStale(m, bootId)) {
      if (live) m = await this.dropOrphans(m, live, report);
      if (m.phase === 'mounted' && !(await this.takenOver(m))) return;
    }
    if (!this.due(m.name, this.now())) return;
    const retried = this.retries.has(m.name);
    try {
      await this.release(m);
    } catch {
      report.failed.push(m.name);
      if (retried) this.attempts?.inc({ result: 'failed' });
      return;
    }
    report.released.push(m.name);
    if (retried) this.attempts?.inc({ result: 'ok' });
    this.deps.log.info({ volume: m.name, phase: m.phase }, 'released an attachment nothing holds');
  }

  /** Asks the backend (a Ceph round trip, under the volume's lock) at most every TAKEOVER_CHECK_MS per volume. */
  private async takenOver(m: MountRecord): Promise<boolean> {
    const now = this.now();
    if ((this.lastTakeoverCheck.get(m.name) ?? -Infinity) + TAKEOVER_CHECK_MS > now) return false;
    this.lastTakeoverCheck.set(m.name, now);
    return lostToAnotherHost(this.deps.log, this.deps.backend(m.backend), m);
  }

  /** Drop the references of containers the agent has not run for a grace period; the record as it is now. */
  private async dropOrphans(m: MountRecord, live: Set<string>, report: PassReport): Promise<MountRecord> {
    const now = this.now();
    const gone: string[] = [];
    for (const ref of m.refs) {
      const key = `${m.name}\0${ref}`;
      const container = containerOfReference(ref);
      if (container === undefined || live.has(container)) {
        this.absentSince.delete(key);
        continue;
      }
      const since = this.absentSince.get(key);
      if (since === undefined) this.absentSince.set(key, now);
      else if (now - since >= this.settings.graceMs) gone.push(ref);
    }
    if (gone.length === 0) return m;
    const refs = m.refs.filter((r) => !gone.includes(r));
    if (refs.length === 0) {
      const holders = this.deps.holders?.(m) ?? [];
      if (holders.length) {
        this.deps.log.warn({ volume: m.name, refs: gone, holders }, 'the agent no longer runs the containers of these references, but another mount namespace still holds the filesystem: keeping it');
        return m;
      }
    }
    for (const r of gone) this.absentSince.delete(`${m.name}\0${r}`);
    this.orphans?.inc(gone.length);
    report.orphanRefs.push(...gone.map((r) => `${m.name}/${r}`));
    this.deps.log.warn({ volume: m.name, refs: gone, left: refs.length }, 'released references of containers the agent no longer runs (their unmount was lost)');
    const next: MountRecord = refs.length ? { ...m, refs } : { ...m, refs, phase: 'detaching' };
    await this.deps.mounts.put(next);
    return next;
  }

  /** The next pass: at the interval, or sooner when a retry or a grace period comes due. */
  private schedule(): void {
    if (this.stopped) return;
    const now = this.now();
    let at = now + this.settings.intervalMs;
    for (const r of this.retries.values()) at = Math.min(at, r.nextAt);
    for (const since of this.absentSince.values()) at = Math.min(at, since + this.settings.graceMs);
    // Never spin: something due but held back (a filesystem another namespace still holds) waits a backoff step.
    const delay = Math.max(at - now, Math.min(this.settings.backoffMs, this.settings.intervalMs));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runOnce().catch((err: unknown) => this.deps.log.warn({ err: errorMessage(err) }, 'volume reconcile pass failed'));
    }, delay);
    this.timer.unref();
  }
}
