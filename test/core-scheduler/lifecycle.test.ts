import { describe, it, expect } from 'vitest';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { TestFramework } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { agentUpdateCall, type AgentEvent, type AgentCapability, type V1Offer, type V1Task } from '../../contracts/v1/v1.js';
import { V1Connection } from '../../contracts/client/connection.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';
import { until } from '../harness/wait.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

async function agent(url: string, opts: Partial<ConstructorParameters<typeof SimAgent>[0]> = {}): Promise<SimAgent> {
  // Resend unacknowledged updates after 300 ms (10 s by default) so retries show within a test.
  const a = new SimAgent({ master: url, hostname: 'h', resources: 'cpus:4;mem:4096;ports:[31000-31100]', updateRetryMs: 300, ...opts });
  cleanup.push(() => a.stop());
  await a.start();
  return a;
}

/** An agent speaking the protocol directly, keeping every record as it came over the wire. */
async function rawAgent(url: string, resources: string, capabilities?: string[]): Promise<{ conn: V1Connection; events: AgentEvent[]; id: string }> {
  const events: AgentEvent[] = [];
  const conn = new V1Connection({ master: url, path: '/api/v1/agent' });
  cleanup.push(() => conn.close());
  await conn.subscribe({ type: 'REGISTER', register: { agent_info: { hostname: 'raw', resources: parseResources(resources).toV1() }, ...(capabilities ? { capabilities } : {}) } }, (e) =>
    events.push(e as unknown as AgentEvent),
  );
  await until(() => events.some((e) => e.type === 'REGISTERED'));
  const registered = events.find((e) => e.type === 'REGISTERED') as Extract<AgentEvent, { type: 'REGISTERED' }>;
  return { conn, events, id: registered.registered.agent_id.value };
}

/** The first LAUNCH among `events`. */
function launchOf(events: AgentEvent[]): Extract<AgentEvent, { type: 'LAUNCH' }>['launch'] {
  const e = events.find((x) => x.type === 'LAUNCH');
  if (e?.type !== 'LAUNCH') throw new Error('no LAUNCH yet');
  return e.launch;
}

/**
 * Three agents with the same resources, to compare what each is sent: one of
 * this release, an older one announcing `olderCapabilities`, and a raw one
 * announcing `rawCapabilities` whose records are kept as they came over the
 * wire; a framework subscribed with an offer for each, and each agent's
 * letter for task names (c, o, w).
 */
async function threeAgents(
  url: string,
  resources: string,
  olderCapabilities: AgentCapability[],
  rawCapabilities: string[],
  info: ConstructorParameters<typeof TestFramework>[1] = {},
): Promise<{ current: SimAgent; older: SimAgent; wire: AgentEvent[]; offers: V1Offer[]; hosts: Map<string | undefined, string>; f: TestFramework }> {
  const current = await agent(url, { hostname: 'current', resources });
  const older = await agent(url, { hostname: 'older', resources, capabilities: olderCapabilities });
  const { events: wire, id: rawId } = await rawAgent(url, resources, rawCapabilities);
  const f = framework(url, info);
  await f.subscribe();
  const offers = await f.offers();
  expect(offers).toHaveLength(3);
  const hosts = new Map<string | undefined, string>([
    [current.id, 'c'],
    [older.id, 'o'],
    [rawId, 'w'],
  ]);
  return { current, older, wire, offers, hosts, f };
}

function framework(url: string, info: ConstructorParameters<typeof TestFramework>[1] = {}): TestFramework {
  const f = new TestFramework(url, info);
  cleanup.push(() => f.client.close());
  return f;
}

async function tasks(url: string): Promise<{ tasks: V1Task[]; unreachable_tasks: V1Task[]; completed_tasks: V1Task[] }> {
  const ops = new OperatorClient({ master: url });
  try {
    return (await ops.call<{ get_tasks: { tasks: V1Task[]; unreachable_tasks: V1Task[]; completed_tasks: V1Task[] } }>('GET_TASKS')).get_tasks;
  } finally {
    await ops.close();
  }
}

describe('framework lifecycle over the v1 scheduler API', () => {
  it('subscribes, launches, acknowledges, reconciles and kills', async () => {
    master = await startTestMaster();
    const a = await agent(master.url);
    const f = framework(master.url);
    await f.subscribe();
    const subscribed = f.events[0]!;
    expect(subscribed.type).toBe('SUBSCRIBED');
    expect(f.client.conn.streamId).toMatch(/^[0-9a-f-]{36}$/);
    const [offer] = await f.offers();
    expect(offer!.agent_id.value).toBe(a.id);
    expect(offer!.resources.find((r) => r.name === 'cpus')?.scalar?.value).toBe(4);
    expect(offer!.allocation_info.role).toBe('*');
    await f.launch(offer!, [{ id: 't1', resources: 'cpus:1;mem:128;ports:[31000-31000]' }]);
    const running = await f.update('t1', 'TASK_RUNNING');
    expect(running.uuid).toBeTruthy();
    expect(running.agent_id?.value).toBe(a.id);
    // Acknowledged: the agent stops retrying and the master clears the pending uuid.
    await until(async () => (await tasks(master!.url)).tasks.find((t) => t.task_id.value === 't1')?.status_update_uuid === undefined);
    await until(() => a.updates.pending().length === 0);

    await f.client.reconcile([{ task_id: { value: 't1' } }, { task_id: { value: 'ghost' } }]);
    const ghost = await f.update('ghost', 'TASK_LOST');
    expect(ghost.reason).toBe('REASON_RECONCILIATION');
    expect(ghost.uuid).toBeUndefined();
    const explicit = f.updates('t1').filter((s) => s.reason === 'REASON_RECONCILIATION');
    expect(explicit.at(-1)?.state).toBe('TASK_RUNNING');

    const before = f.updates('t1').length;
    await f.client.reconcile();
    await until(() => f.updates('t1').length > before);
    expect(f.updates('t1').at(-1)!.state).toBe('TASK_RUNNING');

    await f.client.kill('t1');
    await f.update('t1', 'TASK_KILLED');
    await until(async () => (await tasks(master!.url)).completed_tasks.some((t) => t.task_id.value === 't1'));
  });

  it('delivers status updates at least once until acknowledged', async () => {
    master = await startTestMaster();
    await agent(master.url);
    const f = framework(master.url);
    f.autoAck = false;
    await f.subscribe();
    const [offer] = await f.offers();
    await f.launch(offer!, [{ id: 'retry', resources: 'cpus:1;mem:64' }]);
    const first = await f.update('retry', 'TASK_RUNNING');
    // The agent resends the unacknowledged update (same uuid) after its retry interval.
    await until(() => f.updates('retry').filter((s) => s.uuid === first.uuid).length >= 2, 5000);
    await f.client.acknowledge(first);
    const count = f.updates('retry').length;
    await new Promise((r) => setTimeout(r, 1500));
    expect(f.updates('retry').length).toBe(count);
  });

  it('sends the acknowledgements of one burst of updates in one ACKNOWLEDGE_BATCH call', async () => {
    master = await startTestMaster();
    const a = await agent(master.url);
    const f = framework(master.url);
    await f.subscribe();
    const [offer] = await f.offers();
    const ids = ['b1', 'b2', 'b3', 'b4'];
    await f.launch(
      offer!,
      ids.map((id) => ({ id, resources: 'cpus:0.5;mem:64' })),
    );
    for (const id of ids) await f.update(id, 'TASK_RUNNING');
    await until(() => a.updates.pending().length === 0);
    const metrics = await (await fetch(`${master.url}/metrics`)).text();
    const calls = (type: string) => Number(new RegExp(`scheduler_calls_total\\{type="${type}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    // The agent reports the four launches in one update call, so the framework acknowledges them in one batch.
    expect(calls('ACKNOWLEDGE_BATCH')).toBe(1);
    expect(calls('ACKNOWLEDGE')).toBe(0);
    expect((await tasks(master.url)).tasks.filter((t) => ids.includes(t.task_id.value) && t.status_update_uuid === undefined)).toHaveLength(4);
  });

  it('forwards acknowledgements to an agent in one ACKNOWLEDGE_BATCH record, or one by one to an agent that did not announce it', async () => {
    master = await startTestMaster();
    const current = await agent(master.url, { hostname: 'current' });
    const older = await agent(master.url, { hostname: 'older', capabilities: [] });
    const f = framework(master.url);
    await f.subscribe();
    const offers = await f.offers();
    expect(offers).toHaveLength(2);
    for (const offer of offers) {
      const host = offer.agent_id.value === current.id ? 'c' : 'o';
      await f.launch(
        offer,
        [1, 2, 3].map((n) => ({ id: `${host}${n}`, resources: 'cpus:1;mem:64' })),
      );
    }
    for (const id of ['c1', 'c2', 'c3', 'o1', 'o2', 'o3']) await f.update(id, 'TASK_RUNNING');
    await until(() => current.updates.pending().length === 0 && older.updates.pending().length === 0);
    const batches = current.received.filter((e) => e.type === 'ACKNOWLEDGE_BATCH');
    expect(current.received.filter((e) => e.type === 'ACKNOWLEDGE')).toHaveLength(0);
    const batched = batches.flatMap((e) => (e.type === 'ACKNOWLEDGE_BATCH' ? e.acknowledge_batch.acknowledgements.map((a) => a.task_id.value) : []));
    expect(batched.sort()).toEqual(['c1', 'c2', 'c3']);
    expect(batches.every((e) => e.type === 'ACKNOWLEDGE_BATCH' && e.acknowledge_batch.framework_id.value === f.client.frameworkId)).toBe(true);
    expect(older.received.filter((e) => e.type === 'ACKNOWLEDGE_BATCH')).toHaveLength(0);
    expect(
      older.received
        .filter((e) => e.type === 'ACKNOWLEDGE')
        .map((e) => (e.type === 'ACKNOWLEDGE' ? e.acknowledge.task_id.value : ''))
        .sort(),
    ).toEqual(['o1', 'o2', 'o3']);
  });

  it('sends a compact LAUNCH to an agent that announces COMPACT_LAUNCH, which its session expands to the TaskInfos an older agent gets', async () => {
    master = await startTestMaster();
    const resources = 'cpus(dev):2;cpus:2;mem:4096';
    const { current, older, wire, offers, hosts, f } = await threeAgents(master.url, resources, ['ACKNOWLEDGE_BATCH'], ['COMPACT_LAUNCH'], {
      roles: ['dev'],
      capabilities: [{ type: 'MULTI_ROLE' }],
    });
    for (const offer of offers) await f.launch(offer, [{ id: `${hosts.get(offer.agent_id.value)}1`, resources: 'cpus(dev):1;cpus:1;mem:64' }]);
    await until(() => [current.received, older.received, wire].every((events) => events.some((e) => e.type === 'LAUNCH')));

    // On the wire: the shared allocation role once, no agent_id, no role on the unreserved resources.
    const compact = launchOf(wire);
    expect(compact.allocation_role).toBe('dev');
    const [wireTask] = compact.tasks;
    expect(wireTask!.agent_id).toBeUndefined();
    expect(wireTask!.resources.every((r) => r.allocation_info === undefined)).toBe(true);
    expect(
      wireTask!.resources
        .filter((r) => r.role === undefined)
        .map((r) => r.name)
        .sort(),
    ).toEqual(['cpus', 'mem']);
    expect(wireTask!.resources.find((r) => r.role === 'dev')?.reservations?.[0]).toMatchObject({ role: 'dev' });

    // An older agent gets full TaskInfos; the current agent's session restores exactly those.
    const full = launchOf(older.received).tasks[0]!;
    expect(full.agent_id).toEqual({ value: older.id });
    expect(full.resources.every((r) => r.allocation_info?.role === 'dev' && r.role !== undefined)).toBe(true);
    expect(launchOf(older.received).allocation_role).toBeUndefined();
    const expanded = launchOf(current.received).tasks[0]!;
    expect(JSON.parse(JSON.stringify(expanded))).toEqual({ ...JSON.parse(JSON.stringify(full)), name: 'c1', task_id: { value: 'c1' }, agent_id: { value: current.id } });

    // The agent reports the expanded task when it re-registers: the master still counts it against role dev.
    await f.update('c1', 'TASK_RUNNING');
    await current.crash();
    const again = new SimAgent({ master: master.url, hostname: 'current', resources, agentId: current.id!, updateRetryMs: 300 });
    cleanup.push(() => again.stop());
    for (const [k, t] of current.tasks) again.tasks.set(k, t);
    await again.start();
    const task = (await tasks(master.url)).tasks.find((t) => t.task_id.value === 'c1');
    expect(task?.state).toBe('TASK_RUNNING');
    expect(task?.resources.every((r) => r.allocation_info?.role === 'dev')).toBe(true);
  });

  it('sends what the tasks of a LAUNCH share once (task_defaults) to an agent that announces LAUNCH_DEFAULTS; its session restores the TaskInfos an older agent gets', async () => {
    master = await startTestMaster();
    const { current, older, wire, offers, hosts, f } = await threeAgents(master.url, 'cpus:4;mem:4096', ['ACKNOWLEDGE_BATCH', 'COMPACT_LAUNCH'], ['COMPACT_LAUNCH', 'LAUNCH_DEFAULTS']);
    for (const offer of offers) {
      const h = hosts.get(offer.agent_id.value)!;
      await f.launch(offer, [
        { id: `${h}1`, resources: 'cpus:1;mem:64' },
        { id: `${h}2`, resources: 'cpus:1;mem:64' },
        { id: `${h}3`, resources: 'cpus:1;mem:128' },
      ]);
    }
    await until(() => [current.received, older.received, wire].every((events) => events.some((e) => e.type === 'LAUNCH')));

    // On the wire: the tasks' shared resource list once; the third task, which differs, carries its own.
    const sent = launchOf(wire);
    expect(sent.task_defaults?.resources?.map((r) => `${r.name}:${r.scalar?.value}`)).toEqual(['cpus:1', 'mem:64']);
    expect(sent.tasks.map((t) => t.resources?.map((r) => `${r.name}:${r.scalar?.value}`))).toEqual([undefined, undefined, ['cpus:1', 'mem:128']]);
    // Commands are compared by reference only (the master does not pay for a deep comparison): the first task's is
    // the defaults', the others' are objects of their own and are sent.
    expect(sent.task_defaults?.command).toEqual({ value: 'sleep 1000' });
    expect(sent.tasks.map((t) => t.command?.value)).toEqual([undefined, 'sleep 1000', 'sleep 1000']);

    // An agent without LAUNCH_DEFAULTS gets every task in full; the current agent's session restores exactly that.
    expect(launchOf(older.received).task_defaults).toBeUndefined();
    const plain = (events: AgentEvent[], h: string, agentId: string | undefined): unknown =>
      JSON.parse(
        JSON.stringify(
          launchOf(events).tasks.map((t) => ({ ...t, name: t.name.replace(h, ''), task_id: { value: t.task_id.value.replace(h, '') }, agent_id: t.agent_id?.value === agentId ? 'own' : t.agent_id })),
        ),
      );
    expect(plain(current.received, 'c', current.id)).toEqual(plain(older.received, 'o', older.id));
    expect(launchOf(current.received).task_defaults).toBeUndefined();
  });

  it("takes an agent's status updates one entry per status or grouped by framework, the form it announces in master_info", async () => {
    master = await startTestMaster();
    const { conn: raw, events, id } = await rawAgent(master.url, 'cpus:4;mem:1024');
    const registered = (events.find((e) => e.type === 'REGISTERED') as Extract<AgentEvent, { type: 'REGISTERED' }>).registered;
    expect(registered.master_info.capabilities).toContainEqual({ type: 'GROUPED_STATUS_UPDATES' });

    const f = framework(master.url);
    await f.subscribe();
    const [offer] = await f.offers();
    await f.launch(
      offer!,
      ['flat', 'g1', 'g2'].map((id) => ({ id, resources: 'cpus:1;mem:64' })),
    );
    await until(() => events.some((e) => e.type === 'LAUNCH'));
    const agentId = { value: id };
    const framework_id = { value: f.id };
    const running = (id: string, uuid: string) => ({ task_id: { value: id }, state: 'TASK_RUNNING', uuid });
    await raw.call({ ...agentUpdateCall([{ framework_id, statuses: [running('flat', 'AAAAAAAAAAAAAAAAAAAAAA==') as never] }], false), agent_id: agentId });
    await raw.call({
      ...agentUpdateCall([{ framework_id, statuses: [running('g1', 'BAAAAAAAAAAAAAAAAAAAAA==') as never, running('g2', 'CAAAAAAAAAAAAAAAAAAAAA==') as never] }], true),
      agent_id: agentId,
    });
    for (const id of ['flat', 'g1', 'g2']) expect((await f.update(id, 'TASK_RUNNING')).agent_id).toEqual(agentId);

    // Both forms at once, or neither, is refused with a reason.
    const both = raw.call({
      type: 'UPDATE',
      agent_id: agentId,
      update: { updates: [{ framework_id, status: running('g1', 'DAAAAAAAAAAAAAAAAAAAAA==') }], frameworks: [{ framework_id, statuses: [running('g2', 'EAAAAAAAAAAAAAAAAAAAAA==')] }] },
    });
    await expect(both).rejects.toThrow(/either "updates" or "frameworks"/);
    await expect(raw.call({ type: 'UPDATE', agent_id: agentId, update: {} })).rejects.toThrow(/either "updates" or "frameworks"/);
  });

  it('sends acknowledgements on their own connection, ahead of a backlog of other calls', async () => {
    master = await startTestMaster();
    const a = await agent(master.url);
    const f = framework(master.url);
    f.autoAck = false;
    await f.subscribe();
    const [offer] = await f.offers();
    await f.launch(offer!, [{ id: 'lane', resources: 'cpus:1;mem:64' }]);
    const running = await f.update('lane', 'TASK_RUNNING');
    // A framework answering a flood of offers queues many calls at once (here 400 REVIVEs on two connections, one at a time each).
    let revivesDone = 0;
    const revives = Array.from({ length: 400 }, () => f.client.revive().then(() => revivesDone++));
    await f.client.acknowledge(running);
    const revivesBeforeAck = revivesDone;
    await Promise.all(revives);
    expect(revivesBeforeAck).toBeLessThan(200);
    await until(() => a.updates.pending().length === 0);
  });

  it('keeps tasks across framework failover within failover_timeout, and tells the old instance', async () => {
    master = await startTestMaster();
    await agent(master.url);
    const f1 = framework(master.url, { failover_timeout: 60 });
    await f1.subscribe();
    const [offer] = await f1.offers();
    await f1.launch(offer!, [{ id: 'keep', resources: 'cpus:1;mem:64' }]);
    await f1.update('keep', 'TASK_RUNNING');
    // A second scheduler instance takes over with the same id while the first is still connected.
    const f2 = framework(master.url, { failover_timeout: 60, id: { value: f1.id } });
    await f2.subscribe();
    expect(f2.id).toBe(f1.id);
    await until(() => f1.events.some((e) => e.type === 'ERROR' && e.error.message.includes('failed over')));
    await f2.client.reconcile();
    await f2.update('keep', 'TASK_RUNNING');
    // Disconnect entirely, come back within the timeout: tasks are still there.
    f2.client.disconnect();
    await new Promise((r) => setTimeout(r, 300));
    expect((await tasks(master.url)).tasks.map((t) => t.task_id.value)).toContain('keep');
    const f3 = framework(master.url, { failover_timeout: 60, id: { value: f1.id } });
    await f3.subscribe();
    expect(f3.id).toBe(f1.id);
  });

  it('removes a framework whose failover_timeout expires, killing its tasks', async () => {
    master = await startTestMaster();
    const a = await agent(master.url);
    const f = framework(master.url, { failover_timeout: 0.3 });
    await f.subscribe();
    const [offer] = await f.offers();
    await f.launch(offer!, [{ id: 'doomed', resources: 'cpus:1;mem:64' }]);
    await f.update('doomed', 'TASK_RUNNING');
    f.client.disconnect();
    await until(() => a.received.some((e) => e.type === 'SHUTDOWN_FRAMEWORK'), 5000);
    expect((await tasks(master.url)).tasks).toHaveLength(0);
    // A removed framework cannot come back under its old id.
    const again = framework(master.url, { id: { value: f.id } });
    await expect(again.subscribe()).rejects.toThrow(/removed/);
  });

  it('rescinds offers of a lost agent and reports its tasks LOST, or UNREACHABLE to partition-aware frameworks', async () => {
    master = await startTestMaster({ agents: { heartbeatIntervalMs: 100, maxMissedHeartbeats: 3, unreachableTimeoutMs: 500, reregisterTimeoutMs: 5000 } });
    const a1 = await agent(master.url, { hostname: 'a1', resources: 'cpus:2;mem:1024' });
    const plain = framework(master.url, { name: 'plain' });
    const aware = framework(master.url, { name: 'aware', capabilities: [{ type: 'PARTITION_AWARE' }] });
    await plain.subscribe();
    const [o1] = await plain.offers();
    // The unused rest is refused for a while, so it goes to the other framework.
    await plain.launch(o1!, [{ id: 'p1', resources: 'cpus:1;mem:64' }], 60);
    await plain.update('p1', 'TASK_RUNNING');
    await aware.subscribe();
    const [o2] = await aware.offers();
    await aware.launch(o2!, [{ id: 'w1', resources: 'cpus:1;mem:64' }], 60);
    await aware.update('w1', 'TASK_RUNNING');
    await a1.crash();
    await plain.update('p1', 'TASK_LOST', 5000);
    const unreachable = await aware.update('w1', 'TASK_UNREACHABLE', 5000);
    expect(unreachable.reason).toBe('REASON_AGENT_REMOVED');
    const state = await tasks(master.url);
    expect(state.unreachable_tasks.map((t) => t.task_id.value)).toEqual(['w1']);
    // The agent comes back with its task: the partition-aware task is running again.
    const back = new SimAgent({ master: master.url, hostname: 'a1', resources: 'cpus:2;mem:1024', agentId: a1.id! });
    cleanup.push(() => back.stop());
    // Carry the running tasks over, as a recovering agent does from its checkpoint.
    for (const [k, t] of a1.tasks) back.tasks.set(k, t);
    await back.start();
    await until(async () => (await tasks(master!.url)).tasks.some((t) => t.task_id.value === 'w1' && t.state === 'TASK_RUNNING'));
    await until(() => aware.updates('w1').some((u) => u.state === 'TASK_RUNNING' && u.reason === 'REASON_AGENT_REREGISTERED'));
    // The non-partition-aware task was already reported LOST: the agent is told to kill it.
    await until(() => back.received.some((e) => e.type === 'KILL' && e.kill.task_id.value === 'p1'));
  });

  it('rescinds outstanding offers when an agent disconnects', async () => {
    master = await startTestMaster();
    const a = await agent(master.url);
    const f = framework(master.url);
    await f.subscribe();
    const [offer] = await f.offers();
    await a.crash();
    const e = await f.client.next((x) => x.type === 'RESCIND');
    expect(e.type === 'RESCIND' && e.rescind.offer_id.value).toBe(offer!.id.value);
    await expect(f.launch(offer!, [{ id: 'late', resources: 'cpus:1;mem:64' }])).rejects.toThrow(/not outstanding/);
  });
});
