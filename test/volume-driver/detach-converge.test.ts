/**
 * Detaches converge, against real parts: `corral volume-driver` processes, a
 * single-node Ceph, rbd-fuse + loop + ext4, and real mount namespaces.
 *
 * The race behind a volume left attached after its app was removed: any
 * mount namespace made while a volume is mounted (`ip -n NETNS …` makes one
 * per call) keeps the filesystem alive after the host unmounts it; if one
 * exists at the moment of the detach, the loop device still holds the
 * rbd-fuse file and the fuse unmount fails with "target is busy". The driver
 * kept the record and the Ceph lock and retried only at its next 30 s
 * pass, so the volume stayed attached to a host with no task — and blocked
 * its next mount elsewhere — for up to 30 s after the pin was gone. Now the
 * detach is retried with backoff and converges as soon as the pin ends.
 *
 * The other way a detach was lost: a task's unmount that never reached the
 * driver. The driver now asks the agent which containers run (a stand-in
 * for the agent's GET /api/v1/containers on a unix socket) and releases a
 * task's reference once its container is gone — not while another mount
 * namespace still holds the filesystem, and never a reference that is not
 * a task's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startCeph, type CephCluster } from '../harness/ceph.js';
import { forgetPid, recordPid, testDir } from '../harness/resources.js';
import { untilValue } from '../harness/wait.js';
import { taskReference } from '../../plugins/volume-driver/src/references.js';
import { isMounted, startDriver, teardownHost, type DriverProcess } from './helpers.js';

let ceph: CephCluster;
let root: string;
let a: DriverProcess;
let b: DriverProcess;
let local: DriverProcess;
let agent: http.Server;
const running = new Set<string>();
const pins: ChildProcess[] = [];

const dirOf = (h: string) => join(root, h);

beforeAll(async () => {
  root = testDir('vol-converge');
  ceph = await startCeph({ pools: ['corral'] });
  // The periodic pass is ten minutes away: only the retry of the failed detach itself can converge in time.
  const retrying = { intervalMs: 600_000, backoffMs: 200, maxBackoffMs: 2_000 };
  a = await startDriver({ hostId: 'conv-a', dir: dirOf('a'), ceph, defaultBackend: 'rbd', reconcile: retrying });
  b = await startDriver({ hostId: 'conv-b', dir: dirOf('b'), ceph, defaultBackend: 'rbd', reconcile: retrying });
  const agentSocket = join(root, 'agent.sock');
  agent = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url === '/api/v1/containers' ? { containers: [...running] } : {}));
  });
  await new Promise<void>((resolve) => agent.listen(agentSocket, resolve));
  local = await startDriver({
    hostId: 'conv-l',
    dir: dirOf('l'),
    reconcile: { intervalMs: 200, graceMs: 1_000, liveContainers: { url: 'http://agent/api/v1/containers', socketPath: agentSocket } },
  });
}, 180_000);

afterAll(async () => {
  for (const p of pins) stopPin(p);
  for (const d of [a, b, local]) await d?.kill();
  await new Promise((resolve) => agent?.close(resolve));
  // Data paths before the cluster: a mount or loop device left on a dead Ceph hangs.
  for (const h of ['a', 'b', 'l']) await teardownHost(dirOf(h));
  await ceph?.stop();
  rmSync(root, { recursive: true, force: true });
}, 180_000);

/** What `ip -n NETNS …` does for the length of its run: a new mount namespace holding a copy of every host mount. */
async function pinMounts(mountpoint: string): Promise<ChildProcess> {
  const p = spawn('unshare', ['--mount', '--propagation', 'unchanged', 'sleep', '600'], { stdio: 'ignore' });
  recordPid('vol-converge-pin', p.pid!);
  pins.push(p);
  // Pinned once the copy exists in the new namespace.
  await untilValue('the pin holds a copy of the mount', async () => readFileSync(`/proc/${p.pid}/mountinfo`, 'utf8').includes(` ${mountpoint} `), 10_000, 20);
  return p;
}

function stopPin(p: ChildProcess): void {
  if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  forgetPid('vol-converge-pin', p.pid!);
}

async function metric(d: DriverProcess, name: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ socketPath: d.socket, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  return text
    .split('\n')
    .filter((l) => l.startsWith(`corral_volume_driver_${name}`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

describe('a detach that fails once', () => {
  it('while a short-lived mount namespace pins the rbd filesystem: retried until it goes through, and the volume can then be mounted on another host', async () => {
    await a.client.create('conv-rbd', { size: '32M' });
    const ref = taskReference('kv.0.conv', 0);
    const mountpoint = await a.client.mount('conv-rbd', ref);
    const pin = await pinMounts(mountpoint);

    await expect(a.client.unmount('conv-rbd', ref)).rejects.toThrow(/target is busy/);
    // The reference is gone, but the host still holds the attachment (the Ceph lock) while the pin lives.
    expect(await a.client.get('conv-rbd')).toMatchObject({ refs: 0, attachedTo: 'conv-a' });
    const status = await a.client.status();
    expect(status.pendingDetaches).toEqual([expect.objectContaining({ volume: 'conv-rbd', lastError: expect.stringMatching(/target is busy/) })]);
    await expect(b.client.mount('conv-rbd', 'elsewhere')).rejects.toMatchObject({ code: 'CONFLICT' });
    // The log names who keeps the filesystem alive.
    expect(a.logs()).toContain(`sleep (pid ${pin.pid}) at ${mountpoint}`);

    // The pin ends (the `ip` call returns): nobody calls the driver again, yet the detach goes through.
    stopPin(pin);
    await untilValue('conv-rbd detached from conv-a', async () => (await a.client.get('conv-rbd')).attachedTo === undefined, 20_000, 100);
    expect(isMounted(mountpoint)).toBe(false);
    expect(isMounted(join(a.dataDir, 'rbd', 'conv-rbd', 'fuse'))).toBe(false);
    expect((await a.client.status()).pendingDetaches).toEqual([]);
    expect(await metric(a, 'volume_detach_retries_total{result="ok"}')).toBeGreaterThanOrEqual(1);

    // The next mount elsewhere is not blocked.
    await b.client.mount('conv-rbd', 'elsewhere');
    expect(await b.client.get('conv-rbd')).toMatchObject({ refs: 1, attachedTo: 'conv-b' });
    await b.client.unmount('conv-rbd', 'elsewhere');
    expect(await b.client.get('conv-rbd')).toMatchObject({ refs: 0 });
    expect((await b.client.get('conv-rbd')).attachedTo).toBeUndefined();
  }, 120_000);
});

describe('a task reference whose unmount was lost', () => {
  it('is released once the agent no longer runs its container — not while another mount namespace holds the filesystem — and other references stay', async () => {
    const container = 'kv.1.conv';
    const ref = taskReference(container, 0);
    running.add(container);
    await local.client.create('conv-task', { size: '16M' });
    await local.client.create('conv-docker', { size: '16M' });
    const mountpoint = await local.client.mount('conv-task', ref);
    const dockerMountpoint = await local.client.mount('conv-docker', 'docker-mount-id-1');

    // Alive at the agent: untouched however many passes go by.
    const passes = await metric(local, 'volume_reconcile_passes_total');
    await untilValue('a few reconcile passes', async () => (await metric(local, 'volume_reconcile_passes_total')) >= passes + 5, 20_000, 50);
    expect(await local.client.get('conv-task')).toMatchObject({ refs: 1, mountpoint });

    // The container ends and its unmount never arrives; meanwhile a namespace made while it was mounted still holds the filesystem.
    const pin = await pinMounts(mountpoint);
    running.delete(container);
    await untilValue('the driver sees the holder', async () => local.logs().includes('another mount namespace still holds the filesystem'), 20_000, 100);
    expect(await local.client.get('conv-task')).toMatchObject({ refs: 1, mountpoint });
    expect(isMounted(mountpoint)).toBe(true);

    stopPin(pin);
    await untilValue('conv-task released', async () => (await local.client.get('conv-task')).refs === 0 && !isMounted(mountpoint), 20_000, 100);
    expect((await local.client.get('conv-task')).mountpoint).toBeUndefined();
    expect(await metric(local, 'volume_orphan_references_released_total')).toBe(1);
    // A reference that is not a task's is never judged by the agent's list.
    expect(await local.client.get('conv-docker')).toMatchObject({ refs: 1, mountpoint: dockerMountpoint });
    expect(isMounted(dockerMountpoint)).toBe(true);
    await local.client.unmount('conv-docker', 'docker-mount-id-1');
    expect(isMounted(dockerMountpoint)).toBe(false);
  }, 120_000);
});
