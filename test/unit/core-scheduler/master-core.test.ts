/**
 * The master core as a state machine, with a fake clock and no sockets: each
 * failover path is driven by handler calls and checked by the effects they
 * record (registry writes, events per connection, timers). The real-process
 * tests (test/core-scheduler/ha.test.ts, restart-window.test.ts, the lab)
 * run the same paths through HTTP, etcd and real agents.
 */
import { describe, expect, it } from 'vitest';
import { Master } from '../../../core-scheduler/src/master/master.js';
import { MasterShell, type Outbox } from '../../../core-scheduler/src/master/shell.js';
import { Authority } from '../../../core-scheduler/src/master/auth.js';
import { masterConfigSchema } from '../../../core-scheduler/src/master/config.js';
import type { Effect, RegistryWrite, TimerName } from '../../../core-scheduler/src/master/effects.js';
import type { Registry, RegistrySnapshot } from '../../../core-scheduler/src/master/registry.js';
import type { AgentEvent, SchedulerEvent, V1FrameworkInfo, V1TaskState } from '../../../contracts/v1/v1.js';
import type { V1AgentCall } from '../../../contracts/v1/agent-schema.js';

type RegisterCall = Extract<V1AgentCall, { type: 'REGISTER' }>['register'];

const REREGISTER_TIMEOUT_MS = 120_000;
const UNREACHABLE_TIMEOUT_MS = 10_000;
const RESOURCES = [
  { name: 'cpus', type: 'SCALAR' as const, scalar: { value: 4 } },
  { name: 'mem', type: 'SCALAR' as const, scalar: { value: 4096 } },
];

/** A master core on a fake clock, with the timers it starts kept by name and fired by `advance`. */
class Harness {
  now = 1_000_000;
  readonly timers = new Map<TimerName, number>();
  readonly writes: RegistryWrite[] = [];
  readonly sent = new Map<string, unknown[]>();
  readonly closed = new Set<string>();
  readonly m: Master;

  constructor(snapshot: RegistrySnapshot = emptySnapshot()) {
    const config = masterConfigSchema.parse({
      noAuth: true,
      workDir: '/nonexistent',
      agents: { heartbeatIntervalMs: 1000, maxMissedHeartbeats: 3, unreachableTimeoutMs: UNREACHABLE_TIMEOUT_MS, reregisterTimeoutMs: REREGISTER_TIMEOUT_MS, ackBatchMs: 0 },
    });
    this.m = new Master(config, new Authority(undefined), { now: () => this.now });
    this.step((m) => m.recover(snapshot));
  }

  /** Run handlers and take in their effects as the shell would perform them. */
  step<T>(fn: (m: Master) => T): T {
    const { result, error, effects } = this.m.step(fn);
    this.take(effects);
    if (error !== undefined) throw error;
    return result as T;
  }

  private take(effects: Effect[]): void {
    for (const e of effects) {
      if (e.kind === 'persist') this.writes.push(e.write);
      else if (e.kind === 'send') this.sent.set(e.conn, [...(this.sent.get(e.conn) ?? []), ...e.events]);
      else if (e.kind === 'close') this.closed.add(e.conn);
      else if (e.kind === 'start-timer') this.timers.set(e.name, this.now + e.delayMs);
      else this.timers.delete(e.name);
    }
  }

  /** Agents whose (simulated) process is up: they heartbeat every second while the clock moves. */
  readonly alive = new Set<string>();

  /** Move the clock a second at a time: due timers fire in order, live agents heartbeat, the liveness check runs as the shell's interval would. */
  advance(ms: number): void {
    const until = this.now + ms;
    while (this.now < until) {
      const next = Math.min(until, this.now + 1000);
      for (;;) {
        const due = [...this.timers].filter(([, at]) => at <= next).sort((a, b) => a[1] - b[1])[0];
        if (!due) break;
        this.now = Math.max(this.now, due[1]);
        this.timers.delete(due[0]);
        this.step((m) => m.timerFired(due[0]));
      }
      this.now = next;
      for (const id of this.alive) this.step((m) => m.agents.get(id) && m.agentManager.seen(m.agents.get(id)!));
      this.step((m) => m.tick('agent-liveness'));
    }
  }

  /** Events sent on a connection since the last call. */
  drainSent(conn: string): unknown[] {
    const out = this.sent.get(conn) ?? [];
    this.sent.delete(conn);
    return out;
  }

  agentEvents(conn: string): AgentEvent[] {
    return this.drainSent(conn) as AgentEvent[];
  }

  schedulerEvents(conn: string): SchedulerEvent[] {
    return this.drainSent(conn) as SchedulerEvent[];
  }

  /** An agent registers (again) and its stream opens. */
  agentRegisters(conn: string, reg: RegisterCall): string {
    const a = this.step((m) => m.agentManager.register(reg, undefined));
    this.step((m) => m.agentManager.attach(a, conn));
    this.alive.add(a.id);
    return a.id;
  }

  subscribe(conn: string, info: V1FrameworkInfo): string {
    const f = this.step((m) => m.frameworkManager.subscribe(info, info.id?.value, undefined, undefined));
    this.step((m) => m.frameworkManager.attach(f, conn, `${conn}-stream`));
    return f.id;
  }
}

function emptySnapshot(): RegistrySnapshot {
  return { cluster: { id: 'c1', createdAt: 0, nextAgent: 1, nextFramework: 1 }, agents: [], frameworks: [], weights: new Map(), quota: new Map(), removedFrameworks: [] };
}

/** What the registry held when the previous leader died: two admitted agents and a framework with tasks on them. */
function snapshotAfterLeaderDied(opts: { partitionAware?: boolean; removed?: string[] } = {}): RegistrySnapshot {
  const s = emptySnapshot();
  s.cluster = { id: 'c1', createdAt: 0, nextAgent: 3, nextFramework: 2 };
  for (const n of [1, 2]) s.agents.push({ id: `c1-S${n}`, info: { hostname: `h${n}`, resources: RESOURCES, attributes: [] }, checkpointed: [], status: 'admitted' });
  if (!opts.removed?.includes('c1-0001')) s.frameworks.push({ id: 'c1-0001', info: frameworkInfo(opts.partitionAware), registeredAt: 0 });
  s.removedFrameworks = opts.removed ?? [];
  return s;
}

function frameworkInfo(partitionAware = false, id = 'c1-0001'): V1FrameworkInfo {
  return { user: 'u', name: 'web', id: { value: id }, failover_timeout: 300, roles: ['*'], capabilities: [{ type: 'MULTI_ROLE' }, ...(partitionAware ? [{ type: 'PARTITION_AWARE' as const }] : [])] };
}

function reregistration(agentId: string, tasks: Array<{ id: string; state: V1TaskState; framework?: string }>, partitionAware = false): RegisterCall {
  return {
    agent_info: { id: { value: agentId }, hostname: agentId, resources: RESOURCES, attributes: [] },
    version: 'test',
    capabilities: [],
    frameworks: [frameworkInfo(partitionAware, tasks[0]?.framework ?? 'c1-0001')],
    tasks: tasks.map((t) => ({
      framework_id: { value: t.framework ?? 'c1-0001' },
      task: { name: t.id, task_id: { value: t.id }, agent_id: { value: agentId }, resources: [{ name: 'cpus', type: 'SCALAR' as const, scalar: { value: 1 } }] },
      status: { task_id: { value: t.id }, state: t.state, source: 'SOURCE_EXECUTOR' as const, agent_id: { value: agentId } },
    })),
  };
}

const updates = (events: SchedulerEvent[]): Array<{ task: string; state: string; reason?: string | undefined; source?: string | undefined }> =>
  events.flatMap((e) => (e.type === 'UPDATE' ? [{ task: e.update.status.task_id.value, state: e.update.status.state, reason: e.update.status.reason, source: e.update.status.source }] : []));

describe('master core: failover paths on a fake clock', () => {
  it('a new leader recovers: agents wait to re-register, a returning agent keeps its tasks, the framework re-subscribes with its id and keeps them', () => {
    const h = new Harness(snapshotAfterLeaderDied());
    expect([...h.m.agents.values()].map((a) => a.status)).toEqual(['recovering', 'recovering']);
    // A recovered framework waits for its failover timeout (at least the recovery grace).
    expect(h.timers.get('framework-failover:c1-0001')).toBe(h.now + 300_000);

    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }]));
    // The agent record is written (with the cluster's id counters) before the agent is told REGISTERED.
    expect(h.writes.map((w) => w.type)).toEqual(['put-agent']);
    expect(h.agentEvents('agent-1').map((e) => e.type)).toEqual(['REGISTERED']);
    expect(h.m.frameworks.get('c1-0001')!.tasks.get('t1')!.state).toBe('TASK_RUNNING');

    h.subscribe('fw', frameworkInfo());
    expect(h.timers.has('framework-failover:c1-0001')).toBe(false);
    expect(h.writes.at(-1)).toMatchObject({ type: 'put-framework', framework: { id: 'c1-0001' } });
    const events = h.schedulerEvents('fw');
    expect(events[0]).toMatchObject({ type: 'SUBSCRIBED', subscribed: { framework_id: { value: 'c1-0001' } } });
    // Nothing was invented about the task: no update, it is simply still running.
    expect(updates(events)).toEqual([]);
    h.step((m) => m.taskManager.reconcile(m.frameworks.get('c1-0001')!, []));
    expect(updates(h.schedulerEvents('fw'))).toEqual([{ task: 't1', state: 'TASK_RUNNING', reason: 'REASON_RECONCILIATION', source: 'SOURCE_MASTER' }]);
  });

  it('an agent that never re-registers is marked unreachable at the re-registration timeout, and only then; reconciliation answers for its tasks after that', () => {
    const h = new Harness(snapshotAfterLeaderDied({ partitionAware: true }));
    h.subscribe('fw', frameworkInfo(true));
    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }], true));
    h.schedulerEvents('fw');
    // While S2 may still come back, a task on it is neither known nor declared lost: reconciliation says nothing yet.
    h.step((m) => m.taskManager.reconcile(m.frameworks.get('c1-0001')!, [{ task_id: { value: 't2' }, agent_id: { value: 'c1-S2' } }]));
    expect(updates(h.schedulerEvents('fw'))).toEqual([]);

    h.advance(REREGISTER_TIMEOUT_MS - 1000);
    expect(h.m.agents.get('c1-S2')!.status).toBe('recovering');
    h.advance(2000);
    expect(h.m.agents.get('c1-S2')!.status).toBe('unreachable');
    expect(h.writes.at(-1)).toMatchObject({ type: 'put-agent', agent: { id: 'c1-S2', status: 'unreachable' } });
    // S1, which came back, is untouched.
    expect(h.m.agents.get('c1-S1')!.status).toBe('connected');

    h.step((m) => m.taskManager.reconcile(m.frameworks.get('c1-0001')!, [{ task_id: { value: 't2' }, agent_id: { value: 'c1-S2' } }]));
    const [answer] = h.schedulerEvents('fw').filter((e) => e.type === 'UPDATE');
    expect(answer).toMatchObject({ type: 'UPDATE', update: { status: { state: 'TASK_UNREACHABLE', source: 'SOURCE_MASTER', reason: 'REASON_RECONCILIATION' } } });
    expect(answer!.type === 'UPDATE' && answer!.update.status.unreachable_time).toBeTruthy();
  });

  it('a KILL for a task of an agent that has not re-registered is held, and reaches the agent once it is back with the task', () => {
    const h = new Harness(snapshotAfterLeaderDied());
    h.subscribe('fw', frameworkInfo());
    h.step((m) => m.taskManager.kill(m.frameworks.get('c1-0001')!, 't1', 'c1-S1', undefined));
    // No invented TASK_LOST for a task that may well be running.
    expect(updates(h.schedulerEvents('fw'))).toEqual([]);
    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }]));
    const kills = h.agentEvents('agent-1').filter((e) => e.type === 'KILL');
    expect(kills).toEqual([{ type: 'KILL', kill: { framework_id: { value: 'c1-0001' }, task_id: { value: 't1' } } }]);
  });

  it('a held KILL whose agent never returns is answered as reconciliation would, once the agent is marked unreachable', () => {
    const h = new Harness(snapshotAfterLeaderDied());
    h.subscribe('fw', frameworkInfo());
    h.step((m) => m.taskManager.kill(m.frameworks.get('c1-0001')!, 't9', 'c1-S2', undefined));
    h.advance(REREGISTER_TIMEOUT_MS + 1000);
    // Not partition-aware: TASK_LOST, from the master.
    expect(updates(h.schedulerEvents('fw'))).toEqual([{ task: 't9', state: 'TASK_LOST', reason: 'REASON_RECONCILIATION', source: 'SOURCE_MASTER' }]);
  });

  it('a framework torn down before its agent re-registered is shut down on the agent, not adopted again', () => {
    const h = new Harness(snapshotAfterLeaderDied({ removed: ['c1-0001'] }));
    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }]));
    expect(h.agentEvents('agent-1')).toEqual([expect.objectContaining({ type: 'REGISTERED' }), { type: 'SHUTDOWN_FRAMEWORK', shutdown_framework: { framework_id: { value: 'c1-0001' } } }]);
    expect(h.m.frameworks.has('c1-0001')).toBe(false);
    expect(() => h.step((m) => m.frameworkManager.subscribe(frameworkInfo(), 'c1-0001', undefined, undefined))).toThrow(/has been removed/);
  });

  it('a recovered framework that does not re-subscribe within its failover timeout is removed: its tasks are shut down and the registry remembers it', () => {
    const h = new Harness(snapshotAfterLeaderDied());
    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }]));
    h.agentEvents('agent-1');
    h.advance(299_000);
    expect(h.m.frameworks.has('c1-0001')).toBe(true);
    h.advance(2000);
    expect(h.m.frameworks.has('c1-0001')).toBe(false);
    expect(h.writes.at(-1)).toMatchObject({ type: 'remove-framework', id: 'c1-0001' });
    expect(h.agentEvents('agent-1')).toEqual([{ type: 'SHUTDOWN_FRAMEWORK', shutdown_framework: { framework_id: { value: 'c1-0001' } } }]);
  });

  it('re-subscribing cancels the removal: the framework outlives its failover timeout', () => {
    const h = new Harness(snapshotAfterLeaderDied());
    h.advance(100_000);
    h.subscribe('fw', frameworkInfo());
    h.advance(1_000_000);
    expect(h.m.frameworks.get('c1-0001')!.connected).toBe(true);
  });

  it('an agent back from unreachable: a partition-aware framework is told each task is running again (REASON_AGENT_REREGISTERED), even when this master only learns the task from the agent', () => {
    const s = snapshotAfterLeaderDied({ partitionAware: true });
    // The previous leader had marked S1 unreachable before it died.
    s.agents[0] = { ...s.agents[0]!, status: 'unreachable', unreachableAt: 5 };
    const h = new Harness(s);
    h.subscribe('fw', frameworkInfo(true));
    h.schedulerEvents('fw');
    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }], true));
    expect(updates(h.schedulerEvents('fw'))).toEqual([{ task: 't1', state: 'TASK_RUNNING', reason: 'REASON_AGENT_REREGISTERED', source: 'SOURCE_MASTER' }]);
    expect(h.m.agents.get('c1-S1')!.status).toBe('connected');
  });

  it('an agent back from unreachable with tasks of a framework that is not partition-aware: they were reported LOST, so they are killed', () => {
    const s = snapshotAfterLeaderDied();
    s.agents[0] = { ...s.agents[0]!, status: 'unreachable', unreachableAt: 5 };
    const h = new Harness(s);
    h.subscribe('fw', frameworkInfo());
    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }]));
    expect(h.agentEvents('agent-1').map((e) => e.type)).toEqual(['REGISTERED', 'KILL']);
    expect(h.m.frameworks.get('c1-0001')!.tasks.has('t1')).toBe(false);
  });

  it('a connected agent that stops heartbeating is disconnected, then marked unreachable after the unreachable timeout; its tasks go UNREACHABLE for a partition-aware framework', () => {
    const h = new Harness(snapshotAfterLeaderDied({ partitionAware: true }));
    h.subscribe('fw', frameworkInfo(true));
    h.agentRegisters('agent-1', reregistration('c1-S1', [{ id: 't1', state: 'TASK_RUNNING' }], true));
    h.schedulerEvents('fw');
    h.alive.delete('c1-S1');
    h.advance(3500);
    expect(h.closed.has('agent-1')).toBe(true);
    expect(h.m.agents.get('c1-S1')!.status).toBe('disconnected');
    h.advance(UNREACHABLE_TIMEOUT_MS);
    expect(h.m.agents.get('c1-S1')!.status).toBe('unreachable');
    expect(updates(h.schedulerEvents('fw'))).toEqual([{ task: 't1', state: 'TASK_UNREACHABLE', reason: 'REASON_AGENT_REMOVED', source: 'SOURCE_MASTER' }]);
  });

  it('ids keep counting from the registry: a new leader never hands out an id the previous one gave', () => {
    const h = new Harness(snapshotAfterLeaderDied());
    const id = h.agentRegisters('agent-3', { agent_info: { hostname: 'h3', resources: RESOURCES, attributes: [] }, version: 'test', capabilities: [], tasks: [], frameworks: [] });
    expect(id).toBe('c1-S3');
    expect(h.writes.at(-1)).toMatchObject({ type: 'put-agent', cluster: { nextAgent: 4 } });
    const fw = h.subscribe('fw2', { user: 'u', name: 'new' });
    expect(fw).toBe('c1-0002');
  });
});

describe('master shell: registry writes before sends', () => {
  /** A registry whose writes complete only when the test says so. */
  function manualRegistry(): { registry: Registry; pending: Array<{ write: RegistryWrite; resolve(): void; reject(e: Error): void }> } {
    const pending: Array<{ write: RegistryWrite; resolve(): void; reject(e: Error): void }> = [];
    const registry = { apply: (write: RegistryWrite) => new Promise<void>((resolve, reject) => pending.push({ write, resolve, reject })) } as unknown as Registry;
    return { registry, pending };
  }

  function outbox(id: string, got: unknown[]): Outbox<unknown> {
    return { id, isOpen: true, send: (e) => got.push(e) > 0, sendAll: (es) => got.push(...es) > 0, close: () => got.push('closed') };
  }

  const fakeTimers = { now: () => 0, setTimeout: () => undefined as unknown as ReturnType<typeof setTimeout>, clearTimeout: () => undefined };

  /** A recovered master core in a shell over a manual registry; `fatal` collects what the shell reports. */
  async function recoveredShell(): Promise<{ m: Master; shell: MasterShell; pending: ReturnType<typeof manualRegistry>['pending']; fatal: string[] }> {
    const { registry, pending } = manualRegistry();
    const m = new Master(masterConfigSchema.parse({ noAuth: true, workDir: '/nonexistent' }), new Authority(undefined), { now: () => 0 });
    const fatal: string[] = [];
    const shell = new MasterShell(m, registry, fakeTimers, (r) => fatal.push(r));
    await shell.run((core) => core.recover(emptySnapshot()));
    return { m, shell, pending, fatal };
  }

  it('REGISTERED reaches the agent only after its record is durable, and the caller resumes then', async () => {
    const { m, shell, pending, fatal } = await recoveredShell();
    const got: unknown[] = [];
    let registered = false;
    const reg = shell.run((core) => core.agentManager.register({ agent_info: { hostname: 'h', resources: RESOURCES, attributes: [] }, tasks: [], frameworks: [] }, undefined));
    void reg.then(() => (registered = true));
    const a = m.agents.values().next().value!;
    const conn = shell.open(outbox('a1', got));
    shell.fire((core) => core.agentManager.attach(a, conn));
    await Promise.resolve();
    expect(got).toEqual([]);
    expect(registered).toBe(false);
    pending[0]!.resolve();
    await reg;
    expect(got).toEqual([expect.objectContaining({ type: 'REGISTERED' })]);
    expect(fatal).toEqual([]);
  });

  it('a write that fails stops the master: nothing held is sent, the caller gets the error, and the fatal handler is called once', async () => {
    const { m, shell, pending, fatal } = await recoveredShell();
    const got: unknown[] = [];
    const sub = shell.run((core) => core.frameworkManager.subscribe({ user: 'u', name: 'f' }, undefined, undefined, undefined));
    const f = m.frameworks.values().next().value!;
    const conn = shell.open(outbox('f1', got));
    shell.fire((core) => core.frameworkManager.attach(f, conn, 's'));
    pending[0]!.reject(new Error('this master no longer leads'));
    await expect(sub).rejects.toThrow(/no longer leads/);
    expect(got.filter((e) => e !== 'closed')).toEqual([]);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(/no longer leads/);
    expect(m.isStopped).toBe(true);
    // Later handlers write nothing more.
    await expect(shell.run((core) => core.frameworkManager.subscribe({ user: 'u', name: 'g' }, undefined, undefined, undefined))).rejects.toThrow();
    expect(pending).toHaveLength(1);
  });
});
