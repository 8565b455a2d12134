/**
 * The master's registry in the cluster Store: admitted agents (with the
 * dynamic reservations and persistent volumes made on them), frameworks,
 * weights and quota. A master killed with SIGKILL reads it back on start.
 *
 * Writes are group-committed: everything written in the same event-loop turn
 * goes into one Store transaction, so 10,000 agents registering at once cost
 * a handful of fsyncs, not 10,000. Every caller still awaits its own write.
 *
 * With replicated masters every write is fenced: the leader's transactions
 * carry a compare on its election key, so a deposed leader's late write fails
 * inside the Store and can never overwrite its successor's state.
 */
import { randomBytes } from 'node:crypto';
import type { Store, Op } from '../../../contracts/store/types.js';
import { CorralError } from '../../../contracts/errors.js';
import { logger } from '../../../common/log.js';
import type { V1AgentInfo, V1FrameworkInfo, V1Resource, V1QuotaConfig } from '../../../contracts/v1/v1.js';
import type { RegistryWrite } from './effects.js';
import type { LeaderFence } from '../../../common/store/etcd-leadership.js';

const PREFIX = 'corral/registry/';
const MAX_TXN_OPS = 128;
const K = {
  cluster: `${PREFIX}cluster`,
  agent: (id: string) => `${PREFIX}agents/${id}`,
  agents: `${PREFIX}agents/`,
  framework: (id: string) => `${PREFIX}frameworks/${id}`,
  frameworks: `${PREFIX}frameworks/`,
  weight: (role: string) => `${PREFIX}weights/${role}`,
  weights: `${PREFIX}weights/`,
  quota: (role: string) => `${PREFIX}quota/${role}`,
  quotas: `${PREFIX}quota/`,
  removed: (id: string) => `${PREFIX}removed-frameworks/${id}`,
  removedAll: `${PREFIX}removed-frameworks/`,
};

/**
 * How many removed frameworks the registry remembers. An agent that comes
 * back after a master failover with tasks of a framework torn down meanwhile
 * must have that framework shut down, not re-adopted; the oldest records go
 * past the bound (Mesos keeps its completed frameworks in memory only).
 */
export const REMOVED_FRAMEWORKS_KEPT = 1000;

export interface PersistedAgent {
  id: string;
  info: V1AgentInfo;
  checkpointed: V1Resource[];
  status: 'admitted' | 'unreachable' | 'gone';
  unreachableAt?: number;
  /** The principal the agent registered with (its credential is bound to it). */
  principal?: string;
}

export interface PersistedFramework {
  id: string;
  info: V1FrameworkInfo;
  registeredAt: number;
}

export interface ClusterInfo {
  id: string;
  createdAt: number;
  nextAgent: number;
  nextFramework: number;
}

export interface RegistrySnapshot {
  cluster: ClusterInfo;
  agents: PersistedAgent[];
  frameworks: PersistedFramework[];
  weights: Map<string, number>;
  quota: Map<string, V1QuotaConfig>;
  /** Ids of frameworks torn down or removed, newest last (bounded by REMOVED_FRAMEWORKS_KEPT). */
  removedFrameworks: string[];
}

/** What makes a write this master's to make (replicated masters: it leads); see common/store/etcd-leadership.ts. */
export type RegistryFence = LeaderFence;

export class Registry {
  private queue: { ops: Op[]; waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> } | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private cluster!: ClusterInfo;
  private readonly log = logger('registry');
  private fence: RegistryFence | undefined;
  private fenced: CorralError | undefined;

  constructor(private readonly store: Store) {}

  /** Guard every write from now on (set before load(), once this master leads). */
  setFence(fence: RegistryFence): void {
    this.fence = fence;
  }

  async load(): Promise<RegistrySnapshot> {
    const json = <T>(buf: Buffer): T => JSON.parse(buf.toString('utf8')) as T;
    const clusterKv = await this.store.get(K.cluster);
    if (clusterKv) {
      this.cluster = json<ClusterInfo>(clusterKv.value);
    } else {
      this.cluster = { id: randomBytes(4).toString('hex'), createdAt: Date.now(), nextAgent: 1, nextFramework: 1 };
      await this.commit([{ type: 'put', key: K.cluster, value: JSON.stringify(this.cluster) }]);
    }
    const [agents, frameworks, weights, quota, removedKvs] = await Promise.all([
      this.store.range(K.agents),
      this.store.range(K.frameworks),
      this.store.range(K.weights),
      this.store.range(K.quotas),
      this.store.range(K.removedAll),
    ]);
    const removed = removedKvs.kvs.map((kv) => json<{ id: string; removedAt: number }>(kv.value)).sort((a, b) => a.removedAt - b.removedAt);
    const dropped = removed.slice(0, Math.max(0, removed.length - REMOVED_FRAMEWORKS_KEPT));
    if (dropped.length) await this.commit(dropped.map((r) => ({ type: 'delete' as const, key: K.removed(r.id) })));
    return {
      cluster: { ...this.cluster },
      agents: agents.kvs.map((kv) => json<PersistedAgent>(kv.value)),
      frameworks: frameworks.kvs.map((kv) => json<PersistedFramework>(kv.value)),
      weights: new Map(weights.kvs.map((kv) => [kv.key.slice(K.weights.length), json<number>(kv.value)])),
      quota: new Map(quota.kvs.map((kv) => [kv.key.slice(K.quotas.length), json<V1QuotaConfig>(kv.value)])),
      removedFrameworks: removed.slice(dropped.length).map((r) => r.id),
    };
  }

  get clusterId(): string {
    return this.cluster.id;
  }

  /** Perform one write the master core asked for (effects.ts); resolves once it is durable. */
  apply(w: RegistryWrite): Promise<void> {
    switch (w.type) {
      case 'put-agent':
        // Ids are never reused: the counters move forward in the same commit as the record.
        return this.write([this.clusterOp(w.cluster), { type: 'put', key: K.agent(w.agent.id), value: JSON.stringify(w.agent) }]);
      case 'remove-agent':
        return this.write([{ type: 'delete', key: K.agent(w.id) }]);
      case 'put-framework':
        return this.write([this.clusterOp(w.cluster), { type: 'put', key: K.framework(w.framework.id), value: JSON.stringify(w.framework) }]);
      case 'remove-framework':
        return this.write([
          { type: 'delete', key: K.framework(w.id) },
          { type: 'put', key: K.removed(w.id), value: JSON.stringify({ id: w.id, removedAt: w.removedAt }) },
        ]);
      case 'set-weights':
        return this.write(w.weights.map((x) => ({ type: 'put' as const, key: K.weight(x.role), value: JSON.stringify(x.weight) })));
      case 'set-quota':
        return this.write(
          w.configs.map((q) => (!q.guarantees && !q.limits ? { type: 'delete' as const, key: K.quota(q.role) } : { type: 'put' as const, key: K.quota(q.role), value: JSON.stringify(q) })),
        );
    }
  }

  private clusterOp(cluster: ClusterInfo): Op {
    this.cluster = cluster;
    return { type: 'put', key: K.cluster, value: JSON.stringify(cluster) };
  }

  private write(ops: Op[]): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.queue) {
        this.queue = { ops: [], waiters: [] };
        // Let everything written in this turn join the batch, then commit after the previous batch.
        setImmediate(() => {
          this.flushing = this.flushing.then(() => this.flush());
        });
      }
      this.queue.ops.push(...ops);
      this.queue.waiters.push({ resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = undefined;
    if (!batch) return;
    // A key written twice in one batch keeps its last value.
    const last = new Map<string, Op>();
    for (const op of batch.ops) if (op.type === 'put' || op.type === 'delete') last.set(op.key, op);
    const ops = [...last.values()];
    try {
      await this.commit(ops);
      for (const w of batch.waiters) w.resolve();
    } catch (err) {
      if (err !== this.fenced) this.log.error({ err }, 'registry write failed');
      for (const w of batch.waiters) w.reject(err);
    }
  }

  private async commit(ops: Op[]): Promise<void> {
    // Stores cap a transaction (etcd: 128 ops); the records are independent, so chunks are fine.
    for (let i = 0; i < ops.length; i += MAX_TXN_OPS) {
      if (this.fenced) throw this.fenced;
      if (this.fence && !this.fence.holds()) throw this.refuse('its leadership lease may have expired');
      const res = await this.store.txn({ compare: this.fence?.compare ?? [], success: ops.slice(i, i + MAX_TXN_OPS) });
      if (!res.succeeded) throw this.refuse('its election key is gone from the store (another master leads)');
    }
  }

  /** From the first refused write on, this registry writes nothing more. */
  private refuse(why: string): CorralError {
    if (!this.fenced) {
      this.fenced = new CorralError('UNAVAILABLE', `this master no longer leads (${why}); its registry writes are refused`);
      this.log.error({ reason: why }, 'registry write refused: this master no longer leads');
      this.fence?.lost(why);
    }
    return this.fenced;
  }
}
