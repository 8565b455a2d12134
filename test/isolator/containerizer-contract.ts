/**
 * The Containerizer contract suite: every containerizer (native MESOS,
 * DOCKER) runs exactly these cases against the real host, so the agent can
 * rely on the same launch → wait → kill → destroy → recover behaviour
 * whichever one runs its tasks. What only one backend does (cgroup files,
 * namespaces of the native one; images, labels, volume plugins of Docker)
 * stays in that backend's test file.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ContainerConfig, Containerizer, Launched } from '../../contracts/containerizer.js';
import { isCorralError, type ErrorCode } from '../../contracts/errors.js';
import { isAlive } from '../harness/ceph.js';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { eventually, shell, sleep } from './helpers.js';

/** A containerizer that can be put down while its tasks run on (both can). */
export type ClosableContainerizer = Containerizer & { close(): Promise<void> };

export interface ContainerizerUnderTest {
  z: ClosableContainerizer;
  /** A task definition for this backend (its image and default network), with its sandbox directory created. */
  task(id: string, o?: Partial<ContainerConfig>): ContainerConfig;
  /** Whether the host still holds anything of the container (cgroups, checkpoint, Docker container, state file...). */
  holds(id: string): Promise<boolean>;
  /** What the containerizer was told this agent advertises. */
  advertised: { cpus: number; memMb: number; gpus: number };
  /** Options for a containerizer of this backend in the stand-in agent process (fixtures/agent.ts). */
  agentOptions: Record<string, unknown>;
  /** A new containerizer on the same host state, as after an agent restart. */
  reopen(): Promise<ClosableContainerizer>;
  /** Whether the host has recorded the end of a task that ended while no agent ran. */
  endRecorded(id: string): Promise<boolean>;
  /** Where the backends word a refusal differently. */
  refusals: {
    missingCommand: RegExp;
    unknownUser: RegExp;
    /** An image of the kind this containerizer does not run, and how it says so. */
    foreignImage: { image: NonNullable<ContainerConfig['image']>; message: RegExp };
  };
}

const readLog = (c: ContainerConfig, f = 'stdout') => readFileSync(join(c.sandbox, f), 'utf8');

export function containerizerContract(name: string, setup: () => ContainerizerUnderTest): void {
  describe(`Containerizer contract: ${name}`, () => {
    const launched = new Set<string>();
    const get = () => setup();

    /** Launches a task of the backend's kind; afterEach destroys it, whatever the test did. */
    async function start(id: string, o: Partial<ContainerConfig> = {}) {
      const c = get().task(id, o);
      launched.add(id);
      const l = await get().z.launch(c);
      return { c, l };
    }

    afterEach(async () => {
      for (const id of launched)
        await get()
          .z.destroy(id)
          .catch(() => undefined);
      launched.clear();
    });

    registerLifecycle(get, start);
    registerLimits(get, start);
    registerRefusals(get, start);
    registerRecovery(get);
  });
}

type Get = () => ContainerizerUnderTest;
type Start = (id: string, o?: Partial<ContainerConfig>) => Promise<{ c: ContainerConfig; l: Launched }>;

function registerLifecycle(get: Get, start: Start): void {
  describe('lifecycle', () => {
    it('runs a task to its exit status; stdout and stderr land in the sandbox files', async () => {
      const { z, holds } = get();
      // No pid is promised here: Docker reports none for a task that ended before launch returned.
      const { c } = await start('exit3', { command: shell('echo out; echo err >&2; exit 3') });
      expect(await z.wait('exit3')).toMatchObject({ exitCode: 3, signal: null, oomKilled: false });
      expect(readLog(c)).toBe('out\n');
      expect(readLog(c, 'stderr')).toBe('err\n');
      // An ended task still holds its resources until destroy; destroy releases all of them.
      expect(await holds('exit3')).toBe(true);
      await z.destroy('exit3');
      expect(await holds('exit3')).toBe(false);
      const err = await z.wait('exit3').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isCorralError(err, 'NOT_FOUND')).toBe(true);
      expect((err as Error).message).toMatch(/no container exit3/);
    });

    it('execs a non-shell command with its arguments and environment', async () => {
      const { c } = await start('argv', { command: { shell: false, value: '/bin/sh', arguments: ['sh', '-c', 'echo "$1 $GREETING"', 'sh', 'arg1'], environment: { GREETING: 'hello' } } });
      expect((await get().z.wait('argv')).exitCode).toBe(0);
      expect(readLog(c)).toBe('arg1 hello\n');
    });

    it('runs in its sandbox: the working directory is $MESOS_SANDBOX and what it writes there is in the host sandbox', async () => {
      const { c } = await start('cwd', { command: shell('[ "$(pwd)" = "$MESOS_SANDBOX" ] && echo here > written') });
      expect((await get().z.wait('cwd')).exitCode, readLog(c, 'stderr')).toBe(0);
      expect(readFileSync(join(c.sandbox, 'written'), 'utf8')).toBe('here\n');
    });

    it('kill honours a SIGTERM handler within the grace period', async () => {
      const { z } = get();
      const { c, l } = await start('trap', { command: shell('trap "echo bye > $MESOS_SANDBOX/got-term; exit 0" TERM; echo ready; while true; do sleep 0.05; done') });
      expect(isAlive(l.pid!)).toBe(true);
      await eventually(() => expect(readLog(c)).toContain('ready'));
      const t0 = Date.now();
      await z.kill('trap', 5000);
      // The handler ended it: kill did not sit out the grace period.
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(await z.wait('trap')).toMatchObject({ exitCode: 0, signal: null });
      expect(readFileSync(join(c.sandbox, 'got-term'), 'utf8')).toBe('bye\n');
    });

    it('a task that ignores SIGTERM is SIGKILLed when the grace period ends', async () => {
      const { z } = get();
      const { c } = await start('stubborn', { command: shell('trap "" TERM; echo ready; while true; do sleep 0.05; done') });
      await eventually(() => expect(readLog(c)).toContain('ready'));
      const t0 = Date.now();
      await z.kill('stubborn', 400);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
      expect(await z.wait('stubborn')).toMatchObject({ exitCode: null, signal: 'SIGKILL', oomKilled: false });
    });

    it('destroy of a running task kills it and releases it; destroy is idempotent', async () => {
      const { z, holds } = get();
      const { l } = await start('busy', { command: shell('sleep 60') });
      expect(await holds('busy')).toBe(true);
      await z.destroy('busy');
      expect(await holds('busy')).toBe(false);
      await eventually(() => expect(isAlive(l.pid!)).toBe(false));
      await z.destroy('busy');
      await z.destroy('never-launched');
      expect(await holds('busy')).toBe(false);
    });

    it('an isolated network has loopback only', async () => {
      const { c, l } = await start('iso-net', { network: { mode: 'isolated' }, command: shell('cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; sleep 30') });
      expect(l.ipAddresses).toEqual([]);
      expect(l.netns).toBeDefined();
      await eventually(() => expect(readLog(c).trim().split('\n')).toEqual(['lo']));
      // Loopback is up: its 127.0.0.1 is in the namespace's routing table.
      expect(readFileSync(`/proc/${l.pid}/net/fib_trie`, 'utf8')).toContain('127.0.0.1');
    });

    it('rotates stdout by size and keeps at most maxFiles files', async () => {
      const { c } = await start('chatty', {
        logs: { stdout: 'rot-out', stderr: 'rot-err', maxBytes: 4096, maxFiles: 3 },
        command: shell('i=0; while [ $i -lt 400 ]; do echo "line $i ......................."; i=$((i+1)); done'),
      });
      expect((await get().z.wait('chatty')).exitCode).toBe(0);
      expect(
        readdirSync(c.sandbox)
          .filter((f) => f.startsWith('rot-'))
          .sort(),
      ).toEqual(['rot-err', 'rot-out', 'rot-out.1', 'rot-out.2']);
      for (const f of ['rot-out', 'rot-out.1', 'rot-out.2']) expect(readFileSync(join(c.sandbox, f)).length).toBeLessThanOrEqual(4096);
      expect(readLog(c, 'rot-out').trim().split('\n').pop()).toBe('line 399 .......................');
      // The newest rotated file continues exactly where the older one stopped.
      const all = ['rot-out.2', 'rot-out.1', 'rot-out'].map((f) => readLog(c, f)).join('');
      expect(all.endsWith('line 398 .......................\nline 399 .......................\n')).toBe(true);
    });
  });
}

function registerLimits(get: Get, start: Start): void {
  describe('resource limits', () => {
    it('holds a CPU-bound task to its quota and reports its memory limit', async () => {
      const { z } = get();
      await start('cpu', { resources: { cpus: 0.25, memMb: 64, diskMb: 0, gpus: 0, ports: [] }, command: shell('while :; do :; done') });
      const a = (await z.usage('cpu'))!.cpuSeconds;
      await sleep(1500);
      const u = (await z.usage('cpu'))!;
      const used = u.cpuSeconds - a;
      // 0.25 CPU over 1.5 s = 0.375 s; unconfined it would take a whole core (1.5 s).
      expect(used).toBeGreaterThan(0.2);
      expect(used).toBeLessThan(0.5);
      expect(u.cpuThrottledSeconds).toBeGreaterThan(0);
      expect(u.memLimitBytes).toBe(64 * 1024 * 1024);
    });

    it('a memory hog is OOM-killed at its limit and reported as a memory limitation', async () => {
      await start('hog', {
        resources: { cpus: 0.5, memMb: 32, diskMb: 0, gpus: 0, ports: [] },
        command: { shell: false, value: 'dd', arguments: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=128M', 'count=1'], environment: {} },
      });
      const t = await get().z.wait('hog');
      expect(t).toMatchObject({ oomKilled: true, signal: 'SIGKILL', reason: 'REASON_CONTAINER_LIMITATION_MEMORY' });
      expect(t.message).toMatch(/memory limit of 32 MB/);
    });

    it('the pids limit holds', async () => {
      const { c } = await start('forks', { limits: { pids: 8 }, command: shell('for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait') });
      expect((await get().z.wait('forks')).exitCode).not.toBe(0);
      expect(readLog(c, 'stderr')).toMatch(/fork/i);
    });
  });
}

function registerRefusals(get: Get, start: Start): void {
  describe('bad task definitions are refused with a typed error and leave nothing behind', () => {
    const refused = async (id: string, o: Partial<ContainerConfig>, pattern: RegExp, code: ErrorCode = 'INVALID_ARGUMENT') => {
      const err = await get()
        .z.launch(get().task(id, o))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err, `launch of ${id} should fail`).toBeDefined();
      expect(isCorralError(err, code), String(err)).toBe(true);
      expect((err as Error).message).toMatch(pattern);
      expect(await get().holds(id)).toBe(false);
    };
    const res = (cpus: number, memMb: number, gpus = 0) => ({ resources: { cpus, memMb, diskMb: 0, gpus, ports: [] } });

    it('a command that does not exist', () => refused('badcmd', { command: { shell: false, value: 'no-such-program', environment: {} } }, get().refusals.missingCommand));
    it('an unknown user', () => refused('nouser', { command: { shell: true, value: 'true', environment: {}, user: 'no-such-user' } }, get().refusals.unknownUser));
    it('more CPUs than the agent advertises', () => {
      const { cpus } = get().advertised;
      return refused('bigcpu', res(cpus + 1, 64), new RegExp(`asks for ${cpus + 1} CPUs; this agent advertises ${cpus}$`));
    });
    it('more memory than the agent advertises', () => refused('bigmem', res(1, 10_000_000), new RegExp(`asks for 10000000 MB of memory; this agent advertises ${get().advertised.memMb} MB`)));
    it('a negative or NaN CPU count', async () => {
      await refused('negcpu', res(-1, 64), /invalid task definition: resources.cpus/);
      await refused('nancpu', res(Number.NaN, 64), /invalid task definition: resources.cpus/);
    });
    it('GPUs', () => refused('gpu', res(1, 64, 1), /GPU/));
    it('a missing host volume', () =>
      refused('novol', { volumes: [{ containerPath: 'data', mode: 'RW', source: { type: 'host', path: '/no/such/dir' } }] }, /volume host path \/no\/such\/dir does not exist/));
    it('an image of the kind the other containerizer runs', () => refused('foreign', { image: get().refusals.foreignImage.image }, get().refusals.foreignImage.message));
    it('a malformed definition', () => refused('bad.hostname', { hostname: 'not a host name!' }, /invalid task definition: hostname/));
    it('a volume path that climbs out of the sandbox', () => refused('climb', { volumes: [{ containerPath: '../../etc', mode: 'RW', source: { type: 'sandbox', path: 'x' } }] }, /climbs out/));

    it('a duplicate container id', async () => {
      const { z } = get();
      await start('dup', { command: shell('sleep 30') });
      const err = await z.launch(get().task('dup')).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isCorralError(err, 'CONFLICT')).toBe(true);
      expect((err as Error).message).toMatch(/already exists/);
      // The first one is untouched.
      expect(await get().holds('dup')).toBe(true);
    });

    it('the host stays healthy: a good task still runs after all of these', async () => {
      const { z, holds } = get();
      await start('after', { command: shell('exit 0') });
      expect((await z.wait('after')).exitCode).toBe(0);
      await z.destroy('after');
      expect(await holds('after')).toBe(false);
    });
  });
}

function registerRecovery(get: Get): void {
  describe('agent death and recovery', () => {
    let agent: AgentProcess | undefined;
    let z2: ClosableContainerizer | undefined;
    afterEach(async () => {
      await agent?.crash().catch(() => undefined);
      agent = undefined;
      if (z2) {
        for (const id of ['long', 'quick', 'orphan']) await z2.destroy(id).catch(() => undefined);
        await z2.close();
      }
      z2 = undefined;
    });

    it('tasks survive the agent; recover reattaches, reports exits, removes orphans; wait and kill work again', { timeout: 90_000 }, async () => {
      const b = get();
      const long = b.task('long', { command: shell('echo started; trap "echo term; exit 0" TERM; while :; do sleep 0.05; done') });
      const quick = b.task('quick', { command: shell('sleep 1; echo done; exit 5') });
      const orphan = b.task('orphan', { command: shell('sleep 60') });
      agent = await startAgentProcess(b.z.type, b.agentOptions, [long, quick, orphan]);
      const pids = Object.fromEntries([...agent.launched].map(([id, l]) => [id, l.pid!]));
      expect(Object.keys(pids).sort()).toEqual(['long', 'orphan', 'quick']);
      await agent.crash();
      agent = undefined;
      // The tasks run on without their agent; "quick" ends meanwhile and the host records it.
      for (const id of ['long', 'orphan']) expect(isAlive(pids[id]!), id).toBe(true);
      await eventually(async () => expect(await b.endRecorded('quick')).toBe(true), 20_000);

      z2 = await b.reopen();
      const byId = Object.fromEntries((await z2.recover([long, quick])).map((r) => [r.containerId, r]));
      expect(byId.long).toMatchObject({ running: true, launched: { pid: pids.long } });
      expect(byId.quick).toMatchObject({ running: false, termination: { exitCode: 5, signal: null, oomKilled: false } });
      expect(readLog(quick)).toBe('done\n');
      // The orphan, which the agent no longer knows, is gone.
      expect(await b.holds('orphan')).toBe(false);
      await eventually(() => expect(isAlive(pids.orphan!)).toBe(false));
      expect(await b.holds('long')).toBe(true);

      // The reattached task behaves like any other: wait, kill with grace (its TERM trap runs), destroy.
      const waiting = z2.wait('long');
      await z2.kill('long', 5000);
      expect(await waiting).toMatchObject({ exitCode: 0, signal: null });
      // Lines are neither lost nor repeated across the agent's restart.
      expect(readLog(long)).toBe('started\nterm\n');
      expect(await z2.wait('quick')).toMatchObject({ exitCode: 5 });
      await z2.destroy('long');
      await z2.destroy('quick');
      expect(await b.holds('long')).toBe(false);
      expect(await b.holds('quick')).toBe(false);
    });

    it('a known container with no trace on the host is reported as lost', async () => {
      const b = get();
      z2 = await b.reopen();
      const [r] = await z2.recover([b.task('never')]);
      expect(r).toMatchObject({ containerId: 'never', running: false, termination: { reason: 'REASON_EXECUTOR_TERMINATED' } });
    });
  });
}
