/**
 * The volume driver's least-privilege Ceph client, against a real cluster:
 * each host gets client.corral-volumes-<host> with the caps Ceph documents
 * for an RBD client (`profile rbd` on the mon, on the volume pool only on the
 * OSDs and the mgr), made the way node provisioning makes it
 * (provision/src/ceph.ts). With it the driver's backend does everything it
 * needs on its pool (create, info, snapshots, resize, its attach lock, remove)
 * — the volume backend contract and the fencing tests in rbd.test.ts run with
 * such clients too — while Ceph refuses it the cluster's keys, other pools,
 * pool creation and the mon's configuration. One host's client is revoked
 * without touching another's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startCeph, type CephCluster } from '../harness/ceph.js';
import { testDir } from '../harness/resources.js';
import { run } from '../../common/sys/exec.js';
import { loadConfig } from '../../common/config.js';
import { CorralError } from '../../contracts/errors.js';
import { openVolumeService, type OpenedVolumeService } from '../../plugins/volume-driver/src/daemon.js';
import { volumeDriverConfigSchema } from '../../plugins/volume-driver/src/config.js';
import { cephAdminArgs, ensureRbdClient, listVolumeClients, removeRbdClient, rbdClientCaps } from '../../provision/src/ceph.js';
import { driverConfig } from './helpers.js';

let ceph: CephCluster;
let root: string;
let h1: { clientName: string; keyring: string };
let h2: { clientName: string; keyring: string };
let driver: OpenedVolumeService | undefined;

beforeAll(async () => {
  root = testDir('vol-rbd-lp');
  ceph = await startCeph({ pools: ['corral', 'other'] });
  h1 = await ceph.volumeClient('h1', ['corral']);
  h2 = await ceph.volumeClient('h2', ['corral']);
  const config = loadConfig(volumeDriverConfigSchema, {
    flags: { ...driverConfig({ hostId: 'h1', dir: join(root, 'h1'), ceph, defaultBackend: 'rbd', rbd: h1 }), log: { level: 'warn' } },
  });
  driver = await openVolumeService(config);
}, 120_000);

afterAll(async () => {
  await driver?.close();
  await ceph?.stop();
  rmSync(root, { recursive: true, force: true });
}, 60_000);

/** A Ceph CLI run as `client` (by its id, as Ceph's --id takes it): exit code and output. */
async function as(client: { clientName: string; keyring: string }, cmd: 'ceph' | 'rbd' | 'rados', args: string[]): Promise<{ code: number; out: string }> {
  const timeouts = cmd === 'ceph' ? ['--connect-timeout', '10'] : ['--client-mount-timeout', '10'];
  const r = await run('/usr/bin/timeout', ['30', cmd, '-c', ceph.confFile, '--keyring', client.keyring, '--id', client.clientName.replace(/^client\./, ''), ...timeouts, ...args], {
    timeoutMs: 35_000,
  });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** The typed error a driver call was refused with. */
async function refusal(p: Promise<unknown>): Promise<CorralError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CorralError) return err;
    throw err;
  }
  throw new Error('expected the call to be refused, but it succeeded');
}

describe("a host's least-privilege Ceph client", () => {
  it('has the documented rbd caps on its pool only, a 0600 keyring with its own key alone, and is made idempotently', async () => {
    const auth = JSON.parse(await ceph.ceph(['auth', 'get', h1.clientName, '--format', 'json'])) as Array<{ entity: string; key: string; caps: Record<string, string> }>;
    expect(auth[0]!.caps).toEqual({ mon: 'profile rbd', osd: 'profile rbd pool=corral', mgr: 'profile rbd pool=corral' });
    expect(rbdClientCaps(['corral'])).toEqual(['mon', 'profile rbd', 'osd', 'profile rbd pool=corral', 'mgr', 'profile rbd pool=corral']);
    expect(statSync(h1.keyring).mode & 0o777).toBe(0o600);
    const text = readFileSync(h1.keyring, 'utf8');
    expect(text).toContain(`[${h1.clientName}]`);
    expect(text).toContain(auth[0]!.key);
    expect(text).not.toContain('client.admin');
    expect(text).not.toContain('[mon.]');
    // Again: the same key (hosts keep working across node up).
    expect(await ensureRbdClient(ceph.cliArgs, h1.clientName, ['corral'])).toContain(auth[0]!.key);
    expect(await listVolumeClients(ceph.cliArgs)).toEqual(expect.arrayContaining([h1.clientName, h2.clientName]));
    // Pool names go into caps: nothing that could widen them.
    expect(() => rbdClientCaps([])).toThrow(/at least one pool/);
    expect(cephAdminArgs('/x')).toEqual(['-c', '/x/ceph.conf', '--keyring', '/x/keyring', '--connect-timeout', '10']);
  });

  it("serves the volume driver's backend on its pool: create, info, snapshot, resize, attach lock, remove", async () => {
    const svc = driver!.service;
    expect(driver!.status().backends.rbd).toBe('ok');
    const v = await svc.create('lp-vol', { size: '32M' });
    expect(v).toMatchObject({ name: 'lp-vol', backend: 'rbd', pool: 'corral', sizeBytes: 32 * 1024 * 1024 });
    // The image is there, as the client itself sees it (rbd info) and as client.admin does.
    const info = await as(h1, 'rbd', ['info', 'corral/lp-vol', '--format', 'json']);
    expect(info.code, info.out).toBe(0);
    expect(JSON.parse(info.out)).toMatchObject({ name: 'lp-vol', size: 32 * 1024 * 1024 });
    expect(await ceph.rbd(['ls', 'corral'])).toContain('lp-vol');
    expect((await svc.snapshot('lp-vol', 's1')).name).toBe('s1');
    expect((await svc.resize('lp-vol', '48M')).sizeBytes).toBe(48 * 1024 * 1024);
    // rbd's advisory image locks, by the client itself.
    const lock = await as(h1, 'rbd', ['lock', 'add', 'corral/lp-vol', 'lp-cookie']);
    expect(lock.code, lock.out).toBe(0);
    const locks = JSON.parse((await as(h1, 'rbd', ['lock', 'ls', 'corral/lp-vol', '--format', 'json'])).out) as Array<{ id: string; locker: string }> | Record<string, { locker: string }>;
    const locker = Array.isArray(locks) ? locks.find((l) => l.id === 'lp-cookie')!.locker : locks['lp-cookie']!.locker;
    expect((await as(h1, 'rbd', ['lock', 'rm', 'corral/lp-vol', 'lp-cookie', locker])).code).toBe(0);
    // Remove takes the driver's attach lock (a rados class lock) and drops the snapshot and image.
    await svc.removeSnapshot('lp-vol', 's1');
    await svc.remove('lp-vol');
    expect(await ceph.rbd(['ls', 'corral'])).not.toContain('lp-vol');
  });

  it('is refused the cluster keys, the mon configuration, pool creation and other pools', async () => {
    for (const args of [
      ['auth', 'ls'],
      ['auth', 'get', 'client.admin'],
      ['auth', 'get-or-create', 'client.evil', 'mon', 'allow *'],
      ['config', 'set', 'mon', 'mon_allow_pool_delete', 'false'],
      ['config-key', 'set', 'corral-test', 'x'],
      ['osd', 'pool', 'create', 'evil', '8'],
    ]) {
      const r = await as(h1, 'ceph', args);
      expect(r.code, `ceph ${args.join(' ')}: ${r.out}`).toBe(13);
      expect(r.out).toMatch(/EACCES: access denied/);
    }
    const create = await as(h1, 'rbd', ['create', '--size', '16', 'other/x']);
    expect(create.code).not.toBe(0);
    expect(create.out).toMatch(/Operation not permitted/);
    const list = await as(h1, 'rados', ['-p', 'other', 'ls']);
    expect(list.code).not.toBe(0);
    expect(list.out).toMatch(/Operation not permitted/);
    // Through the driver: a typed 403 naming the client, never a 500; nothing left in the registry.
    const other = await refusal(driver!.service.create('lp-other', { pool: 'other', size: '16M' }));
    expect(other.code).toBe('FORBIDDEN');
    expect(other.message).toMatch(/Ceph refused client\.corral-volumes-h1/);
    const missing = await refusal(driver!.service.create('lp-new-pool', { pool: 'nopool', size: '16M' }));
    expect(missing.code).toBe('FORBIDDEN');
    expect(missing.message).toMatch(/creating pool nopool: Ceph refused/);
    expect((await driver!.service.list()).map((v) => v.name)).not.toEqual(expect.arrayContaining(['lp-other', 'lp-new-pool']));
    expect(await ceph.ceph(['osd', 'pool', 'ls'])).not.toContain('nopool');
  });

  it("one host's client is revoked alone: it can no longer connect, the other host's still works", async () => {
    expect((await as(h2, 'rbd', ['ls', 'corral'])).code).toBe(0);
    await removeRbdClient(ceph.cliArgs, h2.clientName);
    const refused = await as(h2, 'rbd', ['ls', 'corral']);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toMatch(/Operation not permitted|permission denied|authenticat/i);
    expect((await as(h1, 'rbd', ['ls', 'corral'])).code).toBe(0);
    expect(await listVolumeClients(ceph.cliArgs)).toEqual([h1.clientName]);
  });
});
