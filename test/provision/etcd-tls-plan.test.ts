/**
 * A control node's plan with TLS and the registry on etcd: the etcd member's
 * own configuration has TLS for clients and peers with client certificates
 * required, readiness on the plain metrics port, and every daemon that keeps
 * state in etcd (master, service framework, discovery, and the CNI daemon with
 * an https IPAM etcd) gets a client certificate of its own (CN = its etcd
 * user) in its store settings, each accepted by its daemon's schema; a host
 * holds only the certificates of the daemons it runs.
 * Without TLS the plan is as before (plain URLs, no TLS settings). A node
 * without the CA key gets its etcd certificates from the CA's node.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureEtcdCertificates, issueEtcdCertificates } from '../../provision/src/etcd-tls.js';
import { ensureClusterCa } from '../../provision/src/tls.js';
import { nodeConfigSchema } from '../../provision/src/config.js';
import { planNode, type NodePlan } from '../../provision/src/plan.js';
import { masterConfigSchema } from '../../core-scheduler/src/master/config.js';
import { servicesConfigSchema } from '../../core-scheduler/src/services/config.js';
import { discoveryConfigSchema } from '../../discovery/src/config.js';
import { daemonConfigSchema } from '../../plugins/cni-calico-like/src/daemon/config.js';

const config = (p: NodePlan, name: string): Record<string, unknown> => p.daemons.find((d) => d.name === name)!.config as Record<string, unknown>;
const members = [
  { name: 'c1', address: '198.18.0.1' },
  { name: 'c2', address: '198.18.0.2' },
  { name: 'c3', address: '198.18.0.3' },
];
const node = (tls: boolean) =>
  nodeConfigSchema.parse({
    role: 'control',
    name: 'c1',
    address: '198.18.0.1',
    dir: '/var/lib/corral/node',
    components: ['etcd', 'master', 'services', 'discovery'],
    etcd: { members },
    master: { registry: 'etcd', ha: true },
    control: { addresses: members.map((m) => m.address) },
    ...(tls ? { tls: { dir: '/var/lib/corral/node/tls', caDir: '/var/lib/corral/node/ca' } } : {}),
  });

describe('the control plane etcd in a node plan', () => {
  it('with TLS: members on https with client and peer certificate auth; each daemon carries its own etcd client certificate', () => {
    const p = planNode(node(true));
    const etcd = config(p, 'etcd');
    const transport = {
      'cert-file': '/var/lib/corral/node/tls/etcd.crt',
      'key-file': '/var/lib/corral/node/tls/etcd.key',
      'trusted-ca-file': '/var/lib/corral/node/tls/ca.crt',
      'client-cert-auth': true,
    };
    expect(etcd).toMatchObject({
      'listen-client-urls': 'https://198.18.0.1:2379',
      'listen-peer-urls': 'https://198.18.0.1:2380',
      'initial-cluster': members.map((m) => `${m.name}=https://${m.address}:2380`).join(','),
      'client-transport-security': transport,
      'peer-transport-security': transport,
      'listen-metrics-urls': 'http://198.18.0.1:2381',
    });
    expect(p.daemons.find((d) => d.name === 'etcd')!.ready).toMatchObject({ kind: 'http', url: 'http://198.18.0.1:2381/health' });
    // Each daemon presents its own certificate (its own etcd user); the master keeps the first one's name.
    const store = (pair: string) => ({
      backend: 'etcd',
      namespace: 'corral/',
      etcdEndpoints: members.map((m) => `https://${m.address}:2379`),
      etcdTls: { ca: '/var/lib/corral/node/tls/ca.crt', cert: `/var/lib/corral/node/tls/${pair}.crt`, key: `/var/lib/corral/node/tls/${pair}.key` },
    });
    for (const [name, schema, pair] of [
      ['master', masterConfigSchema, 'etcd-client'],
      ['services', servicesConfigSchema, 'etcd-services'],
      ['discovery', discoveryConfigSchema, 'etcd-discovery'],
    ] as const) {
      const c = config(p, name);
      expect(c.store, name).toEqual(store(pair));
      expect(schema.safeParse(c).success, name).toBe(true);
    }
  });

  it('without TLS: plain URLs and no TLS settings, as before', () => {
    const p = planNode(node(false));
    const etcd = config(p, 'etcd');
    expect(etcd['listen-client-urls']).toBe('http://198.18.0.1:2379');
    expect(etcd).not.toHaveProperty('client-transport-security');
    expect(p.daemons.find((d) => d.name === 'etcd')!.ready).toMatchObject({ url: 'http://198.18.0.1:2379/health' });
    expect(config(p, 'master').store).toEqual({ backend: 'etcd', namespace: 'corral/', etcdEndpoints: members.map((m) => `http://${m.address}:2379`) });
  });
});

describe("a control node's etcd certificates", () => {
  it('node certs issues them for a node without the CA key; that node starts with them and refuses to without', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'corral-etcd-certs-'));
    try {
      const ca = await ensureClusterCa(join(dir, 'ca'), 'test CA');
      // c2 holds no CA: its certificates are issued where the CA is (corral node certs) and handed over.
      const c2 = nodeConfigSchema.parse({
        role: 'control',
        name: 'c2',
        address: '198.18.0.2',
        dir: join(dir, 'c2'),
        components: ['etcd', 'master'],
        etcd: { members },
        master: { registry: 'etcd', ha: true },
        tls: { dir: join(dir, 'c2', 'tls') },
      });
      await expect(ensureEtcdCertificates(c2)).rejects.toThrow(/corral node certs/);
      expect(await issueEtcdCertificates(ca, c2)).toEqual(['etcd', 'etcd-client']);
      await ensureEtcdCertificates(c2);
      const member = new X509Certificate(readFileSync(join(dir, 'c2', 'tls', 'etcd.crt')));
      expect(member.subjectAltName).toContain('IP Address:198.18.0.2');
      expect(new X509Certificate(readFileSync(join(dir, 'c2', 'tls', 'etcd-client.crt'))).subject).toContain('CN=corral-master');
      expect(statSync(join(dir, 'c2', 'tls', 'etcd-client.key')).mode & 0o777).toBe(0o600);
      // Current ones are kept.
      expect(await issueEtcdCertificates(ca, c2)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each daemon its own certificate, CN = its etcd user; a host gets only those of the daemons it runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'corral-etcd-certs-'));
    const cn = (f: string) => new X509Certificate(readFileSync(f)).subject.match(/CN=(.*)/)?.[1];
    try {
      const ca = await ensureClusterCa(join(dir, 'ca'), 'test CA');
      const control = nodeConfigSchema.parse({
        role: 'control',
        name: 'c1',
        address: '198.18.0.1',
        dir: join(dir, 'c1'),
        components: ['etcd', 'master', 'services', 'discovery'],
        etcd: { members },
        master: { registry: 'etcd', ha: true },
        tls: { dir: join(dir, 'c1', 'tls') },
      });
      expect(await issueEtcdCertificates(ca, control)).toEqual(['etcd', 'etcd-client', 'etcd-services', 'etcd-discovery']);
      const t = (f: string) => join(dir, 'c1', 'tls', f);
      expect([cn(t('etcd-client.crt')), cn(t('etcd-services.crt')), cn(t('etcd-discovery.crt'))]).toEqual(['corral-master', 'corral-services', 'corral-discovery']);
      expect(statSync(t('etcd-services.key')).mode & 0o777).toBe(0o600);

      // An agent host whose CNI daemon keeps its IPAM in the control plane's etcd: the CNI's certificate, nothing of the control plane's.
      const agentNode = nodeConfigSchema.parse({
        role: 'agent',
        name: 'a1',
        address: '198.18.0.9',
        dir: join(dir, 'a1'),
        components: ['cni', 'agent'],
        control: { address: '198.18.0.1' },
        cni: { store: { etcdEndpoints: members.map((m) => `https://${m.address}:2379`) } },
        tls: { dir: join(dir, 'a1', 'tls') },
      });
      expect(await issueEtcdCertificates(ca, agentNode)).toEqual(['etcd-cni']);
      expect(cn(join(dir, 'a1', 'tls', 'etcd-cni.crt'))).toBe('corral-cni');
      const cni = config(planNode(agentNode), 'cni');
      expect(cni.store).toEqual({
        backend: 'etcd',
        namespace: '',
        etcdEndpoints: members.map((m) => `https://${m.address}:2379`),
        etcdTls: { ca: join(dir, 'a1', 'tls', 'ca.crt'), cert: join(dir, 'a1', 'tls', 'etcd-cni.crt'), key: join(dir, 'a1', 'tls', 'etcd-cni.key') },
      });
      expect(daemonConfigSchema.safeParse(cni).success).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
