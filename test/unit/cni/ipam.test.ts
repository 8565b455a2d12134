import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '../../../common/store/index.js';
import { logger } from '../../../common/log.js';
import { Ipam, type AssignRequest } from '../../../plugins/cni-calico-like/src/ipam/allocator.js';
import { poolSchema, type PoolInput } from '../../../plugins/cni-calico-like/src/ipam/types.js';
import { testDir } from '../../harness/resources.js';

const log = logger('ipam-test');
let cleanup: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function cluster(): Promise<{ store: Store; dir: string }> {
  const dir = testDir('cni-ipam');
  const store = await openStore({ backend: 'embedded', path: join(dir, 'cluster.db'), sync: 'normal' });
  cleanup.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, dir };
}

async function host(c: { store: Store; dir: string }, name: string, pools: PoolInput[]): Promise<Ipam> {
  const local = await openStore({ backend: 'embedded', path: join(c.dir, `${name}.db`), sync: 'normal' });
  const ipam = await Ipam.open({ host: name, pools: pools.map((p) => poolSchema.parse(p)), cluster: c.store, local, prefix: 'ipam/', loanTimeoutMs: 500, log });
  cleanup.push(async () => {
    await ipam.close();
    await local.close();
  });
  return ipam;
}

const req = (id: string, o: Partial<AssignRequest> = {}): AssignRequest => ({
  containerId: id,
  ifname: 'eth0',
  network: 'n',
  netns: `/run/netns/${id}`,
  netnsInode: 0,
  pools: ['p'],
  hostIfname: `crl${id}`,
  ...o,
});

describe('IPAM', () => {
  it('returns the same address for a repeated assign and frees exactly that handle', async () => {
    const ipam = await host(await cluster(), 'h1', [{ name: 'p', cidr: '100.96.0.0/24', blockSize: 28 }]);
    const a = await ipam.assign(req('c1'));
    const again = await ipam.assign(req('c1'));
    const b = await ipam.assign(req('c1', { ifname: 'eth1' }));
    expect(again.ip).toBe(a.ip);
    expect(b.ip).not.toBe(a.ip);
    expect((await ipam.release('c1', 'eth0'))?.ip).toBe(a.ip);
    expect(await ipam.release('c1', 'eth0')).toBeUndefined();
    expect(ipam.get('c1', 'eth1')?.ip).toBe(b.ip);
  });

  it('claims another block when its blocks are full and never shares a block between hosts', async () => {
    const c = await cluster();
    const pools = [{ name: 'p', cidr: '100.96.0.0/24', blockSize: 28 }];
    const [h1, h2] = [await host(c, 'h1', pools), await host(c, 'h2', pools)];
    const all = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? h1 : h2).assign(req(`c${i}`))));
    expect(new Set(all.map((a) => a.ip)).size).toBe(40);
    const b1 = new Set(h1.ownedBlocks().map((b) => b.cidr));
    for (const b of h2.ownedBlocks()) expect(b1.has(b.cidr)).toBe(false);
    const claimed = await h1.clusterBlocks('p');
    expect(new Set(claimed.map((b) => b.doc.cidr)).size).toBe(claimed.length);
  });

  it('survives a restart: the same handles keep their addresses, new ones get others', async () => {
    const c = await cluster();
    const pools = [{ name: 'p', cidr: '100.96.0.0/24', blockSize: 28 }];
    const local = await openStore({ backend: 'embedded', path: join(c.dir, 'h1.db'), sync: 'normal' });
    const first = await Ipam.open({ host: 'h1', pools: pools.map((p) => poolSchema.parse(p)), cluster: c.store, local, prefix: 'ipam/', loanTimeoutMs: 500, log });
    const kept = await Promise.all(['a', 'b', 'c'].map((id) => first.assign(req(id))));
    await first.close();
    const second = await Ipam.open({ host: 'h1', pools: pools.map((p) => poolSchema.parse(p)), cluster: c.store, local, prefix: 'ipam/', loanTimeoutMs: 500, log });
    cleanup.push(async () => {
      await second.close();
      await local.close();
    });
    for (const k of kept) expect(second.get(k.containerId, 'eth0')?.ip).toBe(k.ip);
    const fresh = await second.assign(req('d'));
    expect(kept.map((k) => k.ip)).not.toContain(fresh.ip);
  });

  it('borrows from another host when the pool has no free block, unless strict affinity', async () => {
    const c = await cluster();
    const pools = [{ name: 'p', cidr: '100.96.0.0/28', blockSize: 29 }];
    const [h1, h2] = [await host(c, 'h1', pools), await host(c, 'h2', pools)];
    await h1.assign(req('a1'));
    await h2.assign(req('b1'));
    // Both /29 blocks are claimed now; h2 fills its own, then borrows from h1.
    for (let i = 2; i <= 8; i++) await h2.assign(req(`b${i}`));
    const borrowed = await h2.assign(req('b9'));
    expect(borrowed.loanKey).toBeDefined();
    expect(h1.ownedBlocks()[0]!.cidr).toBe(borrowed.block);
    expect(h2.borrowedAddresses()).toEqual([borrowed.ip]);
    // The owner never hands out the lent address itself.
    const mine = await Promise.all(Array.from({ length: 6 }, (_, i) => h1.assign(req(`a${i + 2}`))));
    expect(mine.map((m) => m.ip)).not.toContain(borrowed.ip);
    await expect(h1.assign(req('a99'))).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    // Giving it back frees it on the owner.
    await h2.release('b9', 'eth0');
    await new Promise((r) => setTimeout(r, 200));
    expect((await h1.assign(req('a100'))).ip).toBe(borrowed.ip);
  });

  it('with strict affinity reports exhaustion instead of borrowing', async () => {
    const c = await cluster();
    const pools = [{ name: 'p', cidr: '100.96.0.0/29', blockSize: 30, strictAffinity: true }];
    const [h1, h2] = [await host(c, 'h1', pools), await host(c, 'h2', pools)];
    await h1.assign(req('a1'));
    for (let i = 0; i < 4; i++) await h2.assign(req(`b${i}`));
    await expect(h2.assign(req('b5'))).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(h2.exhausted).toBe(true);
  });

  it('refuses an unknown pool and a pool shaped differently from the cluster', async () => {
    const c = await cluster();
    const h1 = await host(c, 'h1', [{ name: 'p', cidr: '100.96.0.0/24' }]);
    await expect(h1.assign(req('x', { pools: ['nope'] }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(host(c, 'h2', [{ name: 'p', cidr: '100.97.0.0/24' }])).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });

  it('gives back blocks that stayed empty, keeping the number asked for', async () => {
    const c = await cluster();
    const h1 = await host(c, 'h1', [{ name: 'p', cidr: '100.96.0.0/24', blockSize: 30 }]);
    const got = await Promise.all(Array.from({ length: 10 }, (_, i) => h1.assign(req(`c${i}`))));
    for (const a of got) await h1.release(a.containerId, 'eth0');
    expect(h1.ownedBlocks().length).toBeGreaterThanOrEqual(3);
    await h1.releaseEmptyBlocks(0, 1);
    expect(h1.ownedBlocks()).toHaveLength(1);
    await h1.releaseEmptyBlocks(0, 0);
    expect(h1.ownedBlocks()).toHaveLength(0);
    expect(await h1.clusterBlocks('p')).toHaveLength(0);
  });
});
