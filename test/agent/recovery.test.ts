/**
 * The real agent surviving crashes: SIGKILL of the agent while native tasks
 * run (tasks survive, the restarted agent reattaches, reports what ended
 * meanwhile exactly once and resends unacknowledged updates), and SIGKILL of
 * the master (the agent re-registers; its tasks stay and can be killed).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MasterProcess } from '../harness/master-process.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { AgentProcess } from '../harness/agent-process.js';
import { testDir } from '../harness/resources.js';
import { freePort } from '../harness/ports.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';
import type { V1Offer, V1Task, V1TaskInfo } from '../../contracts/v1/v1.js';
import { until } from '../harness/wait.js';

let master: MasterProcess;
let agent: AgentProcess;
let fw: TestFramework;
let ops: OperatorClient;
let dir: string;
const offers: V1Offer[] = [];

const FRAMEWORK = { name: 'recovery-test', failover_timeout: 3600, capabilities: [{ type: 'TASK_KILLING_STATE' as const }, { type: 'PARTITION_AWARE' as const }] };

/** Launch on an offer that holds the task; offers rescinded meanwhile (agent restarts) are dropped and another is taken. */
async function launch(id: string, cmd: string): Promise<void> {
  for (;;) {
    try {
      return await launchOnce(id, cmd);
    } catch (e) {
      if (!/not outstanding/.test(String(e))) throw e;
    }
  }
}

async function launchOnce(id: string, cmd: string): Promise<void> {
  const want = parseResources('cpus:0.1;mem:32');
  let o: V1Offer | undefined;
  while (!o) {
    const i = offers.findIndex((x) => Resources.fromV1(x.resources).contains(want));
    if (i >= 0) o = offers.splice(i, 1)[0]!;
    else offers.push(...(await fw.offers(10_000)));
  }
  const task = { name: id, task_id: { value: id }, agent_id: o.agent_id, resources: resourcesJson('cpus:0.1;mem:32'), command: { value: cmd } } as V1TaskInfo;
  await fw.client.accept([o.id.value], [{ type: 'LAUNCH', launch: { task_infos: [task] } }], 0);
}

const states = (id: string): string[] => fw.updates(id).map((u) => u.state);
const alive = (pid: number): boolean => existsSync(`/proc/${pid}`);

async function masterTasks(): Promise<V1Task[]> {
  return (await ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS')).get_tasks.tasks;
}

beforeAll(async () => {
  dir = testDir('agent-recovery');
  // Generous unreachable timeout: an agent restart is a hiccup, not a loss.
  master = new MasterProcess(join(dir, 'master'), await freePort(), ['--no-auth']);
  process.env.CORRAL_MASTER_AGENTS__UNREACHABLE_TIMEOUT_MS = '60000';
  await master.start();
  ops = new OperatorClient({ master: master.url });
  agent = new AgentProcess({ master: master.url, dir });
  await agent.start();
  fw = new TestFramework(master.url, FRAMEWORK);
  await fw.subscribe();
});

afterAll(async () => {
  delete process.env.CORRAL_MASTER_AGENTS__UNREACHABLE_TIMEOUT_MS;
  await fw?.client.close().catch(() => undefined);
  await ops?.close().catch(() => undefined);
  await agent?.cleanup();
  await master?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe('agent recovery', () => {
  it('tasks survive an agent SIGKILL; the restarted agent reattaches and reports what ended meanwhile exactly once', async () => {
    await launch('long', 'sleep 600');
    await launch('short', 'sleep 4');
    // 'unacked' ends while nobody acknowledges its FINISHED: that update must survive the crash.
    fw.holdAck = (s) => s.task_id.value === 'unacked' && s.state === 'TASK_FINISHED';
    await launch('unacked', 'sleep 0.5');
    await fw.update('long', 'TASK_RUNNING', 15_000);
    await fw.update('short', 'TASK_RUNNING', 15_000);
    const finished = await fw.update('unacked', 'TASK_FINISHED', 15_000);
    const pidsBefore = agent.taskPids();
    expect(pidsBefore.length).toBeGreaterThanOrEqual(2);

    await agent.stop('SIGKILL');
    // The agent is gone, its tasks are not.
    expect(pidsBefore.every(alive)).toBe(true);
    // 'short' ends while the agent is down.
    await new Promise((r) => setTimeout(r, 4500));

    const unackedBefore = fw.updates('unacked').length;
    await agent.start();
    await fw.update('short', 'TASK_FINISHED', 20_000);
    // The unacknowledged update is sent again, with the same uuid.
    await until(() => fw.updates('unacked').length > unackedBefore);
    expect(fw.updates('unacked').at(-1)!.uuid).toBe(finished.uuid);
    fw.holdAck = () => false;
    await fw.client.acknowledge(fw.updates('unacked').at(-1)!);

    // Nothing duplicated, nothing lost: one FINISHED for 'short', and 'long' still runs with the same process.
    await new Promise((r) => setTimeout(r, 1000));
    expect(states('short').filter((s) => s === 'TASK_FINISHED')).toHaveLength(1);
    expect(states('long').filter((s) => s !== 'TASK_RUNNING' && s !== 'TASK_STARTING')).toEqual([]);
    const longTask = (await masterTasks()).find((t) => t.task_id.value === 'long');
    expect(longTask?.state).toBe('TASK_RUNNING');
    expect(agent.taskPids().filter((p) => pidsBefore.includes(p)).length).toBeGreaterThanOrEqual(1);
    const containers = (await (await fetch(`${agent.url}/api/v1/containers`)).json()) as Array<{ task_id?: string; taskId?: string }>;
    expect(JSON.stringify(containers)).toContain('long');

    // The reattached task can still be killed.
    await fw.client.kill('long');
    await fw.update('long', 'TASK_KILLED', 15_000);
    await until(() => agent.taskPids().length === 0 && agent.leftoverCgroups().length === 0, 10_000);
  });

  it('re-registers after a master SIGKILL and restart; its tasks stay', async () => {
    await launch('survivor', 'sleep 600');
    await fw.update('survivor', 'TASK_RUNNING', 15_000);
    const frameworkId = fw.id;
    const pids = agent.taskPids();

    await master.kill('SIGKILL');
    fw.client.disconnect();
    await master.start();

    // The agent reconnects by itself and still reports the task as running.
    await until(async () => (await masterTasks()).some((t) => t.task_id.value === 'survivor' && t.state === 'TASK_RUNNING'));
    expect(pids.every(alive)).toBe(true);

    // The framework fails over to the restarted master and still owns the task.
    await fw.client.close().catch(() => undefined);
    fw = new TestFramework(master.url, { ...FRAMEWORK, id: { value: frameworkId } });
    await fw.subscribe();
    expect(fw.id).toBe(frameworkId);
    await fw.client.reconcile();
    await fw.update('survivor', 'TASK_RUNNING', 10_000);
    await fw.client.kill('survivor');
    await fw.update('survivor', 'TASK_KILLED', 15_000);
    await until(() => agent.taskPids().length === 0, 10_000);
    expect(pids.some(alive)).toBe(false);
  });
});
