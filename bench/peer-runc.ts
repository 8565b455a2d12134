/**
 * The peer the native-containerizer benchmarks run side by side with: an OCI
 * runtime (runc 1.1, or crun where it runs: crun 1.8 refuses a hybrid v1 + v2
 * cgroup layout like this VM's) starting the same `sleep` tasks with the same
 * isolation corral's native containerizer gives a task, then destroying them.
 *
 * What each runc container gets, to match a corral task:
 *  - cgroups in cpu, cpuacct, memory and pids with corral's limits (cpu.shares
 *    1024 × cpus, a CFS quota of cpus × 100 ms, memory and memory+swap at
 *    memMb, pids.max). runc also places every container in each other v1
 *    hierarchy mounted here (cpuset, devices, freezer, blkio, …): that is how
 *    runc works, it cannot be turned off;
 *  - mount, pid, uts and ipc namespaces, host network (no network namespace);
 *  - the mounts corral makes in a task with those namespaces: /proc for the
 *    pid namespace and a tmpfs on /dev/shm for the ipc one; plus a tmpfs /dev
 *    with the default device nodes, which runc needs on a read-only root
 *    (corral's tasks see the host's /dev). No sysfs, mqueue, devpts, masked
 *    or read-only /proc paths, seccomp or AppArmor — corral applies none;
 *  - root with the capabilities the caller holds, as corral's tasks run;
 *  - one root filesystem made from busybox-static, shared read-only by every
 *    container (corral's tasks share the host's root filesystem likewise;
 *    neither gets a per-task copy);
 *  - stdout/stderr on /dev/null (corral's supervisor copies them into log
 *    files; runc has no log capture of its own).
 *
 * Launch: `runc run -d` per container; destroy: `runc delete -f` (SIGKILL,
 * wait, remove cgroups and state). The commands are driven by xargs with a
 * bounded number in flight (`parallel`), so no Node process spawn is counted
 * against the peer; the bundles (one config.json each) are written before the
 * clock starts, as corral's sandboxes are.
 */
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseCgroupMounts } from '../plugins/isolator/src/cgroups/detect.js';
import { cgroupLimits } from '../plugins/isolator/src/cgroups/limits.js';
import { flag, ms, type Figure } from './volume-common.js';
import { CAPABILITY_NAMES } from '../plugins/isolator/src/common/capabilities.js';

export type PeerRuntime = 'runc' | 'crun';

export interface PeerOptions {
  runtime: PeerRuntime;
  /** Scratch directory (bundles, rootfs); the state dir goes to `stateDir`. */
  dir: string;
  /** The runtime's --root: a tmpfs, like corral's run directory. */
  stateDir: string;
  tasks: number;
  /** Runtime commands in flight at once. */
  parallel: number;
  cpus: number;
  memMb: number;
  pids: number;
  /** Parent cgroup of every container (relative to each hierarchy's mount). */
  cgroupRoot: string;
}

export interface PeerRound {
  launchMs: number;
  destroyMs: number;
  /** Containers whose cgroup held a process right after the launch. */
  running: number;
  /** Containers the runtime still lists, and cgroups left, after the destroy. */
  leftContainers: number;
  leftCgroups: number;
}

/** The capabilities in this process's bounding set: what a corral task, run as root, holds. */
function callerCaps(): string[] {
  const m = /^CapBnd:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  const bnd = BigInt(`0x${m?.[1] ?? '0'}`);
  return CAPABILITY_NAMES.filter((_, i) => (bnd >> BigInt(i)) & 1n).map((c) => `CAP_${c}`);
}

/** A minimal root filesystem: busybox-static and its `sleep`, plus the mount points the config uses. */
function makeRootfs(rootfs: string): void {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) throw new Error('the peer needs busybox-static (/bin/busybox): apt-get install busybox-static');
  for (const d of ['bin', 'proc', 'dev', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  for (const applet of ['sleep', 'sh', 'true']) symlinkSync('busybox', join(rootfs, 'bin', applet));
}

function ociConfig(o: PeerOptions, rootfs: string, id: string): object {
  const limits = cgroupLimits({ cpus: o.cpus, memMb: o.memMb, pids: o.pids, cfsQuota: true });
  const caps = callerCaps();
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['sleep', '300'],
      env: ['PATH=/bin'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: true },
    hostname: id,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    ],
    linux: {
      cgroupsPath: `/${o.cgroupRoot}/${id}`,
      resources: {
        cpu: { shares: limits.cpuShares, quota: limits.cpuQuota!.quotaUs, period: limits.cpuQuota!.periodUs },
        memory: { limit: limits.memoryBytes, swap: limits.memoryBytes },
        pids: { limit: o.pids },
      },
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
    },
  };
}

/**
 * The peer a bench runs beside: `--peer runc|crun|none` (default runc) and `--peer-parallel N`
 * (default 32: in a sweep of 8–256 in flight, 1,000 runc launches took 9.5–12.6 s at every
 * setting and deletes were fastest from 32 up).
 */
export function peerOptionsFromFlags(o: Omit<PeerOptions, 'runtime' | 'parallel'>): PeerOptions | undefined {
  const i = process.argv.indexOf('--peer');
  const name = i < 0 ? 'runc' : process.argv[i + 1];
  if (name === 'none') return undefined;
  if (name !== 'runc' && name !== 'crun') {
    process.stderr.write(`--peer needs runc, crun or none, not ${JSON.stringify(name ?? '')}\n`);
    process.exit(2);
  }
  return { ...o, runtime: name, parallel: flag('--peer-parallel', 32, { whole: true, min: 1 }) };
}

export const peerIds = (tasks: number): string[] => Array.from({ length: tasks }, (_, i) => `p${i}`);

/** Rootfs and one bundle per container, made once and reused by every round. */
export function preparePeer(o: PeerOptions): void {
  const rootfs = join(o.dir, 'rootfs');
  makeRootfs(rootfs);
  for (const id of peerIds(o.tasks)) {
    const bundle = join(o.dir, 'bundles', id);
    mkdirSync(bundle, { recursive: true });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociConfig(o, rootfs, id)));
  }
  mkdirSync(o.stateDir, { recursive: true });
}

/** `xargs -0 -P parallel` running `args` with {} replaced by each id; rejects with the runtime's stderr. */
function drive(o: PeerOptions, ids: string[], args: string[]): Promise<void> {
  const errFile = join(o.dir, 'runtime.err');
  const err = openSync(errFile, 'w');
  return new Promise<void>((resolve, reject) => {
    const child = spawn('xargs', ['-0', '-P', String(o.parallel), '-I{}', o.runtime, '--root', o.stateDir, ...args], { stdio: ['pipe', 'ignore', err] });
    child.on('error', reject);
    child.on('exit', (code) => {
      const text = readFileSync(errFile, 'utf8').trim();
      if (code === 0) resolve();
      else reject(new Error(`${o.runtime} ${args[0]} failed (xargs exit ${code}): ${text.slice(0, 2000)}`));
    });
    child.stdin!.end(ids.join('\0') + '\0');
  }).finally(() => closeSync(err));
}

function cgroupMounts(): string[] {
  const m = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  return [...new Set(m.v1.values())];
}

function procsIn(dir: string): number {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

function leftCgroups(root: string): number {
  let n = 0;
  for (const mount of cgroupMounts()) {
    const d = join(mount, root);
    if (existsSync(d)) n += readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).length;
  }
  return n;
}

/** One timed round: every container launched, then every one destroyed. */
export async function peerRound(o: PeerOptions): Promise<PeerRound> {
  const ids = peerIds(o.tasks);
  const memMount = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8')).v1.get('memory')!;
  const t0 = process.hrtime.bigint();
  await drive(o, ids, ['run', '-d', '--bundle', join(o.dir, 'bundles', '{}'), '{}']);
  const launchMs = ms(t0);
  const running = ids.filter((id) => procsIn(join(memMount, o.cgroupRoot, id)) > 0).length;
  const t1 = process.hrtime.bigint();
  await drive(o, ids, ['delete', '-f', '{}']);
  const destroyMs = ms(t1);
  const leftContainers = readdirSync(o.stateDir).length;
  return { launchMs, destroyMs, running, leftContainers, leftCgroups: leftCgroups(o.cgroupRoot) };
}

/** Best-effort removal of whatever a failed round left: containers, then the cgroup root in every hierarchy. */
export async function disposePeer(o: PeerOptions): Promise<void> {
  const left = existsSync(o.stateDir) ? readdirSync(o.stateDir) : [];
  if (left.length) await drive(o, left, ['delete', '-f', '{}']).catch(() => undefined);
  for (const mount of cgroupMounts()) {
    const d = join(mount, o.cgroupRoot);
    try {
      rmdirSync(d);
    } catch {
      // already gone (or still busy: the leftover figure says so)
    }
  }
}

/**
 * Load on the shared machine around one round: the 1-minute load average at its start, the mean
 * number of runnable tasks (procs_running, sampled every 100 ms: the round's own processes count
 * too) and the CPU the hypervisor stole during it.
 */
export interface RoundLoad {
  load1: number;
  runnable: number;
  stealS: number;
}

const stealSeconds = (): number => Number(readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/)[8] ?? 0) / 100;
const procsRunning = (): number => Number(/^procs_running (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1] ?? 0);

/** Runs `fn` and reports the load it ran under. */
export async function underLoad<T extends object>(fn: () => Promise<T>): Promise<T & RoundLoad> {
  const load1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  const steal0 = stealSeconds();
  const samples: number[] = [procsRunning()];
  const timer = setInterval(() => samples.push(procsRunning()), 100);
  try {
    const result = await fn();
    return { ...result, load1, runnable: samples.reduce((a, b) => a + b, 0) / samples.length, stealS: stealSeconds() - steal0 };
  } finally {
    clearInterval(timer);
  }
}
export interface SideBySideRun {
  corral: { launchMs: number; destroyMs: number } & RoundLoad;
  peer: PeerRound & RoundLoad;
}

const s2 = (msValue: number): string => `${(msValue / 1000).toFixed(2)} s`;
export const loadText = (l: RoundLoad): string => `load ${l.load1.toFixed(1)}, runnable ${l.runnable.toFixed(1)}, steal ${l.stealS.toFixed(2)} s`;

/** Per-run rows (corral, peer, ratio) and the every-run verdict against a ratio goal, for printFigures. */
export function sideBySideFigures(runs: SideBySideRun[], runtime: PeerRuntime, goalRatio: number): Figure[] {
  const rows: Figure[] = [];
  const ratio = (c: number, p: number): string => `${(c / p).toFixed(2)}×`;
  for (const [phase, key] of [
    ['launch', 'launchMs'],
    ['destroy', 'destroyMs'],
  ] as const) {
    runs.forEach((r, i) => {
      const c = r.corral[key];
      const p = r.peer[key];
      rows.push({
        what: `run ${i + 1} ${phase} (corral ${loadText(r.corral)}; ${runtime} ${loadText(r.peer)})`,
        corral: s2(c),
        peer: `${runtime}: ${s2(p)}`,
        goal: `≤ ${goalRatio}×`,
        verdict: `${ratio(c, p)} ${c <= goalRatio * p ? 'met' : 'missed'}`,
      });
    });
    const ratios = runs.map((r) => r.corral[key] / r.peer[key]);
    rows.push({
      what: `${phase}: every run`,
      corral: `${s2(Math.min(...runs.map((r) => r.corral[key])))}–${s2(Math.max(...runs.map((r) => r.corral[key])))}`,
      peer: `${runtime}: ${s2(Math.min(...runs.map((r) => r.peer[key])))}–${s2(Math.max(...runs.map((r) => r.peer[key])))}`,
      goal: `≤ ${goalRatio}× in every run`,
      verdict: `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}× ${ratios.every((x) => x <= goalRatio) ? 'met' : 'missed'}`,
    });
  }
  return rows;
}
