/**
 * The volume backend contract suite: every backend (and every attach method
 * of one) runs exactly these cases against real volume-driver processes, so a
 * volume behaves the same whether it is a loop file here or an RBD image in
 * Ceph. What only one backend has (directory volumes, fencing a dead holder,
 * Ceph outages) stays in that backend's own test file.
 *
 * Each case uses its own volume names and leaves nothing attached; the
 * fixture gives two hosts of one cluster (two drivers with their own data
 * dirs), so the scope promise can be checked from the other host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, type ErrorCode } from '../../contracts/errors.js';
import type { VolumeClient } from '../../plugins/volume-driver/src/client.js';
import { run } from '../harness/resources.js';
import { until } from '../harness/wait.js';
import { isMounted, mountedFsType, type DriverProcess, writeAndFsync } from './helpers.js';

export interface BackendHost {
  driver: DriverProcess;
  /** What of volume `name`'s data path is on this host now (mounts, devices, helper processes); empty once detached. */
  dataPath(name: string): string[];
}

export interface BackendFixture {
  /** Two hosts of one cluster: [0] does the work, [1] checks what the scope promises. */
  hosts: [BackendHost, BackendHost];
  cleanup(): Promise<void>;
}

export interface BackendTraits {
  backend: 'local' | 'rbd';
  /** local: only the creating host sees a volume; global: every host does, and one attaches it at a time. */
  scope: 'local' | 'global';
  /** Why this backend or attach method cannot run on this machine: the suite is then reported as skipped with this reason. */
  unavailable?: string | undefined;
}

const MiB = 1024 * 1024;

/** The typed error a call was refused with. */
async function refusal(p: Promise<unknown>): Promise<{ code: ErrorCode; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CorralError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected the call to be refused, but it succeeded');
}

const fsBytes = (p: string): number => statfsSync(p).blocks * statfsSync(p).bsize;

/**
 * Wait until nothing of the volume's data path is left on the host. Not always
 * at once: a mount namespace another process made while the volume was mounted
 * keeps the filesystem, hence its loop device, busy until it ends (the kernel
 * then finishes the detach, or the driver's reconciler retries it).
 */
async function released(h: BackendHost, name: string): Promise<void> {
  await until(() => h.dataPath(name).length === 0, 60_000, `nothing of ${name}'s data path left on ${h.driver.hostId}`, 100).catch((err: Error) => {
    throw new Error(`${err.message}; now left: ${h.dataPath(name).join(', ')}`);
  });
}

export function volumeBackendContract(name: string, traits: BackendTraits, setup: () => Promise<BackendFixture>): void {
  const title = `Volume backend contract: ${name}${traits.unavailable ? ` (skipped: ${traits.unavailable})` : ''}`;
  // The default reporter lists skipped cases without their suite's title: say why here too.
  if (traits.unavailable) process.stdout.write(`${title}\n`);
  describe.skipIf(traits.unavailable !== undefined)(title, () => {
    let fixture: BackendFixture | undefined;
    const host = (i: 0 | 1): BackendHost => fixture!.hosts[i];
    const client = (i: 0 | 1 = 0): VolumeClient => host(i).driver.client;
    const opts = (o: Record<string, string> = {}): Record<string, string> => ({ backend: traits.backend, ...o });

    beforeAll(async () => {
      fixture = await setup();
    }, 180_000);
    afterAll(async () => {
      await fixture?.cleanup();
    }, 180_000);

    it('creates a sized volume with the filesystem and root ownership asked for; create is idempotent, different options conflict', async () => {
      const c = client();
      const v = await c.create('c-create', opts({ size: '32M' }));
      expect(v).toMatchObject({ name: 'c-create', backend: traits.backend, scope: traits.scope, sizeBytes: 32 * MiB, fsType: 'ext4', refs: 0 });
      expect(v.attachedTo).toBeUndefined();
      expect((await c.create('c-create', opts({ size: '32M' }))).sizeBytes).toBe(32 * MiB);
      expect(await refusal(c.create('c-create', opts({ size: '64M' })))).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/already exists \(backend \w+\) with different options/) });
      expect((await c.list()).filter((x) => x.name === 'c-create')).toHaveLength(1);
      // mkfs.xfs (6.x) makes no filesystem under 300M.
      const x = await c.create('c-xfs', opts({ size: '320M', fs: 'xfs', uid: '1234', gid: '2345', mode: '0750' }));
      expect(x).toMatchObject({ sizeBytes: 320 * MiB, fsType: 'xfs' });
      for (const [vol, fs, size, owner] of [
        ['c-create', 'ext4', 32 * MiB, undefined],
        ['c-xfs', 'xfs', 320 * MiB, { uid: 1234, gid: 2345, mode: 0o750 }],
      ] as const) {
        const mp = await c.mount(vol, 'probe');
        expect(mountedFsType(mp)).toBe(fs);
        expect(fsBytes(mp)).toBeLessThanOrEqual(size);
        expect(fsBytes(mp)).toBeGreaterThan(size / 2);
        if (owner) {
          const st = statSync(mp);
          expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual(owner);
        }
        await c.unmount(vol, 'probe');
        await c.remove(vol);
      }
    });

    it('attaches, keeps fsynced data across a detach and a re-attach, and enforces the size limit (ENOSPC)', async () => {
      const c = client();
      await c.create('c-data', opts({ size: '32M' }));
      expect(host(0).dataPath('c-data')).toEqual([]);
      const mp = await c.mount('c-data', 'writer');
      expect(isMounted(mp)).toBe(true);
      expect(await c.path('c-data')).toBe(mp);
      expect(host(0).dataPath('c-data').length).toBeGreaterThan(0);
      writeAndFsync(join(mp, 'kept'), 'survives a detach');
      const err = await run('dd', ['if=/dev/zero', `of=${mp}/fill`, 'bs=1M', 'count=64', 'conv=fsync']).then(
        () => '',
        (e: Error) => e.message,
      );
      expect(err).toMatch(/No space left on device/);
      await run('rm', ['-f', join(mp, 'fill')]);
      await c.unmount('c-data', 'writer');
      expect(isMounted(mp)).toBe(false);
      await released(host(0), 'c-data');
      expect(await c.path('c-data')).toBeUndefined();
      const again = await c.mount('c-data', 'reader');
      expect(readFileSync(join(again, 'kept'), 'utf8')).toBe('survives a detach');
      await c.unmount('c-data', 'reader');
      await c.remove('c-data');
    });

    it('counts Docker mount references by ID: attached once, detached after the last Unmount; detach is idempotent', async () => {
      const d = host(0).driver;
      expect((await d.docker('Create', { Name: 'c-refs', Opts: opts({ size: '32M' }) })).body).toEqual({});
      const m1 = (await d.docker('Mount', { Name: 'c-refs', ID: 'c1' })).body.Mountpoint as string;
      const m2 = (await d.docker('Mount', { Name: 'c-refs', ID: 'c2' })).body.Mountpoint as string;
      expect(m2).toBe(m1);
      expect(isMounted(m1)).toBe(true);
      // Attached once: one device and at most one helper, however many references.
      const held = host(0).dataPath('c-refs');
      expect(held.length).toBeGreaterThan(0);
      for (const kind of ['loop', 'krbd', 'pid']) expect(held.filter((e) => e.startsWith(`${kind} `)).length).toBeLessThanOrEqual(1);
      // The same ID again is one reference, not a second attach.
      await d.docker('Mount', { Name: 'c-refs', ID: 'c2' });
      expect(host(0).dataPath('c-refs')).toEqual(held);
      expect((await d.docker('Remove', { Name: 'c-refs' })).body.Err).toMatch(/in use on this host \(2 mount reference/);
      await d.docker('Unmount', { Name: 'c-refs', ID: 'c1' });
      expect(isMounted(m1)).toBe(true);
      // An unknown ID must not detach what c2 still uses.
      await d.docker('Unmount', { Name: 'c-refs', ID: 'nope' });
      expect(isMounted(m1)).toBe(true);
      await d.docker('Unmount', { Name: 'c-refs', ID: 'c2' });
      expect(isMounted(m1)).toBe(false);
      await released(host(0), 'c-refs');
      expect((await d.docker('Path', { Name: 'c-refs' })).body).toEqual({ Mountpoint: '' });
      // Unmounting again (Docker retries, a lost answer) is answered and changes nothing.
      expect((await d.docker('Unmount', { Name: 'c-refs', ID: 'c2' })).body).toEqual({});
      expect((await client().get('c-refs')).refs).toBe(0);
      expect((await d.docker('Remove', { Name: 'c-refs' })).body).toEqual({});
    });

    it('keeps a mounted volume and its references across a hard restart of the driver; a later Unmount detaches it', async () => {
      const d = host(0).driver;
      await d.docker('Create', { Name: 'c-survivor', Opts: opts({ size: '32M' }) });
      const mp = (await d.docker('Mount', { Name: 'c-survivor', ID: 'ctr-1' })).body.Mountpoint as string;
      writeAndFsync(join(mp, 'before'), 'written before the crash');
      await d.kill('SIGKILL');
      expect(isMounted(mp)).toBe(true);
      writeAndFsync(join(mp, 'during'), 'written while the plugin was down');
      await d.restart();
      const get = (await d.docker('Get', { Name: 'c-survivor' })).body as { Volume: { Mountpoint: string; Status: { refs: number } } };
      expect(get.Volume.Mountpoint).toBe(mp);
      expect(get.Volume.Status.refs).toBe(1);
      expect(isMounted(mp)).toBe(true);
      expect(readFileSync(join(mp, 'before'), 'utf8')).toBe('written before the crash');
      expect((await d.docker('Mount', { Name: 'c-survivor', ID: 'ctr-2' })).body.Mountpoint).toBe(mp);
      await d.docker('Unmount', { Name: 'c-survivor', ID: 'ctr-1' });
      expect(isMounted(mp)).toBe(true);
      await d.docker('Unmount', { Name: 'c-survivor', ID: 'ctr-2' });
      expect(isMounted(mp)).toBe(false);
      await released(host(0), 'c-survivor');
      const again = (await d.docker('Mount', { Name: 'c-survivor', ID: 'ctr-3' })).body.Mountpoint as string;
      expect(readFileSync(join(again, 'during'), 'utf8')).toBe('written while the plugin was down');
      await d.docker('Unmount', { Name: 'c-survivor', ID: 'ctr-3' });
      await client().remove('c-survivor');
    });

    it('grows online while mounted (or at the next attach where the host cannot), and while detached; never shrinks', async () => {
      const c = client();
      await c.create('c-grow', opts({ size: '32M' }));
      const mp = await c.mount('c-grow', 'g1');
      writeAndFsync(join(mp, 'f'), 'kept through growth');
      const grown = await c.resize('c-grow', '64M');
      expect(grown.sizeBytes).toBe(64 * MiB);
      // Online ext4 growth needs CAP_SYS_RESOURCE; without it the filesystem grows at the next attach.
      expect(fsBytes(mp) > 40 * MiB).toBe(grown.pendingGrow !== true);
      expect(await refusal(c.resize('c-grow', '32M'))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/shrinking is not supported/) });
      await c.unmount('c-grow', 'g1');
      const mp2 = await c.mount('c-grow', 'g2');
      expect(fsBytes(mp2)).toBeGreaterThan(40 * MiB);
      expect((await c.get('c-grow')).pendingGrow).toBeUndefined();
      await c.unmount('c-grow', 'g2');
      // Detached: the device grows now, the filesystem at the next attach.
      expect((await c.resize('c-grow', '96M')).sizeBytes).toBe(96 * MiB);
      const mp3 = await c.mount('c-grow', 'g3');
      expect(fsBytes(mp3)).toBeGreaterThan(64 * MiB);
      expect(readFileSync(join(mp3, 'f'), 'utf8')).toBe('kept through growth');
      expect((await c.get('c-grow')).pendingGrow).toBeUndefined();
      await c.unmount('c-grow', 'g3');
      expect((await c.resize('c-grow', '96M')).sizeBytes).toBe(96 * MiB);
      await c.remove('c-grow');
    });

    it('snapshots a mounted volume and rolls back once it is unmounted; snapshot names are checked', async () => {
      const c = client();
      await c.create('c-snap', opts({ size: '32M' }));
      const mp = await c.mount('c-snap', 't1');
      writeAndFsync(join(mp, 'f'), 'v1');
      expect((await c.snapshot('c-snap', 's1')).name).toBe('s1');
      expect(await refusal(c.snapshot('c-snap', 's1'))).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/snapshot s1 of volume c-snap already exists/) });
      writeAndFsync(join(mp, 'f'), 'v2');
      expect((await c.listSnapshots('c-snap')).map((s) => s.name)).toEqual(['s1']);
      expect(await refusal(c.rollback('c-snap', 's1'))).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/mounted on this host/) });
      await c.unmount('c-snap', 't1');
      expect(await refusal(c.rollback('c-snap', 'nope'))).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/snapshot nope of volume c-snap not found/) });
      await c.rollback('c-snap', 's1');
      expect((await c.listSnapshots('c-snap')).map((s) => s.name)).toEqual(['s1']);
      const mp2 = await c.mount('c-snap', 't2');
      expect(readFileSync(join(mp2, 'f'), 'utf8')).toBe('v1');
      await c.unmount('c-snap', 't2');
      await c.removeSnapshot('c-snap', 's1');
      expect(await c.listSnapshots('c-snap')).toEqual([]);
      expect(await refusal(c.removeSnapshot('c-snap', 's1'))).toMatchObject({ code: 'NOT_FOUND' });
      expect(await refusal(c.snapshot('c-snap', '../s'))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/snapshot name/) });
      await c.remove('c-snap');
    });

    it('keeps the grown size when rolled back to a snapshot taken before the growth', async () => {
      const c = client();
      await c.create('c-regrown', opts({ size: '32M' }));
      const mp = await c.mount('c-regrown', 'r1');
      writeAndFsync(join(mp, 'f'), 'v1');
      await c.snapshot('c-regrown', 's1');
      writeAndFsync(join(mp, 'f'), 'v2');
      expect((await c.resize('c-regrown', '64M')).sizeBytes).toBe(64 * MiB);
      await c.unmount('c-regrown', 'r1');
      await c.rollback('c-regrown', 's1');
      const mp2 = await c.mount('c-regrown', 'r2');
      expect(readFileSync(join(mp2, 'f'), 'utf8')).toBe('v1');
      expect(fsBytes(mp2)).toBeGreaterThan(40 * MiB);
      expect(await c.get('c-regrown')).toMatchObject({ sizeBytes: 64 * MiB });
      expect((await c.get('c-regrown')).pendingGrow).toBeUndefined();
      await c.unmount('c-regrown', 'r2');
      await c.removeSnapshot('c-regrown', 's1');
      await c.remove('c-regrown');
    });

    it('removes a volume with its data; removing it again answers NOT_FOUND; a new volume of that name starts empty', async () => {
      const c = client();
      await c.create('c-gone', opts({ size: '32M' }));
      const mp = await c.mount('c-gone', 'r1');
      writeAndFsync(join(mp, 'old'), 'from the removed volume');
      await c.unmount('c-gone', 'r1');
      await c.remove('c-gone');
      expect(await refusal(c.get('c-gone'))).toMatchObject({ code: 'NOT_FOUND', message: 'volume c-gone not found' });
      expect((await c.list()).map((v) => v.name)).not.toContain('c-gone');
      expect(await refusal(c.remove('c-gone'))).toMatchObject({ code: 'NOT_FOUND' });
      expect(await refusal(c.mount('c-gone', 'r2'))).toMatchObject({ code: 'NOT_FOUND' });
      expect((await host(0).driver.docker('Remove', { Name: 'c-gone' })).body.Err).toBe('volume c-gone not found');
      await c.create('c-gone', opts({ size: '32M' }));
      const fresh = await c.mount('c-gone', 'r3');
      expect(existsSync(join(fresh, 'old'))).toBe(false);
      await c.unmount('c-gone', 'r3');
      await c.remove('c-gone');
      await released(host(0), 'c-gone');
    });

    it('refuses bad input with typed errors and keeps serving', async () => {
      const c = client();
      const cases: [() => Promise<unknown>, ErrorCode, RegExp][] = [
        [() => c.create('../escape', opts()), 'INVALID_ARGUMENT', /volume name "..\/escape" is invalid/],
        [() => c.create('c-bad', opts({ sise: '1G' })), 'INVALID_ARGUMENT', /unknown option "sise"/],
        [() => c.create('c-bad', opts({ size: '900P' })), 'INVALID_ARGUMENT', /larger than the maximum of 64T/],
        [() => c.create('c-bad', opts({ size: '1M' })), 'INVALID_ARGUMENT', /smaller than the minimum of 16M/],
        [() => c.create('c-bad', opts({ size: 'lots' })), 'INVALID_ARGUMENT', /is not a size/],
        [() => c.create('c-bad', opts({ size: '32M', fs: 'btrfs' })), 'INVALID_ARGUMENT', /option fs="btrfs" is not supported/],
        [() => c.create('c-bad', opts({ size: '32M', mode: '9999' })), 'INVALID_ARGUMENT', /option mode="9999" must be octal permissions/],
        [() => c.mount('c-missing', 'x'), 'NOT_FOUND', /volume c-missing not found/],
        [() => c.resize('c-missing', '64M'), 'NOT_FOUND', /volume c-missing not found/],
        [() => c.snapshot('c-missing', 's1'), 'NOT_FOUND', /volume c-missing not found/],
      ];
      for (const [call, code, msg] of cases) expect(await refusal(call())).toMatchObject({ code, message: expect.stringMatching(msg) });
      await c.create('c-valid', opts({ size: '32M' }));
      expect(await refusal(c.resize('c-valid', 'lots'))).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(await refusal(c.mount('c-valid', 'x'.repeat(1000)))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/mount (request: )?id/) });
      const names = (await c.list()).map((v) => v.name);
      expect(names).toContain('c-valid');
      expect(names.filter((n) => n === 'c-bad' || n.includes('escape'))).toEqual([]);
      await c.remove('c-valid');
      expect((await host(0).driver.docker('Plugin.Activate')).status).toBe(200);
    });

    if (traits.scope === 'global') {
      it('scope global: every host sees the volume, one host attaches it at a time, and the data follows it', async () => {
        const [a, b] = [client(0), client(1)];
        expect((await host(1).driver.docker('Capabilities', {})).body).toEqual({ Capabilities: { Scope: 'global' } });
        await a.create('c-scope', opts({ size: '32M' }));
        expect((await b.list()).map((v) => v.name)).toContain('c-scope');
        const mp = await a.mount('c-scope', 'on-a');
        writeAndFsync(join(mp, 'f'), 'from the first host');
        expect((await b.get('c-scope')).attachedTo).toBe(host(0).driver.hostId);
        expect(await refusal(b.mount('c-scope', 'on-b'))).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(new RegExp(`attached on host ${host(0).driver.hostId}, which is alive`)) });
        expect(host(1).dataPath('c-scope')).toEqual([]);
        await a.unmount('c-scope', 'on-a');
        await until(async () => (await b.get('c-scope')).attachedTo === undefined, 30_000, 'c-scope released by the first host');
        const mpB = await b.mount('c-scope', 'on-b');
        expect(readFileSync(join(mpB, 'f'), 'utf8')).toBe('from the first host');
        expect((await a.get('c-scope')).attachedTo).toBe(host(1).driver.hostId);
        await b.unmount('c-scope', 'on-b');
        await b.remove('c-scope');
        expect(await refusal(a.get('c-scope'))).toMatchObject({ code: 'NOT_FOUND' });
      });
    } else {
      it('scope local: only the creating host sees the volume; another host has its own of the same name', async () => {
        const [a, b] = [client(0), client(1)];
        expect((await host(1).driver.docker('Capabilities', {})).body).toEqual({ Capabilities: { Scope: 'local' } });
        await a.create('c-scope', opts({ size: '32M' }));
        expect(await refusal(b.get('c-scope'))).toMatchObject({ code: 'NOT_FOUND' });
        const mp = await a.mount('c-scope', 'on-a');
        writeAndFsync(join(mp, 'f'), 'from the first host');
        await b.create('c-scope', opts({ size: '64M' }));
        const mpB = await b.mount('c-scope', 'on-b');
        expect(mpB).not.toBe(mp);
        expect(existsSync(join(mpB, 'f'))).toBe(false);
        expect((await a.get('c-scope')).sizeBytes).toBe(32 * MiB);
        await b.unmount('c-scope', 'on-b');
        await b.remove('c-scope');
        expect(readFileSync(join(mp, 'f'), 'utf8')).toBe('from the first host');
        await a.unmount('c-scope', 'on-a');
        await a.remove('c-scope');
      });
    }
  });
}
