/**
 * The native (MESOS) containerizer against the real kernel: the shared
 * Containerizer contract (containerizer-contract.ts), then what only the
 * native one does: the supervisor's termination file, SIGTERM forwarded by
 * the namespace init, cgroups removed by the supervisor, its own pid/uts/ipc/
 * mount namespaces and netns files, an OOM kill of a child, cgroup limits
 * sized for an overcommitting agent, the refusals only it makes, and nothing
 * left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, cpus, hostname, totalmem } from 'node:os';
import { isCorralError } from '../../contracts/errors.js';
import { createMesosContainerizer } from '../../plugins/isolator/src/native/containerizer.js';
import { containerizerContract } from './containerizer-contract.js';
import { NONE, eventually, forceCleanup, leftovers, nativeEnv, removeCgroupRoot, shell, task, type NativeEnv } from './helpers.js';

let env: NativeEnv;
const launched: string[] = [];
/** The containerizer runs as an agent advertising more than this host has (an operator's overcommit). */
const CORES = Math.max(cpus().length, availableParallelism());
const ADVERTISED = { cpus: CORES + 2, memMb: 2 * Math.floor(totalmem() / (1024 * 1024)), gpus: 0 };

beforeAll(async () => {
  env = await nativeEnv('native', {}, { host: ADVERTISED });
});

afterAll(async () => {
  if (!env) return;
  for (const id of launched) await env.z.destroy(id).catch(() => undefined);
  await env.z.close();
  await removeCgroupRoot(env.cgroupRoot);
  const left = leftovers(env);
  await forceCleanup(env);
  expect(left).toEqual(NONE);
});

async function start(id: string, o: Parameters<typeof task>[2]) {
  const sandbox = env.sandbox(id);
  launched.push(id);
  const l = await env.z.launch(task(id, sandbox, o));
  return { sandbox, launched: l };
}

containerizerContract('native (MESOS)', () => ({
  z: env.z,
  task: (id, o) => task(id, env.sandbox(id), o),
  holds: async (id) => env.z.cgroups.exists(id) || existsSync(join(env.dir, 'run', 'containers', id)) || existsSync(join('/run/netns', env.netnsPrefix + id)),
  advertised: ADVERTISED,
  agentOptions: env.config as Record<string, unknown>,
  reopen: () => createMesosContainerizer(env.config, { host: ADVERTISED }),
  endRecorded: async (id) => existsSync(join(env.sandbox(id), '.corral', 'termination.json')),
  refusals: {
    missingCommand: /exec no-such-program: No such file or directory/,
    unknownUser: /unknown user "no-such-user"/,
    foreignImage: { image: { kind: 'docker', name: 'busybox', forcePull: false }, message: /use the DOCKER containerizer/ },
  },
}));

describe('native lifecycle', () => {
  it('the supervisor reports the pid and leaves the termination in the sandbox', async () => {
    const { sandbox, launched: l } = await start('term-file', { command: shell('echo out; exit 3') });
    // The supervisor knows the task's pid even when it has ended by the time launch returns.
    expect(l.pid).toBeGreaterThan(0);
    expect(await env.z.wait('term-file')).toMatchObject({ exitCode: 3 });
    expect(JSON.parse(readFileSync(join(sandbox, '.corral', 'termination.json'), 'utf8'))).toMatchObject({ exitCode: 3 });
    await env.z.destroy('term-file');
  });

  // Docker cannot promise this: a task without a handler is pid 1 there, and the kernel drops its SIGTERM.
  it('reports the signal a task died of (SIGTERM forwarded by the namespace init)', async () => {
    await start('sleeper', { command: { shell: false, value: 'sleep', arguments: ['sleep', '60'], environment: {} } });
    await env.z.kill('sleeper', 3000);
    expect(await env.z.wait('sleeper')).toMatchObject({ exitCode: null, signal: 'SIGTERM', message: 'the task killed by SIGTERM' });
    await env.z.destroy('sleeper');
  });

  it('a task that ended has its cgroups removed by its supervisor, before any destroy', async () => {
    await start('ended', { command: shell('exit 0') });
    expect(await env.z.wait('ended')).toMatchObject({ exitCode: 0 });
    await eventually(() => expect(env.z.cgroups.exists('ended')).toBe(false));
    await env.z.destroy('ended');
    expect(env.z.cgroups.exists('ended')).toBe(false);
  });

  it('log files in a sandbox subdirectory: the directory is created', async () => {
    const { sandbox } = await start('logdir', { logs: { stdout: 'logs/out', stderr: 'logs/err', maxBytes: 4096, maxFiles: 3 }, command: shell('echo out; echo err >&2') });
    expect((await env.z.wait('logdir')).exitCode).toBe(0);
    expect(readFileSync(join(sandbox, 'logs', 'out'), 'utf8')).toBe('out\n');
    expect(readFileSync(join(sandbox, 'logs', 'err'), 'utf8')).toBe('err\n');
    await env.z.destroy('logdir');
  });
});

describe('namespaces', () => {
  it('gives the task its own pid, uts, ipc and mount namespaces', async () => {
    const { sandbox, launched: l } = await start('ns', {
      hostname: 'task-host',
      command: shell('echo $$; hostname; mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused; cat /proc/1/comm; sleep 30'),
    });
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8').trim().split('\n')).toHaveLength(4));
    const [pidInside, host, mounted, initComm] = readFileSync(join(sandbox, 'stdout'), 'utf8').trim().split('\n');
    expect(pidInside).toBe('2'); // pid 1 is the namespace init
    expect(initComm).toBe('corral-init');
    expect(host).toBe('task-host');
    expect(hostname()).not.toBe('task-host');
    expect(mounted).toBe('refused'); // its own mount namespace, but no right to mount (sandbox-escape.test.ts)
    expect(readFileSync('/proc/mounts', 'utf8')).not.toMatch(/^none \/mnt tmpfs/m);
    for (const ns of ['pid', 'uts', 'ipc', 'mnt']) expect(readlinkSync(`/proc/${l.pid}/ns/${ns}`)).not.toBe(readlinkSync(`/proc/self/ns/${ns}`));
    expect(readlinkSync(`/proc/${l.pid}/ns/net`)).toBe(readlinkSync('/proc/self/ns/net')); // host networking
    await env.z.destroy('ns');
  });

  it('an isolated network is a namespace file named after the container, with IPv6 loopback, removed by destroy', async () => {
    const { launched: l } = await start('netns-file', { network: { mode: 'isolated' }, command: shell('sleep 30') });
    expect(l.netns).toBe(`/run/netns/${env.netnsPrefix}netns-file`);
    expect(existsSync(l.netns!)).toBe(true);
    // Its loopback also has ::1 (a Docker container's has none, so the contract checks 127.0.0.1 only).
    await eventually(() => expect(readFileSync(`/proc/${l.pid}/net/if_inet6`, 'utf8')).toContain(' lo'));
    await env.z.destroy('netns-file');
    expect(existsSync(l.netns!)).toBe(false);
  });
});

/** The CPU controls the kernel holds for a container: v1 shares and CFS quota/period, or v2 cpu.max. */
function cpuControl(id: string): { shares?: number; quota: string; period: string } {
  for (const d of env.z.cgroups.placement(id).dirs) {
    if (existsSync(join(d, 'cpu.cfs_quota_us'))) {
      const read = (f: string) => readFileSync(join(d, f), 'utf8').trim();
      return { shares: Number(read('cpu.shares')), quota: read('cpu.cfs_quota_us'), period: read('cpu.cfs_period_us') };
    }
    if (existsSync(join(d, 'cpu.max'))) {
      const [quota, period] = readFileSync(join(d, 'cpu.max'), 'utf8').trim().split(' ');
      return { quota: quota!, period: period! };
    }
  }
  throw new Error(`no cpu cgroup for ${id}`);
}

describe('cgroup limits', () => {
  it('an OOM kill of a child process is still a memory limitation (the shell reports 137)', async () => {
    await start('hog-child', { resources: { cpus: 0.5, memMb: 32, diskMb: 0, gpus: 0, ports: [] }, command: shell('dd if=/dev/zero of=/dev/null bs=128M count=1; exit $?') });
    expect(await env.z.wait('hog-child')).toMatchObject({ oomKilled: true, exitCode: 137, signal: null, reason: 'REASON_CONTAINER_LIMITATION_MEMORY' });
    await env.z.destroy('hog-child');
  });

  it('a task asking for more CPUs than the host has, within what the agent advertises, runs with limits sized from its request', async () => {
    const want = CORES + 1;
    const { sandbox } = await start('overcommit', { resources: { cpus: want, memMb: 64, diskMb: 0, gpus: 0, ports: [] }, command: shell('echo running; sleep 30') });
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toBe('running\n'));
    const cg = cpuControl('overcommit');
    expect(cg).toEqual(env.z.cgroups.version === 1 ? { shares: want * 1024, quota: `${want * 100_000}`, period: '100000' } : { quota: `${want * 100_000}`, period: '100000' });
    expect(env.z.cgroups.usage('overcommit')!.memLimitBytes).toBe(64 * 1024 * 1024);
    await env.z.destroy('overcommit');
  });
});

describe('bad native task definitions are refused with a clear message', () => {
  const refused = async (id: string, o: Parameters<typeof task>[2], pattern: RegExp) => {
    const err = await env.z.launch(task(id, env.sandbox(id), o)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, `launch of ${id} should fail`).toBeDefined();
    expect(isCorralError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(pattern);
    expect(env.z.cgroups.exists(id)).toBe(false);
    expect(existsSync(join(env.dir, 'run', 'containers', id))).toBe(false);
  };

  it('a missing image tarball', () => refused('noimg', { image: { kind: 'tarball', path: '/no/such/image.tar' } }, /image tarball \/no\/such\/image.tar does not exist/));
  it('a CNI network without a network hook', () => refused('nocni', { network: { mode: 'cni', network: 'corral' } }, /needs CNI, but this agent has no network hook/));
});
