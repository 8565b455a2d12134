/**
 * 1,000 native tasks through the whole path on one agent: a framework puts
 * all of them in one ACCEPT, the master forwards them to a real `corral
 * agent` (a child process), which checkpoints, launches each with the MESOS
 * containerizer (cgroups cpu+cpuacct+memory+pids, mnt+pid+uts+ipc
 * namespaces, host network) and reports STARTING and RUNNING; then the
 * framework kills all of them. Clocks: ACCEPT sent → every RUNNING update
 * received, and first KILL sent → every KILLED update received — what a
 * framework sees, status updates and acknowledgements included. Printed next
 * to Mesos 1.7's ~30 s launch / ~20 s destroy for 1,000 containers and the
 * goals (≤ 3 s, ≤ 2 s). bench/containerizer-native.ts measures the
 * containerizer alone.
 *
 * As in production, the agent's run directory is on a tmpfs and its work
 * directory (checkpoint, sandboxes) on a journaled ext4 (a fresh loop mount).
 *
 * Usage: npx tsx bench/agent-tasks.ts [--tasks 1000] [--profile-agent DIR] [--json]
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { startTestMaster } from '../test/harness/master.js';
import { TestFramework, resourcesJson } from '../test/harness/framework.js';
import { AgentProcess } from '../test/harness/agent-process.js';
import { run, testDir } from '../test/harness/resources.js';
import type { V1TaskInfo } from '../core-scheduler/src/protocol/v1.js';
import { flag, fmt, jsonOutput, ms, printFigures } from './volume-common.js';

const tasks = flag('--tasks', 1000);
const profileDir = process.argv.includes('--profile-agent') ? process.argv[process.argv.indexOf('--profile-agent') + 1] : undefined;
const dir = testDir('bench-agent');
const workDir = join(dir, 'agent');
const runDir = join(dir, 'run');
mkdirSync(workDir, { recursive: true });
mkdirSync(runDir, { recursive: true });
await run('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=755', 'tmpfs', runDir]);
const image = join(dir, 'work.img');
await run('truncate', ['-s', '4G', image]);
await run('mkfs.ext4', ['-q', '-F', image]);
await run('mount', ['-o', 'loop', image, workDir]);

const master = await startTestMaster({ agents: { heartbeatIntervalMs: 1000, maxMissedHeartbeats: 10, unreachableTimeoutMs: 60_000, reregisterTimeoutMs: 60_000 } });
const agent = new AgentProcess({ master: master.url, dir, resources: `cpus:${tasks};mem:${tasks * 16 + 1024};disk:1000;ports:[31000-31100]`, extra: { log: { level: 'error' } }, nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] });
const fw = new TestFramework(master.url, { name: 'bench-agent-tasks' });

const countState = (state: string): number => {
  let n = 0;
  for (const e of fw.events) if (e.type === 'UPDATE' && e.update.status.state === state) n++;
  return n;
};
async function until(pred: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('benchmark timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

try {
  await agent.start();
  await fw.subscribe();
  const [offer] = await fw.offers(15_000);
  // Warm-up task (code paths, the launcher), not counted.
  const warm = { name: 'warm', task_id: { value: 'warm' }, agent_id: offer!.agent_id, resources: resourcesJson('cpus:0.01;mem:16'), command: { value: 'true' } } as V1TaskInfo;
  await fw.client.accept([offer!.id.value], [{ type: 'LAUNCH', launch: { task_infos: [warm] } }], 0);
  await fw.update('warm', 'TASK_FINISHED', 30_000);

  const [full] = await fw.offers(15_000);
  const infos = Array.from({ length: tasks }, (_, i) => ({
    name: `t${i}`,
    task_id: { value: `t${i}` },
    agent_id: full!.agent_id,
    resources: resourcesJson('cpus:0.01;mem:16'),
    command: { shell: false, value: '/bin/sleep', arguments: ['sleep', '300'] },
  })) as V1TaskInfo[];

  const t0 = process.hrtime.bigint();
  await fw.client.accept([full!.id.value], [{ type: 'LAUNCH', launch: { task_infos: infos } }], 3600);
  await until(() => countState('TASK_RUNNING') >= tasks, 120_000);
  const launchMs = ms(t0);
  const alive = agent.taskPids().length;

  const t1 = process.hrtime.bigint();
  await Promise.all(infos.map((t) => fw.client.kill(t.task_id.value)));
  await until(() => countState('TASK_KILLED') >= tasks, 120_000);
  const destroyMs = ms(t1);
  await until(() => agent.taskPids().length === 0 && agent.leftoverCgroups().length === 0, 30_000).catch(() => undefined);
  const left = { processes: agent.taskPids().length, cgroups: agent.leftoverCgroups().length };

  printFigures(
    `${tasks} native tasks through master and one real agent (sleep 300; cgroups cpu+cpuacct+memory+pids; mnt+pid+uts+ipc namespaces; host network; work dir on journaled ext4), ${cpus().length} cores`,
    [
      { what: 'ACCEPT → all RUNNING (wall)', corral: `${fmt(launchMs / 1000, 2)} s (${alive} task processes alive)`, peer: 'Mesos 1.7: ~30 s', goal: '≤ 3 s', verdict: launchMs <= 3000 ? 'met' : 'missed' },
      { what: 'KILL → all KILLED (wall)', corral: `${fmt(destroyMs / 1000, 2)} s`, peer: 'Mesos 1.7: ~20 s', goal: '≤ 2 s', verdict: destroyMs <= 2000 ? 'met' : 'missed' },
      { what: 'left behind', corral: `${left.processes} processes, ${left.cgroups} cgroups`, peer: '-', goal: 'none', verdict: left.processes + left.cgroups === 0 ? 'met' : 'missed' },
    ],
    jsonOutput(),
  );
} finally {
  await fw.client.close().catch(() => undefined);
  await agent.stop('SIGTERM');
  await master.dispose();
  for (const m of [workDir, runDir]) await run('umount', [m]).catch(() => run('umount', ['-l', m]));
  rmSync(dir, { recursive: true, force: true });
}
