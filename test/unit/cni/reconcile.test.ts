import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { openStore } from '../../../common/store/index.js';
import { logger } from '../../../common/log.js';
import { Ipam } from '../../../plugins/cni-calico-like/src/ipam/allocator.js';
import { poolSchema } from '../../../plugins/cni-calico-like/src/ipam/types.js';
import { HttpLiveContainers, liveUnion, type LiveContainers } from '../../../common/live-containers.js';
import { LeakReconciler } from '../../../plugins/cni-calico-like/src/daemon/reconciler.js';
import type { CniService } from '../../../plugins/cni-calico-like/src/cni/service.js';
import { testDir } from '../../harness/resources.js';

const log = logger('reconcile-test');
let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanup.push(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/containers`;
}

describe('live container sources', () => {
  it('reads the agent list in either JSON shape and refuses anything else', async () => {
    let reply: unknown = ['a', 'b'];
    let status = 200;
    const url = await serve((_req, res) => {
      res.statusCode = status;
      res.end(JSON.stringify(reply));
    });
    const src = new HttpLiveContainers(url, 2000);
    expect([...(await src.list())]).toEqual(['a', 'b']);
    reply = { containers: ['c'] };
    expect([...(await src.list())]).toEqual(['c']);
    reply = { containers: 'nope' };
    await expect(src.list()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    status = 500;
    await expect(src.list()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(new HttpLiveContainers('http://127.0.0.1:1/x', 500).list()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('unions sources and fails when any fails', async () => {
    const ok = (ids: string[]): LiveContainers => ({ name: 'ok', list: async () => new Set(ids) });
    const bad: LiveContainers = {
      name: 'bad',
      list: async () => {
        throw new Error('down');
      },
    };
    expect([...(await liveUnion([ok(['a']), ok(['b'])]))].sort()).toEqual(['a', 'b']);
    await expect(liveUnion([ok(['a']), bad])).rejects.toThrow('down');
  });
});

describe('leak reconciler', () => {
  async function setup(sources: LiveContainers[], graceMs = 0) {
    const dir = testDir('cni-recon');
    const cluster = await openStore({ backend: 'embedded', path: join(dir, 'c.db'), sync: 'normal' });
    const local = await openStore({ backend: 'embedded', path: join(dir, 'l.db'), sync: 'normal' });
    const ipam = await Ipam.open({ host: 'h', pools: [poolSchema.parse({ name: 'p', cidr: '100.96.0.0/24' })], cluster, local, prefix: 'i/', loanTimeoutMs: 200, log });
    cleanup.push(async () => {
      await ipam.close();
      await local.close();
      await cluster.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const reclaimed: string[] = [];
    const busy = new Set<string>();
    // The service part the reconciler uses: busy handles and reclaim (which re-checks before freeing).
    const service = {
      busy: (id: string) => busy.has(id),
      reclaim: async (id: string, ifname: string, stillDead: () => boolean) => {
        if (!stillDead()) return false;
        await ipam.release(id, ifname);
        reclaimed.push(id);
        return true;
      },
    } as unknown as CniService;
    const rec = new LeakReconciler({ ipam, service, sources, intervalMs: 0, graceMs, releaseEmptyBlocksAfterMs: 3_600_000, keepEmptyBlocks: 1, log });
    for (const id of ['live', 'dead', 'busy']) {
      await ipam.assign({ containerId: id, ifname: 'eth0', network: 'n', netns: `/run/netns/ct-cni-none-${id}`, netnsInode: 0, pools: ['p'], hostIfname: `crl${id}` });
    }
    busy.add('busy');
    return { ipam, rec, reclaimed };
  }

  it('frees only containers every source calls dead, never busy or young ones', async () => {
    const { ipam, rec, reclaimed } = await setup([{ name: 'agent', list: async () => new Set(['live']) }]);
    const report = await rec.runOnce();
    expect(reclaimed).toEqual(['dead']);
    expect(report.freed).toHaveLength(1);
    expect(
      ipam
        .allocations()
        .map((a) => a.containerId)
        .sort(),
    ).toEqual(['busy', 'live']);
  });

  it('frees nothing when a source cannot answer', async () => {
    const { ipam, rec, reclaimed } = await setup([
      {
        name: 'agent',
        list: async () => {
          throw new Error('agent down');
        },
      },
    ]);
    const report = await rec.runOnce();
    expect(report.skipped).toContain('agent down');
    expect(reclaimed).toEqual([]);
    expect(ipam.allocations()).toHaveLength(3);
  });

  it('leaves addresses younger than the grace period alone', async () => {
    const { rec, reclaimed } = await setup([{ name: 'agent', list: async () => new Set<string>() }], 60_000);
    await rec.runOnce();
    expect(reclaimed).toEqual([]);
  });
});
