/**
 * Shared set-up of the isolator integration tests: a native containerizer
 * with its own run/work directories under the test root and a cgroup root
 * unique to the run (`corral-test-…`), task definitions, and the leftover
 * check every file ends with: no cgroups, mounts, namespace files or
 * supervisor/init processes of its own may survive its cleanup.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import type { ContainerConfig } from '../../contracts/containerizer.js';
import { createMesosContainerizer, type MesosContainerizer, type MesosContainerizerDeps } from '../../plugins/isolator/src/native/containerizer.js';
import type { MesosContainerizerConfigInput } from '../../plugins/isolator/src/native/config.js';
import { parseCgroupMounts } from '../../plugins/isolator/src/cgroups/detect.js';
import { netnsName, testDir, run } from '../harness/resources.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const SHIM = join(import.meta.dirname, '../../native/task-shim/build/corral-task-shim');

/** Builds the task shim once per test file (make is a no-op when up to date). */
export function buildShim(): void {
  execFileSync('make', ['-s', '-C', join(import.meta.dirname, '../../native/task-shim')], { stdio: 'pipe' });
}

export interface NativeEnv {
  dir: string;
  cgroupRoot: string;
  netnsPrefix: string;
  config: MesosContainerizerConfigInput;
  z: MesosContainerizer;
  sandbox(name: string): string;
}

export async function nativeEnv(tag: string, config: MesosContainerizerConfigInput = {}, deps: MesosContainerizerDeps = {}): Promise<NativeEnv> {
  buildShim();
  const dir = testDir(`iso-${tag}`);
  const cgroupRoot = `corral-test-${tag}-${randomBytes(3).toString('hex')}`;
  // Namespace files go to /run/netns as in production, named ct-… so scripts/cleanup-tests.sh knows them.
  const netnsPrefix = `${netnsName(tag)}-`;
  const full: MesosContainerizerConfigInput = { runDir: join(dir, 'run'), workDir: join(dir, 'work'), cgroupRoot, netnsPrefix, shimPath: SHIM, killTimeoutMs: 5000, ...config };
  const z = await createMesosContainerizer(full, deps);
  return {
    dir,
    cgroupRoot,
    netnsPrefix,
    config: full,
    z,
    sandbox(name: string) {
      const s = join(dir, 'sandboxes', name);
      mkdirSync(s, { recursive: true });
      return s;
    },
  };
}

/** A task definition with small defaults; override what a test is about. */
export function task(containerId: string, sandbox: string, o: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    containerId,
    frameworkId: 'fw-test',
    taskId: `task-${containerId}`,
    sandbox,
    command: { shell: true, value: 'true', environment: {} },
    resources: { cpus: 0.5, memMb: 64, diskMb: 0, gpus: 0, ports: [] },
    limits: {},
    volumes: [],
    network: { mode: 'host' },
    logs: { stdout: 'stdout', stderr: 'stderr', maxBytes: 1024 * 1024, maxFiles: 3 },
    labels: {},
    ...o,
  };
}

export const shell = (value: string, environment: Record<string, string> = {}) => ({ shell: true, value, environment });

export { sleep };

export async function eventually<T>(fn: () => T | Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(25);
    }
  }
}

/** Cgroup directories named `root` (or under it) in every hierarchy of this host. */
export function cgroupsUnder(root: string): string[] {
  const m = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  const mounts = new Set([...m.v1.values(), ...(m.v2 ? [m.v2] : [])]);
  const out: string[] = [];
  for (const mount of mounts) {
    const d = join(mount, root);
    if (!existsSync(d)) continue;
    out.push(
      ...readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(d, e.name)),
    );
  }
  return out;
}

function rootDirs(root: string): string[] {
  const m = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  return [...new Set([...m.v1.values(), ...(m.v2 ? [m.v2] : [])])].map((mount) => join(mount, root)).filter((d) => existsSync(d));
}

/** Live (non-zombie) supervisor or namespace-init processes that hold a file under `dir` or sit in cgroup `root`. */
export function shimProcessesFor(dir: string, root: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const comm = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
      if (comm !== 'corral-sup' && comm !== 'corral-init') continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const inCgroup = readFileSync(`/proc/${name}/cgroup`, 'utf8').includes(`/${root}/`);
      const fds = readdirSync(`/proc/${name}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${name}/fd/${fd}`);
        } catch {
          return '';
        }
      });
      if (inCgroup || fds.some((f) => f.startsWith(dir))) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir));
}

export interface Leftovers {
  cgroups: string[];
  mounts: string[];
  netnsFiles: string[];
  processes: number[];
}

export const netnsFilesWith = (prefix: string): string[] => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((f) => f.startsWith(prefix)) : []);

export function leftovers(env: Pick<NativeEnv, 'dir' | 'cgroupRoot' | 'netnsPrefix'>): Leftovers {
  return {
    cgroups: cgroupsUnder(env.cgroupRoot),
    mounts: [...mountsUnder(env.dir), ...mountsUnder('/run/netns/').filter((m) => m.startsWith(`/run/netns/${env.netnsPrefix}`))],
    netnsFiles: netnsFilesWith(env.netnsPrefix),
    processes: shimProcessesFor(env.dir, env.cgroupRoot),
  };
}

export const NONE: Leftovers = { cgroups: [], mounts: [], netnsFiles: [], processes: [] };

/** Last-resort cleanup after a failed test: kill what is left, unmount, remove cgroups and the directory. */
export async function forceCleanup(env: Pick<NativeEnv, 'dir' | 'cgroupRoot' | 'netnsPrefix'>): Promise<void> {
  for (const pid of shimProcessesFor(env.dir, env.cgroupRoot)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const cg of cgroupsUnder(env.cgroupRoot)) {
    for (const pid of readFileSync(join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const m of mountsUnder(env.dir).sort((a, b) => b.length - a.length)) await run('umount', ['-l', m]).catch(() => undefined);
  for (const f of netnsFilesWith(env.netnsPrefix)) await run('ip', ['netns', 'delete', f]).catch(() => undefined);
  await sleep(100);
  for (const cg of cgroupsUnder(env.cgroupRoot)) {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(cg);
        break;
      } catch {
        await sleep(50);
      }
    }
  }
  await removeCgroupRoot(env.cgroupRoot);
  rmSync(env.dir, { recursive: true, force: true });
}

/** Removes the (empty) cgroup root directories of a test run. */
export async function removeCgroupRoot(root: string): Promise<void> {
  for (const d of rootDirs(root)) {
    try {
      rmdirSync(d);
    } catch {
      // still busy or already gone: the leftover check reports it
    }
  }
}
