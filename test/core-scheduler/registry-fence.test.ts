/**
 * Fencing of registry writes: a write goes out only with the leader's compare
 * on its election key, so once that key is gone (lease lapsed, or another
 * candidate's key took its place) nothing the old leader writes lands. Checked
 * on the embedded Store, and on a real etcd with the real election.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCorralError } from '../../contracts/errors.js';
import { EmbeddedStore } from '../../common/store/embedded.js';
import { EtcdElection } from '../../common/store/etcd-election.js';
import { Registry, type RegistryFence, type PersistedFramework } from '../../core-scheduler/src/master/registry.js';
import { masterConfigSchema } from '../../core-scheduler/src/master/config.js';
import { etcdForTests } from '../harness/etcd-suite.js';
import { twoCandidates } from '../harness/etcd-candidates.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { untilValue } from '../harness/wait.js';
import type { Store } from '../../contracts/store/types.js';

const cleanup = stopsAfterEach();

/** The cluster record written with each framework (its id counters); its values do not matter here. */
const CLUSTER = { id: 'fence', createdAt: 0, nextAgent: 1, nextFramework: 1 };

function framework(id: string): PersistedFramework {
  return { id, info: { user: 'u', name: id, id: { value: id } }, registeredAt: 1 };
}

function embedded(): Store {
  const dir = mkdtempSync(join(tmpdir(), 'corral-fence-'));
  const store = new EmbeddedStore({ path: join(dir, 'state.db'), sync: 'normal', leaseCheckIntervalMs: 50 });
  cleanup.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** A fence on `key` as it is now, recording why it was lost. */
async function fenceOn(store: Store, key: string, holds: () => boolean = () => true): Promise<RegistryFence & { reasons: string[] }> {
  const kv = await store.get(key);
  expect(kv).toBeDefined();
  const reasons: string[] = [];
  return { compare: [{ key, target: 'createRevision', op: '=', value: kv!.createRevision }], holds, lost: (why) => reasons.push(why), reasons };
}

async function expectRefused(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCorralError(err, 'UNAVAILABLE'), String(err)).toBe(true);
  expect((err as Error).message).toMatch(/no longer leads/);
}

describe('registry fencing (embedded store)', () => {
  it('writes land while the election key lives; after its lease is revoked nothing lands and the loss is reported once', async () => {
    const store = embedded();
    const lease = await store.grantLease(30);
    await store.put('election/m/1', 'me', { lease });
    const fence = await fenceOn(store, 'election/m/1');
    const registry = new Registry(store);
    registry.setFence(fence);
    await registry.load();
    await registry.apply({ type: 'put-framework', framework: framework('f1'), cluster: CLUSTER });
    expect(await store.get('corral/registry/frameworks/f1')).toBeDefined();

    await store.revokeLease(lease);
    const revision = await store.currentRevision();
    await expectRefused(registry.apply({ type: 'put-framework', framework: framework('f2'), cluster: CLUSTER }));
    await expectRefused(registry.apply({ type: 'set-weights', weights: [{ role: 'r', weight: 2 }] }));
    expect(await store.get('corral/registry/frameworks/f2')).toBeUndefined();
    expect(await store.currentRevision()).toBe(revision);
    expect(fence.reasons).toHaveLength(1);
    expect(fence.reasons[0]).toMatch(/election key is gone/);
  });

  it('a key of the same name created again (a successor) does not satisfy the old fence', async () => {
    const store = embedded();
    await store.put('election/m/1', 'old');
    const registry = new Registry(store);
    registry.setFence(await fenceOn(store, 'election/m/1'));
    await registry.load();
    await store.delete('election/m/1');
    await store.put('election/m/1', 'new');
    await expectRefused(registry.apply({ type: 'remove-framework', id: 'f1', removedAt: Date.now() }));
  });

  it('a fence that no longer holds locally (lease may have lapsed) sends nothing at all', async () => {
    const store = embedded();
    await store.put('election/m/1', 'me');
    let holds = true;
    const fence = await fenceOn(store, 'election/m/1', () => holds);
    const registry = new Registry(store);
    registry.setFence(fence);
    await registry.load();
    holds = false;
    const revision = await store.currentRevision();
    await expectRefused(registry.apply({ type: 'put-framework', framework: framework('f1'), cluster: CLUSTER }));
    expect(await store.currentRevision()).toBe(revision);
    expect(fence.reasons[0]).toMatch(/lease may have expired/);
  });
});

describe('election and registry fencing on etcd', () => {
  const etcd = etcdForTests();

  it('candidates standing and observing at once all name the one elected, and follow its successor', async () => {
    const namespace = `observe-${Date.now()}/`;
    const elections = [0, 1, 2].map(() => new EtcdElection({ endpoints: [etcd().endpoint], namespace, name: 'm', ttlSeconds: 5 }));
    for (const e of elections) cleanup.push(() => e.close());
    const seen: Array<string | undefined> = [undefined, undefined, undefined];
    const won: boolean[] = [false, false, false];
    elections.forEach((e, i) => e.observe((v) => (seen[i] = v)));
    const candidacies = elections.map((e, i) => e.campaign(`candidate-${i}`, { onElected: () => (won[i] = true), onError: () => undefined }));
    const agreed = async (): Promise<number | undefined> => {
      const winners = won.flatMap((w, i) => (w ? [i] : []));
      return winners.length === 1 && seen.every((v) => v === `candidate-${winners[0]}`) ? winners[0] : undefined;
    };
    const leader = await untilValue('every observer names the elected candidate', agreed, 15_000);
    await candidacies[leader]!.resign();
    won[leader] = false;
    const next = await untilValue('every observer names the successor', agreed, 15_000);
    expect(next).not.toBe(leader);
  }, 60_000);

  it('the deposed leader’s write fails inside etcd once its successor is elected', async () => {
    // Both stand at once: either may win, and only one does.
    const { store, candidacies, won, leaderIdx, first, other } = await twoCandidates(cleanup, etcd().endpoint, 'fence', 5);
    expect(first.key.startsWith('election/m/')).toBe(true);
    expect(won[other]).toBeUndefined();

    const reasons: string[] = [];
    const registry = new Registry(store);
    // The old leader does not know it was deposed (holds() stays true): only etcd can stop it.
    registry.setFence({ compare: [{ key: first.key, target: 'createRevision', op: '=', value: first.createRevision }], holds: () => true, lost: (why) => reasons.push(why) });
    await registry.load();
    await registry.apply({ type: 'put-framework', framework: framework('before'), cluster: CLUSTER });

    await candidacies[leaderIdx]!.resign();
    const second = await untilValue('the other candidate elected', async () => won[other], 15_000);
    expect(second.key).not.toBe(first.key);

    await expectRefused(registry.apply({ type: 'put-framework', framework: framework('after'), cluster: CLUSTER }));
    expect(await store.get('corral/registry/frameworks/before')).toBeDefined();
    expect(await store.get('corral/registry/frameworks/after')).toBeUndefined();
    expect(reasons).toHaveLength(1);
  }, 60_000);
});

describe('ha config', () => {
  it('is off by default, with the documented defaults', () => {
    const c = masterConfigSchema.parse({});
    expect(c.ha).toEqual({ enabled: false, electionName: 'corral-master', leaseTtlSeconds: 5, crashDetection: true });
  });

  it('needs the etcd store backend', () => {
    const embeddedStore = masterConfigSchema.safeParse({ ha: { enabled: true }, store: { backend: 'embedded', path: '/tmp/x.db' } });
    expect(embeddedStore.success).toBe(false);
    expect(embeddedStore.error?.issues[0]?.message).toMatch(/etcd/);
    expect(embeddedStore.error?.issues[0]?.path).toEqual(['ha', 'enabled']);
    expect(masterConfigSchema.safeParse({ ha: { enabled: true } }).success).toBe(false);
    const ok = masterConfigSchema.safeParse({ ha: { enabled: true, leaseTtlSeconds: 3 }, store: { backend: 'etcd', etcdEndpoints: ['http://127.0.0.1:2379'] } });
    expect(ok.success).toBe(true);
    expect(masterConfigSchema.safeParse({ ha: { enabled: true, electionName: 'a/b' }, store: { backend: 'etcd', etcdEndpoints: ['http://127.0.0.1:2379'] } }).success).toBe(false);
  });
});
