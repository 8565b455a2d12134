/**
 * Discovery as active replicas: two daemons follow the same master on their
 * own and share one Store (a real etcd). Both answer a task's name the same;
 * KV written through one is read through the other; a catalog registration
 * made through either shows on both (over HTTP and DNS) and its
 * deregistration too; one replica stopping leaves the other serving.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { etcdForTests } from '../harness/etcd-suite.js';
import { untilValue } from '../harness/wait.js';
import type { RunningDiscovery } from '../../discovery/src/daemon.js';
import { startCluster, startReplica, type TestCluster } from './cluster.js';
import { addresses } from './dns-client.js';

const etcd = etcdForTests();
const cleanup: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

async function twoReplicas(): Promise<{ c: TestCluster; a: RunningDiscovery; b: RunningDiscovery }> {
  const store = { backend: 'etcd' as const, etcdEndpoints: [etcd().endpoint], namespace: `disc-${Date.now()}/` };
  const c = await startCluster({ discovery: { store, nodeName: 'control1' } });
  cleanup.push(() => c.dispose());
  const b = await startReplica(c, store);
  cleanup.push(() => b.close());
  return { c, a: c.discovery, b };
}

const json = async <T>(url: string, init?: RequestInit): Promise<T> => {
  const res = await fetch(url, init);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
};

/** Polls until both replicas answer `name` with `want` (sorted). */
async function bothAnswer(a: RunningDiscovery, b: RunningDiscovery, name: string, want: string[]): Promise<void> {
  const key = JSON.stringify([...want].sort());
  await untilValue(
    `${name} answered alike by both replicas`,
    async () => {
      const [x, y] = await Promise.all([addresses(a.dnsPort, name), addresses(b.dnsPort, name)]);
      return JSON.stringify([...x].sort()) === key && JSON.stringify([...y].sort()) === key ? true : undefined;
    },
    10_000,
    50,
  );
}

describe('discovery replicas on one Store', () => {
  it("serve the same task records, following the master each on its own; one stopping leaves the other's answers", async () => {
    const { c, a, b } = await twoReplicas();
    await c.launch({ id: 'web-1', name: 'web' });
    await c.launch({ id: 'web-2', name: 'web' });
    const webName = 'web.marathon.corral';
    const ips = [c.ipOf('web-1'), c.ipOf('web-2')];
    await bothAnswer(a, b, webName, ips);
    await a.close();
    expect((await addresses(b.dnsPort, webName)).sort()).toEqual([...ips].sort());
  });

  it('share KV, and catalog registrations made through either replica show on both, over HTTP and DNS', async () => {
    const { a, b } = await twoReplicas();
    // KV written through A is read through B.
    expect(await (await fetch(`${a.httpUrl}/v1/kv/cfg/x`, { method: 'PUT', body: 'hello' })).text()).toBe('true');
    expect(await (await fetch(`${b.httpUrl}/v1/kv/cfg/x?raw`)).text()).toBe('hello');

    // An external service registered through A.
    const reg = { Node: 'db-host', Address: '10.9.0.7', Service: { Service: 'db', Port: 5432 }, Check: { CheckID: 'db-alive', Status: 'passing', ServiceID: 'db' } };
    expect((await fetch(`${a.httpUrl}/v1/catalog/register`, { method: 'PUT', body: JSON.stringify(reg) })).status).toBe(200);
    await untilValue('db in B’s catalog', async () => ((await json<Array<{ Node: string }>>(`${b.httpUrl}/v1/catalog/service/db`)).some((s) => s.Node === 'db-host') ? true : undefined), 10_000, 50);
    await bothAnswer(a, b, 'db.service.corral', ['10.9.0.7']);

    // A second service on the node through B, then the first deregistered through B: A follows both.
    const reg2 = { Node: 'db-host', Address: '10.9.0.7', Service: { Service: 'cache', Port: 6379 } };
    expect((await fetch(`${b.httpUrl}/v1/catalog/register`, { method: 'PUT', body: JSON.stringify(reg2) })).status).toBe(200);
    await bothAnswer(a, b, 'cache.service.corral', ['10.9.0.7']);
    expect((await fetch(`${b.httpUrl}/v1/catalog/deregister`, { method: 'PUT', body: JSON.stringify({ Node: 'db-host', ServiceID: 'db' }) })).status).toBe(200);
    await untilValue('db gone from A', async () => ((await json<unknown[]>(`${a.httpUrl}/v1/catalog/service/db`)).length === 0 ? true : undefined), 10_000, 50);
    expect(await json<unknown[]>(`${b.httpUrl}/v1/catalog/service/db`)).toEqual([]);
    expect((await json<unknown[]>(`${a.httpUrl}/v1/catalog/service/cache`)).length).toBe(1);

    // The whole node deregistered through A: gone from B.
    expect((await fetch(`${a.httpUrl}/v1/catalog/deregister`, { method: 'PUT', body: JSON.stringify({ Node: 'db-host' }) })).status).toBe(200);
    await untilValue('db-host gone from B', async () => ((await json<Array<{ Node: string }>>(`${b.httpUrl}/v1/catalog/nodes`)).some((n) => n.Node === 'db-host') ? undefined : true), 10_000, 50);
  });
});
