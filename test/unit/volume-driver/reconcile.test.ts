/**
 * The detach reconciler with a fake storage backend, a fake agent list and a
 * fake mount-namespace check (the boundaries), a controlled clock, and the
 * real embedded Store and mutex: failed detaches are retried with a bounded
 * backoff until they go through; a task reference is released only after
 * its container stayed absent from the agent's list for the grace period,
 * never while the agent cannot be asked, never when it is not a task's, and
 * never while another mount namespace still holds the filesystem.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../../common/store/index.js';
import { KeyedMutex } from '../../../common/mutex.js';
import { logger } from '../../../common/log.js';

const log = logger('volume-reconcile-test');
import { Metrics } from '../../../common/metrics.js';
import { FakeBackend } from './fake-backend.js';
import { DetachReconciler, type LiveContainers } from '../../../plugins/volume-driver/src/reconcile.js';
import { containerOfReference, taskReference } from '../../../plugins/volume-driver/src/references.js';
import { currentBootId, MountState, type MountRecord } from '../../../plugins/volume-driver/src/state.js';
import { VolumeService } from '../../../plugins/volume-driver/src/service.js';
import { volumeReference } from '../../../plugins/isolator/src/native/isolators/volumes.js';

class FakeAgent implements LiveContainers {
  readonly name = 'fake agent';
  running = new Set<string>();
  down = false;
  asked = 0;
  async list() {
    this.asked++;
    if (this.down) throw new Error('connect ECONNREFUSED');
    return new Set(this.running);
  }
}

let dir: string;
let store: Store;
let mounts: MountState;
let backend: FakeBackend;
let agent: FakeAgent;
let holders: string[];
let clock: number;
let metrics: Metrics;

const reconciler = (settings = {}) =>
  new DetachReconciler({
    mounts,
    backend: () => backend,
    mutex: new KeyedMutex(),
    log,
    settings: { intervalMs: 10_000, backoffMs: 500, maxBackoffMs: 4_000, graceMs: 15_000, ...settings },
    live: agent,
    holders: () => holders,
    metrics,
    now: () => clock,
  });

const record = (name: string, over: Partial<MountRecord> = {}): MountRecord => ({
  name,
  backend: 'local',
  phase: 'mounted',
  refs: ['x'],
  mountpoint: `/fake/${name}`,
  attachment: {},
  // A directory volume: no kernel mount needed, so the record is not stale for lack of one.
  volume: { name, backend: 'local', fsType: 'ext4', createdAt: 'x' },
  since: 'x',
  bootId: currentBootId(),
  ...over,
});

const counter = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === `corral_test_${name}`);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
};

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'corral-vol-reconcile-'));
  store = await openStore({ backend: 'embedded', path: join(dir, 'state.db'), sync: 'normal' });
  mounts = new MountState(store);
  backend = new FakeBackend();
  agent = new FakeAgent();
  holders = [];
  clock = 1_000_000;
  metrics = new Metrics('corral_test', false);
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('task references', () => {
  it('name their container, in the form the isolator takes them', () => {
    for (const id of ['kv.0.mxc06xvhcl99.ffde3075', 'a-b-c', 'x']) {
      expect(taskReference(id, 3)).toBe(volumeReference(id, 3));
      expect(containerOfReference(volumeReference(id, 0))).toBe(id);
    }
    expect(containerOfReference('2f0c7a1e9b8d4c3aa1b2c3d4e5f60718293a4b5c6d7e8f901a2b3c4d5e6f7081')).toBeUndefined();
    expect(containerOfReference('corral-')).toBeUndefined();
  });
});

describe('DetachReconciler', () => {
  it('retries a failed detach with a doubling, bounded backoff until it goes through', async () => {
    const r = reconciler();
    await mounts.put(record('v1', { phase: 'detaching', refs: [] }));
    backend.failDetach = 5;
    const attempt = async () => (await r.runOnce()).failed.length + backend.detachedNames.length;

    expect(await attempt()).toBe(1); // fails: next try in 500 ms
    expect(r.pending()).toMatchObject([{ volume: 'v1', failures: 1, retryInMs: 500, lastError: 'umount: target is busy' }]);
    clock += 499;
    expect((await r.runOnce()).failed).toEqual([]); // not due yet: nothing tried
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      clock += r.pending()[0]!.retryInMs;
      await r.runOnce();
      waits.push(r.pending()[0]?.retryInMs ?? 0);
    }
    // 500, then 1000, 2000, 4000 (the cap), 4000 — until the fifth failure is behind it.
    expect(waits).toEqual([1000, 2000, 4000, 4000]);
    expect(backend.failDetach).toBe(0);
    clock += 4000;
    expect((await r.runOnce()).released).toEqual(['v1']);
    expect(backend.detachedNames).toEqual(['v1']);
    expect(await mounts.get('v1')).toBeUndefined();
    expect(r.pending()).toEqual([]);
    expect(await counter('volume_detach_retries_total', { result: 'failed' })).toBe(4);
    expect(await counter('volume_detach_retries_total', { result: 'ok' })).toBe(1);
  });

  it('releases a task reference only after its container stayed absent for the grace period', async () => {
    const r = reconciler();
    agent.running = new Set(['c1', 'c2']);
    await mounts.put(record('v1', { refs: [taskReference('c1', 0), taskReference('c2', 0), 'docker-mount-id'] }));
    await r.runOnce();
    expect((await mounts.get('v1'))?.refs).toHaveLength(3);

    agent.running = new Set(['c1']); // c2 ended; its unmount never came
    await r.runOnce(); // first seen absent
    clock += 14_999;
    await r.runOnce();
    expect((await mounts.get('v1'))?.refs).toHaveLength(3);
    clock += 1;
    expect((await r.runOnce()).orphanRefs).toEqual([`v1/${taskReference('c2', 0)}`]);
    expect((await mounts.get('v1'))?.refs).toEqual([taskReference('c1', 0), 'docker-mount-id']);
    expect(await counter('volume_orphan_references_released_total')).toBe(1);

    // c1 goes too: its reference is released, but a reference that is not a task's is never judged by the agent's list.
    agent.running = new Set();
    await r.runOnce();
    clock += 15_000;
    await r.runOnce();
    expect(await mounts.get('v1')).toMatchObject({ phase: 'mounted', refs: ['docker-mount-id'] });
    expect(backend.detachedNames).toEqual([]);
  });

  it('detaches when the last reference was an orphan, unless another mount namespace still holds the filesystem', async () => {
    const r = reconciler();
    agent.running = new Set();
    await mounts.put(record('v1', { refs: [taskReference('gone', 0)] }));
    await r.runOnce();
    clock += 15_000;
    holders = ['pid 4242 at /var/lib/corral/sandboxes/x/data'];
    await r.runOnce();
    expect(await mounts.get('v1')).toMatchObject({ phase: 'mounted', refs: [taskReference('gone', 0)] });
    expect(backend.detachedNames).toEqual([]);
    holders = [];
    clock += 500;
    expect((await r.runOnce()).released).toEqual(['v1']);
    expect(backend.detachedNames).toEqual(['v1']);
    expect(await mounts.get('v1')).toBeUndefined();
  });

  it('a container that shows up again restarts its grace period', async () => {
    const r = reconciler();
    await mounts.put(record('v1', { refs: [taskReference('c1', 0)] }));
    agent.running = new Set(); // e.g. still launching on an agent that has just restarted
    await r.runOnce();
    clock += 10_000;
    agent.running = new Set(['c1']);
    await r.runOnce();
    agent.running = new Set();
    clock += 10_000;
    await r.runOnce();
    clock += 10_000;
    await r.runOnce();
    expect((await mounts.get('v1'))?.refs).toEqual([taskReference('c1', 0)]);
    clock += 5_000;
    await r.runOnce();
    expect(await mounts.get('v1')).toBeUndefined();
  });

  it('releases nothing on the word of an agent it cannot ask, but still finishes failed detaches', async () => {
    const r = reconciler();
    await mounts.put(record('v1', { refs: [taskReference('c1', 0)] }));
    await mounts.put(record('v2', { phase: 'detaching', refs: [] }));
    agent.down = true;
    const first = await r.runOnce();
    expect(first.liveError).toMatch(/ECONNREFUSED/);
    expect(first.released).toEqual(['v2']);
    clock += 60_000;
    await r.runOnce();
    expect((await mounts.get('v1'))?.refs).toEqual([taskReference('c1', 0)]);
    expect(backend.detachedNames).toEqual(['v2']);
  });

  it('without an agent to ask, task references stay until their own unmount', async () => {
    const r = new DetachReconciler({ mounts, backend: () => backend, mutex: new KeyedMutex(), log, now: () => clock });
    await mounts.put(record('v1', { refs: [taskReference('c1', 0)] }));
    await r.runOnce();
    clock += 3_600_000;
    await r.runOnce();
    expect((await mounts.get('v1'))?.refs).toEqual([taskReference('c1', 0)]);
  });

  it('in a running service, a failed unmount converges on its own, long before the periodic pass', async () => {
    backend.failDetach = 1;
    const s = new VolumeService({ hostId: 'h', store, backends: { local: backend }, rbdConfigured: false, defaultBackend: 'local', reconcile: { intervalMs: 3_600_000, backoffMs: 20 }, log });
    await s.start();
    await s.create('v1', null);
    await s.mount('v1', 'a');
    await expect(s.unmount('v1', 'a')).rejects.toThrow(/target is busy/);
    const deadline = Date.now() + 10_000;
    while ((await mounts.get('v1')) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(await mounts.get('v1')).toBeUndefined();
    expect(backend.detachedNames).toEqual(['v1']);
    await s.close();
  });
});
