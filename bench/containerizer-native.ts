/**
 * 1,000 native tasks on one host: `sleep 300`, each in its own cgroups (cpu,
 * cpuacct, memory, pids) and mount, pid, uts and ipc namespaces, host
 * networking — all launched at once, then all destroyed at once, through the
 * MESOS containerizer as the agent calls it. Wall times are printed next to
 * Mesos 1.7's published figures (1,000 launched in ~30 s, destroyed in
 * ~20 s) and corral's goals (≤ 3 s, ≤ 2 s). Sandboxes are made before the
 * clock starts (the agent's job). Ends by checking nothing is left.
 *
 * As in production, the run directory (checkpoints, exit notices) is on a
 * tmpfs (/run), and sandboxes live on a fresh loop-mounted ext4 with a
 * journal, as an agent's work directory normally does. This VM's root
 * filesystem is ext4 without a journal: there, creating an inode scans past
 * every inode deleted in the last 60–360 s (ext4's recently_deleted check),
 * so back-to-back runs that each create and delete thousands of files slow
 * each other down; pass `--sandbox-fs root` to measure on it anyway.
 *
 * Usage: npx tsx bench/containerizer-native.ts [--tasks 1000] [--sandbox-fs ext4|root] [--json]
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import type { ContainerConfig } from '../core-scheduler/src/agent/containerizer.js';
import { createMesosContainerizer } from '../plugins/isolator/src/native/containerizer.js';
import { run, testDir } from '../test/harness/resources.js';
import { buildShim, cgroupsUnder, removeCgroupRoot, shimProcessesFor, SHIM } from '../test/isolator/helpers.js';
import { flag, fmt, jsonOutput, median, ms, pct, printFigures } from './volume-common.js';

const tasks = flag('--tasks', 1000);
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

const configs: ContainerConfig[] = [];
for (let i = 0; i < tasks; i++) {
  const sandbox = join(sandboxRoot, `t${i}`);
  mkdirSync(sandbox, { recursive: true });
  configs.push({
    containerId: `t${i}`,
    frameworkId: 'bench',
    taskId: `t${i}`,
    sandbox,
    command: { shell: false, value: 'sleep', arguments: ['sleep', '300'], environment: {} },
    resources: { cpus: 0.01, memMb: 16, diskMb: 0, gpus: 0, ports: [] },
    limits: { pids: 16 },
    volumes: [],
    network: { mode: 'host' },
    logs: { stdout: 'stdout', stderr: 'stderr', maxBytes: 1 << 20, maxFiles: 2 },
    labels: {},
  });
}

try {
  // Warm-up: the launcher process and code paths, not counted.
  const warm = { ...configs[0]!, containerId: 'warm', taskId: 'warm' };
  await z.launch(warm);
  await z.destroy('warm');

  const latencies: number[] = [];
  const t0 = process.hrtime.bigint();
  await Promise.all(
    configs.map(async (c) => {
      const s = process.hrtime.bigint();
      await z.launch(c);
      latencies.push(ms(s));
    }),
  );
  const launchMs = ms(t0);
  const running = configs.filter((c) => z.cgroups.procs(c.containerId).length > 0).length;

  const t1 = process.hrtime.bigint();
  await Promise.all(configs.map((c) => z.destroy(c.containerId)));
  const destroyMs = ms(t1);
  await z.close();

  const left = { cgroups: cgroupsUnder(cgroupRoot).length, processes: shimProcessesFor(dir, cgroupRoot).length, checkpoints: readdirSync(join(dir, 'run', 'containers')).length };
  printFigures(
    `${tasks} native tasks (sleep 300; cgroups cpu+cpuacct+memory+pids; mnt+pid+uts+ipc namespaces; host network; sandboxes on ${sandboxFs === 'ext4' ? 'journaled ext4' : 'the root filesystem'}), ${cpus().length} cores`,
    [
      { what: 'launch all (wall)', corral: `${fmt(launchMs / 1000, 2)} s (${running} running)`, peer: 'Mesos 1.7: ~30 s', goal: '≤ 3 s', verdict: launchMs <= 3000 && running === tasks ? 'met' : 'missed' },
      { what: 'launch latency per task', corral: `median ${fmt(median(latencies))} ms, p99 ${fmt(pct(latencies, 99))} ms`, peer: '-', goal: '-', verdict: '-' },
      { what: 'destroy all (wall)', corral: `${fmt(destroyMs / 1000, 2)} s`, peer: 'Mesos 1.7: ~20 s', goal: '≤ 2 s', verdict: destroyMs <= 2000 ? 'met' : 'missed' },
      { what: 'left behind', corral: `${left.cgroups} cgroups, ${left.processes} processes, ${left.checkpoints} checkpoints`, peer: '-', goal: 'none', verdict: left.cgroups + left.processes + left.checkpoints === 0 ? 'met' : 'missed' },
    ],
    jsonOutput(),
  );
} finally {
  await Promise.all(configs.map((c) => z.destroy(c.containerId).catch(() => undefined)));
  await z.close();
  await removeCgroupRoot(cgroupRoot);
  for (const m of sandboxFs === 'ext4' ? [sandboxRoot, runDir] : [runDir]) await run('umount', [m]).catch(() => run('umount', ['-l', m]));
  rmSync(dir, { recursive: true, force: true });
}
