/**
 * The real agent (a child process) running native tasks placed by a real
 * master: states and reasons, OOM, bad definitions, logs, health checks, kill
 * with a grace period, and nothing left behind.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { AgentProcess } from '../harness/agent-process.js';
import { testDir } from '../harness/resources.js';
import type { V1Offer, V1TaskInfo } from '../../contracts/v1/v1.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';

let master: TestMaster;
let agent: AgentProcess;
let fw: TestFramework;
let dir: string;
const offers: V1Offer[] = [];

/** An offer holding `need` (the framework keeps the others for later launches). */
async function offer(need: string): Promise<V1Offer> {
  const want = parseResources(need);
  for (;;) {
    const i = offers.findIndex((o) => Resources.fromV1(o.resources).contains(want));
    if (i >= 0) return offers.splice(i, 1)[0]!;
    offers.push(...(await fw.offers(10_000)));
  }
}

async function launch(task: Partial<Omit<V1TaskInfo, 'resources'>> & { id: string; resources?: string }): Promise<void> {
  const { id, resources = 'cpus:0.1;mem:64', ...rest } = task;
  const o = await offer(resources);
  await fw.client.accept(
    [o.id.value],
    [{ type: 'LAUNCH', launch: { task_infos: [{ name: id, task_id: { value: id }, agent_id: o.agent_id, resources: resourcesJson(resources), ...rest } as V1TaskInfo] } }],
    0,
  );
}

beforeAll(async () => {
  dir = testDir('agent-lifecycle');
  master = await startTestMaster();
  agent = new AgentProcess({ master: master.url, dir });
  await agent.start();
  fw = new TestFramework(master.url, { name: 'agent-test', capabilities: [{ type: 'TASK_KILLING_STATE' }] });
  await fw.subscribe();
});

afterAll(async () => {
  await fw?.client.close();
  await agent?.cleanup();
  await master?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('agent: native tasks', () => {
  it('runs a command to completion: STARTING, RUNNING, FINISHED', async () => {
    await launch({ id: 'ok', command: { value: 'echo hello from $CORRAL_TASK_ID; sleep 0.2' } });
    await fw.update('ok', 'TASK_FINISHED', 15_000);
    expect(fw.updates('ok').map((u) => u.state)).toEqual(['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED']);
    const res = await fetch(`${agent.url}/api/v1/logs?task_id=ok`);
    expect(await res.text()).toContain('hello from ok');
  });

  it('reports a failing command with its exit status, and a missing binary', async () => {
    await launch({ id: 'exit3', command: { value: 'exit 3' } });
    const failed = await fw.update('exit3', 'TASK_FAILED', 15_000);
    expect(failed.message).toMatch(/3/);
    await launch({ id: 'nobinary', command: { shell: false, value: '/no/such/program' } });
    await new Promise<void>((resolve) => {
      const t = setInterval(() => fw.updates('nobinary').some((u) => u.state === 'TASK_ERROR' || u.state === 'TASK_FAILED') && (clearInterval(t), resolve()), 50);
    });
    const nob = fw.updates('nobinary').at(-1)!;
    expect(['TASK_ERROR', 'TASK_FAILED']).toContain(nob.state);
    expect(nob.message).toMatch(/\/no\/such\/program/);
  });

  it('reports a memory hog killed at its limit as TASK_FAILED with the memory-limit reason', async () => {
    // A shell that doubles a string until it outgrows a 32 MiB limit.
    await launch({ id: 'hog', resources: 'cpus:0.1;mem:32', command: { value: 'x=aaaaaaaaaaaaaaaa; while :; do x="$x$x"; done' } });
    const st = await fw.update('hog', 'TASK_FAILED', 30_000);
    expect(st.reason).toBe('REASON_CONTAINER_LIMITATION_MEMORY');
  });

  it('rejects bad task definitions with TASK_ERROR and a clear message, and stays up', async () => {
    await launch({ id: 'noimage', command: { value: 'true' }, container: { type: 'MESOS', mesos: { image: { type: 'DOCKER', docker: { name: 'busybox' } } } } as V1TaskInfo['container'] });
    const e1 = await fw.update('noimage', 'TASK_ERROR', 15_000);
    expect(e1.message).toMatch(/TARBALL/);
    await launch({
      id: 'badvol',
      command: { value: 'true' },
      container: { type: 'MESOS', volumes: [{ container_path: 'data', mode: 'RW', source: { type: 'DOCKER_VOLUME', docker_volume: { driver: 'nope', name: 'v' } } }] } as V1TaskInfo['container'],
    });
    const e2 = await fw.update('badvol', 'TASK_ERROR', 15_000);
    expect(e2.message).toMatch(/nope|volume/);
    await launch({ id: 'escape', command: { value: 'true' }, container: { type: 'MESOS', volumes: [{ container_path: '../../etc', mode: 'RW', host_path: '/tmp' }] } as V1TaskInfo['container'] });
    const e3 = await fw.update('escape', 'TASK_ERROR', 15_000);
    expect(e3.message).toMatch(/leaves the sandbox/);
    // More than the agent has: refused before it reaches the agent.
    const o = await offer('cpus:0.1;mem:32');
    await fw.client
      .accept(
        [o.id.value],
        [
          {
            type: 'LAUNCH',
            launch: { task_infos: [{ name: 'toobig', task_id: { value: 'toobig' }, agent_id: o.agent_id, resources: resourcesJson('cpus:64;mem:32'), command: { value: 'true' } } as V1TaskInfo] },
          },
        ],
        0,
      )
      .catch(() => undefined);
    const e4 = await fw.update('toobig', 'TASK_ERROR', 15_000);
    expect(e4.message).toMatch(/cpus|resources|offer/);
    expect((await fetch(`${agent.url}/health`)).status).toBe(200);
  });

  it("kills with a grace period that honours the task's SIGTERM handler", async () => {
    // The task sees the host read-only (and a /tmp of its own): its handler leaves its word in its own log.
    await launch({ id: 'graceful', command: { value: `trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done` }, kill_policy: { grace_period: { nanoseconds: 5e9 } } });
    await fw.update('graceful', 'TASK_RUNNING', 15_000);
    // Kill only once the trap is set.
    const logs = async (): Promise<string> => (await fetch(`${agent.url}/api/v1/logs?task_id=graceful`)).text();
    for (let i = 0; i < 100 && !(await logs()).includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
    await fw.client.kill('graceful');
    await fw.update('graceful', 'TASK_KILLING', 5000);
    const killed = await fw.update('graceful', 'TASK_KILLED', 15_000);
    expect(killed.state).toBe('TASK_KILLED');
    expect((await logs()).split('\n')).toContain('bye');
  });

  it('runs health checks: results travel in updates, and the task is killed after repeated failures', async () => {
    const flagDir = join(dir, 'health-flag');
    const flag = join(flagDir, 'healthy');
    mkdirSync(flagDir, { recursive: true });
    // The flag exists before the task starts: the first check (at once, no grace period) must pass. The check runs in the
    // task's container, which sees the flag's directory through a read-only host volume.
    writeFileSync(flag, '');
    await launch({
      id: 'checked',
      command: { value: 'sleep 600' },
      container: { type: 'MESOS', volumes: [{ container_path: 'flag', mode: 'RO', host_path: flagDir }] } as V1TaskInfo['container'],
      health_check: { type: 'COMMAND', command: { value: 'test -f flag/healthy' }, delay_seconds: 0, interval_seconds: 0.3, timeout_seconds: 2, grace_period_seconds: 0, consecutive_failures: 2 },
    });
    const healthy = await new Promise<boolean>((resolve) => {
      const t = setInterval(() => {
        const h = fw.updates('checked').find((u) => u.healthy !== undefined);
        if (h) {
          clearInterval(t);
          resolve(h.healthy!);
        }
      }, 50);
    });
    expect(healthy).toBe(true);
    rmSync(flag);
    const killed = await fw.update('checked', 'TASK_KILLED', 20_000);
    expect(killed.healthy).toBe(false);
    expect(killed.reason).toBe('REASON_TASK_HEALTH_CHECK_STATUS_UPDATED');
    expect(fw.updates('checked').some((u) => u.healthy === false && u.state === 'TASK_RUNNING')).toBe(true);
  });

  it('leaves no task processes or cgroups behind once tasks have ended', async () => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (agent.taskPids().length || agent.leftoverCgroups().length)) await new Promise((r) => setTimeout(r, 100));
    expect(agent.taskPids()).toEqual([]);
    expect(agent.leftoverCgroups()).toEqual([]);
  });
});
