/**
 * The control plane's etcd as three nodes run it: three node files with the
 * `etcd` component on loopback addresses, each brought up by the one node
 * lifecycle (`nodeUp`); the cluster has a leader and takes writes, keeps
 * working without one member, refuses writes without quorum (a clear error,
 * nothing lost) and takes them again when a member returns. With TLS in the
 * node files, the members speak TLS to clients and peers, want certificates
 * of the cluster CA, and have authentication on with a user per kind of
 * daemon, the master's confined to corral's prefix.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort } from '../harness/ports.js';
import { recordPid, testDir } from '../harness/resources.js';
import { etcdEndpoints, nodeConfigSchema, type NodeConfig } from '../../provision/src/config.js';
import { ETCD_NAMESPACE, etcdClientFiles, secureEtcd } from '../../provision/src/etcd-tls.js';
import { ensureClusterCa } from '../../provision/src/tls.js';
import { EtcdStore } from '../../common/store/etcd.js';
import { isCorralError } from '../../contracts/errors.js';
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

describe('a three-member etcd with TLS through corral node up', () => {
  const tlsRoot = testDir('etcd3-tls');
  const tlsMembers = [
    { name: 't1', address: '127.0.0.24' },
    { name: 't2', address: '127.0.0.25' },
    { name: 't3', address: '127.0.0.26' },
  ];
  let tlsNodes: NodeConfig[] = [];
  afterAll(async () => {
    for (const n of tlsNodes) await nodeDown(n.dir, { purge: true });
    rmSync(tlsRoot, { recursive: true, force: true });
  });

  it('members speak TLS to clients and peers, require certificates of the cluster CA, and confine corral to its prefix', async () => {
    requireEtcdBinary();
    const [clientPort, peerPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    // One CA for the three (a control node would hold it; here they share the directory): made before they come up together.
    const caDir = join(tlsRoot, 'ca');
    await ensureClusterCa(caDir, 'corral test cluster CA');
    tlsNodes = tlsMembers.map((m) =>
      nodeConfigSchema.parse({
        role: 'control',
        name: m.name,
        address: m.address,
        dir: join(tlsRoot, m.name),
        components: ['etcd'],
        tls: { dir: join(tlsRoot, m.name, 'tls'), caDir },
        etcd: { members: tlsMembers, clientPort, peerPort, metricsPort, token: `ct-${clientPort}` },
      }),
    );
    const onPid = (name: string, pid: number): void => recordPid(`etcd3-tls-${name}`, pid);
    await Promise.all(tlsNodes.map((n) => nodeUp(n, { timeoutMs: 120_000, onPid })));

    const n1 = tlsNodes[0]!;
    const endpoints = etcdEndpoints(n1);
    expect(endpoints.every((e) => e.startsWith('https://'))).toBe(true);
    const clientTls = etcdClientFiles(n1.tls!.dir);
    const rootFile = join(caDir, 'etcd-root.password');
    expect(statSync(rootFile).mode & 0o777).toBe(0o600);

    // Peers: every member advertises https peer and client URLs.
    const root = new Etcd3({
      hosts: endpoints,
      credentials: { rootCertificate: readFileSync(clientTls.ca), certChain: readFileSync(clientTls.cert), privateKey: readFileSync(clientTls.key) },
      auth: { username: 'root', password: readFileSync(rootFile, 'utf8').trim() },
    });
    try {
      const list = await root.cluster.memberList({});
      expect(list.members.map((m) => m.name).sort()).toEqual(['t1', 't2', 't3']);
      for (const m of list.members) expect([...m.peerURLs, ...m.clientURLs].every((u) => u.startsWith('https://'))).toBe(true);
      // Every kind of daemon has a user of its own (each confined to its keys: test/etcd/daemon-users.test.ts).
      expect((await root.getUsers()).map((u) => u.name).sort()).toEqual(['corral-cni', 'corral-discovery', 'corral-master', 'corral-services', 'root']);
    } finally {
      root.close();
    }

    // corral's daemons: the client certificate (CN corral-master) is their etcd user; read and write under corral/ only.
    const store = await EtcdStore.open({ endpoints, namespace: ETCD_NAMESPACE, tls: clientTls });
    try {
      await store.put('probe', 'ok');
      expect((await store.get('probe'))?.value.toString()).toBe('ok');
      await store.delete('probe');
    } finally {
      await store.close();
    }
    const outside = await EtcdStore.open({ endpoints, namespace: 'elsewhere/', tls: clientTls }).catch((e: unknown) => e);
    expect(isCorralError(outside, 'FORBIDDEN'), String(outside)).toBe(true);
    // No client certificate: the handshake is refused.
    const anonymous = await EtcdStore.open({ endpoints, namespace: ETCD_NAMESPACE, tls: { ca: clientTls.ca }, dialTimeoutMs: 3000 }).catch((e: unknown) => e);
    expect(isCorralError(anonymous, 'UNAUTHENTICATED'), String(anonymous)).toBe(true);
    // Idempotent: another node up of the first member changes nothing (before its daemons restart, and after).
    expect(await secureEtcd(n1, { ifRunning: true })).toEqual({ enabled: false });
    expect(await secureEtcd(n1)).toEqual({ enabled: false });
  }, 300_000);
});
