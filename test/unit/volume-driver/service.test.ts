/**
 * VolumeService bookkeeping with a fake backend (the storage boundary) and the
 * real embedded Store: reference counting by id, crash recovery of half-done
 * attaches and detaches, stale records after a reboot or a takeover, and the
 * refusal to guess when the rbd backend cannot be asked.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../../common/store/index.js';
import { VolumeService } from '../../../plugins/volume-driver/src/service.js';
import { currentBootId, MountState, type MountRecord } from '../../../plugins/volume-driver/src/state.js';
import { FakeBackend } from './fake-backend.js';

let dir: string;
let store: Store;
let backend: FakeBackend;
const service = (opts: Partial<ConstructorParameters<typeof VolumeService>[0]> = {}) =>
  new VolumeService({ hostId: 'h', store, backends: { local: backend }, rbdConfigured: false, defaultBackend: 'local', ...opts });

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'corral-vol-unit-'));
  store = await openStore({ backend: 'embedded', path: join(dir, 'state.db'), sync: 'normal' });
  backend = new FakeBackend();
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const record = (over: Partial<MountRecord>): MountRecord => ({
  name: 'v1',
  backend: 'local',
  phase: 'mounted',
  refs: ['c1'],
  mountpoint: '/fake/v1',
  attachment: { device: '/dev/old' },
  volume: { name: 'v1', backend: 'local', fsType: 'ext4', createdAt: 'x' },
  since: 'x',
  bootId: currentBootId(),
  ...over,
});

describe('VolumeService', () => {
  it('attaches on the first reference and detaches after the last, counting ids once', async () => {
    const s = service();
    await s.create('v1', null);
    expect(await s.mount('v1', 'a')).toBe('/fake/v1');
    await s.mount('v1', 'b');
    await s.mount('v1', 'a');
    expect(backend.attaches).toBe(1);
    expect((await s.get('v1')).refs).toBe(2);
    await s.unmount('v1', 'a');
    await s.unmount('v1', 'a');
    expect(backend.detaches).toHaveLength(0);
    await s.unmount('v1', 'b');
    expect(backend.detaches).toEqual([{ device: '/dev/fake1' }]);
    await expect(s.mount('v1', 'x'.repeat(300))).rejects.toThrow(/at most 256/);
  });

  it('serialises concurrent mounts of one volume into one attach', async () => {
    const s = service();
    await s.create('v1', null);
    await Promise.all(['a', 'b', 'c', 'd'].map((id) => s.mount('v1', id)));
    expect(backend.attaches).toBe(1);
    expect((await s.get('v1')).refs).toBe(4);
  });

  it('rolls back an attach a crash interrupted, using the progress it saved', async () => {
    await new MountState(store).put(record({ phase: 'attaching', attachment: { step: 1 } }));
    const s = service();
    await s.start();
    expect(backend.detaches).toEqual([{ step: 1 }]);
    expect(await new MountState(store).get('v1')).toBeUndefined();
    await s.close();
  });

  it('keeps a failed detach; a mount meanwhile finishes it first, or says why it cannot', async () => {
    const s = service();
    await s.create('v1', null);
    await s.mount('v1', 'a');
    backend.failDetach = 2;
    await expect(s.unmount('v1', 'a')).rejects.toThrow(/target is busy/);
    expect((await new MountState(store).get('v1'))?.phase).toBe('detaching');
    expect((await s.get('v1')).refs).toBe(0);
    // Still busy: the mount says so (and the reconciler keeps retrying).
    await expect(s.mount('v1', 'b')).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/still being detached .*target is busy/) });
    // No longer busy: the mount finishes the detach, then attaches afresh.
    expect(await s.mount('v1', 'b')).toBe('/fake/v1');
    expect(backend.detaches).toEqual([{ device: '/dev/fake1' }]);
    expect(backend.attaches).toBe(2);
    expect((await s.get('v1')).refs).toBe(1);
    s.reconciler.stop();
  });

  it('removing a volume whose detach failed finishes the detach first', async () => {
    const s = service();
    await s.create('v1', null);
    await s.mount('v1', 'a');
    backend.failDetach = 1;
    await expect(s.unmount('v1', 'a')).rejects.toThrow(/target is busy/);
    await s.remove('v1');
    expect(backend.detaches).toHaveLength(1);
    expect(backend.vols.has('v1')).toBe(false);
    expect(await new MountState(store).get('v1')).toBeUndefined();
    s.reconciler.stop();
  });

  it('drops mount records of an earlier boot and of volumes another host took over', async () => {
    const state = new MountState(store);
    await state.put(record({ name: 'old-boot', bootId: 'another-boot' }));
    await state.put(record({ name: 'kept' }));
    backend.holds = true;
    const s = service();
    await s.start();
    expect((await state.all()).map((m) => m.name)).toEqual(['kept']);
    await s.close();
    // The takeover is found by the next check (here: the next start).
    backend.holds = false;
    const again = service();
    await again.start();
    expect(await state.all()).toEqual([]);
    await again.close();
  });

  it('refuses to create or find volumes when the configured rbd backend cannot be asked', async () => {
    const s = service({ rbdConfigured: true, rbdUnavailable: 'the addon is not built' });
    await expect(s.create('v2', { backend: 'local' })).rejects.toThrow(/cannot tell whether rbd volume v2 exists: the addon is not built/);
    await expect(s.create('v3', { backend: 'rbd' })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const plain = service();
    await expect(plain.create('v4', { backend: 'rbd' })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(plain.get('nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
