/**
 * Node provisioning hands each volume host only its own Ceph credential,
 * against a real cluster: the control node's step (provision/src/run.ts,
 * handOutCephClients) makes client.corral-volumes-<host> for every host its
 * node file lists and writes that client's keyring (0600, in a 0700
 * directory) with the client conf into the host's own directory — in the
 * namespace lab, <lab>/<host>/ceph. client.admin's keyring stays in the
 * control node's Ceph directory (0600) and appears in no host's files. A host
 * dropped from the list is revoked; a publish directory (vagrant's shared
 * folder) gets the client conf and per-host directories, never a keyring of
 * client.admin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCeph, type CephCluster } from '../harness/ceph.js';
import { testDir } from '../harness/resources.js';
import { controlNodeConfig, hostNodeConfig, planLab, LAB_DEFAULTS } from '../../lab/topology.js';
import { nodeConfigSchema, type NodeConfig } from '../../provision/src/config.js';
import { planNode, type CephPlan, type NodePlan } from '../../provision/src/plan.js';
import { handOutCephClients } from '../../provision/src/run.js';
import { initNode } from '../../provision/src/init.js';
import { listVolumeClients } from '../../provision/src/ceph.js';

let ceph: CephCluster;
let root: string;

beforeAll(async () => {
  root = testDir('ceph-clients');
  ceph = await startCeph({ pools: ['corral'] });
}, 120_000);

afterAll(async () => {
  await ceph?.stop();
  rmSync(root, { recursive: true, force: true });
}, 60_000);

const mode = (p: string): number => statSync(p).mode & 0o777;
/** Every file under a directory, with its text. */
const filesUnder = (dir: string): Array<{ path: string; text: string }> =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => ({ path: join(e.parentPath, e.name), text: readFileSync(join(e.parentPath, e.name), 'utf8') }));

const adminKey = (): string => /\[client\.admin\][^[]*?key = (\S+)/.exec(readFileSync(ceph.keyring, 'utf8'))![1]!;

/** The lab's control node plan, with its Ceph directory pointed at the test's running cluster. */
function labCeph(plan: ReturnType<typeof planLab>): CephPlan {
  const control: NodePlan = planNode(nodeConfigSchema.parse({ ...controlNodeConfig(plan), tls: undefined, security: undefined }));
  return { ...control.ceph!, dir: ceph.dir };
}

describe('provisioning hands each host only its own Ceph client', () => {
  it("namespace lab: each host its own keyring in its own directory, client.admin nowhere in any host's files", async () => {
    const lab = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 3, dir: join(root, 'lab'), routeReflector: false, full: true, insecure: true });
    for (const h of lab.hosts) mkdirSync(h.dir, { recursive: true });
    const c = labCeph(lab);
    expect(c.clients.map((x) => x.name)).toEqual(['client.corral-volumes-h1', 'client.corral-volumes-h2', 'client.corral-volumes-h3']);
    await handOutCephClients(c);
    await handOutCephClients(c); // node up again: the same keys
    const admin = adminKey();
    const keys: string[] = [];
    for (const h of lab.hosts) {
      const node = nodeConfigSchema.parse(hostNodeConfig(lab, h));
      const volumes = planNode(node).daemons.find((d) => d.name === 'volumes')!.config as { rbd: { confFile: string; keyring: string; clientName: string } };
      expect(volumes.rbd).toMatchObject({ confFile: join(h.dir, 'ceph', 'ceph.client.conf'), keyring: join(h.dir, 'ceph', 'keyring'), clientName: `client.corral-volumes-${h.name}` });
      expect(mode(join(h.dir, 'ceph'))).toBe(0o700);
      expect(mode(volumes.rbd.keyring)).toBe(0o600);
      const keyring = readFileSync(volumes.rbd.keyring, 'utf8');
      // One section: the host's own client, with the key Ceph has for it.
      expect([...keyring.matchAll(/^\[(.+)\]$/gm)].map((m) => m[1])).toEqual([`client.corral-volumes-${h.name}`]);
      const key = /key = (\S+)/.exec(keyring)![1]!;
      expect(await ceph.ceph(['auth', 'print-key', `client.corral-volumes-${h.name}`])).toContain(key);
      keys.push(key);
      expect(readFileSync(volumes.rbd.confFile, 'utf8')).toContain('mon host =');
      // Nothing in the host's directory holds client.admin's key, or another host's.
      for (const f of filesUnder(h.dir)) expect(f.text, f.path).not.toContain(admin);
    }
    expect(new Set(keys).size).toBe(3);
    for (const h of lab.hosts) {
      const text = filesUnder(h.dir)
        .map((f) => f.text)
        .join('\n');
      for (const k of keys.filter((k) => !readFileSync(join(h.dir, 'ceph', 'keyring'), 'utf8').includes(k))) expect(text).not.toContain(k);
    }
    // The admin keyring: only in the control node's Ceph directory, 0600.
    expect(mode(ceph.keyring)).toBe(0o600);

    // h3 leaves the lab: the control node revokes its client at its next node up; h1's and h2's keep working.
    await handOutCephClients({ ...c, clients: c.clients.filter((x) => x.host !== 'h3') });
    expect((await listVolumeClients(ceph.cliArgs)).sort()).toEqual(['client.corral-volumes-h1', 'client.corral-volumes-h2']);
    expect(await ceph.ceph(['auth', 'print-key', 'client.corral-volumes-h1'])).toContain(keys[0]!);
  });

  it("a publish directory gets the client conf and each host's own directory, never a client.admin keyring", async () => {
    const publishDir = join(root, 'publish');
    mkdirSync(publishDir, { recursive: true });
    // An earlier version left client.admin's keyring here: it goes.
    writeFileSync(join(publishDir, 'keyring'), readFileSync(ceph.keyring));
    const node = nodeConfigSchema.parse({
      role: 'control',
      name: 'control',
      address: '127.0.0.1',
      dir: join(root, 'control'),
      components: ['ceph', 'master', 'services', 'discovery'],
      ceph: { bootstrap: { pools: ['corral'], clients: [{ host: 'agent1' }, { host: 'agent2' }], publishDir } },
    });
    const c = { ...planNode(node).ceph!, dir: ceph.dir };
    expect(c.clients.map((x) => x.dir)).toEqual([join(publishDir, 'agent1'), join(publishDir, 'agent2')]);
    await handOutCephClients(c);
    expect(existsSync(join(publishDir, 'keyring'))).toBe(false);
    expect(readdirSync(publishDir).sort()).toEqual(['agent1', 'agent2', 'ceph.client.conf']);
    for (const a of ['agent1', 'agent2']) {
      expect(readdirSync(join(publishDir, a)).sort()).toEqual(['ceph.client.conf', 'keyring']);
      expect(mode(join(publishDir, a, 'keyring'))).toBe(0o600);
      expect(readFileSync(join(publishDir, a, 'keyring'), 'utf8')).toContain(`[client.corral-volumes-${a}]`);
    }
    expect(filesUnder(publishDir).every((f) => !f.text.includes(adminKey()))).toBe(true);
    // Without a list the node's own volume driver (if it runs one) gets its own client under the Ceph directory.
    const both = planNode(nodeConfigSchema.parse({ role: 'control', name: 'solo', address: '127.0.0.1', dir: '/n', components: ['ceph', 'volumes', 'master', 'services', 'discovery'] }));
    expect(both.ceph!.clients).toEqual([{ host: 'solo', name: 'client.corral-volumes-solo', dir: '/n/ceph/clients/solo' }]);
    expect(both.cephClient).toEqual({ confFile: '/n/ceph/clients/solo/ceph.client.conf', keyring: '/n/ceph/clients/solo/keyring' });
  });

  it("node init lists the control node's clients; an agent plans with its own client unless told another", () => {
    // The Ceph part only: without the node's TLS and credentials.
    const plain = (n: NodeConfig): NodeConfig => ({ ...n, tls: undefined, security: undefined });
    const control = planNode(plain(initNode({ role: 'control', name: 'control', address: '192.168.56.10', ceph: true, cephClients: ['agent1', 'agent2'] })));
    expect(control.ceph!.clients).toEqual([
      { host: 'agent1', name: 'client.corral-volumes-agent1', dir: '/var/lib/corral/node/ceph/clients/agent1' },
      { host: 'agent2', name: 'client.corral-volumes-agent2', dir: '/var/lib/corral/node/ceph/clients/agent2' },
    ]);
    const agentFile = {
      role: 'agent' as const,
      name: 'agent1',
      address: '192.168.56.11',
      control: '192.168.56.10',
      cephConf: '/etc/corral/ceph/ceph.client.conf',
      cephKeyring: '/etc/corral/ceph/keyring',
    };
    const rbdOf = (p: NodePlan) => (p.daemons.find((d) => d.name === 'volumes')!.config as { rbd: Record<string, unknown> }).rbd;
    expect(rbdOf(planNode(plain(initNode(agentFile))))).toMatchObject({ clientName: 'client.corral-volumes-agent1', keyring: '/etc/corral/ceph/keyring' });
    const told = plain(nodeConfigSchema.parse({ ...initNode(agentFile), ceph: { confFile: '/c', keyring: '/k', clientName: 'client.vols' } }));
    expect(rbdOf(planNode(told))).toMatchObject({ clientName: 'client.vols', keyring: '/k' });
  });

  it('refuses a pool name that could widen the caps', () => {
    const bad = nodeConfigSchema.safeParse({ role: 'control', name: 'c', address: '127.0.0.1', dir: '/n', components: ['ceph', 'master'], ceph: { bootstrap: { pools: ['corral, allow *'] } } });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toMatch(/letters, digits/);
  });
});
