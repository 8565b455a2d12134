/**
 * The DOCKER containerizer against a private dockerd (test/harness/dockerd):
 * exit status and logs in the sandbox files, kill with a grace period
 * honouring a SIGTERM handler, OOM from inspect, CPU quota and pids limits,
 * bad definitions, volumes (host path, sandbox path, an external volume
 * through the real corral volume plugin), CNI through the real node daemon,
 * and agent death + recovery by labels.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerConfig } from '../../contracts/containerizer.js';
import { DockerContainerizer } from '../../plugins/isolator/src/docker/containerizer.js';
import { CniNetworkHook } from '../../plugins/isolator/src/hooks/network-hook.js';
import { startDockerd, uniqueName, type Dockerd } from '../harness/dockerd.js';
import { isAlive } from '../harness/ceph.js';
import { testDir } from '../harness/resources.js';
import { startDriver, teardownHost, type DriverProcess } from '../volume-driver/helpers.js';
import { ping, startTestHost, type TestHost } from '../cni/helpers.js';
import { startAgentProcess } from './agent-process.js';
import { eventually, shell, sleep, task } from './helpers.js';

let dockerd: Dockerd;
let image: string;
let dir: string;
let z: DockerContainerizer;
let driver: DriverProcess;
let driverName: string;
let cniHost: TestHost;
const instance = uniqueName('iso');

const options = () => ({ socketPath: dockerd.socket, runDir: join(dir, 'run'), instance });

beforeAll(async () => {
  dir = testDir('iso-docker');
  dockerd = await startDockerd();
  image = await dockerd.importBusybox('corral-iso-busybox:latest');
  driverName = uniqueName('corraliso');
  driver = await startDriver({ hostId: 'iso-docker', dir: join(dir, 'voldriver'), socket: `/run/docker/plugins/${driverName}.sock` });
  cniHost = await startTestHost('isd');
  const networkHook = new CniNetworkHook({ networks: { 'corral-test': cniHost.conf({ name: 'corral-test' }) }, cacheDir: join(dir, 'cni-results') });
  z = new DockerContainerizer({ ...options(), networkHook });
});

async function ourContainers(): Promise<string[]> {
  return (await dockerd.docker(['ps', '-aq', '--filter', `label=corral.containerizer=${instance}`])).split('\n').filter(Boolean);
}

afterAll(async () => {
  let left: string[] = [];
  if (z) {
    for (const f of readdirSync(join(dir, 'run')).filter((n) => n.endsWith('.json'))) await z.destroy(f.slice(0, -5)).catch(() => undefined);
    await z.close();
    left = await ourContainers().catch(() => []);
  }
  await driver?.kill();
  await cniHost?.dispose();
  await dockerd?.stop();
  if (dir) {
    await teardownHost(join(dir, 'voldriver'));
    rmSync(dir, { recursive: true, force: true });
  }
  expect(left).toEqual([]);
});

function dtask(id: string, o: Partial<ContainerConfig> = {}): ContainerConfig {
  const sandbox = join(dir, 'sandboxes', id);
  mkdirSync(sandbox, { recursive: true });
  return task(id, sandbox, { image: { kind: 'docker', name: image, forcePull: false }, network: { mode: 'isolated' }, ...o });
}

const out = (c: ContainerConfig, f = 'stdout') => readFileSync(join(c.sandbox, f), 'utf8');

describe('Docker tasks', () => {
  it('runs to its exit status; stdout and stderr land in the sandbox files', async () => {
    const c = dtask('d-exit', { command: shell('echo out; echo err >&2; echo "$MESOS_SANDBOX" ; pwd; exit 3') });
    await z.launch(c);
    expect(await z.wait('d-exit')).toMatchObject({ exitCode: 3, signal: null, oomKilled: false });
    expect(out(c)).toBe('out\n/mnt/mesos/sandbox\n/mnt/mesos/sandbox\n');
    expect(out(c, 'stderr')).toBe('err\n');
    await z.destroy('d-exit');
    expect(await ourContainers()).toEqual([]);
  });

  it('kill honours a SIGTERM handler within the grace period', async () => {
    const c = dtask('d-trap', { command: shell('trap "echo bye > $MESOS_SANDBOX/got-term; exit 0" TERM; echo ready; while true; do sleep 0.1; done') });
    const l = await z.launch(c);
    expect(isAlive(l.pid!)).toBe(true);
    await eventually(() => expect(out(c)).toContain('ready'));
    const t0 = Date.now();
    await z.kill('d-trap', 5000);
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(await z.wait('d-trap')).toMatchObject({ exitCode: 0, signal: null });
    expect(readFileSync(join(c.sandbox, 'got-term'), 'utf8')).toBe('bye\n');
    await z.destroy('d-trap');
  });

  it('a task that ignores SIGTERM is killed when the grace period ends', async () => {
    const c = dtask('d-stubborn', { command: shell('trap "" TERM; echo ready; while true; do sleep 0.1; done') });
    await z.launch(c);
    await eventually(() => expect(out(c)).toContain('ready'));
    await z.kill('d-stubborn', 1000);
    expect(await z.wait('d-stubborn')).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
    await z.destroy('d-stubborn');
  });

  it('a memory hog is OOM-killed and reported as a memory limitation', async () => {
    await z.launch(dtask('d-hog', { resources: { cpus: 0.5, memMb: 32, diskMb: 0, gpus: 0, ports: [] }, command: { shell: false, value: 'dd', arguments: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=128M', 'count=1'], environment: {} } }));
    expect(await z.wait('d-hog')).toMatchObject({ oomKilled: true, signal: 'SIGKILL', reason: 'REASON_CONTAINER_LIMITATION_MEMORY' });
    await z.destroy('d-hog');
  });

  it('holds a CPU-bound task to its quota and the pids limit', async () => {
    await z.launch(dtask('d-cpu', { resources: { cpus: 0.25, memMb: 64, diskMb: 0, gpus: 0, ports: [] }, limits: { pids: 10 }, command: shell('while :; do :; done') }));
    const a = (await z.usage('d-cpu'))!.cpuSeconds;
    await sleep(1500);
    const u = (await z.usage('d-cpu'))!;
    expect(u.cpuSeconds - a).toBeGreaterThan(0.2);
    expect(u.cpuSeconds - a).toBeLessThan(0.5);
    expect(u.memLimitBytes).toBe(64 * 1024 * 1024);
    await z.destroy('d-cpu');
    const c = dtask('d-pids', { limits: { pids: 8 }, command: shell('for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done; wait') });
    await z.launch(c);
    await z.wait('d-pids');
    expect(out(c, 'stderr')).toMatch(/fork/i);
    await z.destroy('d-pids');
  });
});

describe('bad Docker task definitions are refused with a clear message', () => {
  it('an unknown image', async () => {
    await expect(z.launch(dtask('d-noimg', { image: { kind: 'docker', name: 'corral-no-such-image:1', forcePull: false } }))).rejects.toThrow(/unknown image corral-no-such-image:1/);
  });
  it('a missing host volume', async () => {
    await expect(z.launch(dtask('d-novol', { volumes: [{ containerPath: '/data', mode: 'RW', source: { type: 'host', path: '/no/such/dir' } }] }))).rejects.toThrow(/volume host path \/no\/such\/dir does not exist/);
  });
  it('an unknown volume driver', async () => {
    await expect(z.launch(dtask('d-nodrv', { volumes: [{ containerPath: '/data', mode: 'RW', source: { type: 'external', driver: 'corral-no-such-driver', name: 'v', options: {} } }] }))).rejects.toThrow(/unknown volume driver "corral-no-such-driver"/);
    expect(await ourContainers()).toEqual([]);
  });
  it('a command that does not exist', async () => {
    await expect(z.launch(dtask('d-nocmd', { command: { shell: false, value: 'no-such-program', environment: {} } }))).rejects.toThrow(/did not start: .*no-such-program/);
    expect(await ourContainers()).toEqual([]);
  });
  it('a tarball image on the Docker containerizer', async () => {
    await expect(z.launch(dtask('d-tar', { image: { kind: 'tarball', path: '/x.tar' } }))).rejects.toThrow(/needs a Docker image/);
  });
});

describe('Docker volumes and networks', () => {
  it('host and sandbox paths, and an external volume through the corral plugin: data written by one task is read by the next', async () => {
    const hostDir = join(dir, 'host-data');
    mkdirSync(hostDir, { recursive: true });
    const vol = { type: 'external' as const, driver: driverName, name: 'dockvol', options: {} };
    const w = dtask('d-writer', {
      volumes: [
        { containerPath: '/host', mode: 'RW', source: { type: 'host', path: hostDir } },
        { containerPath: 'sbx', mode: 'RW', source: { type: 'sandbox', path: 'shared' } },
        { containerPath: '/vol', mode: 'RW', source: vol },
      ],
      command: shell('echo h > /host/f && echo s > sbx/f && echo persisted > /vol/data'),
    });
    await z.launch(w);
    expect((await z.wait('d-writer')).exitCode, out(w, 'stderr')).toBe(0);
    await z.destroy('d-writer');
    expect(readFileSync(join(hostDir, 'f'), 'utf8')).toBe('h\n');
    expect(readFileSync(join(w.sandbox, 'shared', 'f'), 'utf8')).toBe('s\n');
    const r = dtask('d-reader', { volumes: [{ containerPath: '/vol', mode: 'RO', source: vol }], command: shell('cat /vol/data; echo x > /vol/other') });
    await z.launch(r);
    expect((await z.wait('d-reader')).exitCode).not.toBe(0);
    expect(out(r)).toBe('persisted\n');
    expect(out(r, 'stderr')).toMatch(/Read-only file system/);
    await z.destroy('d-reader');
    expect((await driver.client.get('dockvol')).name).toBe('dockvol');
  });

  it('a CNI network gives the container its address; destroy frees it', async () => {
    const l = await z.launch(dtask('d-cni', { network: { mode: 'cni', network: 'corral-test' }, command: shell('sleep 30') }));
    expect(l.ipAddresses).toHaveLength(1);
    expect(l.netns).toBe(`/proc/${l.pid}/ns/net`);
    const ip = l.ipAddresses[0]!;
    expect((await cniHost.allocations()).map((a) => a.ip)).toContain(ip);
    const peer = await cniHost.container('peer');
    await cniHost.cni({ command: 'ADD', containerId: 'peer', netns: peer, ifname: 'eth0' });
    expect(await ping(peer.split('/').pop()!, ip)).toContain('1 received');
    await cniHost.cni({ command: 'DEL', containerId: 'peer', netns: peer, ifname: 'eth0' });
    await z.destroy('d-cni');
    expect((await cniHost.allocations()).map((a) => a.ip)).not.toContain(ip);
  });
});

describe('agent death and recovery by labels', () => {
  it('containers survive the agent; recover reattaches, reports exits and removes orphans', async () => {
    const long = dtask('d-long', { command: shell('echo started; trap "echo term; exit 0" TERM; while :; do sleep 0.1; done') });
    const quick = dtask('d-quick', { command: shell('sleep 1; echo done; exit 5') });
    const orphan = dtask('d-orphan', { command: shell('sleep 60') });
    const agent = await startAgentProcess('DOCKER', options(), [long, quick, orphan]);
    await agent.crash();
    expect(isAlive(agent.launched.get('d-long')!.pid!)).toBe(true);
    await sleep(1500); // d-quick ends while no agent runs

    const z2 = new DockerContainerizer(options());
    const result = Object.fromEntries((await z2.recover([long, quick])).map((r) => [r.containerId, r]));
    expect(result['d-long']).toMatchObject({ running: true, launched: { pid: agent.launched.get('d-long')!.pid } });
    expect(result['d-quick']).toMatchObject({ running: false, termination: { exitCode: 5, oomKilled: false } });
    expect(out(quick)).toBe('done\n');
    expect((await ourContainers()).length).toBe(2); // the orphan is gone
    await z2.kill('d-long', 5000);
    expect(await z2.wait('d-long')).toMatchObject({ exitCode: 0 });
    // Lines are neither lost nor repeated across the agent's restart.
    expect(out(long)).toBe('started\nterm\n');
    await z2.destroy('d-long');
    await z2.destroy('d-quick');
    await z2.close();
    expect(await ourContainers()).toEqual([]);
  });
});
