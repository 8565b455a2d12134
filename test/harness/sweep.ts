/**
 * The test suite as a node of its own: its scope is the test root (mounts
 * and loop devices under it), the `ct-` network namespaces and whatever runs
 * inside them, and the test cgroups (corral-test-*, ct-*); its processes
 * are the ones tests recorded under TEST_ROOT/pids (pid and start time).
 * The global teardown reports what is left with provision's scopeLeftovers;
 * scripts/cleanup-tests.sh purges it with the same lifecycle a node's
 * `down --purge` uses.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ours, scopeLeftovers, stopProcesses, sweepScope, type NodeProcess, type NodeScope } from '../../provision/src/index.js';

export const testScope = (root: string): NodeScope => ({
  dirs: [root],
  volumesDir: root,
  cgroupRootPrefixes: ['corral-test-', 'ct-'],
  netnsPrefix: 'ct-',
  netnsMembers: true,
});

/** Processes tests recorded (`<name>-<pid>.pid` holding "PID START_TIME"; older files hold the pid only). */
export function recordedProcesses(root: string): NodeProcess[] {
  const dir = join(root, 'pids');
  if (!existsSync(dir)) return [];
  const out: NodeProcess[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.pid'))) {
    const [pid, startTime] = readFileSync(join(dir, f), 'utf8').trim().split(/\s+/);
    const n = Number(pid);
    if (Number.isInteger(n) && n > 1 && startTime) out.push({ name: f.replace(/\.pid$/, ''), pid: n, startTime, logFile: '' });
  }
  return out;
}

/** What the suite left on the host, one line each. */
export function findLeftovers(root: string): string[] {
  const left = scopeLeftovers(testScope(root));
  // An empty test cgroup root is harmless (and shared by concurrent files); a child cgroup is a leak.
  const cgroups = left.cgroups.filter((d) => existsSync(d) && readdirSync(d, { withFileTypes: true }).some((e) => e.isDirectory()));
  return [
    ...recordedProcesses(root)
      .filter(ours)
      .map((p) => `process ${p.name}`),
    ...left.mounts.map((m) => `mount ${m}`),
    ...left.loopDevices.map((d) => `loop device ${d}`),
    ...left.netns.map((n) => `network namespace ${n}`),
    ...cgroups.map((c) => `cgroup ${c}`),
  ];
}

/** Purges the suite's scope: recorded processes (TERM, then KILL), then everything else in the safe order, then the root. */
export async function sweepTestRoot(root: string): Promise<void> {
  if (!existsSync(root)) return;
  await stopProcesses(recordedProcesses(root), 1000);
  const report = await sweepScope(testScope(root));
  if (report.errors.length) process.stderr.write(`cleanup: ${report.errors.join('; ')}\n`);
  rmSync(root, { recursive: true, force: true });
}

if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  await sweepTestRoot(process.env.CORRAL_TEST_ROOT ?? '/tmp/corral-test');
}
