/**
 * The real agent with the DOCKER containerizer against a private dockerd and
 * a busybox image made with `docker import`: a task runs to FINISHED with its
 * output captured, kill honours a SIGTERM handler within the grace period, an
 * unknown image fails with a clear message, and a container survives an
 * agent SIGKILL and is reattached by the restarted agent.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync } from 'node:fs';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { AgentProcess } from '../harness/agent-process.js';
import { startDockerd, type Dockerd } from '../harness/dockerd.js';
import { testDir } from '../harness/resources.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';
import type { V1Offer, V1TaskInfo } from '../../contracts/v1/v1.js';

let master: TestMaster;
let agent: AgentProcess;
let dockerd: Dockerd;
let image: string;
let fw: TestFramework;
let dir: string;
const offers: V1Offer[] = [];

async function launch(id: string, cmd: string, extra: Partial<V1TaskInfo> = {}, dockerImage = image): Promise<void> {
  const want = parseResources('cpus:0.1;mem:64');
  for (;;) {
    const i = offers.findIndex((x) => Resources.fromV1(x.resources).contains(want));
    if (i < 0) {
      offers.push(...(await fw.offers(10_000)));
      continue;
    }
    const o = offers.splice(i, 1)[0]!;
    const task = {
      name: id,
      task_id: { value: id },
      agent_id: o.agent_id,
      resources: resourcesJson('cpus:0.1;mem:64'),
      command: { value: cmd },
      container: { type: 'DOCKER', docker: { image: dockerImage } },
      ...extra,
    } as V1TaskInfo;
    try {
      await fw.client.accept([o.id.value], [{ type: 'LAUNCH', launch: { task_infos: [task] } }], 0);
      return;
    } catch (e) {
      if (!/not outstanding/.test(String(e))) throw e;
    }
  }
}

async function ourContainers(): Promise<string[]> {
  return (await dockerd.docker(['ps', '-aq', '--filter', 'label=corral.containerizer'])).split('\n').filter(Boolean);
}

beforeAll(async () => {
  dir = testDir('agent-docker');
  dockerd = await startDockerd();
  image = await dockerd.importBusybox('corral-agent-busybox:latest');
  master = await startTestMaster({ agents: { heartbeatIntervalMs: 200, maxMissedHeartbeats: 3, unreachableTimeoutMs: 60_000, reregisterTimeoutMs: 60_000 } });
  agent = new AgentProcess({ master: master.url, dir, containerizers: ['MESOS', 'DOCKER'], dockerSocket: dockerd.socket });
  await agent.start();
  fw = new TestFramework(master.url, { name: 'agent-docker-test', capabilities: [{ type: 'TASK_KILLING_STATE' }] });
  await fw.subscribe();
}, 180_000);

afterAll(async () => {
  await fw?.client.close().catch(() => undefined);
  await agent?.cleanup();
  await master?.dispose();
  await dockerd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('agent: Docker tasks', () => {
  it('runs a container to FINISHED and captures its output', async () => {
    await launch('d-ok', 'echo hello from docker; sleep 0.2');
    await fw.update('d-ok', 'TASK_FINISHED', 30_000);
    expect(fw.updates('d-ok').map((u) => u.state)).toEqual(['TASK_STARTING', 'TASK_RUNNING', 'TASK_FINISHED']);
    expect(await (await fetch(`${agent.url}/api/v1/logs?task_id=d-ok`)).text()).toContain('hello from docker');
  });

  it("kill honours the container's SIGTERM handler within the grace period", async () => {
    await launch('d-trap', "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done", { kill_policy: { grace_period: { nanoseconds: 10e9 } } });
    await fw.update('d-trap', 'TASK_RUNNING', 30_000);
    // The container's sh is its pid 1: a SIGTERM before the trap is set would be ignored.
    const logs = async (): Promise<string> => (await fetch(`${agent.url}/api/v1/logs?task_id=d-trap`)).text();
    for (let i = 0; i < 100 && !(await logs()).includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
    await fw.client.kill('d-trap');
    const killed = await fw.update('d-trap', 'TASK_KILLED', 20_000);
    expect(killed.state).toBe('TASK_KILLED');
    expect(await (await fetch(`${agent.url}/api/v1/logs?task_id=d-trap`)).text()).toContain('got-term');
  });

  it('an unknown image fails with a clear message; the agent stays up', async () => {
    await launch('d-noimage', 'true', {}, 'corral-no-such-image:latest');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !fw.updates('d-noimage').some((u) => u.state === 'TASK_FAILED' || u.state === 'TASK_ERROR')) await new Promise((r) => setTimeout(r, 100));
    const last = fw.updates('d-noimage').at(-1)!;
    expect(['TASK_FAILED', 'TASK_ERROR']).toContain(last.state);
    expect(last.message).toMatch(/corral-no-such-image/);
    expect((await fetch(`${agent.url}/health`)).status).toBe(200);
  });

  it('a container survives an agent SIGKILL and is reattached by the restarted agent', async () => {
    await launch('d-long', 'sleep 600');
    await fw.update('d-long', 'TASK_RUNNING', 30_000);
    const before = await ourContainers();
    expect(before.length).toBeGreaterThanOrEqual(1);
    await agent.stop('SIGKILL');
    expect(await ourContainers()).toEqual(before);
    await agent.start();
    await new Promise((r) => setTimeout(r, 1500));
    expect(fw.updates('d-long').filter((u) => u.state !== 'TASK_STARTING' && u.state !== 'TASK_RUNNING')).toEqual([]);
    await fw.client.kill('d-long');
    await fw.update('d-long', 'TASK_KILLED', 20_000);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && (await ourContainers()).length) await new Promise((r) => setTimeout(r, 200));
    expect(await ourContainers()).toEqual([]);
  });
});
