/**
 * The master: state and wiring. Each concern lives in its own module and works
 * on this shared context — agents.ts (registration, liveness), frameworks.ts
 * (subscription, failover), offers.ts (allocation rounds, accept/decline),
 * tasks.ts (status updates, acknowledgements, reconciliation, kill), views.ts
 * (operator API state). The HTTP edges (scheduler-api.ts, agent-api.ts,
 * operator-api.ts) only validate, authenticate and call in here.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Allocator } from '../allocator/allocator.js';
import { Resources } from '../resources/resources.js';
import { logger, type Logger } from '../../../common/log.js';
import { Metrics } from '../../../common/metrics.js';
import type { Registry, RegistrySnapshot } from './registry.js';
import type { Authority } from './auth.js';
import type { MasterConfig } from './config.js';
import type { AgentRecord, FrameworkRecord, OfferRecord, Outbox } from './records.js';
import { MASTER_CAPABILITIES, type V1MasterInfo } from '../../../contracts/v1/v1.js';
import { AgentManager } from './agents.js';
import { FrameworkManager } from './frameworks.js';
import { OfferManager } from './offers.js';
import { TaskManager } from './tasks.js';
import { OperatorEvents } from './operator-events.js';
import { packedIpv4 } from './addresses.js';

export const VERSION = '0.1.0';

export interface Clock {
  now(): number;
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
  private timers: Array<ReturnType<typeof setInterval>> = [];
  private stopped = false;

  constructor(
    readonly config: MasterConfig,
    readonly registry: Registry,
    readonly auth: Authority,
    readonly clock: Clock = realClock,
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

  /** Rebuild state from the registry: agents wait to re-register, frameworks to re-subscribe. */
  recover(snapshot: RegistrySnapshot): void {
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

  start(): void {
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(() => {
        try {
          fn();
        } catch (err) {
          this.log.error({ err }, 'periodic task failed');
        }
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.config.allocation.intervalMs, () => this.offerManager.allocate());
    every(Math.max(50, Math.floor(this.config.agents.heartbeatIntervalMs / 2)), () => this.agentManager.checkLiveness());
    every(this.config.frameworks.heartbeatIntervalSeconds * 1000, () => {
      this.frameworkManager.heartbeat();
      this.events.heartbeat();
    });
    every(this.config.agents.heartbeatIntervalMs, () => this.agentManager.heartbeat());
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.offerManager.stop();
    for (const f of this.frameworks.values()) {
      this.clock.clearTimeout(f.failoverTimer);
      f.outbox?.close();
    }
    for (const a of this.agents.values()) a.outbox?.close();
    this.events.closeAll();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  newStreamId(): string {
    return randomUUID();
  }

  /** Send to an outbox if it is open; false when nobody is listening. */
  deliver<E>(outbox: Outbox<E> | undefined, event: E): boolean {
    return outbox?.isOpen ? outbox.send(event) : false;
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
