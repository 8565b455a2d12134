/**
 * The service framework's state in the cluster Store: its framework id (for
 * failover), the apps and their instances (with the task filling each slot).
 *
 *   corral/services/<framework>/framework-id
 *   corral/services/<framework>/apps/<app>
 *   corral/services/<framework>/instances/<app>/<index>
 *
 * Records change with every status update, so writes are coalesced: callers
 * mark a record dirty and the latest version of everything dirty goes out in
 * a few transactions shortly after. `flush()` waits until what was marked
 * before the call is stored — the scheduler awaits it before launching, so a
 * task is on record before it can exist.
 *
 * With several daemons (one leader), every write carries the leader's fence:
 * a compare on its election key, so a deposed leader's writes do not land.
 */
import { CorralError, errorMessage } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import { MAX_TXN_OPS } from '../../../contracts/store/check.js';
import type { Op, Store } from '../../../contracts/store/types.js';
import type { z } from '../../../common/validate.js';
import { appRecordSchema, instanceRecordSchema, type AppRecord, type InstanceRecord } from './model.js';
import type { WriteFence } from './leadership.js';

export interface LoadedState {
  frameworkId: string | undefined;
  apps: AppRecord[];
  instances: InstanceRecord[];
}

/** A pending write: the record to serialise at flush time, or null for a delete. */
type Pending = AppRecord | InstanceRecord | null;

const FLUSH_DELAY_MS = 5;
const RETRY_MS = 1000;

export class ServicesState {
  private readonly dirty = new Map<string, Pending>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly store: Store,
    readonly prefix: string,
    private readonly log: Logger,
    /** The leader's fence (replicated daemons); none for a daemon that runs alone. */
    private readonly fence?: WriteFence,
  ) {}

  private appKey = (id: string): string => `${this.prefix}/apps/${id}`;
  private instanceKey = (app: string, index: number): string => `${this.prefix}/instances/${app}/${index}`;

  async load(): Promise<LoadedState> {
    const fw = await this.store.get(`${this.prefix}/framework-id`);
    const apps = await this.readAll(`${this.prefix}/apps/`, appRecordSchema);
    const instances = await this.readAll(`${this.prefix}/instances/`, instanceRecordSchema);
    return { frameworkId: fw ? fw.value.toString('utf8') : undefined, apps, instances };
  }

  /** Records that no longer parse are logged and left out rather than stopping the daemon. */
  private async readAll<T>(prefix: string, schema: z.ZodType<T>): Promise<T[]> {
    const { kvs } = await this.store.range(prefix);
    const out: T[] = [];
    for (const kv of kvs) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(kv.value.toString('utf8'));
      } catch (err) {
        this.log.error({ key: kv.key }, 'stored record is not JSON, ignored: %s', errorMessage(err));
        continue;
      }
      const r = schema.safeParse(parsed);
      if (r.success) out.push(r.data);
      else this.log.error({ key: kv.key, issue: r.error.issues[0]?.message }, 'stored record does not match its schema, ignored');
    }
    return out;
  }

  async saveFrameworkId(id: string | undefined): Promise<void> {
    const key = `${this.prefix}/framework-id`;
    await this.fencedTxn([id === undefined ? { type: 'delete', key } : { type: 'put', key, value: id }]);
  }

  /** One transaction, guarded by the fence when there is one; a refused fence is lost leadership. */
  private async fencedTxn(ops: Op[]): Promise<void> {
    const fence = this.fence;
    if (fence && !fence.holds()) {
      fence.lost('the leader lease may have expired');
      throw new CorralError('UNAVAILABLE', 'this daemon no longer leads the service framework; the write was not made');
    }
    const res = await this.store.txn({ compare: fence?.compare ?? [], success: ops });
    if (fence && !res.succeeded) {
      fence.lost("the election key is no longer this leader's");
      throw new CorralError('UNAVAILABLE', 'this daemon no longer leads the service framework (its election key is gone); the write was refused');
    }
  }

  putApp(app: AppRecord): void {
    this.mark(this.appKey(app.spec.id), app);
  }

  deleteApp(id: string): void {
    this.mark(this.appKey(id), null);
  }

  putInstance(i: InstanceRecord): void {
    this.mark(this.instanceKey(i.app, i.index), i);
  }

  deleteInstance(app: string, index: number): void {
    this.mark(this.instanceKey(app, index), null);
  }

  private mark(key: string, value: Pending): void {
    this.dirty.set(key, value);
    this.schedule(FLUSH_DELAY_MS);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(() => undefined); // already logged; the records stay dirty and are retried
    }, ms);
  }

  /** Resolves once everything marked before the call is in the Store. */
  flush(): Promise<void> {
    const run = this.chain.then(() => this.writeOut());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async writeOut(): Promise<void> {
    if (this.dirty.size === 0) return;
    const batch = [...this.dirty];
    this.dirty.clear();
    const ops: Op[] = batch.map(([key, value]) => (value === null ? { type: 'delete', key } : { type: 'put', key, value: JSON.stringify(value) }));
    try {
      for (let i = 0; i < ops.length; i += MAX_TXN_OPS) await this.fencedTxn(ops.slice(i, i + MAX_TXN_OPS));
    } catch (err) {
      // Keep what failed for the next attempt, unless a newer version was marked meanwhile.
      for (const [key, value] of batch) if (!this.dirty.has(key)) this.dirty.set(key, value);
      this.log.error({ records: batch.length }, 'writing services state failed: %s', errorMessage(err));
      this.schedule(RETRY_MS);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => undefined);
  }
}
