/**
 * The master's v1 HTTP/JSON surface behaves as Mesos's does where clients
 * written against Mesos can tell: null fields, offer URLs, reconciliation
 * answers, completed frameworks, long failover timeouts, filter bounds.
 */
import { describe, expect, it } from 'vitest';
import { testDir } from '../harness/resources.js';
import { startTestMaster, testMasterConfig, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { TestFramework } from '../harness/framework.js';
import { until } from '../harness/wait.js';
import { rmSync } from 'node:fs';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { V1Connection } from '../../contracts/client/connection.js';
import { startMaster, type RunningMaster } from '../../core-scheduler/src/master/daemon.js';
import type { Clock } from '../../core-scheduler/src/master/master.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';
import type { AgentEvent, V1FrameworkInfo, V1FrameworkSummary, V1Task, V1TaskStatus } from '../../contracts/v1/v1.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

async function agent(url: string, hostname = 'h'): Promise<SimAgent> {
  const a = new SimAgent({ master: url, hostname, resources: 'cpus:4;mem:4096;ports:[31000-31100]', updateRetryMs: 300 });
  cleanup.push(() => a.stop());
  await a.start();
  return a;
}

function framework(url: string, info: Partial<V1FrameworkInfo> = {}): TestFramework {
  const f = new TestFramework(url, info);
  cleanup.push(() => f.client.close());
  return f;
}

async function operator<T>(url: string, type: string, body?: Record<string, unknown>): Promise<T> {
  const ops = new OperatorClient({ master: url });
  try {
    return await ops.call<T>(type, body);
  } finally {
    await ops.close();
  }
}

const frameworks = async (url: string): Promise<{ frameworks: V1FrameworkSummary[]; completed_frameworks: V1FrameworkSummary[] }> =>
  (await operator<{ get_frameworks: { frameworks: V1FrameworkSummary[]; completed_frameworks: V1FrameworkSummary[] } }>(url, 'GET_FRAMEWORKS')).get_frameworks;
const tasks = async (url: string): Promise<{ tasks: V1Task[]; completed_tasks: V1Task[] }> =>
  (await operator<{ get_tasks: { tasks: V1Task[]; completed_tasks: V1Task[] } }>(url, 'GET_TASKS')).get_tasks;

/** Reconciliation answers for `taskId` the framework received after the first `from` events. */
const answers = (f: TestFramework, taskId: string, from = 0): V1TaskStatus[] =>
  f.events.slice(from).flatMap((e) => (e.type === 'UPDATE' && e.update.status.task_id.value === taskId && e.update.status.reason === 'REASON_RECONCILIATION' ? [e.update.status] : []));

async function answer(f: TestFramework, taskId: string, from: number): Promise<V1TaskStatus> {
  await until(() => answers(f, taskId, from).length > 0, 10_000, `a reconciliation answer for ${taskId}`);
  return answers(f, taskId, from)[0]!;
}

describe('Mesos v1 compatibility of the master', () => {
  it('takes null as an unset field in scheduler, operator and agent calls sent over HTTP', async () => {
    master = await startTestMaster();
    // Agent REGISTER with nulls where fields are unset.
    const events: AgentEvent[] = [];
    const conn = new V1Connection({ master: master.url, path: '/api/v1/agent' });
    cleanup.push(() => conn.close());
    await conn.subscribe(
      {
        type: 'REGISTER',
        register: {
          agent_info: {
            hostname: 'nulls',
            id: null,
            port: null,
            resources: parseResources('cpus:2;mem:512')
              .toV1()
              .map((r) => ({ ...r, reservations: null, disk: null })),
            attributes: null,
          },
          version: null,
          capabilities: null,
          oversubscribed: null,
        },
      },
      (e) => events.push(e as unknown as AgentEvent),
    );
    await until(() => events.some((e) => e.type === 'REGISTERED'));
    // Scheduler SUBSCRIBE and DECLINE with nulls (the SchedulerClient's stream, raw bodies).
    const f = framework(master.url, { checkpoint: null, role: null, hostname: null, capabilities: null, labels: null } as unknown as Partial<V1FrameworkInfo>);
    await f.subscribe();
    const [offer] = await f.offers();
    await f.client.conn.call({ type: 'DECLINE', framework_id: { value: f.id }, subscribe: null, accept: null, decline: { offer_ids: [offer!.id, null], filters: null }, kill: null });
    expect((await tasks(master.url)).tasks).toEqual([]);
    // Operator call with a null member.
    const health = await operator<{ get_health: { healthy: boolean } }>(master.url, 'GET_HEALTH', { get_health: null });
    expect(health.get_health.healthy).toBe(true);
  });

  it("puts the agent's URL on every offer, as Mesos's master does", async () => {
    master = await startTestMaster();
    await agent(master.url, 'sim-host');
    // An agent that says where its API listens: its URL gives the IP and port.
    const conn = new V1Connection({ master: master.url, path: '/api/v1/agent' });
    cleanup.push(() => conn.close());
    const events: AgentEvent[] = [];
    await conn.subscribe({ type: 'REGISTER', register: { agent_info: { hostname: 'named-host', url: 'http://10.1.2.3:7070', resources: parseResources('cpus:1;mem:128').toV1() } } }, (e) =>
      events.push(e as unknown as AgentEvent),
    );
    const f = framework(master.url);
    await f.subscribe();
    await until(() => f.events.filter((e) => e.type === 'OFFERS').flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : [])).length >= 2);
    const offers = f.events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []));
    expect(offers.find((o) => o.hostname === 'sim-host')?.url).toEqual({ scheme: 'http', address: { hostname: 'sim-host', ip: '127.0.0.1', port: 5051 }, path: '/slave(1)' });
    expect(offers.find((o) => o.hostname === 'named-host')?.url).toEqual({ scheme: 'http', address: { hostname: 'named-host', ip: '10.1.2.3', port: 7070 }, path: '/slave(1)' });
    // MasterInfo.ip packed as Mesos packs it (127.0.0.1 → 16777343).
    const subscribed = f.events.find((e) => e.type === 'SUBSCRIBED');
    expect(subscribed?.type === 'SUBSCRIBED' && subscribed.subscribed.master_info.ip).toBe(16777343);
    expect(subscribed?.type === 'SUBSCRIBED' && subscribed.subscribed.master_info.pid).toBe(`master@127.0.0.1:${master.port}`);
  });

  it('answers reconciliation from the master: SOURCE_MASTER, REASON_RECONCILIATION, and a state for unknown tasks by what it knows of the agent', async () => {
    master = await startTestMaster();
    const a = await agent(master.url);
    const plain = framework(master.url, { name: 'plain' });
    const aware = framework(master.url, { name: 'aware', capabilities: [{ type: 'PARTITION_AWARE' }] });
    await plain.subscribe();
    const [offer] = await plain.offers();
    await plain.launch(offer!, [{ id: 't1', resources: 'cpus:1;mem:64' }]);
    const running = await plain.update('t1', 'TASK_RUNNING');
    expect(running.source).toBe('SOURCE_EXECUTOR');
    await until(() => a.updates.pending().length === 0);
    await aware.subscribe();

    let from = plain.events.length;
    await plain.client.reconcile([{ task_id: { value: 't1' }, agent_id: { value: a.id! } }, { task_id: { value: 'ghost' }, agent_id: { value: a.id! } }, { task_id: { value: 'nowhere' } }]);
    const known = await answer(plain, 't1', from);
    expect(known).toMatchObject({ state: 'TASK_RUNNING', source: 'SOURCE_MASTER', reason: 'REASON_RECONCILIATION', message: 'Reconciliation: Latest task state', agent_id: { value: a.id } });
    expect(known.uuid).toBeUndefined();
    // Not partition-aware: TASK_LOST whatever the master knows.
    expect(await answer(plain, 'ghost', from)).toMatchObject({ state: 'TASK_LOST', source: 'SOURCE_MASTER', message: 'Reconciliation: Task is unknown to the agent', agent_id: { value: a.id } });
    expect(await answer(plain, 'nowhere', from)).toMatchObject({ state: 'TASK_LOST', message: 'Reconciliation: Task is unknown' });

    from = aware.events.length;
    await aware.client.reconcile([{ task_id: { value: 'ghost' }, agent_id: { value: a.id! } }, { task_id: { value: 'nowhere' } }, { task_id: { value: 'far' }, agent_id: { value: 'no-such-agent' } }]);
    expect(await answer(aware, 'ghost', from)).toMatchObject({ state: 'TASK_GONE', source: 'SOURCE_MASTER' });
    expect(await answer(aware, 'nowhere', from)).toMatchObject({ state: 'TASK_UNKNOWN', source: 'SOURCE_MASTER' });
    expect(await answer(aware, 'far', from)).toMatchObject({ state: 'TASK_UNKNOWN', agent_id: { value: 'no-such-agent' } });

    // Implicit reconciliation: every task the master knows, from the master.
    from = plain.events.length;
    await plain.client.reconcile();
    expect(await answer(plain, 't1', from)).toMatchObject({ state: 'TASK_RUNNING', source: 'SOURCE_MASTER' });

    // KILL of a task the master does not know is reconciled (with the agent it names).
    from = plain.events.length;
    await plain.client.kill('ghost-2', a.id!);
    expect(await answer(plain, 'ghost-2', from)).toMatchObject({ state: 'TASK_LOST', agent_id: { value: a.id } });
    // A KILL naming another agent than the task's is ignored, as Mesos does.
    await plain.client.kill('t1', 'another-agent');
    await plain.client.reconcile([{ task_id: { value: 't1' } }]);
    await until(() => answers(plain, 't1', from).length > 0);
    expect(a.received.some((e) => e.type === 'KILL')).toBe(false);
  });

  it('says since when an agent is unreachable: unreachable_time on its tasks and in reconciliation', async () => {
    master = await startTestMaster();
    const a = await agent(master.url);
    const aware = framework(master.url, { name: 'aware', capabilities: [{ type: 'PARTITION_AWARE' }] });
    const plain = framework(master.url, { name: 'plain' });
    await aware.subscribe();
    const [offer] = await aware.offers();
    await aware.launch(offer!, [{ id: 'u1', resources: 'cpus:1;mem:64' }]);
    await aware.update('u1', 'TASK_RUNNING');
    await plain.subscribe();
    const agentId = a.id!;
    await a.crash();
    const unreachable = await aware.update('u1', 'TASK_UNREACHABLE', 15_000);
    const since = (unreachable as { unreachable_time?: { nanoseconds: number } }).unreachable_time?.nanoseconds;
    expect(since).toBeGreaterThan(0);
    for (const [f, state] of [
      [aware, 'TASK_UNREACHABLE'],
      [plain, 'TASK_LOST'],
    ] as const) {
      const from = f.events.length;
      await f.client.reconcile([{ task_id: { value: 'elsewhere' }, agent_id: { value: agentId } }]);
      const got = await answer(f, 'elsewhere', from);
      expect(got).toMatchObject({ state, source: 'SOURCE_MASTER', message: 'Reconciliation: Task is unreachable', unreachable_time: { nanoseconds: since } });
    }
  });

  it('lists removed frameworks in completed_frameworks with their tasks, bounded as configured', async () => {
    master = await startTestMaster({ frameworks: { heartbeatIntervalSeconds: 1, maxCompletedFrameworks: 2, maxCompletedTasks: 1 } });
    await agent(master.url);
    const ids: string[] = [];
    for (const name of ['first', 'second', 'third']) {
      const f = framework(master.url, { name });
      await f.subscribe();
      ids.push(f.id);
      if (name === 'second') {
        const [offer] = await f.offers();
        await f.launch(offer!, [
          { id: 's1', resources: 'cpus:1;mem:64' },
          { id: 's2', resources: 'cpus:1;mem:64' },
        ]);
        await f.update('s1', 'TASK_RUNNING');
        await f.update('s2', 'TASK_RUNNING');
      }
      await f.client.teardown();
    }
    const listed = await frameworks(master.url);
    expect(listed.frameworks).toEqual([]);
    // The two most recent, oldest first; the first dropped past the bound.
    expect(listed.completed_frameworks.map((f) => f.framework_info.id.value)).toEqual(ids.slice(1));
    for (const f of listed.completed_frameworks) {
      expect(f).toMatchObject({ active: false, connected: false, offers: [], allocated_resources: [] });
      expect(f.unregistered_time!.nanoseconds).toBeGreaterThanOrEqual(f.registered_time!.nanoseconds);
    }
    // The second framework's tasks ended KILLED; one is kept (maxCompletedTasks: 1).
    const completed = (await tasks(master.url)).completed_tasks.filter((t) => t.framework_id.value === ids[1]);
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ state: 'TASK_KILLED', task_id: { value: 's2' } });
    expect(completed[0]!.statuses.at(-1)).toMatchObject({ state: 'TASK_KILLED', source: 'SOURCE_MASTER', reason: 'REASON_FRAMEWORK_REMOVED' });
  });

  it('answers an ACCEPT of an offer no longer outstanding with TASK_LOST (REASON_INVALID_OFFERS), TASK_DROPPED if partition-aware', async () => {
    master = await startTestMaster();
    await agent(master.url);
    for (const [capabilities, state] of [
      [[], 'TASK_LOST'],
      [[{ type: 'PARTITION_AWARE' as const }], 'TASK_DROPPED'],
    ] as const) {
      const f = framework(master.url, { name: state, capabilities: [...capabilities] });
      await f.subscribe();
      const [offer] = await f.offers();
      await f.client.decline([offer!.id.value], 0);
      const id = `late-${state}`;
      await expect(f.launch(offer!, [{ id, resources: 'cpus:1;mem:64' }])).rejects.toThrow(/not outstanding/);
      expect(await f.update(id, state)).toMatchObject({ source: 'SOURCE_MASTER', reason: 'REASON_INVALID_OFFERS', message: expect.stringMatching(/^Task launched with invalid offers: /) });
      await f.client.teardown();
    }
  });

  it('UPDATE_FRAMEWORK changes roles and capabilities of a subscribed framework; principal, user and checkpoint stay', async () => {
    master = await startTestMaster();
    await agent(master.url);
    const f = framework(master.url, { user: 'test', name: 'before', roles: ['a'], capabilities: [{ type: 'MULTI_ROLE' }] });
    await f.subscribe();
    const info = { user: 'test', name: 'after', id: { value: f.id }, roles: ['a', 'b'], capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }, { type: 'SOME_FUTURE_CAPABILITY' }] };
    expect(await f.client.conn.call({ type: 'UPDATE_FRAMEWORK', framework_id: { value: f.id }, update_framework: { framework_info: info, suppressed_roles: ['b'] } })).toBeUndefined();
    const listed = (await frameworks(master.url)).frameworks.find((x) => x.framework_info.id.value === f.id)!;
    expect(listed.framework_info).toMatchObject({ name: 'after', roles: ['a', 'b'] });
    expect(listed.framework_info.capabilities?.map((c) => c.type)).toEqual(['MULTI_ROLE', 'PARTITION_AWARE', 'UNKNOWN']);
    // Partition-aware now: an unknown task on a known agent is TASK_GONE, no longer TASK_LOST.
    const from = f.events.length;
    const [offer] = await f.offers();
    expect(offer!.allocation_info.role).toBe('a'); // b is suppressed
    await f.client.reconcile([{ task_id: { value: 'x' }, agent_id: { value: offer!.agent_id.value } }]);
    expect(await answer(f, 'x', from)).toMatchObject({ state: 'TASK_GONE' });
    // Leaving role a rescinds the offer made in it.
    const rescinded = f.client.next((e) => e.type === 'RESCIND' && e.rescind.offer_id.value === offer!.id.value);
    await f.client.conn.call({ type: 'UPDATE_FRAMEWORK', framework_id: { value: f.id }, update_framework: { framework_info: { ...info, roles: ['b'] } } });
    await rescinded;
    await expect(f.client.conn.call({ type: 'UPDATE_FRAMEWORK', framework_id: { value: f.id }, update_framework: { framework_info: { ...info, user: 'someone-else' } } })).rejects.toThrow(/user/);
    await expect(f.client.conn.call({ type: 'UPDATE_FRAMEWORK', framework_id: { value: f.id }, update_framework: { framework_info: { ...info, checkpoint: true } } })).rejects.toThrow(/checkpoint/);
    await expect(f.client.conn.call({ type: 'UPDATE_FRAMEWORK', framework_id: { value: f.id }, update_framework: { framework_info: { ...info, id: { value: 'other' } } } })).rejects.toThrow(/differs/);
    // Inverse offers: none are made, and answering unknown ones is accepted and ignored, as Mesos does.
    expect(await f.client.conn.call({ type: 'DECLINE_INVERSE_OFFERS', framework_id: { value: f.id }, decline_inverse_offers: { inverse_offer_ids: [{ value: 'none' }] } })).toBeUndefined();
    expect(
      await f.client.conn.call({ type: 'ACCEPT_INVERSE_OFFERS', framework_id: { value: f.id }, accept_inverse_offers: { inverse_offer_ids: [{ value: 'none' }], filters: null } }),
    ).toBeUndefined();
    expect(await operator(master.url, 'GET_EXECUTORS')).toEqual({ type: 'GET_EXECUTORS', get_executors: { executors: [], orphan_executors: [] } });
  });

  it('caps refuse_seconds at 365 days and takes a negative one as unset, as Mesos does', async () => {
    master = await startTestMaster();
    await agent(master.url);
    const f = framework(master.url);
    await f.subscribe();
    const [offer] = await f.offers();
    await f.client.conn.call({ type: 'DECLINE', framework_id: { value: f.id }, decline: { offer_ids: [offer!.id], filters: { refuse_seconds: 1e12 } } });
    await f.client.revive();
    const [again] = await f.offers();
    await f.client.conn.call({ type: 'DECLINE', framework_id: { value: f.id }, decline: { offer_ids: [again!.id], filters: { refuse_seconds: -1 } } });
    // Both were taken (202), and REVIVE clears the filters they set.
    await f.client.revive();
    expect((await f.offers()).map((o) => o.agent_id.value)).toEqual([again!.agent_id.value]);
  });
});

/** A clock whose timers behave like node's: a delay above 2^31 - 1 ms fires after 1 ms. Time moves only when told. */
class ManualClock implements Clock {
  private t = Date.now();
  private timers: Array<{ at: number; fn: () => void }> = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    const timer = { at: this.t + (ms > 2 ** 31 - 1 ? 1 : ms), fn };
    this.timers.push(timer);
    return timer as unknown as ReturnType<typeof setTimeout>;
  }

  clearTimeout(t: ReturnType<typeof setTimeout> | undefined): void {
    this.timers = this.timers.filter((x) => x !== (t as unknown));
  }

  /** Move time forward, running each timer that comes due (and those they set) in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }
}

describe('failover_timeout', () => {
  it('keeps a disconnected framework for a failover_timeout longer than a timer can wait (30 days)', async () => {
    const dir = testDir('failover');
    const clock = new ManualClock();
    const running: RunningMaster = await startMaster(testMasterConfig(dir), { clock });
    cleanup.push(async () => {
      await running.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const day = 24 * 3600 * 1000;
    const f = new TestFramework(running.url, { failover_timeout: 30 * 24 * 3600 });
    await f.subscribe();
    await f.client.close();
    await until(() => running.master.frameworks.get(f.id)?.connected === false, 10_000, 'the master to see the disconnection');
    clock.advance(29 * day);
    expect(running.master.frameworks.has(f.id)).toBe(true);
    clock.advance(day + 1000);
    await until(() => !running.master.frameworks.has(f.id), 10_000, 'removal after 30 days');
    expect(running.master.completedFrameworks.map((c) => c.id)).toContain(f.id);
    // Gone from the registry too (and the write done before the master stops).
    await until(async () => (await running.store.get(`corral/registry/frameworks/${f.id}`)) === undefined, 10_000, 'the registry to forget it');
  });
});
