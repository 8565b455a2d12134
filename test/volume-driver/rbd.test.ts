/**
 * The rbd backend against a real single-node Ceph cluster, with several
 * "hosts" — each a volume-driver process with its own host identity and data
 * dir — plus a private dockerd on host A and the in-process library the
 * isolator uses (host "iso"). What must hold:
 *  - one registry: every host sees every volume (scope global);
 *  - one writer: a live holder keeps its volume; a dead one is fenced
 *    (blocklisted) before its lock is broken, and its data is all there;
 *  - a host whose plugin died but whose data path lives cannot write after
 *    another host took over;
 *  - two hosts racing for one volume: exactly one wins;
 *  - Ceph down: clear errors, no fallback, nothing lost.
 * Every host uses its own least-privilege Ceph client (client.corral-volumes-<host>, `profile rbd` on its
 * pool only), as provisioned hosts do: fencing included.
 * Before these, the volume backend contract (backend-contract.ts: create,
 * data across detach and a hard restart, references, size limit, growth,
 * snapshots, removal, typed errors, one host attached at a time) runs once per
 * attach method, each on a pool of its own: rbd-fuse + loop, and kernel rbd
 * where the kernel has it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startCeph, type CephCluster } from '../harness/ceph.js';
import { startDockerd, uniqueName, type Dockerd } from '../harness/dockerd.js';
import { forgetPid, recordPid, testDir } from '../harness/resources.js';
import { until, untilValue } from '../harness/wait.js';
import { isCorralError } from '../../contracts/errors.js';
import { loadConfig } from '../../common/config.js';
import { openVolumeService, type OpenedVolumeService } from '../../plugins/volume-driver/src/daemon.js';
import { volumeDriverConfigSchema } from '../../plugins/volume-driver/src/config.js';
import { kernelHasRbd } from '../../plugins/volume-driver/src/backends/rbd/attach.js';
import { volumeBackendContract, type BackendFixture, type BackendHost } from './backend-contract.js';
import { dataPathUnder, driverConfig, helperPids, isMounted, krbdMappings, startDriver, teardownHost, type DriverProcess, writeAndFsync } from './helpers.js';

let ceph: CephCluster;
let dockerd: Dockerd;
let root: string;
const hosts: Record<string, DriverProcess> = {};
let iso: OpenedVolumeService | undefined;
const DRIVER = uniqueName('corral');
const socketA = `/run/docker/plugins/${DRIVER}.sock`;

const dirOf = (h: string) => join(root, h);
/** The contract runs on pools of its own, one per attach method. */
const CONTRACT_POOLS = { 'rbd-fuse': 'contract-fuse', krbd: 'contract-krbd' } as const;

beforeAll(async () => {
  root = testDir('vol-rbd');
  // A pool per contract run keeps its registry apart from hosts A/B/C's (the contract's largest write,
  // the 64M log of its 320M xfs volume, fits the OSD's RAM store many times over).
  ceph = await startCeph({ pools: ['corral', CONTRACT_POOLS['rbd-fuse'], ...(kernelHasRbd() ? [CONTRACT_POOLS.krbd] : [])] });
  for (const h of ['a', 'b', 'c']) {
    const own = await ceph.volumeClient(`host-${h}`, ['corral']);
    hosts[h] = await startDriver({ hostId: `host-${h}`, dir: dirOf(h), ceph, defaultBackend: 'rbd', rbd: own, ...(h === 'a' ? { socket: socketA } : {}) });
  }
  dockerd = await startDockerd();
}, 180_000);

afterAll(async () => {
  await dockerd?.stop();
  for (const name of (await iso?.service.list().catch(() => [])) ?? []) {
    if (name.refs > 0) await iso!.service.unmount(name.name, 'task-1').catch(() => undefined);
  }
  await iso?.close();
  for (const h of Object.values(hosts)) await h.kill();
  // Data paths before the cluster: a mount or loop device left on a dead Ceph hangs.
  for (const h of ['a', 'b', 'c', 'iso']) await teardownHost(dirOf(h));
  await ceph?.stop();
  rmSync(socketA, { force: true });
  rmSync(root, { recursive: true, force: true });
}, 180_000);

/** Two driver hosts attaching through `method` only, on the method's own pool. */
function contractHosts(method: 'rbd-fuse' | 'krbd'): () => Promise<BackendFixture> {
  return async () => {
    const pool = CONTRACT_POOLS[method];
    const hosts: BackendHost[] = [];
    const dirs = ['a', 'b'].map((h) => join(root, `contract-${method}-${h}`));
    const cleanup = async () => {
      for (const h of hosts) await h.driver.kill();
      for (const d of dirs) await teardownHost(d);
    };
    try {
      for (const [i, dir] of dirs.entries()) {
        const own = await ceph.volumeClient(`contract-${method}-${i}`, [pool]);
        const driver = await startDriver({ hostId: `contract-${method}-${i}`, dir, ceph, defaultBackend: 'rbd', rbd: { pool, attach: method, ...own } });
        hosts.push({ driver, dataPath: (name) => [...dataPathUnder(join(driver.dataDir, 'rbd', name)), ...krbdMappings(pool, name)] });
      }
    } catch (err) {
      await cleanup();
      throw err;
    }
    return { hosts: [hosts[0]!, hosts[1]!], cleanup };
  };
}

volumeBackendContract('rbd, attached through rbd-fuse + loop', { backend: 'rbd', scope: 'global' }, contractHosts('rbd-fuse'));
volumeBackendContract(
  'rbd, attached through kernel rbd',
  { backend: 'rbd', scope: 'global', unavailable: kernelHasRbd() ? undefined : 'this kernel has no rbd support (/sys/bus/rbd is missing)' },
  contractHosts('krbd'),
);

const failure = (p: Promise<unknown>) =>
  p.then(
    () => 'succeeded',
    (e: Error) => e.message,
  );

/** Addresses of the clients that have an image open, as Ceph lists them. */
async function imageWatchers(image: string): Promise<string[]> {
  const status = JSON.parse(await ceph.rbd(['status', `corral/${image}`, '--format', 'json'])) as { watchers: { address: string }[] };
  return status.watchers.map((w) => w.address);
}

async function blocklist(): Promise<string> {
  return ceph.ceph(['osd', 'blocklist', 'ls']);
}

/** A host dies hard: its plugin and every helper (rbd-fuse) get SIGKILL. */
async function killHost(h: string): Promise<void> {
  await hosts[h]!.kill('SIGKILL');
  for (const pid of helperPids(dirOf(h))) process.kill(pid, 'SIGKILL');
}

describe('rbd volumes across hosts', () => {
  it('keeps one registry every host sees, with scope global, and validates rbd options', async () => {
    const v = await hosts.a!.client.create('shared', { size: '64M' });
    expect(v).toMatchObject({ name: 'shared', backend: 'rbd', scope: 'global', sizeBytes: 64 * 1024 * 1024, pool: 'corral', refs: 0 });
    expect((await hosts.b!.client.list()).map((x) => x.name)).toContain('shared');
    expect((await hosts.c!.client.get('shared')).attachedTo).toBeUndefined();
    expect((await hosts.b!.docker('Capabilities', {})).body).toEqual({ Capabilities: { Scope: 'global' } });
    expect(await failure(hosts.b!.client.create('shared', { size: '128M' }))).toMatch(/already exists \(backend rbd\) with different options/);
    expect(await failure(hosts.b!.client.create('bad1', { pool: 'no/slash' }))).toMatch(/not a valid pool name/);
    expect(await failure(hosts.b!.client.create('bad2', { features: 'journaling' }))).toMatch(/unknown rbd feature "journaling"/);
    expect(await failure(hosts.b!.client.create('bad3', { size: '3E' }))).toMatch(/larger than the maximum of 64T/);
    expect((await hosts.a!.client.list()).map((x) => x.name)).toEqual(['shared']);
  });

  it('serves Docker containers on host A, and the isolator path on another host mounts the same volume', async () => {
    const image = await dockerd.importBusybox();
    await dockerd.docker(['run', '--rm', '--network', 'none', '--volume-driver', DRIVER, '-v', 'shared:/data', image, 'sh', '-c', 'echo written-by-docker > /data/note && sync']);
    // Docker's Unmount detaches the volume; a detach a transient holder made fail is retried by the plugin until it goes through.
    await until(async () => (await hosts.a!.client.get('shared')).attachedTo === undefined, 60_000, 'shared detached from host-a after the container');
    const own = await ceph.volumeClient('host-iso', ['corral']);
    const config = loadConfig(volumeDriverConfigSchema, { flags: { ...driverConfig({ hostId: 'host-iso', dir: dirOf('iso'), ceph, defaultBackend: 'rbd', rbd: own }), log: { level: 'warn' } } });
    iso = await openVolumeService(config);
    const mp = await iso.service.mount('shared', 'task-1');
    expect(readFileSync(join(mp, 'note'), 'utf8')).toBe('written-by-docker\n');
    expect((await hosts.b!.client.get('shared')).attachedTo).toBe('host-iso');
    expect(await failure(hosts.a!.client.mount('shared', 'ctr-x'))).toMatch(/attached on host host-iso, which is alive/);
    await iso.service.unmount('shared', 'task-1');
    expect(isMounted(mp)).toBe(false);
  });

  it('refuses a live holder, fences a dead one and takes over with every fsynced byte', async () => {
    const a = hosts.a!;
    const b = hosts.b!;
    await a.client.create('db', { size: '64M' });
    const mp = await a.client.mount('db', 'pg-1');
    writeAndFsync(join(mp, 'table'), 'row-1\nrow-2\n');
    expect(await failure(b.client.mount('db', 'pg-2'))).toMatch(/volume db is attached on host host-a, which is alive; unmount it there first/);
    const dataPath = await imageWatchers('db');
    expect(dataPath.length).toBeGreaterThan(0);
    await killHost('a');
    const t0 = Date.now();
    const mpB = await b.client.mount('db', 'pg-2');
    const takeoverMs = Date.now() - t0;
    expect(readFileSync(join(mpB, 'table'), 'utf8')).toBe('row-1\nrow-2\n');
    expect(takeoverMs).toBeLessThan(5000);
    const fenced = await blocklist();
    for (const addr of dataPath) expect(fenced).toContain(addr.replace(/^v\d:/, ''));
    expect((await b.client.get('db')).attachedTo).toBe('host-b');
    // Host A comes back: its leftovers go, its stale record is dropped, B keeps the volume.
    await teardownHost(dirOf('a'));
    await a.restart();
    const seenByA = await a.client.get('db');
    expect(seenByA.refs).toBe(0);
    expect(seenByA.attachedTo).toBe('host-b');
  });

  it('fences a host whose plugin died while its data path lives: its writes never reach Ceph, and it cleans up when it returns', async () => {
    const b = hosts.b!;
    const c = hosts.c!;
    const mpB = (await b.client.get('db')).mountpoint!;
    await b.kill('SIGKILL');
    expect(helperPids(dirOf('b')).length).toBeGreaterThan(0);
    try {
      const mpC = await c.client.mount('db', 'pg-3');
      expect(readFileSync(join(mpC, 'table'), 'utf8')).toBe('row-1\nrow-2\n');
      writeAndFsync(join(mpC, 'owner'), 'host-c');
      // A writer still on host B: the fenced data path fails its write, blocks it (in uninterruptible
      // sleep, where even SIGKILL cannot reach it), or takes it into a local cache it can never flush.
      // Whichever it is, the write must not land in Ceph (checked below from host C).
      const writer = spawn('dd', ['if=/dev/zero', `of=${join(mpB, 'split-brain')}`, 'bs=4k', 'count=4', 'conv=fsync'], { stdio: 'ignore' });
      recordPid('rbd-stale-writer', writer.pid!);
      const writerExit = new Promise<number | null>((resolve) => writer.on('exit', (code) => resolve(code)));
      await Promise.race([writerExit, new Promise((r) => setTimeout(r, 2000))]);
      writer.kill('SIGKILL');
      // Host B's plugin comes back: it sees the volume is another host's now, cuts the dead data path
      // (the blocked writer fails and leaves) and tears its stale mount down.
      const t0 = Date.now();
      await b.restart();
      for (let i = 0; i < 300 && isMounted(mpB); i++) await new Promise((r) => setTimeout(r, 100));
      process.stdout.write(`fenced host cleaned up ${Date.now() - t0} ms after its plugin restarted\n`);
      // No writer is left stuck on the dead data path.
      expect(await Promise.race([writerExit.then(() => 'ended'), new Promise((r) => setTimeout(r, 15_000, 'still blocked'))])).toBe('ended');
      forgetPid('rbd-stale-writer', writer.pid!);
      expect(isMounted(mpB)).toBe(false);
      expect(helperPids(dirOf('b'))).toEqual([]);
      expect((await b.client.get('db')).refs).toBe(0);
    } finally {
      // Whatever is left (if the assertions above failed): a fenced rbd-fuse keeps retrying against the cluster.
      await teardownHost(dirOf('b'));
    }
    await c.client.unmount('db', 'pg-3');
    const again = await c.client.mount('db', 'pg-4');
    expect(readFileSync(join(again, 'owner'), 'utf8')).toBe('host-c');
    expect(() => readFileSync(join(again, 'split-brain'))).toThrow(/ENOENT/);
    await c.client.unmount('db', 'pg-4');
  });

  it('lets exactly one of two racing hosts mount a volume', async () => {
    await hosts.c!.client.create('race', { size: '32M' });
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled([hosts.a!.client.mount('race', `a-${round}`), hosts.c!.client.mount('race', `c-${round}`)]);
      const winners = results.filter((r) => r.status === 'fulfilled');
      expect(winners).toHaveLength(1);
      const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(String(loser.reason.message)).toMatch(/attached on host host-[ac], which is alive|could not be locked/);
      const winner = results[0]!.status === 'fulfilled' ? ['a', `a-${round}`] : ['c', `c-${round}`];
      await hosts[winner[0]!]!.client.unmount('race', winner[1]!);
    }
  });

  it('finishes a creation that was cut short when the volume is created again', async () => {
    const c = hosts.c!.client;
    // What a plugin killed between the registry entry and the image leaves (or a timed-out request landing late).
    const halfMade = {
      name: 'half',
      backend: 'rbd',
      pool: 'corral',
      image: 'half',
      sizeBytes: 32 * 1024 * 1024,
      fsType: 'ext4',
      features: ['layering'],
      createdAt: new Date().toISOString(),
      createdBy: 'host-gone',
      initialized: false,
      state: 'creating',
    };
    await ceph.rados(['-p', 'corral', 'setomapval', 'corral_volumes', 'half', JSON.stringify(halfMade)]);
    expect(await failure(c.mount('half', 'early'))).toMatch(/still being created/);
    await c.create('half', { size: '32M' });
    const mp = await c.mount('half', 'now');
    writeAndFsync(join(mp, 'f'), 'made');
    expect(readFileSync(join(mp, 'f'), 'utf8')).toBe('made');
    await c.unmount('half', 'now');
    await c.remove('half');
  });

  // Its own waits (the pause, four 3 s timeouts, up to 150 s for Ceph to recover, then 30 s retries) exceed the default budget.
  it('answers clearly while Ceph is down, never falls back to local, and loses nothing', async () => {
    const a = hosts.a!;
    await ceph.pause();
    try {
      expect(await failure(a.client.create('later', { size: '32M' }))).toMatch(/Ceph did not answer within 3 s/);
      expect(await failure(a.client.create('later-local', { backend: 'local' }))).toMatch(/Ceph did not answer/);
      expect(await failure(a.client.list())).toMatch(/Ceph did not answer/);
      expect((await a.docker('Get', { Name: 'db' })).body.Err).toMatch(/Ceph did not answer/);
    } finally {
      await ceph.resume();
    }
    // Resumed daemons take a moment to serve again, longer on a busy machine: that is Ceph's own recovery,
    // judged by a client of its own (the rados CLI, connecting afresh). On a loaded machine the OSD has been
    // seen up but serving no new client for minutes after the resume (its log then goes into the error);
    // after 60 s it is nudged as an operator would (marked down: it rebinds and boots again, data kept).
    const cephServes = (): Promise<boolean> => ceph.rados(['-p', 'corral', 'listomapkeys', 'corral_volumes'], 10_000).then(() => true);
    await untilValue('Ceph serving a new client again', cephServes, 60_000, 500)
      .catch(async () => {
        await ceph.nudgeOsd();
        return untilValue('Ceph serving a new client again after its OSD was marked down', cephServes, 120_000, 500);
      })
      .catch(async (err: Error) => {
        const status = await ceph.ceph(['status']).catch((e: Error) => e.message);
        const osds = await ceph.ceph(['osd', 'dump']).catch((e: Error) => e.message);
        throw new Error(`${err.message}\nceph status:\n${status}\nceph osd dump:\n${osds}\nosd.0 log:\n${ceph.logTail('osd.0')}`);
      });
    // Then the plugin, on the connection it kept through the outage, answers again promptly.
    const names = await untilValue('the plugin answering again once Ceph does', async () => (await a.client.list()).map((v) => v.name), 60_000, 250).catch(async (err: Error) => {
      const status = await ceph.ceph(['status']).catch((e: Error) => e.message);
      throw new Error(`${err.message}\nceph status:\n${status}`);
    });
    // Nothing was lost. A create that timed out may still land once the OSD runs again (its request was
    // already queued there); then "later" is listed as a volume still being created.
    expect(names.filter((n) => n !== 'later')).toEqual(['db', 'race', 'shared']);
    // Once Ceph answers again, everything works: creating "later" (again) makes it or finishes it,
    // and it is written, read back and removed. Right after the pause a busy cluster may still time out
    // an image creation or removal (each answers "did not answer within 3 s"); the user's retry then goes through.
    await untilValue('creating "later" after the outage', () => a.client.create('later', { size: '32M' }), 30_000, 500);
    const mp = await a.client.mount('later', 'after-outage');
    writeFileSync(join(mp, 'after'), 'ok');
    expect(readFileSync(join(mp, 'after'), 'utf8')).toBe('ok');
    await a.client.unmount('later', 'after-outage');
    // A removal that timed out may still have landed: then the retry finds nothing left to remove.
    const removed = (): Promise<boolean> =>
      a.client.remove('later').then(
        () => true,
        (err: unknown) => (isCorralError(err, 'NOT_FOUND') ? true : Promise.reject(err)),
      );
    await untilValue('removing "later" after the outage', removed, 30_000, 500);
    expect((await a.client.list()).map((v) => v.name)).not.toContain('later');
  }, 360_000);
});
