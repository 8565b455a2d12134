/**
 * What a node owns on its machine besides its recorded daemons — its scope:
 * processes marked as its own, tasks in its cgroups, volume filesystems,
 * loop devices and rbd-fuse mounts, mounts under its directories, network
 * namespaces, cgroups, sockets — and wiping it in the only safe order:
 * processes (tasks by their cgroups, rbd-fuse helpers by their command
 * lines), then filesystems, loop devices, rbd-fuse mounts, then namespaces
 * and cgroups. `corral up`/`down`, `corral node down --purge`, the lab and
 * the test sweeper all describe what they own as a NodeScope and use this;
 * everything is found by the node's own paths and names, never by a program
 * name.
 *
 * Why the order: an ext4 on a loop device over an rbd-fuse file cannot be
 * unmounted while rbd-fuse is alive but Ceph is gone (umount and losetup
 * hang in D state); once rbd-fuse is dead, I/O fails at once and both work.
 */
import { readFileSync, readdirSync, rmdirSync, existsSync, realpathSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { exec } from '../../common/sys/exec.js';
import { mounts, umountFuse } from '../../common/sys/mounts.js';
import { hasEnvMarker, processCmdline, processAlive as isAlive, signalProcess as signal, waitDead } from '../../common/sys/process.js';
import { deleteNamedNetns, netnsPids } from '../../common/netkit/netns.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every cgroup directory named `root` (one per v1 hierarchy, or the v2 one). */
function cgroupRootDirs(root: string, base = '/sys/fs/cgroup'): string[] {
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
      entries = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
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
function helperPids(dir: string, except: number[] = []): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const pid = Number(p);
    if (pid === process.pid || except.includes(pid)) continue;
    if (processCmdline(pid).some((a) => a === dir || a.startsWith(dir + '/')) && isAlive(pid)) out.push(pid);
  }
  return out;
}

/** Filesystems, loop devices and rbd-fuse mounts under `dir`, removed in the safe order; rbd-fuse helpers killed when they do not let go. */
async function teardownVolumes(dir: string, helpers: () => number[]): Promise<void> {
  const under = (p: string) => p === dir || p.startsWith(dir + '/');
  const byDepth = (a: { target: string }, b: { target: string }) => b.target.length - a.target.length;
  for (const m of mounts()
    .filter((m) => under(m.target) && !m.fstype.startsWith('fuse'))
    .sort(byDepth)) {
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
  for (const m of mounts()
    .filter((m) => under(m.target) && m.fstype.startsWith('fuse'))
    .sort(byDepth)) {
    await umountFuse(m.target, 5000, killHelpers).catch(() => exec('umount', ['-l', m.target], { timeoutMs: 10_000 }).catch(() => undefined));
  }
  await killHelpers();
}

/** Everything a node owns on the host, named by its own paths and names. */
export interface NodeScope {
  /** State and run directories: mounts and loop devices under them are the node's. */
  dirs: string[];
  /** Volume data: filesystems, loop devices and rbd-fuse mounts under it go in the safe order, rbd-fuse helpers with them. */
  volumesDir?: string;
  /** Cgroup directory names (one per hierarchy) of the node's tasks, and prefixes of such names (the test sweeper's). */
  cgroupRoots?: string[];
  cgroupRootPrefixes?: string[];
  /** Named network namespaces the node owns, and the prefix of its containers' namespaces. */
  netns?: string[];
  netnsPrefix?: string;
  /** Processes inside the scope's namespaces are its own (a lab host's, a test's). */
  netnsMembers?: boolean;
  /** Processes with NAME=VALUE in their environment are the node's (its daemons' descendants included). */
  marker?: { env: string; value: string };
  /** Sockets to remove, run-time directories to remove whole, and directories to remove when empty (deepest first). */
  sockets?: string[];
  trees?: string[];
  emptyDirs?: string[];
}

/** Live processes carrying the scope's marker (never this process). */
export function markedPids(scope: NodeScope): number[] {
  const m = scope.marker;
  if (!m) return [];
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid > 1 && pid !== process.pid && isAlive(pid) && hasEnvMarker(pid, m.env, m.value)) out.push(pid);
  }
  return out;
}

/** Cgroup root names of the scope: the named ones and those matching its prefixes, in any hierarchy. */
function scopeCgroupRoots(scope: NodeScope, base = '/sys/fs/cgroup'): string[] {
  const names = new Set(scope.cgroupRoots ?? []);
  const prefixes = scope.cgroupRootPrefixes ?? [];
  if (prefixes.length && existsSync(base)) {
    const levels = [base, ...readdirSync(base).map((h) => join(base, h))];
    for (const dir of levels) {
      let entries: string[] = [];
      try {
        entries = readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
      } catch {
        continue;
      }
      for (const e of entries) if (prefixes.some((p) => e.startsWith(p))) names.add(e);
    }
  }
  return [...names];
}

/** Tasks of the node: every process in its cgroups. */
const scopeTaskPids = (scope: NodeScope): number[] => [...new Set(scopeCgroupRoots(scope).flatMap((r) => cgroupPids(r)))];

/** Processes inside the scope's namespaces, when they count as its own. */
async function netnsMemberPids(scope: NodeScope): Promise<number[]> {
  if (!scope.netnsMembers) return [];
  const out: number[] = [];
  for (const ns of scopeNetns(scope)) out.push(...(await netnsPids(ns).catch(() => [])));
  return out.filter((p) => p !== process.pid);
}

/** SIGKILLs, as a power cut would, every marked process, task and rbd-fuse helper of the scope, until none is left (bounded). */
export async function killScope(scope: NodeScope, timeoutMs = 10_000): Promise<number[]> {
  const killed = new Set<number>();
  const end = Date.now() + timeoutMs;
  for (;;) {
    const left = [...new Set([...markedPids(scope), ...(await netnsMemberPids(scope)), ...scopeTaskPids(scope), ...(scope.volumesDir ? helperPids(scope.volumesDir) : [])])];
    if (left.length === 0 || Date.now() > end) return [...killed];
    for (const pid of left) if (signal(pid, 'SIGKILL')) killed.add(pid);
    await waitDead(left, 2000);
  }
}

/** Mount points at or under one of `dirs`, deepest first. */
function mountsUnder(dirs: string[]): string[] {
  const targets = mounts()
    .map((m) => m.target)
    .filter((t) => dirs.some((d) => t === d || t.startsWith(`${d}/`)));
  return [...new Set(targets)].sort((a, b) => b.length - a.length);
}

/** Loop devices whose backing file is under one of `dirs`. */
export function loopDevicesUnder(dirs: string[]): string[] {
  const out: string[] = [];
  let blocks: string[] = [];
  try {
    blocks = readdirSync('/sys/block').filter((b) => b.startsWith('loop'));
  } catch {
    return out;
  }
  for (const b of blocks) {
    try {
      const backing = readFileSync(`/sys/block/${b}/loop/backing_file`, 'utf8')
        .trim()
        .replace(/ \(deleted\)$/, '');
      if (dirs.some((d) => backing.startsWith(`${d}/`))) out.push(`/dev/${b}`);
    } catch {
      // not attached
    }
  }
  return out;
}

/**
 * A loop device that is detached as far as this host's mount namespace goes
 * (unmounted here, autoclear set by `losetup -d`) but that the kernel keeps
 * while another mount namespace still holds a copy of its filesystem: a
 * process started elsewhere on the host (not ours) while the volume was
 * mounted. It goes away by itself when those processes end.
 */
function releasedLoop(dev: string): boolean {
  const name = dev.replace('/dev/', '');
  try {
    if (readFileSync(`/sys/block/${name}/loop/autoclear`, 'utf8').trim() !== '1') return false;
  } catch {
    return true; // gone
  }
  return !mounts().some((m) => m.source === dev);
}

/** Processes whose mount namespace still holds a filesystem of `dev` (for the message only). */
function loopHolders(dev: string): number[] {
  let devno: string;
  try {
    devno = readFileSync(`/sys/block/${dev.replace('/dev/', '')}/dev`, 'utf8').trim();
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (
        readFileSync(`/proc/${e}/mountinfo`, 'utf8')
          .split('\n')
          .some((l) => l.split(' ')[2] === devno)
      )
        out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Named namespaces of the scope: its own and its containers'. */
function scopeNetns(scope: NodeScope): string[] {
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  return names.filter((n) => (scope.netns ?? []).includes(n) || (scope.netnsPrefix ? n.startsWith(scope.netnsPrefix) : false));
}

/** What is left of a scope on the host: all empty once a purge is done. */
interface Leftovers {
  processes: number[];
  mounts: string[];
  /** Attached loop devices, except released ones (see releasedLoop). */
  loopDevices: string[];
  netns: string[];
  cgroups: string[];
  sockets: string[];
}

export function scopeLeftovers(scope: NodeScope): Leftovers {
  const dirs = [...scope.dirs, ...(scope.volumesDir ? [scope.volumesDir] : [])];
  return {
    processes: [...new Set([...markedPids(scope), ...scopeTaskPids(scope)])],
    mounts: mountsUnder(dirs),
    loopDevices: loopDevicesUnder(dirs).filter((d) => !releasedLoop(d)),
    netns: scopeNetns(scope),
    cgroups: scopeCgroupRoots(scope).flatMap((r) => cgroupRootDirs(r)),
    sockets: (scope.sockets ?? []).filter((s) => existsSync(s)),
  };
}

export const isClean = (l: Leftovers): boolean => Object.values(l).every((v: unknown[]) => v.length === 0);

export interface SweepReport {
  killed: number[];
  unmounted: string[];
  loopDevices: string[];
  /** Released loop devices other mount namespaces still hold (not ours to end). */
  pinned: Array<{ dev: string; holders: number[] }>;
  netns: string[];
  cgroups: string[];
  errors: string[];
}

/**
 * Removes whatever the scope still has on the host, in the safe order:
 * marked processes, tasks and rbd-fuse helpers; volume filesystems, loop
 * devices and rbd-fuse mounts (teardownVolumes); other mounts and loop
 * devices under its directories; namespaces; cgroups; sockets; empty
 * directories. Its recorded daemons should be stopped first (they would
 * otherwise see their world vanish), but a purge works without.
 */
export async function sweepScope(scope: NodeScope): Promise<SweepReport> {
  const report: SweepReport = { killed: await killScope(scope), unmounted: [], loopDevices: [], pinned: [], netns: [], cgroups: [], errors: [] };
  const note = (err: unknown): void => void report.errors.push(err instanceof Error ? err.message : String(err));
  const volumesDir = scope.volumesDir;
  if (volumesDir) {
    const before = mountsUnder([volumesDir]);
    await teardownVolumes(volumesDir, () => helperPids(volumesDir)).catch(note);
    const after = new Set(mountsUnder([volumesDir]));
    report.unmounted.push(...before.filter((m) => !after.has(m)));
  }
  for (const m of mountsUnder(scope.dirs)) {
    await exec('umount', [m], { timeoutMs: 15_000 }).then(
      () => report.unmounted.push(m),
      () => exec('umount', ['-l', m], { timeoutMs: 15_000 }).then(() => report.unmounted.push(m), note),
    );
  }
  const dirs = [...scope.dirs, ...(volumesDir ? [volumesDir] : [])];
  for (const dev of loopDevicesUnder(dirs)) {
    if (releasedLoop(dev)) continue;
    await exec('losetup', ['-d', dev], { timeoutMs: 15_000 }).then(() => report.loopDevices.push(dev), note);
  }
  for (const dev of loopDevicesUnder(dirs)) if (releasedLoop(dev)) report.pinned.push({ dev, holders: loopHolders(dev) });
  for (const ns of scopeNetns(scope)) await deleteNamedNetns(ns).then(() => report.netns.push(ns), note);
  for (const root of scopeCgroupRoots(scope)) {
    const dirsOfRoot = cgroupRootDirs(root);
    await removeCgroupRoot(root).catch(note);
    report.cgroups.push(...dirsOfRoot.filter((d) => !existsSync(d)));
  }
  for (const s of scope.sockets ?? []) rmSync(s, { force: true });
  for (const t of scope.trees ?? []) rmSync(t, { recursive: true, force: true });
  for (const d of [...(scope.emptyDirs ?? [])].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(d);
    } catch {
      // not empty (someone else's files) or already gone
    }
  }
  return report;
}
