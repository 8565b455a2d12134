/**
 * The master core: the state and the handlers that change it, as a state
 * machine with no I/O (the allocator is the model). Each concern lives in its
 * own module and works on this shared state — agents.ts (registration,
 * liveness), frameworks.ts (subscription, failover), offers.ts (allocation
 * rounds, accept/decline), tasks.ts (status updates, acknowledgements,
 * reconciliation, kill), views.ts (operator API state).
 *
 * Handlers do not send, write or arm timers: they record effects (effects.ts)
 * that `step()` hands back; the shell (shell.ts) performs them and feeds
 * stream closes, timers and periodic ticks back in as handler calls. Time is
 * read from the injected clock, so every failover path runs under a fake
 * clock with no sockets (test/unit/master-core.test.ts). The HTTP edges
 * (http/) only validate, authenticate and call handlers through the shell.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Allocator } from '../allocator/allocator.js';
import { Resources } from '../resources/resources.js';
import { logger, type Logger } from '../../../common/log.js';
import { Metrics } from '../../../common/metrics.js';
import type { ClusterInfo, RegistrySnapshot } from './registry.js';
import type { Authority } from './auth.js';
import type { MasterConfig } from './config.js';
import type { AgentRecord, FrameworkRecord, OfferRecord } from './records.js';
import { MASTER_CAPABILITIES, type V1MasterInfo } from '../../../contracts/v1/v1.js';
import { AgentManager } from './agents.js';
import { FrameworkManager } from './frameworks.js';
import { OfferManager } from './offers.js';
import { TaskManager } from './tasks.js';
import { OperatorEvents } from './operator-events.js';
import { packedIpv4 } from './addresses.js';
import { EffectLog, type Effect, type RegistryWrite, type TimerName } from './effects.js';

export const VERSION = '0.1.0';

/** Where the core reads the time; a fake one drives it in tests. */
export interface CoreClock {
  now(): number;
}

/** What the shell arms the core's timers with (a fake one in tests too). */
export interface Clock extends CoreClock {
  setTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout>;
  clearTimeout(t: ReturnType<typeof setTimeout> | undefined): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (t) => {
    if (t) clearTimeout(t);
  },
};

/** The periodic work the shell drives (every `allocation.intervalMs`, heartbeat intervals). */
export type Tick = 'allocate' | 'agent-liveness' | 'framework-heartbeat' | 'agent-heartbeat';

export class Master {
  readonly log: Logger = logger('master');
  readonly allocator: Allocator;
  readonly agents = new Map<string, AgentRecord>();
  readonly frameworks = new Map<string, FrameworkRecord>();
  /** Frameworks removed (torn down, failed over for good), newest last, at most frameworks.maxCompletedFrameworks. */
  readonly completedFrameworks: FrameworkRecord[] = [];
  readonly offers = new Map<string, OfferRecord>();
  readonly info: V1MasterInfo;
  readonly events: OperatorEvents;
  readonly agentManager: AgentManager;
  readonly frameworkManager: FrameworkManager;
  readonly offerManager: OfferManager;
  readonly taskManager: TaskManager;
  readonly weights = new Map<string, number>();
  readonly quota = new Map<string, { guarantees?: Record<string, { value: number }>; limits?: Record<string, { value: number }> }>();
  readonly startedAt: number;
  readonly metrics: Metrics;
  /** The registry's cluster record: its id and the id counters (set by `recover`). */
  private cluster: ClusterInfo | undefined;
  private readonly out = new EffectLog();
  private depth = 0;
  private stopped = false;

  constructor(
    readonly config: MasterConfig,
    readonly auth: Authority,
    readonly clock: CoreClock = realClock,
    metrics?: Metrics,
  ) {
    this.metrics = metrics ?? new Metrics('corral_master');
    this.allocator = new Allocator({ fairnessExcludedResourceNames: config.allocation.fairnessExcludedResourceNames });
    const host = config.advertiseHost ?? (config.host === '0.0.0.0' ? hostname() : config.host);
    this.info = {
      id: `${randomBytes(8).toString('hex')}`,
      ip: packedIpv4(host),
      port: config.port,
      hostname: host,
      version: VERSION,
      pid: `master@${host}:${config.port}`,
      address: { hostname: host, ip: host, port: config.port },
      capabilities: MASTER_CAPABILITIES.map((type) => ({ type })),
    };
    this.startedAt = this.clock.now();
    this.events = new OperatorEvents(this);
    this.agentManager = new AgentManager(this);
    this.frameworkManager = new FrameworkManager(this);
    this.offerManager = new OfferManager(this);
    this.taskManager = new TaskManager(this);
    this.registerMetrics();
  }

  /**
   * Run handlers and take the effects they recorded, in order. Effects
   * recorded before a handler throws (e.g. TASK_ERROR updates for an invalid
   * ACCEPT) are in `effects` too: the error is rethrown by the shell after
   * they were performed.
   */
  step<T>(fn: (m: Master) => T): { result?: T; error?: unknown; effects: Effect[] } {
    this.depth++;
    try {
      return { result: fn(this), effects: this.depth === 1 ? this.out.drain() : [] };
    } catch (error) {
      return { error, effects: this.depth === 1 ? this.out.drain() : [] };
    } finally {
      this.depth--;
    }
  }

  /** Rebuild state from the registry: agents wait to re-register, frameworks to re-subscribe. */
  recover(snapshot: RegistrySnapshot): void {
    this.cluster = { ...snapshot.cluster };
    for (const [role, weight] of snapshot.weights) {
      this.weights.set(role, weight);
      this.allocator.setWeight(role, weight);
    }
    for (const [role, q] of snapshot.quota) this.applyQuota(role, q);
    for (const f of snapshot.frameworks) this.frameworkManager.recoverFromRegistry(f);
    this.frameworkManager.recoverRemoved(snapshot.removedFrameworks ?? []);
    for (const a of snapshot.agents) this.agentManager.recoverFromRegistry(a);
    this.log.info({ agents: snapshot.agents.length, frameworks: snapshot.frameworks.length, cluster: snapshot.cluster.id }, 'recovered registry');
  }

  get clusterId(): string | undefined {
    return this.cluster?.id;
  }

  /** The cluster record as it must be written with a record that took an id. */
  clusterRecord(): ClusterInfo {
    return { ...this.recovered() };
  }

  /** Ids are never reused: the counters move forward here and reach the registry with the record. */
  nextAgentId(): string {
    const c = this.recovered();
    return `${c.id}-S${c.nextAgent++}`;
  }

  nextFrameworkId(): string {
    const c = this.recovered();
    return `${c.id}-${String(c.nextFramework++).padStart(4, '0')}`;
  }

  private recovered(): ClusterInfo {
    if (!this.cluster) throw new Error('the master has not recovered its registry yet');
    return this.cluster;
  }

  applyQuota(role: string, q: { guarantees?: Record<string, { value: number }>; limits?: Record<string, { value: number }> }): void {
    const flat = (m?: Record<string, { value: number }>): Record<string, number> | undefined => (m ? Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.value])) : undefined);
    if (!q.guarantees && !q.limits) {
      this.quota.delete(role);
      this.allocator.setQuota(role, undefined);
      return;
    }
    this.quota.set(role, q);
    this.allocator.setQuota(role, { ...(q.guarantees ? { guarantee: flat(q.guarantees)! } : {}), ...(q.limits ? { limit: flat(q.limits)! } : {}) });
  }

  /** Periodic work, driven by the shell. */
  tick(what: Tick): void {
    if (this.stopped) return;
    switch (what) {
      case 'allocate':
        return this.offerManager.allocate();
      case 'agent-liveness':
        return this.agentManager.checkLiveness();
      case 'framework-heartbeat':
        this.frameworkManager.heartbeat();
        return this.events.heartbeat();
      case 'agent-heartbeat':
        return this.agentManager.heartbeat();
    }
  }

  /** A timer the core started has fired. */
  timerFired(name: TimerName): void {
    if (this.stopped) return;
    if (name === 'allocation-batch') this.offerManager.batchDue();
    else if (name === 'ack-batch') this.taskManager.flushAcks();
    else this.frameworkManager.failoverTimeout(name.slice('framework-failover:'.length));
  }

  /** Stop acting: every stream ends and every timer is cancelled. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.offerManager.stop();
    for (const f of this.frameworks.values()) {
      this.out.cancelTimer(`framework-failover:${f.id}`);
      if (f.conn) this.out.close(f.conn);
    }
    for (const a of this.agents.values()) if (a.conn) this.out.close(a.conn);
    this.events.closeAll();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Send events on a connection; false when there is none (nobody is listening). */
  send(conn: string | undefined, ...events: unknown[]): boolean {
    return this.sendAll(conn, events);
  }

  /** Events in order on one connection, in one write. */
  sendAll(conn: string | undefined, events: unknown[]): boolean {
    if (conn === undefined) return false;
    this.out.send(conn, events);
    return true;
  }

  close(conn: string | undefined, last?: unknown): void {
    if (conn !== undefined) this.out.close(conn, last);
  }

  persist(write: RegistryWrite): void {
    this.out.persist(write);
  }

  startTimer(name: TimerName, delayMs: number): void {
    this.out.startTimer(name, delayMs);
  }

  cancelTimer(name: TimerName): void {
    this.out.cancelTimer(name);
  }

  private registerMetrics(): void {
    const m = this.metrics;
    m.gauge('agents', 'Agents by status', ['status'], (g) => {
      g.reset();
      for (const a of this.agents.values()) g.inc({ status: a.status });
    });
    m.gauge('frameworks', 'Frameworks by connection', ['state'], (g) => {
      g.reset();
      for (const f of this.frameworks.values()) g.inc({ state: f.connected ? 'connected' : f.recovered ? 'recovered' : 'disconnected' });
    });
    m.gauge('tasks', 'Tasks known to the master by state', ['state'], (g) => {
      g.reset();
      for (const f of this.frameworks.values()) for (const t of f.tasks.values()) g.inc({ state: t.state });
    });
    m.gauge('outstanding_offers', 'Offers not yet accepted, declined or rescinded', [], (g) => g.set(this.offers.size));
    m.gauge('cluster_resources', 'Total resources of registered agents', ['resource'], (g) => {
      g.reset();
      const total = new Resources();
      for (const a of this.agents.values()) if (a.status === 'connected') total.add(a.total);
      for (const [name, q] of total.quantities()) g.set({ resource: name }, q / 1000);
    });
  }
}
