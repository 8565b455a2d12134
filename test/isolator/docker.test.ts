/**
 * The DOCKER containerizer against a private dockerd (test/harness/dockerd):
 * the shared Containerizer contract (containerizer-contract.ts; recovery
 * there goes by labels), then what only Docker does: the sandbox bound at
 * /mnt/mesos/sandbox, the task's user, no-new-privileges and capability set,
 * refusals of unknown images, volume drivers and denied root, volumes
 * (host path, sandbox path, an external volume through the real corral
 * volume plugin) and CNI through the real node daemon.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerConfig } from '../../contracts/containerizer.js';
import { DockerContainerizer } from '../../plugins/isolator/src/docker/containerizer.js';
import { CniNetworkHook } from '../../plugins/isolator/src/hooks/network-hook.js';
import { startDockerd, uniqueName, type Dockerd } from '../harness/dockerd.js';
import { testDir } from '../harness/resources.js';
import { startDriver, teardownHost, type DriverProcess } from '../volume-driver/helpers.js';
import { ping, startTestHost, type TestHost } from '../cni/helpers.js';
import { hostCapacity } from '../../plugins/isolator/src/task-config.js';
import { containerizerContract } from './containerizer-contract.js';
import { capabilityMask, DEFAULT_ROOT_CAPABILITIES } from '../../plugins/isolator/src/common/capabilities.js';
import { shell, task } from './helpers.js';

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

/** The Docker containers of one corral container id (with extra `docker ps` filters). */
async function containersOf(id: string, filters: string[] = []): Promise<string[]> {
  return (await dockerd.docker(['ps', '-aq', '--filter', `label=corral.containerizer=${instance}`, '--filter', `label=corral.container-id=${id}`, ...filters])).split('\n').filter(Boolean);
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

containerizerContract('DOCKER', () => ({
  z,
  task: dtask,
  holds: async (id) => existsSync(join(dir, 'run', `${id}.json`)) || (await containersOf(id)).length > 0,
  advertised: hostCapacity(),
  agentOptions: options(),
  reopen: async () => new DockerContainerizer(options()),
  endRecorded: async (id) => (await containersOf(id, ['--filter', 'status=exited'])).length > 0,
  refusals: {
    missingCommand: /did not start: .*no-such-program/,
    unknownUser: /did not start: .*no-such-user/,
    foreignImage: { image: { kind: 'tarball', path: '/x.tar' }, message: /needs a Docker image/ },
  },
}));

describe('Docker tasks', () => {
  it('the sandbox is bound at /mnt/mesos/sandbox and is the working directory', async () => {
    const c = dtask('d-mount', { command: shell('echo "$MESOS_SANDBOX"; pwd') });
    await z.launch(c);
    expect(await z.wait('d-mount')).toMatchObject({ exitCode: 0 });
    expect(out(c)).toBe('/mnt/mesos/sandbox\n/mnt/mesos/sandbox\n');
    await z.destroy('d-mount');
    expect(await ourContainers()).toEqual([]);
  });
});

describe('Docker task privileges', () => {
  const STATUS = "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'";
  const defaultSet = capabilityMask(DEFAULT_ROOT_CAPABILITIES).padStart(16, '0');

  it('command.user is passed, with no-new-privileges, Docker seccomp and no capability beyond the reduced set', async () => {
    const c = dtask('d-user', { command: { ...shell(STATUS), user: '65534' } }); // the busybox image has no passwd file
    await z.launch(c);
    expect(await z.wait('d-user')).toMatchObject({ exitCode: 0 });
    expect(out(c).trim().split('\n')).toEqual(['65534', 'CapEff:0000000000000000', `CapBnd:${defaultSet}`, 'NoNewPrivs:1', 'Seccomp:2']);
    await z.destroy('d-user');
  });

  it("without command.user the image's user (root) runs with the reduced set, or the set the launch names", async () => {
    const c = dtask('d-root', { command: shell(STATUS) });
    await z.launch(c);
    expect(await z.wait('d-root')).toMatchObject({ exitCode: 0 });
    expect(out(c).trim().split('\n')).toEqual(['0', `CapEff:${defaultSet}`, `CapBnd:${defaultSet}`, 'NoNewPrivs:1', 'Seccomp:2']);
    await z.destroy('d-root');
    const n = dtask('d-caps', { command: shell(STATUS), security: { effectiveCapabilities: ['NET_RAW'] } });
    await z.launch(n);
    expect(await z.wait('d-caps')).toMatchObject({ exitCode: 0 });
    const raw = capabilityMask(['NET_RAW']).padStart(16, '0');
    expect(out(n).trim().split('\n')).toEqual(['0', `CapEff:${raw}`, `CapBnd:${raw}`, 'NoNewPrivs:1', 'Seccomp:2']);
    await z.destroy('d-caps');
  });

  it('a task allowed to run unconfined has no seccomp filter; no-new-privileges and its capabilities stay', async () => {
    const c = dtask('d-unconfined', { command: { ...shell(STATUS), user: '65534' }, security: { seccomp: 'unconfined' } });
    await z.launch(c);
    expect(await z.wait('d-unconfined')).toMatchObject({ exitCode: 0 });
    expect(out(c).trim().split('\n')).toEqual(['65534', 'CapEff:0000000000000000', `CapBnd:${defaultSet}`, 'NoNewPrivs:1', 'Seccomp:0']);
    await z.destroy('d-unconfined');
  });

  it('a command run in the container (a COMMAND health check) runs as the task: its user and privileges', async () => {
    const c = dtask('d-exec', { command: { ...shell('sleep 30'), user: '65534' } });
    await z.launch(c);
    const r = await z.exec('d-exec', ['/bin/sh', '-c', STATUS], 10_000);
    expect(r.exitCode, r.output).toBe(0);
    expect(r.output.split('\n')).toEqual(['65534', 'CapEff:0000000000000000', `CapBnd:${defaultSet}`, 'NoNewPrivs:1', 'Seccomp:2']);
    expect((await z.exec('d-exec', ['false'], 10_000)).exitCode).toBe(1);
    expect((await z.exec('d-exec', ['sleep', '30'], 500)).exitCode).toBeNull();
    await z.destroy('d-exec');
  });

  it('a root task is refused when the launch denies root: by command.user or by the image user', async () => {
    await expect(z.launch(dtask('d-deny', { command: { ...shell('true'), user: 'root' }, security: { denyRoot: true } }))).rejects.toThrow(/would run as root \(user "root"\)/);
    await expect(z.launch(dtask('d-deny2', { command: shell('true'), security: { denyRoot: true } }))).rejects.toThrow(/would run as root \(image .* runs as root\)/);
    const ok = dtask('d-nonroot', { command: { ...shell('id -u'), user: '65534' }, security: { denyRoot: true } });
    await z.launch(ok);
    expect(await z.wait('d-nonroot')).toMatchObject({ exitCode: 0 });
    await z.destroy('d-nonroot');
    expect(await ourContainers()).toEqual([]);
  });
});

describe('bad Docker task definitions are refused with a clear message', () => {
  it('an unknown image', async () => {
    await expect(z.launch(dtask('d-noimg', { image: { kind: 'docker', name: 'corral-no-such-image:1', forcePull: false } }))).rejects.toThrow(/unknown image corral-no-such-image:1/);
  });
  it('an unknown volume driver', async () => {
    await expect(
      z.launch(dtask('d-nodrv', { volumes: [{ containerPath: '/data', mode: 'RW', source: { type: 'external', driver: 'corral-no-such-driver', name: 'v', options: {} } }] })),
    ).rejects.toThrow(/unknown volume driver "corral-no-such-driver"/);
    expect(await ourContainers()).toEqual([]);
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
