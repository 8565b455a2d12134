/**
 * The native (MESOS) containerizer against the real kernel: launch → exit
 * status, signals and kill with a grace period (a SIGTERM handler runs),
 * namespaces, cgroup limits (CPU quota measured from the cgroup's usage,
 * OOM at the memory limit, pids), logs with rotation, bad task definitions,
 * and nothing left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, cpus, hostname, totalmem } from 'node:os';
import { isCorralError } from '../../contracts/errors.js';
import { NONE, eventually, forceCleanup, leftovers, nativeEnv, removeCgroupRoot, shell, sleep, task, type NativeEnv } from './helpers.js';

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

describe('lifecycle', () => {
  it('runs a task to its exit status and captures stdout and stderr', async () => {
    const { sandbox, launched: l } = await start('exit3', { command: shell('echo out; echo err >&2; exit 3') });
    expect(l.pid).toBeGreaterThan(0);
    const t = await env.z.wait('exit3');
    expect(t).toMatchObject({ exitCode: 3, signal: null, oomKilled: false });
    expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toBe('out\n');
    expect(readFileSync(join(sandbox, 'stderr'), 'utf8')).toBe('err\n');
    // The supervisor also left the termination in the sandbox.
    expect(JSON.parse(readFileSync(join(sandbox, '.corral', 'termination.json'), 'utf8'))).toMatchObject({ exitCode: 3 });
    await env.z.destroy('exit3');
    await expect(env.z.wait('exit3')).rejects.toThrow(/no container exit3/);
  });

  it('execs a non-shell command with its arguments and environment', async () => {
    const { sandbox } = await start('argv', { command: { shell: false, value: '/bin/sh', arguments: ['sh', '-c', 'echo "$1 $GREETING"', 'sh', 'arg1'], environment: { GREETING: 'hello' } } });
    expect((await env.z.wait('argv')).exitCode).toBe(0);
    expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toBe('arg1 hello\n');
    await env.z.destroy('argv');
  });

  it('kill honours a SIGTERM handler within the grace period', async () => {
    const { sandbox } = await start('trap', { command: shell('trap "echo bye > $MESOS_SANDBOX/got-term; exit 0" TERM; echo ready; while true; do sleep 0.05; done') });
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toContain('ready'));
    const t0 = Date.now();
    await env.z.kill('trap', 5000);
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(await env.z.wait('trap')).toMatchObject({ exitCode: 0, signal: null });
    expect(readFileSync(join(sandbox, 'got-term'), 'utf8')).toBe('bye\n');
    await env.z.destroy('trap');
  });

  it('a task that ignores SIGTERM is SIGKILLed when the grace period ends', async () => {
    const { sandbox } = await start('stubborn', { command: shell('trap "" TERM; echo ready; while true; do sleep 0.05; done') });
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toContain('ready'));
    const t0 = Date.now();
    await env.z.kill('stubborn', 400);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    expect(await env.z.wait('stubborn')).toMatchObject({ exitCode: null, signal: 'SIGKILL', oomKilled: false });
    await env.z.destroy('stubborn');
  });

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

  it('destroy of a running task kills it and frees its cgroups', async () => {
    await start('busy', { command: shell('sleep 60') });
    expect(env.z.cgroups.exists('busy')).toBe(true);
    await env.z.destroy('busy');
    expect(env.z.cgroups.exists('busy')).toBe(false);
    await env.z.destroy('busy'); // idempotent
  });
});

describe('namespaces', () => {
  it('gives the task its own pid, uts, ipc and mount namespaces', async () => {
    const { sandbox, launched: l } = await start('ns', { hostname: 'task-host', command: shell('echo $$; hostname; mount -t tmpfs none /mnt && echo mounted; cat /proc/1/comm; sleep 30') });
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8').trim().split('\n')).toHaveLength(4));
    const [pidInside, host, mounted, initComm] = readFileSync(join(sandbox, 'stdout'), 'utf8').trim().split('\n');
    expect(pidInside).toBe('2'); // pid 1 is the namespace init
    expect(initComm).toBe('corral-init');
    expect(host).toBe('task-host');
    expect(hostname()).not.toBe('task-host');
    expect(mounted).toBe('mounted');
    expect(readFileSync('/proc/mounts', 'utf8')).not.toMatch(/^none \/mnt tmpfs/m);
    for (const ns of ['pid', 'uts', 'ipc', 'mnt']) expect(readlinkSync(`/proc/${l.pid}/ns/${ns}`)).not.toBe(readlinkSync(`/proc/self/ns/${ns}`));
    expect(readlinkSync(`/proc/${l.pid}/ns/net`)).toBe(readlinkSync('/proc/self/ns/net')); // host networking
    await env.z.destroy('ns');
  });

  it('an isolated network has loopback only', async () => {
    const { sandbox, launched: l } = await start('iso-net', { network: { mode: 'isolated' }, command: shell('cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; sleep 30') });
    expect(l.netns).toBe(`/run/netns/${env.netnsPrefix}iso-net`);
    expect(l.ipAddresses).toEqual([]);
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8').trim().split('\n')).toEqual(['lo']));
    const lo = readFileSync(`/proc/${l.pid}/net/if_inet6`, 'utf8');
    expect(lo).toContain(' lo'); // loopback is up (it has its ::1 address)
    await env.z.destroy('iso-net');
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
  it('holds a CPU-bound task to its quota', async () => {
    await start('cpu', { resources: { cpus: 0.25, memMb: 64, diskMb: 0, gpus: 0, ports: [] }, command: shell('while :; do :; done') });
    const a = (await env.z.usage('cpu'))!.cpuSeconds;
    await sleep(1500);
    const u = (await env.z.usage('cpu'))!;
    const used = u.cpuSeconds - a;
    // 0.25 CPU over 1.5 s = 0.375 s; unconfined it would take a whole core (1.5 s).
    expect(used).toBeGreaterThan(0.2);
    expect(used).toBeLessThan(0.5);
    expect(u.cpuThrottledSeconds).toBeGreaterThan(0);
    await env.z.destroy('cpu');
  });

  it('a memory hog is OOM-killed at its limit and reported as a memory limitation', async () => {
    await start('hog', { resources: { cpus: 0.5, memMb: 32, diskMb: 0, gpus: 0, ports: [] }, command: { shell: false, value: 'dd', arguments: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=128M', 'count=1'], environment: {} } });
    const t = await env.z.wait('hog');
    expect(t).toMatchObject({ oomKilled: true, signal: 'SIGKILL', reason: 'REASON_CONTAINER_LIMITATION_MEMORY' });
    expect(t.message).toMatch(/memory limit of 32 MB/);
    await env.z.destroy('hog');
  });

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

  it('the pids limit holds', async () => {
    const { sandbox } = await start('forks', { limits: { pids: 8 }, command: shell('for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait') });
    const t = await env.z.wait('forks');
    expect(t.exitCode).not.toBe(0);
    expect(readFileSync(join(sandbox, 'stderr'), 'utf8')).toMatch(/fork/i);
    await env.z.destroy('forks');
  });
});

describe('logs', () => {
  it('rotates stdout by size and keeps at most maxFiles files', async () => {
    const { sandbox } = await start('chatty', {
      logs: { stdout: 'logs/out', stderr: 'logs/err', maxBytes: 4096, maxFiles: 3 },
      command: shell('i=0; while [ $i -lt 400 ]; do echo "line $i ......................."; i=$((i+1)); done'),
    });
    expect((await env.z.wait('chatty')).exitCode).toBe(0);
    const files = readdirSync(join(sandbox, 'logs')).sort();
    expect(files).toEqual(['err', 'out', 'out.1', 'out.2']);
    for (const f of ['out', 'out.1', 'out.2']) expect(readFileSync(join(sandbox, 'logs', f)).length).toBeLessThanOrEqual(4096);
    expect(readFileSync(join(sandbox, 'logs', 'out'), 'utf8').trim().split('\n').pop()).toBe('line 399 .......................');
    // The newest rotated file continues exactly where the older one stopped.
    const older = readFileSync(join(sandbox, 'logs', 'out.2'), 'utf8') + readFileSync(join(sandbox, 'logs', 'out.1'), 'utf8') + readFileSync(join(sandbox, 'logs', 'out'), 'utf8');
    expect(older.endsWith('line 398 .......................\nline 399 .......................\n')).toBe(true);
    await env.z.destroy('chatty');
  });
});

describe('bad task definitions are refused with a clear message', () => {
  const refused = async (id: string, o: Parameters<typeof task>[2], pattern: RegExp) => {
    const sandbox = env.sandbox(id);
    const err = await env.z.launch(task(id, sandbox, o)).then(() => undefined, (e: unknown) => e);
    expect(err, `launch of ${id} should fail`).toBeDefined();
    expect(isCorralError(err)).toBe(true);
    expect((err as Error).message).toMatch(pattern);
    expect(env.z.cgroups.exists(id)).toBe(false);
    expect(existsSync(join(env.dir, 'run', 'containers', id))).toBe(false);
  };

  it('a command that does not exist', () => refused('badcmd', { command: { shell: false, value: 'no-such-program', environment: {} } }, /exec no-such-program: No such file or directory/));
  // Beyond what the agent advertises (the host's own count no longer matters: see 'cgroup limits').
  it('more CPUs than the agent advertises', () => refused('bigcpu', { resources: { cpus: ADVERTISED.cpus + 1, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, new RegExp(`asks for ${ADVERTISED.cpus + 1} CPUs; this agent advertises ${ADVERTISED.cpus}$`)));
  it('more memory than the agent advertises', () => refused('bigmem', { resources: { cpus: 1, memMb: 10_000_000, diskMb: 0, gpus: 0, ports: [] } }, new RegExp(`asks for 10000000 MB of memory; this agent advertises ${ADVERTISED.memMb} MB`)));
  it('a negative or NaN CPU count', async () => {
    await refused('negcpu', { resources: { cpus: -1, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, /invalid task definition: resources.cpus/);
    await refused('nancpu', { resources: { cpus: Number.NaN, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, /invalid task definition: resources.cpus/);
  });
  it('GPUs', () => refused('gpu', { resources: { cpus: 1, memMb: 64, diskMb: 0, gpus: 1, ports: [] } }, /GPU/));
  it('a missing host volume', () => refused('novol', { volumes: [{ containerPath: 'data', mode: 'RW', source: { type: 'host', path: '/no/such/dir' } }] }, /volume host path \/no\/such\/dir does not exist/));
  it('a missing image tarball', () => refused('noimg', { image: { kind: 'tarball', path: '/no/such/image.tar' } }, /image tarball \/no\/such\/image.tar does not exist/));
  it('a Docker image on the native containerizer', () => refused('dimg', { image: { kind: 'docker', name: 'busybox', forcePull: false } }, /use the DOCKER containerizer/));
  it('a malformed definition', () => refused('bad.hostname', { hostname: 'not a host name!' }, /invalid task definition: hostname/));
  it('an unknown user', () => refused('nouser', { command: { shell: true, value: 'true', environment: {}, user: 'no-such-user' } }, /unknown user "no-such-user"/));
  it('a CNI network without a network hook', () => refused('nocni', { network: { mode: 'cni', network: 'corral' } }, /needs CNI, but this agent has no network hook/));
  it('a volume path that climbs out of the sandbox', () => refused('climb', { volumes: [{ containerPath: '../../etc', mode: 'RW', source: { type: 'sandbox', path: 'x' } }] }, /climbs out/));

  it('a duplicate container id', async () => {
    await start('dup', { command: shell('sleep 30') });
    await expect(env.z.launch(task('dup', env.sandbox('dup2')))).rejects.toThrow(/already exists/);
    await env.z.destroy('dup');
  });

  it('the host stays healthy: a good task still runs after all of these', async () => {
    await start('after', { command: shell('exit 0') });
    expect((await env.z.wait('after')).exitCode).toBe(0);
    await env.z.destroy('after');
    expect(leftovers(env).cgroups).toEqual([]);
  });
});
