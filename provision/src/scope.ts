/**
 * Wiping what a node left on its machine, in the only safe order: processes
 * (tasks by their cgroups, rbd-fuse helpers by their command lines), then
 * filesystems, loop devices, rbd-fuse mounts, then the cgroups themselves.
 * `corral node down --purge`, the lab's "kill a host" and its teardown use
 * it; everything is found by the node's own paths and names, never by a
 * program name.
 *
 * Why the order: an ext4 on a loop device over an rbd-fuse file cannot be
 * unmounted while rbd-fuse is alive but Ceph is gone (umount and losetup
 * hang in D state); once rbd-fuse is dead, I/O fails at once and both work.
 */
import { readFileSync, readdirSync, rmdirSync, existsSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { exec } from '../../common/sys/exec.js';
import { mounts, umountFuse } from '../../common/sys/mounts.js';
import { processAlive as isAlive, signalProcess as signal, waitDead } from '../../common/sys/process.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every cgroup directory named `root` (one per v1 hierarchy, or the v2 one). */
export function cgroupRootDirs(root: string, base = '/sys/fs/cgroup'): string[] {
  if (!existsSync(base)) return [];
  if (existsSync(join(base, 'cgroup.procs'))) return existsSync(join(base, root)) ? [join(base, root)] : [];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const h of readdirSync(base)) {
    const dir = join(base, h, root);
    try {
      if (!statSync(dir).isDirectory()) continue;
      const real = realpathSync(dir);
      if (!seen.has(real)) {
        seen.add(real);
        out.push(dir);
      }
    } catch {
      // not in this hierarchy
    }
  }
  return out;
}

/** The cgroup and its descendants, deepest first. */
function cgroupTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) walk(join(d, e));
    out.push(d);
  };
  walk(dir);
  return out;
}

/** PIDs of every process in the cgroups named `root` (a node's tasks). */
export function cgroupPids(root: string): number[] {
  const pids = new Set<number>();
  for (const dir of cgroupRootDirs(root)) {
    for (const cg of cgroupTree(dir)) {
      try {
        for (const l of readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
      } catch {
        // removed meanwhile
      }
    }
  }
  return [...pids];
}

/** SIGKILLs every process in the cgroups named `root`, then removes the cgroups (leaves first). */
export async function removeCgroupRoot(root: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const pids = cgroupPids(root);
    for (const pid of pids) signal(pid, 'SIGKILL');
    await waitDead(pids, 5000);
    let left = 0;
    for (const dir of cgroupRootDirs(root)) {
      for (const cg of cgroupTree(dir)) {
        try {
          rmdirSync(cg);
        } catch {
          left++;
        }
      }
    }
    if (left === 0) return;
    await sleep(200);
  }
}

/** Helper processes (rbd-fuse) whose command line names a path under `dir`, except the listed pids. */
export function helperPids(dir: string, except: number[] = []): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const pid = Number(p);
    if (pid === process.pid || except.includes(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a === dir || a.startsWith(dir + '/')) && isAlive(pid)) out.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Filesystems, loop devices and rbd-fuse mounts under `dir`, removed in the safe order; rbd-fuse helpers killed when they do not let go. */
export async function teardownVolumes(dir: string, helpers: () => number[]): Promise<void> {
  const under = (p: string) => p === dir || p.startsWith(dir + '/');
  const byDepth = (a: { target: string }, b: { target: string }) => b.target.length - a.target.length;
  for (const m of mounts().filter((m) => under(m.target) && !m.fstype.startsWith('fuse')).sort(byDepth)) {
    await exec('umount', [m.target], { timeoutMs: 20_000 }).catch(() => exec('umount', ['-l', m.target], { timeoutMs: 10_000 }).catch(() => undefined));
  }
  let loops: string[] = [];
  try {
    loops = readdirSync('/sys/block').filter((d) => d.startsWith('loop'));
  } catch {
    // no sysfs block view
  }
  for (const dev of loops) {
    let backing = '';
    try {
      backing = readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim();
    } catch {
      continue;
    }
    if (under(backing)) await exec('losetup', ['-d', `/dev/${dev}`], { timeoutMs: 20_000 }).catch(() => undefined);
  }
  const killHelpers = async () => {
    const pids = helpers();
    for (const pid of pids) signal(pid, 'SIGKILL');
    await waitDead(pids, 5000);
  };
  for (const m of mounts().filter((m) => under(m.target) && m.fstype.startsWith('fuse')).sort(byDepth)) {
    await umountFuse(m.target, 5000, killHelpers).catch(() => exec('umount', ['-l', m.target], { timeoutMs: 10_000 }).catch(() => undefined));
  }
  await killHelpers();
}

/** Named network namespaces (/run/netns) whose names start with `prefix`: a node's container namespaces. */
export function netnsNamesWithPrefix(prefix: string): string[] {
  if (!prefix) return [];
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}
