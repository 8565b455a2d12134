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
 * goals (≤ 3 s, ≤ 2 s), and, in alternating rounds within one invocation,
 * next to runc (or crun) launching and destroying the same 1,000 `sleep`
 * containers with the same cgroups and namespaces (bench/peer-runc.ts), with
 * the ratio and the load each round ran under; goal: ≤ 0.5× the peer's wall
 * time in every run. Every corral round gets a fresh master, agent and work
 * directory (started before the clock). bench/containerizer-native.ts
 * measures the containerizer alone.
 *
 * As in production, the agent's run directory is on a tmpfs and its work
 * directory (checkpoint, sandboxes) on a journaled ext4 (a fresh loop mount).
 *
 * Usage: npx tsx bench/agent-tasks.ts [--tasks 1000] [--runs 3] [--peer runc|crun|none]
 *          [--peer-parallel 32] [--profile-agent DIR] [--json]
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { randomBytes } from 'node:crypto';
import { startTestMaster } from '../test/harness/master.js';
import { TestFramework, resourcesJson } from '../test/harness/framework.js';
import { AgentProcess } from '../test/harness/agent-process.js';
import { run, testDir } from '../test/harness/resources.js';
import type { V1TaskInfo } from '../contracts/v1/v1.js';
import { disposePeer, peerOptionsFromFlags, peerRound, preparePeer, loadText, sideBySideFigures, underLoad, type RoundLoad, type SideBySideRun } from './peer-runc.js';
import { flag, fmt, jsonOutput, ms, printFigures, type Figure } from './volume-common.js';

const tasks = flag('--tasks', 1000, { whole: true, min: 1 });
const runs = flag('--runs', 3, { whole: true, min: 1 });
const profileDir = process.argv.includes('--profile-agent') ? process.argv[process.argv.indexOf('--profile-agent') + 1] : undefined;
const peerDir = testDir('bench-agent-peer');
const peerRun = join(peerDir, 'run');
mkdirSync(peerRun, { recursive: true });
await run('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=755', 'tmpfs', peerRun]);
const peer = peerOptionsFromFlags({ dir: peerDir, stateDir: join(peerRun, 'state'), tasks, cpus: 0.01, memMb: 16, pids: 16, cgroupRoot: `corral-bench-peer-${randomBytes(3).toString('hex')}` });

async function until(pred: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('benchmark timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface CorralRound {
  launchMs: number;
  destroyMs: number;
  alive: number;
  left: { processes: number; cgroups: number };
}

/** One round on a fresh master, agent and work directory; only ACCEPT → RUNNING and KILL → KILLED are timed. */
async function corralRound(load: <T extends object>(fn: () => Promise<T>) => Promise<T & RoundLoad>): Promise<CorralRound & RoundLoad> {
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
  const agent = new AgentProcess({
    master: master.url,
    dir,
    resources: `cpus:${tasks};mem:${tasks * 16 + 1024};disk:1000;ports:[31000-31100]`,
    extra: { log: { level: 'error' } },
    nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  });
  const fw = new TestFramework(master.url, { name: 'bench-agent-tasks' });
  const countState = (state: string): number => {
    let n = 0;
    for (const e of fw.events) if (e.type === 'UPDATE' && e.update.status.state === state) n++;
    return n;
  };
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

    return await load(async () => {
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
      return { launchMs, destroyMs, alive, left: { processes: agent.taskPids().length, cgroups: agent.leftoverCgroups().length } };
    });
  } finally {
    await fw.client.close().catch(() => undefined);
    await agent.cleanup(); // stops it, and removes its cgroup root too
    await master.dispose();
    for (const m of [workDir, runDir]) await run('umount', [m]).catch(() => run('umount', ['-l', m]));
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  if (peer) {
    preparePeer(peer);
    await peerRound({ ...peer, tasks: 1 }); // warm-up: the runtime binary, not counted
  }
  const rounds: Array<CorralRound & RoundLoad> = [];
  const sideBySide: SideBySideRun[] = [];
  for (let r = 1; r <= runs; r++) {
    const corral = await corralRound(underLoad);
    rounds.push(corral);
    if (peer) sideBySide.push({ corral, peer: await underLoad(() => peerRound(peer)) });
    if (!jsonOutput())
      process.stderr.write(
        `run ${r}: corral ${fmt(corral.launchMs / 1000, 2)} / ${fmt(corral.destroyMs / 1000, 2)} s${peer ? `, ${peer.runtime} ${fmt(sideBySide.at(-1)!.peer.launchMs / 1000, 2)} / ${fmt(sideBySide.at(-1)!.peer.destroyMs / 1000, 2)} s` : ''}\n`,
      );
  }
  const figures: Figure[] = [];
  rounds.forEach((c, i) => {
    figures.push(
      {
        what: `run ${i + 1}: ACCEPT → all RUNNING (wall; ${loadText(c)})`,
        corral: `${fmt(c.launchMs / 1000, 2)} s (${c.alive} task processes alive)`,
        peer: 'Mesos 1.7: ~30 s',
        goal: '≤ 3 s',
        verdict: c.launchMs <= 3000 ? 'met' : 'missed',
      },
      { what: `run ${i + 1}: KILL → all KILLED (wall)`, corral: `${fmt(c.destroyMs / 1000, 2)} s`, peer: 'Mesos 1.7: ~20 s', goal: '≤ 2 s', verdict: c.destroyMs <= 2000 ? 'met' : 'missed' },
      {
        what: `run ${i + 1}: left behind`,
        corral: `${c.left.processes} processes, ${c.left.cgroups} cgroups`,
        peer: '-',
        goal: 'none',
        verdict: c.left.processes + c.left.cgroups === 0 ? 'met' : 'missed',
      },
    );
  });
  if (peer) {
    sideBySide.forEach((s, i) => {
      const p = s.peer;
      figures.push({
        what: `run ${i + 1}: ${peer.runtime} (${peer.parallel} in flight)`,
        corral: '-',
        peer: `${p.running} running; left ${p.leftContainers} containers, ${p.leftCgroups} cgroups`,
        goal: 'none left',
        verdict: p.running === tasks && p.leftContainers + p.leftCgroups === 0 ? 'ok' : 'check',
      });
    });
    figures.push(...sideBySideFigures(sideBySide, peer.runtime, 0.5));
  }
  printFigures(
    `${tasks} native tasks × ${runs} runs through master and one real agent (sleep 300; cgroups cpu+cpuacct+memory+pids; mnt+pid+uts+ipc namespaces; host network; work dir on journaled ext4), ${cpus().length} cores`,
    figures,
    jsonOutput(),
  );
} finally {
  if (peer) await disposePeer(peer);
  await run('umount', [peerRun]).catch(() => run('umount', ['-l', peerRun]));
  rmSync(peerDir, { recursive: true, force: true });
}
