/**
 * The control plane's etcd as three nodes run it: three node files with the
 * `etcd` component on loopback addresses, each brought up by the one node
 * lifecycle (`nodeUp`); the cluster has a leader and takes writes, keeps
 * working without one member, refuses writes without quorum (a clear error,
 * nothing lost) and takes them again when a member returns.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort } from '../harness/ports.js';
import { recordPid, testDir } from '../harness/resources.js';
import { nodeConfigSchema, type NodeConfig } from '../../provision/src/config.js';
import { nodeDown, nodeUp } from '../../provision/src/run.js';
import { requireEtcdBinary } from '../harness/etcd.js';

const root = testDir('etcd3');
const members = [
  { name: 'c1', address: '127.0.0.21' },
  { name: 'c2', address: '127.0.0.22' },
  { name: 'c3', address: '127.0.0.23' },
];
let nodes: NodeConfig[] = [];
let client: Etcd3 | undefined;

afterAll(async () => {
  client?.close();
  for (const n of nodes) await nodeDown(n.dir, { purge: true });
  rmSync(root, { recursive: true, force: true });
});

const put = (key: string, value: string): Promise<unknown> => client!.put(key).value(value).exec();

describe('a three-member etcd through corral node up', () => {
  it('forms a cluster, survives one member down, stops writes without quorum and resumes', async () => {
    requireEtcdBinary();
    const clientPort = await freePort();
    const peerPort = await freePort();
    nodes = members.map((m) =>
      nodeConfigSchema.parse({ role: 'control', name: m.name, address: m.address, dir: join(root, m.name), components: ['etcd'], etcd: { members, clientPort, peerPort, token: `ct-${clientPort}` } }),
    );
    const onPid = (name: string, pid: number): void => recordPid(`etcd3-${name}`, pid);
    // Each member is ready only once the cluster has a leader: the three come up together.
    await Promise.all(nodes.map((n) => nodeUp(n, { timeoutMs: 120_000, onPid })));

    const endpoints = members.map((m) => `http://${m.address}:${clientPort}`);
    client = new Etcd3({ hosts: endpoints, dialTimeout: 3000 });
    expect((await client.cluster.memberList({})).members.map((m) => m.name).sort()).toEqual(['c1', 'c2', 'c3']);
    await put('corral/test/a', '1');

    // One member down: two of three are a quorum.
    await nodeDown(nodes[0]!.dir, { purge: true });
    await put('corral/test/b', '2');
    expect(await client.get('corral/test/a').string()).toBe('1');

    // Two down: no quorum, writes fail (bounded), nothing is lost.
    await nodeDown(nodes[1]!.dir, { purge: true });
    const lone = new Etcd3({ hosts: [endpoints[2]!], dialTimeout: 2000 });
    try {
      await expect(
        lone
          .put('corral/test/c')
          .value('3')
          .options({ deadline: Date.now() + 3000 })
          .exec(),
      ).rejects.toThrow();
    } finally {
      lone.close();
    }

    // A member returns (its data kept): quorum again, the earlier writes are all there.
    await nodeUp(nodes[1]!, { timeoutMs: 120_000, onPid });
    await put('corral/test/d', '4');
    expect(await client.get('corral/test/b').string()).toBe('2');
    expect(await client.get('corral/test/d').string()).toBe('4');
  }, 300_000);
});
