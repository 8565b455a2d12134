/**
 * 1,000 native tasks on one host: `sleep 300`, each in its own cgroups (cpu,
 * cpuacct, memory, pids) and mount, pid, uts and ipc namespaces, host
 * networking — all launched at once, then all destroyed at once, through the
 * MESOS containerizer as the agent calls it. Side by side, in alternating
 * rounds within one invocation, runc (or crun) launches and destroys the same
 * 1,000 `sleep` containers with the same cgroups, limits and namespaces
 * (bench/peer-runc.ts says how the two are matched). Prints corral's wall
 * times, the peer's and the ratio per run, the load each round ran under,
 * and the goal: corral ≤ 0.5× the peer's wall time, for launch and for
 * destroy, in every run. Sandboxes (and the peer's bundles) are made before
 * the clock starts (the agent's job). Each corral round ends by checking
 * nothing is left.
 *
 * As in production, the run directory (checkpoints, exit notices) is on a
 * tmpfs (/run), and sandboxes live on a fresh loop-mounted ext4 with a
 * journal, as an agent's work directory normally does. This VM's root
 * filesystem is ext4 without a journal: there, creating an inode scans past
 * every inode deleted in the last 60–360 s (ext4's recently_deleted check),
 * so back-to-back runs that each create and delete thousands of files slow
 * each other down; pass `--sandbox-fs root` to measure on it anyway.
 *
 * Usage: npx tsx bench/containerizer-native.ts [--tasks 1000] [--runs 3] [--peer runc|crun|none]
 *          [--peer-parallel 32] [--sandbox-fs ext4|root] [--json]
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import type { ContainerConfig } from '../contracts/containerizer.js';
import { createMesosContainerizer } from '../plugins/isolator/src/native/containerizer.js';
import { run, testDir } from '../test/harness/resources.js';
import { buildShim, cgroupsUnder, removeCgroupRoot, shimProcessesFor, SHIM } from '../test/isolator/helpers.js';
import { disposePeer, peerOptionsFromFlags, peerRound, preparePeer, loadText, sideBySideFigures, underLoad, type RoundLoad, type SideBySideRun } from './peer-runc.js';
import { flag, fmt, jsonOutput, median, ms, pct, printFigures, type Figure } from './volume-common.js';

const tasks = flag('--tasks', 1000, { whole: true, min: 1 });
const runs = flag('--runs', 3, { whole: true, min: 1 });
const sandboxFs = process.argv.includes('--sandbox-fs') ? process.argv[process.argv.indexOf('--sandbox-fs') + 1] : 'ext4';
buildShim();
const dir = testDir('bench-native');
const sandboxRoot = join(dir, 'sandboxes');
const runDir = join(dir, 'run');
mkdirSync(sandboxRoot, { recursive: true });
mkdirSync(runDir, { recursive: true });
await run('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=755', 'tmpfs', runDir]);
if (sandboxFs === 'ext4') {
  const image = join(dir, 'sandboxes.img');
  await run('truncate', ['-s', '2G', image]);
  await run('mkfs.ext4', ['-q', '-F', image]);
  await run('mount', ['-o', 'loop', image, sandboxRoot]);
}
const cgroupRoot = `corral-bench-${randomBytes(3).toString('hex')}`;
const z = await createMesosContainerizer({ runDir, workDir: join(dir, 'work'), cgroupRoot, netnsPrefix: 'ct-bench-', shimPath: SHIM });
const CPUS = 0.01;
const MEM_MB = 16;
const PIDS = 16;
const peer = peerOptionsFromFlags({ dir: join(sandboxRoot, 'peer'), stateDir: join(runDir, 'peer-state'), tasks, cpus: CPUS, memMb: MEM_MB, pids: PIDS, cgroupRoot: `${cgroupRoot}-peer` });

/** Fresh sandboxes per round, made before the clock starts. */
function configsFor(round: string): ContainerConfig[] {
  const configs: ContainerConfig[] = [];
  for (let i = 0; i < tasks; i++) {
    const sandbox = join(sandboxRoot, round, `t${i}`);
    mkdirSync(sandbox, { recursive: true });
    configs.push({
      containerId: `${round}-t${i}`,
      frameworkId: 'bench',
      taskId: `${round}-t${i}`,
      sandbox,
      command: { shell: false, value: 'sleep', arguments: ['sleep', '300'], environment: {} },
      resources: { cpus: CPUS, memMb: MEM_MB, diskMb: 0, gpus: 0, ports: [] },
      limits: { pids: PIDS },
      volumes: [],
      network: { mode: 'host' },
      logs: { stdout: 'stdout', stderr: 'stderr', maxBytes: 1 << 20, maxFiles: 2 },
      labels: {},
    });
  }
  return configs;
}

interface CorralRound {
  launchMs: number;
  destroyMs: number;
  running: number;
  latencies: number[];
  /** CPU seconds this process (the containerizer's Node side) used during launch and destroy. */
  nodeCpuS: { launch: number; destroy: number };
  left: { cgroups: number; processes: number; checkpoints: number };
}

const cpuSeconds = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1e6;

async function corralRound(configs: ContainerConfig[]): Promise<CorralRound> {
  const latencies: number[] = [];
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    configs.map(async (c) => {
      const s = process.hrtime.bigint();
      await z.launch(c);
      latencies.push(ms(s));
    }),
  );
  const launchMs = ms(t0);
  const launchCpu = cpuSeconds(process.cpuUsage(c0));
  const running = configs.filter((c) => z.cgroups.procs(c.containerId).length > 0).length;
  const c1 = process.cpuUsage();
  const t1 = process.hrtime.bigint();
  await Promise.all(configs.map((c) => z.destroy(c.containerId)));
  const destroyMs = ms(t1);
  const destroyCpu = cpuSeconds(process.cpuUsage(c1));
  const left = { cgroups: cgroupsUnder(cgroupRoot).length, processes: shimProcessesFor(dir, cgroupRoot).length, checkpoints: readdirSync(join(runDir, 'containers')).length };
  return { launchMs, destroyMs, running, latencies, nodeCpuS: { launch: launchCpu, destroy: destroyCpu }, left };
}

const all: ContainerConfig[] = [];
try {
  // Warm-up: the launcher process and code paths (and the peer's binary), not counted.
  const warm = { ...configsFor('warm')[0]!, containerId: 'warm', taskId: 'warm' };
  await z.launch(warm);
  await z.destroy('warm');
  if (peer) {
    preparePeer(peer);
    await peerRound({ ...peer, tasks: 1 });
  }

  const rounds: Array<CorralRound & RoundLoad> = [];
  const sideBySide: SideBySideRun[] = [];
  for (let r = 1; r <= runs; r++) {
    const configs = configsFor(`r${r}`);
    all.push(...configs);
    const corral = await underLoad(() => corralRound(configs));
    rounds.push(corral);
    if (peer) sideBySide.push({ corral, peer: await underLoad(() => peerRound(peer)) });
    if (!jsonOutput())
      process.stderr.write(
        `run ${r}: corral ${fmt(corral.launchMs / 1000, 2)} / ${fmt(corral.destroyMs / 1000, 2)} s${peer ? `, ${peer.runtime} ${fmt(sideBySide.at(-1)!.peer.launchMs / 1000, 2)} / ${fmt(sideBySide.at(-1)!.peer.destroyMs / 1000, 2)} s` : ''}\n`,
      );
  }
  await z.close();

  const figures: Figure[] = [];
  rounds.forEach((c, i) => {
    figures.push(
      {
        what: `run ${i + 1}: launch all (wall; ${loadText(c)})`,
        corral: `${fmt(c.launchMs / 1000, 2)} s (${c.running} running; per task median ${fmt(median(c.latencies))} ms, p99 ${fmt(pct(c.latencies, 99))} ms; Node CPU ${fmt(c.nodeCpuS.launch, 2)} s)`,
        peer: 'Mesos 1.7: ~30 s',
        goal: '≤ 3 s',
        verdict: c.launchMs <= 3000 && c.running === tasks ? 'met' : 'missed',
      },
      {
        what: `run ${i + 1}: destroy all (wall)`,
        corral: `${fmt(c.destroyMs / 1000, 2)} s (Node CPU ${fmt(c.nodeCpuS.destroy, 2)} s)`,
        peer: 'Mesos 1.7: ~20 s',
        goal: '≤ 2 s',
        verdict: c.destroyMs <= 2000 ? 'met' : 'missed',
      },
      {
        what: `run ${i + 1}: left behind`,
        corral: `${c.left.cgroups} cgroups, ${c.left.processes} processes, ${c.left.checkpoints} checkpoints`,
        peer: '-',
        goal: 'none',
        verdict: c.left.cgroups + c.left.processes + c.left.checkpoints === 0 ? 'met' : 'missed',
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
    `${tasks} native tasks × ${runs} runs (sleep 300; cgroups cpu+cpuacct+memory+pids; mnt+pid+uts+ipc namespaces; host network; sandboxes on ${sandboxFs === 'ext4' ? 'journaled ext4' : 'the root filesystem'}), ${cpus().length} cores`,
    figures,
    jsonOutput(),
  );
} finally {
  await Promise.all(all.map((c) => z.destroy(c.containerId).catch(() => undefined)));
  await z.close();
  if (peer) await disposePeer(peer);
  await removeCgroupRoot(cgroupRoot);
  for (const m of sandboxFs === 'ext4' ? [sandboxRoot, runDir] : [runDir]) await run('umount', [m]).catch(() => run('umount', ['-l', m]));
  rmSync(dir, { recursive: true, force: true });
}
