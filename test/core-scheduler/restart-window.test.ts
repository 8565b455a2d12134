/**
 * The window right after a master restart (and, later, after every failover):
 * the registry is back, the agents have not re-registered yet, so the master
 * knows the agents and frameworks but not their tasks. What a framework or an
 * operator asks in that window must not be lost or answered with a state the
 * master invented. Each test kills a real master process (SIGKILL), starts it
 * again on the same work directory, and brings the agent back only when the
 * test says so (the simulated agent does not reconnect by itself).
 */
import { describe, it, expect } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MasterProcess } from '../harness/master-process.js';
import { TestFramework } from '../harness/framework.js';
import { testDir } from '../harness/resources.js';
import { freePort } from '../harness/ports.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { until } from '../harness/wait.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import type { AgentEvent, SchedulerEvent, V1FrameworkInfo, V1FrameworkSummary, V1Task, V1TaskStatus } from '../../contracts/v1/v1.js';

const cleanup = stopsAfterEach();

interface Cluster {
  master: MasterProcess;
  ops: OperatorClient;
  agent: SimAgent;
  agentId: string;
}

/** A master (its config file in its work dir) and one simulated agent that re-registers only when told to. */
async function cluster(name: string, agents: Record<string, number> = {}): Promise<Cluster> {
  const workDir = testDir(name);
  const configFile = join(workDir, 'master.json');
  writeFileSync(configFile, JSON.stringify({ agents }));
  const master = new MasterProcess(workDir, await freePort(), ['--no-auth', '--config', configFile]);
  cleanup.push(async () => {
    await master.kill();
    rmSync(workDir, { recursive: true, force: true });
  });
  await master.start();
  const ops = new OperatorClient({ master: master.url });
  cleanup.push(() => ops.close());
  const agent = new SimAgent({ master: master.url, hostname: `${name}-host`, resources: 'cpus:8;mem:8192', reconnect: false });
  cleanup.push(() => agent.stop());
  const agentId = await agent.start();
  return { master, ops, agent, agentId };
}

/** A framework that launches `tasks` and waits until each runs and the agent holds no unacknowledged update. */
async function frameworkWithTasks(c: Cluster, info: Partial<V1FrameworkInfo>, tasks: string[]): Promise<TestFramework> {
  const f = new TestFramework(c.master.url, { failover_timeout: 3600, ...info });
  cleanup.push(() => f.client.close());
  await f.subscribe();
  const [offer] = await f.offers();
  await f.launch(
    offer!,
    tasks.map((id) => ({ id, resources: 'cpus:1;mem:128' })),
  );
  for (const id of tasks) await f.update(id, 'TASK_RUNNING');
  // Acknowledged on the agent too: after the restart the agent reports the tasks without a pending update.
  await until(() => tasks.every((id) => c.agent.updates.latestPending(f.id, id) === undefined), 10_000, 'acknowledgements reach the agent');
  // The master must forget this stream, not keep a framework connection across the restart.
  f.client.disconnect();
  return f;
}

/** The same framework subscribing to the restarted master with its id (a scheduler failing over). */
async function resubscribe(master: MasterProcess, info: Partial<V1FrameworkInfo>, id: string): Promise<TestFramework> {
  const f = new TestFramework(master.url, { failover_timeout: 3600, ...info, id: { value: id } });
  cleanup.push(() => f.client.close());
  await f.subscribe();
  return f;
}

let barriers = 0;
/**
 * Waits until everything the master sent `f` before this call has arrived:
 * the master answers a reconciliation of a task on an agent it never heard of
 * at once, on the same stream, after whatever it sent before.
 */
async function barrier(f: TestFramework): Promise<void> {
  const id = `barrier-${++barriers}`;
  await f.client.reconcile([{ task_id: { value: id }, agent_id: { value: 'no-such-agent' } }]);
  await f.update(id, 'TASK_LOST', 10_000);
}

/** Updates without a uuid: the master's own answers (reconciliation, invented states), not the agent's. */
function masterAnswers(f: TestFramework, taskId: string): V1TaskStatus[] {
  return f.updates(taskId).filter((s) => s.uuid === undefined);
}

function agentGot(agent: SimAgent, pred: (e: AgentEvent) => boolean): boolean {
  return agent.received.some(pred);
}

async function restart(c: Cluster): Promise<void> {
  await c.master.kill('SIGKILL');
  await c.master.start();
}

describe('right after a master restart, before the agent re-registers', () => {
  it('KILL is held for the agent and forwarded when it re-registers: no TASK_LOST invented for a task that still runs', async () => {
    const c = await cluster('rw-kill');
    const info = { name: 'killer' };
    const f0 = await frameworkWithTasks(c, info, ['with-agent-id', 'without-agent-id', 'left-alone']);
    await restart(c);
    const f = await resubscribe(c.master, info, f0.id);

    await f.client.kill('with-agent-id', c.agentId);
    await f.client.kill('without-agent-id');
    await barrier(f);
    // Mesos: the task is unknown and its agent may come back, so nothing is said yet (no invented terminal state).
    expect(masterAnswers(f, 'with-agent-id')).toEqual([]);
    expect(masterAnswers(f, 'without-agent-id')).toEqual([]);

    // The agent comes back with its three tasks: the two kills reach it, the third task keeps running.
    await c.agent.session.start();
    const killed = await f.update('with-agent-id', 'TASK_KILLED', 15_000);
    expect(killed.source).toBe('SOURCE_EXECUTOR');
    await f.update('without-agent-id', 'TASK_KILLED', 15_000);
    expect(agentGot(c.agent, (e) => e.type === 'KILL' && e.kill.task_id.value === 'with-agent-id')).toBe(true);
    for (const id of ['with-agent-id', 'without-agent-id']) expect(f.updates(id).map((s) => s.state)).not.toContain('TASK_LOST');
    expect(agentGot(c.agent, (e) => e.type === 'KILL' && e.kill.task_id.value === 'left-alone')).toBe(false);
    const tasks = (await c.ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS')).get_tasks.tasks;
    expect(tasks.find((t) => t.task_id.value === 'left-alone')?.state).toBe('TASK_RUNNING');
  });

  it('KILL held for an agent that never comes back is answered as the agent is marked unreachable: TASK_LOST from the master', async () => {
    // The agent gets 15 s to re-register; the kill is sent well inside that window.
    const c = await cluster('rw-kill-lost', { reregisterTimeoutMs: 15_000 });
    const info = { name: 'killer' };
    const f0 = await frameworkWithTasks(c, info, ['doomed']);
    await c.agent.stop();
    await restart(c);
    const f = await resubscribe(c.master, info, f0.id);

    await f.client.kill('doomed', c.agentId);
    await barrier(f);
    const recovered = (await c.ops.call<{ get_agents: { recovered_agents: Array<{ id: { value: string } }> } }>('GET_AGENTS')).get_agents.recovered_agents;
    expect(recovered.map((a) => a.id.value)).toEqual([c.agentId]); // still waiting for it, so the kill was held
    expect(masterAnswers(f, 'doomed')).toEqual([]);

    const lost = await f.update('doomed', 'TASK_LOST', 40_000);
    expect(lost).toMatchObject({ source: 'SOURCE_MASTER', agent_id: { value: c.agentId } });
    expect(lost.uuid).toBeUndefined();
    expect(masterAnswers(f, 'doomed')).toHaveLength(1);
  });

  it('KILL of a known task on a disconnected agent is held the same way and sent when the agent re-registers (Mesos killedTasks)', async () => {
    const c = await cluster('rw-kill-disconnected');
    const f = new TestFramework(c.master.url, { name: 'killer', failover_timeout: 3600 });
    cleanup.push(() => f.client.close());
    await f.subscribe();
    const [offer] = await f.offers();
    await f.launch(offer!, [{ id: 'k', resources: 'cpus:1;mem:128' }]);
    await f.update('k', 'TASK_RUNNING');
    await until(() => c.agent.updates.latestPending(f.id, 'k') === undefined, 10_000, 'acknowledgement reaches the agent');

    // The agent's stream breaks (no master restart here): the master sees it disconnected, the task stays known.
    c.agent.session.disconnect();
    const active = async (): Promise<boolean | undefined> =>
      (await c.ops.call<{ get_agents: { agents: Array<{ active: boolean; agent_info: { id: { value: string } } }> } }>('GET_AGENTS')).get_agents.agents.find((a) => a.agent_info.id.value === c.agentId)
        ?.active;
    await until(async () => (await active()) === false, 10_000, 'the master sees the agent disconnected');
    await f.client.kill('k', c.agentId);
    await barrier(f);
    expect(masterAnswers(f, 'k')).toEqual([]);

    await c.agent.session.start();
    await f.update('k', 'TASK_KILLED', 15_000);
    expect(f.updates('k').map((s) => s.state)).not.toContain('TASK_LOST');
  });

  it('TEARDOWN (scheduler or operator) shuts the framework down on the agent when it re-registers; its tasks are not re-adopted', async () => {
    const c = await cluster('rw-teardown');
    const a0 = await frameworkWithTasks(c, { name: 'self-teardown' }, ['a1']);
    const b0 = await frameworkWithTasks(c, { name: 'operator-teardown' }, ['b1']);
    const k0 = await frameworkWithTasks(c, { name: 'kept' }, ['k1']);
    await restart(c);

    const a = await resubscribe(c.master, { name: 'self-teardown' }, a0.id);
    await a.client.teardown();
    await c.ops.call('TEARDOWN', { teardown: { framework_id: { value: b0.id } } });
    const k = await resubscribe(c.master, { name: 'kept' }, k0.id);

    await c.agent.session.start();
    const shutDown = (id: string) => (e: AgentEvent) => e.type === 'SHUTDOWN_FRAMEWORK' && e.shutdown_framework.framework_id.value === id;
    await until(() => agentGot(c.agent, shutDown(a0.id)) && agentGot(c.agent, shutDown(b0.id)), 15_000, 'SHUTDOWN_FRAMEWORK reaches the agent');
    expect(agentGot(c.agent, shutDown(k0.id))).toBe(false);
    // The agent dropped the torn-down frameworks' tasks; the other framework's task runs on.
    expect([...c.agent.tasks.values()].map((t) => t.info.task_id.value)).toEqual(['k1']);

    await until(async () => (await c.ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS')).get_tasks.tasks.some((t) => t.task_id.value === 'k1'), 15_000, 'k1 re-adopted');
    const tasks = (await c.ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS')).get_tasks.tasks;
    expect(tasks.filter((t) => t.state === 'TASK_RUNNING').map((t) => t.task_id.value)).toEqual(['k1']);
    const listed = (await c.ops.call<{ get_frameworks: { frameworks: V1FrameworkSummary[]; recovered_frameworks?: Array<{ id: { value: string } }> } }>('GET_FRAMEWORKS')).get_frameworks;
    const known = [...listed.frameworks.map((x) => x.framework_info.id.value), ...(listed.recovered_frameworks ?? []).map((x) => x.id.value)];
    expect(known).toEqual([k0.id]);
    await k.client.reconcile();
    await k.update('k1', 'TASK_RUNNING');
  });

  it('a TEARDOWN survives another restart (or failover) before the agent returns: the registry remembers removed frameworks', async () => {
    const c = await cluster('rw-teardown-twice');
    const t0 = await frameworkWithTasks(c, { name: 'torn' }, ['t1']);
    const k0 = await frameworkWithTasks(c, { name: 'kept' }, ['k1']);
    await restart(c);
    await c.ops.call('TEARDOWN', { teardown: { framework_id: { value: t0.id } } });
    // A second restart: the new master knows of the teardown only through the registry.
    await restart(c);
    const k = await resubscribe(c.master, { name: 'kept' }, k0.id);

    await c.agent.session.start();
    const shutDown = (id: string) => (e: AgentEvent) => e.type === 'SHUTDOWN_FRAMEWORK' && e.shutdown_framework.framework_id.value === id;
    await until(() => agentGot(c.agent, shutDown(t0.id)), 15_000, 'SHUTDOWN_FRAMEWORK reaches the agent after the second restart');
    expect(agentGot(c.agent, shutDown(k0.id))).toBe(false);
    expect([...c.agent.tasks.values()].map((t) => t.info.task_id.value)).toEqual(['k1']);
    // The removed framework cannot come back under its id either.
    const again = new TestFramework(c.master.url, { name: 'torn', failover_timeout: 3600, id: { value: t0.id } });
    cleanup.push(() => again.client.close());
    await expect(again.subscribe()).rejects.toThrow(/removed/);
    await k.client.reconcile();
    await k.update('k1', 'TASK_RUNNING');
  });

  it('reconciliation answers come from the master (SOURCE_MASTER, REASON_RECONCILIATION) before and after the agent re-registers', async () => {
    const c = await cluster('rw-reconcile');
    const info = { name: 'reconciler' };
    const f0 = await frameworkWithTasks(c, info, ['r1']);
    await restart(c);
    const f = await resubscribe(c.master, info, f0.id);
    const seen = (): SchedulerEvent[] => f.events.filter((e) => e.type === 'UPDATE' && e.update.status.task_id.value === 'r1' && e.update.status.uuid === undefined);

    // On a recovered agent the task is unknown yet: implicit and explicit reconciliation say nothing of it (Mesos).
    await f.client.reconcile();
    await f.client.reconcile([{ task_id: { value: 'r1' }, agent_id: { value: c.agentId } }]);
    await f.client.reconcile([{ task_id: { value: 'r1' } }]);
    await barrier(f);
    expect(seen()).toEqual([]);

    await c.agent.session.start();
    await until(async () => (await c.ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS')).get_tasks.tasks.some((t) => t.task_id.value === 'r1'), 15_000, 'r1 re-adopted');

    // On the re-registered agent: implicit, explicit with and without the agent id.
    const asks: Array<() => Promise<unknown>> = [
      () => f.client.reconcile(),
      () => f.client.reconcile([{ task_id: { value: 'r1' }, agent_id: { value: c.agentId } }]),
      () => f.client.reconcile([{ task_id: { value: 'r1' } }]),
    ];
    for (const [i, ask] of asks.entries()) {
      await ask();
      await until(() => seen().length === i + 1, 10_000, `reconciliation answer ${i + 1}`);
    }
    const answers = masterAnswers(f, 'r1');
    expect(answers).toHaveLength(3);
    for (const s of answers) expect(s).toMatchObject({ state: 'TASK_RUNNING', source: 'SOURCE_MASTER', reason: 'REASON_RECONCILIATION', agent_id: { value: c.agentId } });
  });
});
