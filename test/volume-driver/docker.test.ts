/**
 * The volume driver under a real dockerd (a private one, test/harness/dockerd.ts):
 * docker volume create/ls/inspect/rm with -d, containers writing and reading
 * through -v and --mount (with a size option), a plugin restart under a
 * running container, and bad requests that must fail loudly — never fall
 * back to Docker's local driver.
 *
 * The driver name is unique per run: Docker's plugin directory is host-wide.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { startDockerd, uniqueName, type Dockerd } from '../harness/dockerd.js';
import { testDir } from '../harness/resources.js';
import { isMounted, startDriver, teardownHost, type DriverProcess } from './helpers.js';
import { setTimeout as sleep } from 'node:timers/promises';

let dockerd: Dockerd;
let driver: DriverProcess;
let dir: string;
let image: string;
const DRIVER = uniqueName('corral');
const socket = `/run/docker/plugins/${DRIVER}.sock`;

beforeAll(async () => {
  dir = testDir('vol-docker');
  driver = await startDriver({ hostId: 'docker-host', dir, socket });
  dockerd = await startDockerd();
  image = await dockerd.importBusybox('corral-busybox:latest', { dirs: ['data'] });
});

afterAll(async () => {
  await dockerd?.stop();
  await driver?.kill();
  await teardownHost(dir);
  rmSync(socket, { force: true });
  rmSync(dir, { recursive: true, force: true });
});

const runIn = (args: string[], timeoutMs = 60_000) => dockerd.docker(['run', '--rm', '--network', 'none', ...args], { timeoutMs });
const failure = (p: Promise<unknown>) =>
  p.then(
    () => 'succeeded',
    (e: Error) => e.message,
  );

describe('docker with the corral volume driver', () => {
  it('creates, lists, inspects and removes volumes with docker volume -d', async () => {
    await dockerd.docker(['volume', 'create', '-d', DRIVER, 'dv1']);
    await dockerd.docker(['volume', 'create', '-d', DRIVER, '-o', 'size=32M', 'dv2']);
    const ls = await dockerd.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    expect(ls).toContain(`${DRIVER} dv1`);
    expect(ls).toContain(`${DRIVER} dv2`);
    const [info] = JSON.parse(await dockerd.docker(['volume', 'inspect', 'dv2'])) as { Driver: string; Name: string; Status: Record<string, unknown> }[];
    expect(info!.Driver).toBe(DRIVER);
    expect(info!.Status).toMatchObject({ backend: 'local', sizeBytes: 32 * 1024 * 1024, fs: 'ext4', refs: 0 });
    await dockerd.docker(['volume', 'rm', 'dv1', 'dv2']);
    expect(await dockerd.docker(['volume', 'ls', '-q'])).not.toMatch(/dv[12]/);
    expect((await driver.client.list()).map((v) => v.name)).not.toContain('dv1');
  });

  it('lets one container write and a second one read (-v with --volume-driver, image with /data)', async () => {
    await runIn(['--volume-driver', DRIVER, '-v', 'shared:/data', image, 'sh', '-c', 'echo hello-from-one > /data/greeting && sync']);
    const out = await runIn(['--volume-driver', DRIVER, '-v', 'shared:/data', image, 'cat', '/data/greeting']);
    expect(out.trim()).toBe('hello-from-one');
    const v = await driver.client.get('shared');
    expect(v.refs).toBe(0);
    await dockerd.docker(['volume', 'rm', 'shared']);
  });

  it('creates a size-limited volume from --mount volume-opt and the limit holds inside the container', async () => {
    const mount = `type=volume,source=capped,target=/data,volume-driver=${DRIVER},volume-opt=size=32M`;
    const df = await runIn(['--mount', mount, image, 'df', '-k', '/data']);
    const totalKb = Number(df.trim().split('\n').pop()!.trim().split(/\s+/)[1]);
    expect(totalKb).toBeGreaterThan(16 * 1024);
    expect(totalKb).toBeLessThanOrEqual(32 * 1024);
    const fill = await failure(runIn(['--mount', mount, image, 'dd', 'if=/dev/zero', 'of=/data/fill', 'bs=1M', 'count=64']));
    expect(fill).toMatch(/No space left on device/);
    expect((await driver.client.get('capped')).sizeBytes).toBe(32 * 1024 * 1024);
    await dockerd.docker(['volume', 'rm', 'capped']);
  });

  it('keeps a running container working across a hard plugin restart, and handles its later Unmount', async () => {
    await dockerd.docker(['volume', 'create', '-d', DRIVER, '-o', 'size=32M', 'live']);
    const id = (
      await dockerd.docker(['run', '-d', '--network', 'none', '--volume-driver', DRIVER, '-v', 'live:/data', image, 'sh', '-c', 'while true; do date >> /data/log; sleep 0.05; done'])
    ).trim();
    const mp = (await driver.client.get('live')).mountpoint!;
    expect(isMounted(mp)).toBe(true);
    await driver.kill('SIGKILL');
    await sleep(300);
    await driver.restart();
    const lines = async () => Number((await dockerd.docker(['exec', id, 'wc', '-l', '/data/log'])).trim().split(/\s+/)[0]);
    const before = await lines();
    await sleep(400);
    expect(await lines()).toBeGreaterThan(before);
    expect((await driver.client.get('live')).refs).toBe(1);
    await dockerd.docker(['rm', '-f', id]);
    // dockerd unmounts asynchronously after the container is gone.
    for (let i = 0; i < 100 && isMounted(mp); i++) await sleep(50);
    expect(isMounted(mp)).toBe(false);
    expect((await driver.client.get('live')).refs).toBe(0);
    await dockerd.docker(['volume', 'rm', 'live']);
  });

  it("refuses bad names, unknown options and absurd sizes with the driver's message; nothing falls back to local", async () => {
    expect(await failure(dockerd.docker(['volume', 'create', '-d', DRIVER, '../escape']))).toMatch(/is invalid|invalid/);
    expect(await failure(dockerd.docker(['volume', 'create', '-d', DRIVER, '-o', 'colour=blue', 'opt1']))).toMatch(/unknown option "colour"/);
    expect(await failure(dockerd.docker(['volume', 'create', '-d', DRIVER, '-o', 'size=12E', 'opt2']))).toMatch(/larger than the maximum of 64T/);
    expect(await failure(dockerd.docker(['volume', 'create', '-d', DRIVER, '-o', 'backend=rbd', 'opt3']))).toMatch(/backend rbd is unavailable/);
    expect(await failure(runIn(['--mount', `type=volume,source=opt4,target=/data,volume-driver=${DRIVER},volume-opt=size=tiny`, image, 'true']))).toMatch(/is not a size/);
    const ls = await dockerd.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    expect(ls).not.toMatch(/opt[1-4]/);
    expect(existsSync(socket)).toBe(true);
  });
});
