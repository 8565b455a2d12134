/**
 * An agent whose operator advertises more CPUs than the host has (as Mesos,
 * corral trusts --resources): the master offers them, a task asking for
 * more CPUs than the host's cores runs, its cgroup's shares and CFS quota
 * are sized from the request, and the overcommit is visible in the agent's
 * log and its /api/v1/resources — never as a refusal of what was offered.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, cpus } from 'node:os';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { AgentProcess } from '../harness/agent-process.js';
import { testDir } from '../harness/resources.js';
import type { V1Offer, V1TaskInfo } from '../../contracts/v1/v1.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';

const CORES = Math.max(cpus().length, availableParallelism());
const ADVERTISED = CORES + 2;
const WANT = CORES + 1;

let master: TestMaster;
let agent: AgentProcess;
let fw: TestFramework;
let dir: string;

beforeAll(async () => {
  dir = testDir('agent-overcommit');
  master = await startTestMaster();
  agent = new AgentProcess({ master: master.url, dir, resources: `cpus:${ADVERTISED};mem:2048;disk:1000;ports:[31000-31010]` });
  await agent.start();
  fw = new TestFramework(master.url, { name: 'agent-overcommit-test' });
  await fw.subscribe();
});

afterAll(async () => {
  await fw?.client.close();
  await agent?.cleanup();
  await master?.dispose();
  expect(agent?.leftoverCgroups() ?? []).toEqual([]);
  rmSync(dir, { recursive: true, force: true });
});

async function offerWith(cpusWanted: number): Promise<V1Offer> {
  for (;;) {
    const o = (await fw.offers(15_000)).find((x) => Resources.fromV1(x.resources).scalar('cpus') >= cpusWanted);
    if (o) return o;
  }
}

/** The cgroup v1 cpu controls of the task's container, or cgroup v2's cpu.max. */
function cpuControl(containerId: string): Record<string, string> {
  const v1 = join('/sys/fs/cgroup/cpu', agent.cgroupRoot, containerId);
  if (existsSync(join(v1, 'cpu.cfs_quota_us'))) {
    const read = (f: string): string => readFileSync(join(v1, f), 'utf8').trim();
    return { shares: read('cpu.shares'), quota: read('cpu.cfs_quota_us'), period: read('cpu.cfs_period_us') };
  }
  const [quota, period] = readFileSync(join('/sys/fs/cgroup', agent.cgroupRoot, containerId, 'cpu.max'), 'utf8')
    .trim()
    .split(' ');
  return { quota: quota!, period: period! };
}

describe('agent: advertised resources above the host', () => {
  it('says at start which resource exceeds the host, in its log and its API', async () => {
    expect(agent.output).toMatch(new RegExp(`advertises more cpus than this host has \\(${ADVERTISED} advertised, ${cpus().length} physical\\)`));
    const r = (await (await fetch(`${agent.url}/api/v1/resources`)).json()) as {
      advertised: string;
      physical: { cpus: number };
      overcommitted: Array<{ resource: string; advertised: number; physical: number }>;
      warnings: string[];
    };
    expect(r.advertised).toContain(`cpus:${ADVERTISED}`);
    expect(r.physical.cpus).toBe(cpus().length);
    expect(r.overcommitted).toEqual([{ resource: 'cpus', advertised: ADVERTISED, physical: cpus().length }]);
    expect(r.warnings).toEqual([`advertises ${ADVERTISED} cpus; this host has ${cpus().length}`]);
  });

  it(`runs a task asking for more CPUs than the host has (host cores + 1), with shares and quota sized from the request`, async () => {
    const o = await offerWith(WANT);
    const task = {
      name: 'wide',
      task_id: { value: 'wide' },
      agent_id: o.agent_id,
      resources: resourcesJson(`cpus:${WANT};mem:64`, o.allocation_info.role),
      command: { value: 'sleep 600' },
    } as V1TaskInfo;
    await fw.client.accept([o.id.value], [{ type: 'LAUNCH', launch: { task_infos: [task] } }], 0);
    // RUNNING, or the refusal this agent used to send (TASK_ERROR "… this host has N"): whichever comes first, with its message.
    const first = await Promise.race(['TASK_RUNNING', 'TASK_ERROR', 'TASK_FAILED'].map((s) => fw.update('wide', s, 30_000).catch(() => new Promise<never>(() => undefined))));
    expect(first.state === 'TASK_RUNNING' ? first.state : `${first.state}: ${first.message ?? ''}`).toBe('TASK_RUNNING');
    const tasks = (await (await fetch(`${agent.url}/api/v1/tasks`)).json()) as { tasks: Array<{ task_id: string; container_id: string; state: string }> };
    const wide = tasks.tasks.find((t) => t.task_id === 'wide')!;
    expect(wide.state).toBe('TASK_RUNNING');
    const cg = cpuControl(wide.container_id);
    expect(cg.quota).toBe(String(WANT * 100_000));
    expect(cg.period).toBe('100000');
    if (cg.shares !== undefined) expect(cg.shares).toBe(String(WANT * 1024));
    await fw.client.kill('wide');
    await fw.update('wide', 'TASK_KILLED', 30_000);
  });
});
