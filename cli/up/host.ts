/**
 * What `corral up` sets up on the host besides its processes, and how
 * `corral down` finds and removes it again: the node network namespace, the
 * tasks' namespaces, cgroups, mounts and loop devices, sockets. Nothing
 * outside the instance's own names and directories is touched, and the root
 * network namespace's routes and firewall never are.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createNamedNetns, deleteNamedNetns, netnsAlive } from '../../common/netkit/netns.js';
import { exec } from '../../common/sys/exec.js';
import { ip } from '../../common/sys/ip.js';
import { NODE_ADDRESS, type UpPlan } from './plan.js';
import { markedProcesses } from './procs.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** The node namespace: loopback up, owning the containers' gateway address (see NODE_ADDRESS). */
export async function prepareNodeNetns(plan: UpPlan): Promise<void> {
  if (plan.hostNetwork) return;
  await createNamedNetns(plan.netns.node);
  const addrs = await ip(['-n', plan.netns.node, '-4', '-o', 'addr', 'show', 'dev', 'lo']);
  if (!addrs.includes(`${NODE_ADDRESS}/32`)) await ip(['-n', plan.netns.node, 'addr', 'add', `${NODE_ADDRESS}/32`, 'dev', 'lo']);
}

/** Mount points at or under one of `dirs`, deepest first. */
export function mountsUnder(dirs: string[]): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const target = line.split(' ')[1]?.replace(/\\040/g, ' ');
    if (target && dirs.some((d) => target === d || target.startsWith(`${d}/`))) out.push(target);
  }
  return [...new Set(out)].sort((a, b) => b.length - a.length);
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
      const backing = readFileSync(`/sys/block/${b}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '');
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
export function releasedLoop(dev: string): boolean {
  const name = dev.replace('/dev/', '');
  try {
    if (readFileSync(`/sys/block/${name}/loop/autoclear`, 'utf8').trim() !== '1') return false;
  } catch {
    return true; // gone
  }
  return !readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.startsWith(`${dev} `));
}

/** Processes whose mount namespace still holds a filesystem of `dev` (for the message only). */
export function loopHolders(dev: string): number[] {
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
      if (readFileSync(`/proc/${e}/mountinfo`, 'utf8').split('\n').some((l) => l.split(' ')[2] === devno)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** The cgroup directories of the instance's root, one per hierarchy (v1), or the one v2 directory. */
export function cgroupRoots(plan: UpPlan): string[] {
  const base = '/sys/fs/cgroup';
  const out: string[] = [];
  if (existsSync(join(base, plan.cgroupRoot))) out.push(join(base, plan.cgroupRoot));
  try {
    for (const h of readdirSync(base)) {
      const dir = join(base, h, plan.cgroupRoot);
      if (existsSync(join(base, h, 'cgroup.procs')) && existsSync(dir)) out.push(dir);
    }
  } catch {
    // no cgroup fs
  }
  return out;
}

/** Named namespaces of the instance: the node's and every task's. */
export function instanceNetns(plan: UpPlan): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  return names.filter((n) => (!plan.hostNetwork && n === plan.netns.node) || (n.startsWith(plan.netns.taskPrefix) && n !== plan.netns.node));
}

/** What is left of an instance on the host: empty everywhere once `corral down` is done. */
export interface Leftovers {
  processes: number[];
  mounts: string[];
  /** Attached loop devices of the instance, except released ones (see releasedLoop). */
  loopDevices: string[];
  netns: string[];
  cgroups: string[];
  sockets: string[];
}

export function sockets(plan: UpPlan): string[] {
  return [plan.paths.cniSocket, plan.paths.volumeSocket, plan.paths.agentSocket].filter((s) => existsSync(s));
}

/** Removes cgroup directories bottom-up (their processes must already be gone). */
function removeTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
  rmdirSync(dir);
}

/** Members of every cgroup under the instance's roots (tasks that outlived their agent). */
export function cgroupMembers(plan: UpPlan): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    try {
      for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line.trim()) pids.add(Number(line));
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    } catch {
      // gone meanwhile
    }
  };
  for (const root of cgroupRoots(plan)) walk(root);
  return [...pids];
}

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
 * Removes whatever the instance still has on the host, in the safe order:
 * processes in its cgroups (tasks), mounts (filesystems before their loop
 * devices), loop devices, namespaces, cgroups, sockets and the run directory.
 * Its own daemons must be stopped first (see `killMarked`).
 */
export async function sweep(plan: UpPlan): Promise<SweepReport> {
  const report: SweepReport = { killed: [], unmounted: [], loopDevices: [], pinned: [], netns: [], cgroups: [], errors: [] };
  const note = (err: unknown): void => void report.errors.push(err instanceof Error ? err.message : String(err));
  // Tasks: every process in the instance's cgroups, by PID.
  for (let round = 0; round < 20; round++) {
    const members = cgroupMembers(plan);
    if (members.length === 0) break;
    for (const pid of members) {
      try {
        process.kill(pid, 'SIGKILL');
        if (!report.killed.includes(pid)) report.killed.push(pid);
      } catch {
        // gone
      }
    }
    await sleep(100);
  }
  const dirs = [plan.workDir, plan.runDir];
  for (const m of mountsUnder(dirs)) {
    await exec('umount', [m], { timeoutMs: 15_000 }).then(
      () => report.unmounted.push(m),
      () => exec('umount', ['-l', m], { timeoutMs: 15_000 }).then(() => report.unmounted.push(m), note),
    );
  }
  for (const dev of loopDevicesUnder(dirs)) {
    if (releasedLoop(dev)) continue;
    await exec('losetup', ['-d', dev], { timeoutMs: 15_000 }).then(() => report.loopDevices.push(dev), note);
  }
  for (const dev of loopDevicesUnder(dirs)) {
    if (releasedLoop(dev)) report.pinned.push({ dev, holders: loopHolders(dev) });
  }
  for (const ns of instanceNetns(plan)) {
    await deleteNamedNetns(ns).then(() => report.netns.push(ns), note);
  }
  for (const root of cgroupRoots(plan)) {
    try {
      removeTree(root);
      report.cgroups.push(root);
    } catch (err) {
      note(err);
    }
  }
  for (const s of sockets(plan)) rmSync(s, { force: true });
  // Only what the instance made under the run directory (it may be a shared /run/corral).
  rmSync(plan.paths.containerizerRun, { recursive: true, force: true });
  const ownDirs = [dirname(plan.paths.volumeSocket), plan.runDir].filter((d) => d === plan.runDir || d.startsWith(`${plan.runDir}/`));
  for (const dir of [...ownDirs, ...(plan.madeDirs ?? [])].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(dir);
    } catch {
      // not empty (someone else's files) or already gone
    }
  }
  return report;
}

/** Everything of the instance still on the host. */
export function leftovers(plan: UpPlan): Leftovers {
  const dirs = [plan.workDir, plan.runDir];
  return {
    processes: [...new Set([...markedProcesses(plan.marker), ...cgroupMembers(plan)])],
    mounts: mountsUnder(dirs),
    loopDevices: loopDevicesUnder(dirs).filter((d) => !releasedLoop(d)),
    netns: instanceNetns(plan),
    cgroups: cgroupRoots(plan),
    sockets: sockets(plan),
  };
}

export const isClean = (l: Leftovers): boolean => Object.values(l).every((v: unknown[]) => v.length === 0);

export function nodeNetnsAlive(plan: UpPlan): boolean {
  return !plan.hostNetwork && netnsAlive(plan.netns.nodePath);
}
