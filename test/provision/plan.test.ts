/**
 * The planner for every kind of node: a node file with a security file
 * (authentication on, clients with their principals, secrets never needed
 * to print a plan), and `corral up`'s one-node node file — the same daemons
 * and settings the single-node stack runs.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeConfigSchema } from '../../provision/src/config.js';
import { planNode, type NodePlan } from '../../provision/src/plan.js';
import { daemonSpec, secretsOf, writeNodeFiles } from '../../provision/src/run.js';
import { initNode } from '../../provision/src/init.js';
import { MASTER_NODE_FLAGS, masterConfigSchema } from '../../core-scheduler/src/master/config.js';
import { agentConfigSchema } from '../../core-scheduler/src/agent/config.js';
import { servicesConfigSchema } from '../../core-scheduler/src/services/config.js';
import { discoveryConfigSchema } from '../../discovery/src/config.js';
import { daemonConfigSchema } from '../../plugins/cni-calico-like/src/daemon/config.js';
import { volumeDriverConfigSchema } from '../../plugins/volume-driver/src/config.js';
import { makePlan, upNodeConfig, upScope } from '../../cli/up/plan.js';
import { masterSecurityFile } from '../../cli/up/security.js';
import { hashSecret } from '../../core-scheduler/src/master/auth.js';
import { tempDirsRemovedAfterAll } from '../harness/temp-dirs.js';

const tempDir = tempDirsRemovedAfterAll();

const config = (p: NodePlan, name: string): Record<string, unknown> => p.daemons.find((d) => d.name === name)!.config as Record<string, unknown>;
const cred = (principal: string) => ({ principal, secret: `s-${principal}` });
const SECRETS = { admin: cred('admin'), frameworks: cred('frameworks'), agents: cred('agents') };

describe('planNode with a security file', () => {
  const node = nodeConfigSchema.parse({
    role: 'control',
    name: 'c1',
    address: '198.18.0.1',
    dir: '/var/lib/corral/node',
    security: { file: '/etc/corral/security.yaml' },
    components: ['master', 'services', 'discovery', 'cni', 'volumes', 'agent'],
  });

  it("starts the master's node process with the master's node flags, right after the node executable; other daemons without", () => {
    const p = planNode(node, SECRETS);
    const corral = ['/usr/bin/node', '/opt/corral/dist/cli/corral.js'];
    const master = daemonSpec(
      p.daemons.find((d) => d.name === 'master')!,
      corral,
    );
    expect(MASTER_NODE_FLAGS).toContain('--max-semi-space-size=32');
    expect(master.argv.slice(0, 3 + MASTER_NODE_FLAGS.length)).toEqual(['/usr/bin/node', ...MASTER_NODE_FLAGS, '/opt/corral/dist/cli/corral.js', 'master']);
    const agent = daemonSpec(
      p.daemons.find((d) => d.name === 'agent')!,
      corral,
    );
    expect(agent.argv.slice(0, 3)).toEqual(['/usr/bin/node', '/opt/corral/dist/cli/corral.js', 'agent']);
  });

  it('turns authentication on and gives each client daemon its principal', () => {
    const p = planNode(node, SECRETS);
    expect(config(p, 'master')).toMatchObject({ credentials: '/etc/corral/security.yaml' });
    expect(config(p, 'master')).not.toHaveProperty('noAuth');
    expect(config(p, 'services')).toMatchObject({ credentials: '/etc/corral/security.yaml', master: { principal: 'frameworks', secret: 's-frameworks' } });
    expect(config(p, 'discovery')).toMatchObject({ master: { principal: 'admin', secret: 's-admin' } });
    expect(config(p, 'agent')).toMatchObject({ credentials: '/etc/corral/security.yaml', principal: 'agents', secret: 's-agents' });
    expect(config(p, 'cni')).toMatchObject({ store: { backend: 'remote', principal: 'agents', secret: 's-agents' } });
  });

  it("each client daemon's config file carries its own secret and no other", () => {
    const p = planNode(node, SECRETS);
    const own: Record<string, string> = { services: 's-frameworks', discovery: 's-admin', agent: 's-agents', cni: 's-agents' };
    for (const d of p.daemons) {
      const text = JSON.stringify(d.config);
      for (const secret of ['s-admin', 's-frameworks', 's-agents']) expect(text.includes(secret), `${d.name} holds ${secret}`).toBe(own[d.name] === secret);
    }
  });

  it("on a host whose file holds its own secrets in plain text and the others' hashes, the ACLs pick the host's credentials", () => {
    const dir = tempDir('corral-plan-');
    const file = join(dir, 'security.yaml');
    const h = (s: string): string => hashSecret(s, { N: 1024, r: 8, p: 1 });
    writeFileSync(
      file,
      JSON.stringify({
        credentials: [
          { principal: 'ops', secret_hash: h('o') },
          { principal: 'agent-c0', secret_hash: h('x') },
          { principal: 'agent-c1', secret: 'a1' },
          { principal: 'services-c1', secret: 's1' },
          { principal: 'discovery-c1', secret: 'd1' },
        ],
        acls: { operators: ['ops'], view: ['discovery-c1'], register_frameworks: [{ principals: ['services-c1'], roles: 'ANY' }], agents: ['agent-c0', 'agent-c1'] },
      }),
    );
    expect(secretsOf({ ...node, security: { file } })).toEqual({
      admin: { principal: 'discovery-c1', secret: 'd1' },
      frameworks: { principal: 'services-c1', secret: 's1' },
      agents: { principal: 'agent-c1', secret: 'a1' },
    });
    // The CNI daemon's store access: its own principal where acls.store names one, else the agent's.
    const withStore = JSON.parse(readFileSync(file, 'utf8')) as { credentials: unknown[]; acls: Record<string, unknown> };
    withStore.credentials.push({ principal: 'cni-c1', secret: 'c1' }, { principal: 'cni-c0', secret_hash: h('y') });
    withStore.acls.store = ['cni-c0', 'cni-c1', 'services-c1'];
    writeFileSync(file, JSON.stringify(withStore));
    const secrets = secretsOf({ ...node, security: { file } })!;
    expect(secrets.cni).toEqual({ principal: 'cni-c1', secret: 'c1' });
    expect(config(planNode(node, secrets), 'cni')).toMatchObject({ store: { backend: 'remote', principal: 'cni-c1', secret: 'c1' } });
  });

  it('refuses to plan without the credentials, with a clear error', () => {
    expect(() => planNode(node)).toThrow(/needs its credentials/);
  });

  it('reads the credentials from the security file, naming a missing principal', () => {
    const dir = tempDir('corral-plan-');
    const file = join(dir, 'security.yaml');
    writeFileSync(file, 'credentials:\n  - { principal: admin, secret: a }\n  - { principal: frameworks, secret: f }\n  - { principal: agents, secret: g }\n');
    expect(secretsOf({ ...node, security: { file } })).toEqual({
      admin: { principal: 'admin', secret: 'a' },
      frameworks: { principal: 'frameworks', secret: 'f' },
      agents: { principal: 'agents', secret: 'g' },
    });
    writeFileSync(file, 'credentials:\n  - { principal: admin, secret: a }\n');
    expect(() => secretsOf({ ...node, security: { file } })).toThrow(/no credential for "frameworks"/);
  });

  it('without a security file, a lab node runs without authentication', () => {
    const p = planNode(nodeConfigSchema.parse({ ...node, security: undefined }));
    expect(config(p, 'master')).toMatchObject({ noAuth: true });
    expect(config(p, 'agent')).toMatchObject({ noAuth: true });
  });
});

describe("corral up's node file", () => {
  const upFlags = {
    workDir: '/var/lib/corral-x',
    name: 'cx',
    masterPort: 15050,
    agentPort: 15051,
    servicesPort: 15052,
    dnsPort: 18600,
    discoveryPort: 18500,
    pool: '100.96.0.0/12',
    blockSize: 26,
    hostNetwork: false,
  };
  const up = makePlan(upFlags);
  const p = planNode(nodeConfigSchema.parse(upNodeConfig(up)), SECRETS);

  it("runs the six daemons on 127.0.0.1 with the instance's ports, each once the one before is ready", () => {
    expect(p.daemons.map((d) => d.name)).toEqual(['master', 'services', 'discovery', 'cni', 'volumes', 'agent']);
    // The master's file holds hashes only; the operator's (up.paths.security) is the CLI's.
    expect(config(p, 'master')).toMatchObject({ host: '127.0.0.1', port: 15050, credentials: masterSecurityFile(up.paths.security) });
    expect(config(p, 'agent')).toMatchObject({ host: '127.0.0.1', port: 15051, apiSocket: up.paths.agentSocket, master: 'https://127.0.0.1:15050', mesos: { cgroupRoot: 'cx', netnsPrefix: 'cx-' } });
    expect(config(p, 'discovery')).toMatchObject({ dns: { host: '127.0.0.1', port: 18600, workers: 'auto' }, http: { host: '127.0.0.1', port: 18500 } });
    expect(p.daemons.find((d) => d.name === 'agent')!.ready).toMatchObject({ expect: { field: ['connected'], equals: true } });
  });

  it('serves every API over TLS with a certificate per daemon from the instance, readiness checked against its CA', () => {
    const tlsDir = join(up.workDir, 'tls');
    for (const d of ['master', 'services', 'discovery', 'agent', 'cni']) {
      expect(config(p, d)).toMatchObject({ tls: { ca: join(tlsDir, 'ca.crt'), cert: join(tlsDir, `${d}.crt`), key: join(tlsDir, `${d}.key`) } });
      expect(config(p, d)).not.toHaveProperty('insecure');
    }
    for (const d of p.daemons.filter((x) => x.ready.kind === 'http')) expect(d.ready).toMatchObject({ url: expect.stringMatching(/^https:/), ca: join(tlsDir, 'ca.crt') });
    expect(p.urls.master).toBe('https://127.0.0.1:15050');
    // --insecure: plain HTTP, said explicitly in every daemon's config.
    const plain = planNode(nodeConfigSchema.parse(upNodeConfig(makePlan({ ...upFlags, insecure: true }))), SECRETS);
    for (const d of ['master', 'services', 'discovery', 'agent', 'cni']) expect(config(plain, d)).toMatchObject({ insecure: true });
    expect(plain.urls.master).toBe('http://127.0.0.1:15050');
  });

  it('keeps the CNI daemon in the node namespace with its own Store, no BGP, reclaiming against the agent socket', () => {
    expect(p.daemons.find((d) => d.name === 'cni')!.netns).toBe('/run/netns/cx-node');
    expect(config(p, 'cni')).toMatchObject({
      store: { backend: 'embedded' },
      bgp: { enabled: false },
      pools: [{ cidr: '100.96.0.0/12', blockSize: 26 }],
      reconcile: { sources: [{ type: 'netns' }, { type: 'http', socketPath: up.paths.agentSocket }] },
    });
  });

  it('puts the volume plugin where Docker and corral volume look for it, its data in the work dir', () => {
    expect(config(p, 'volumes')).toMatchObject({
      socket: up.paths.volumeSocket,
      dataDir: up.paths.volumes,
      defaultBackend: 'local',
      reconcile: { liveContainers: { socketPath: up.paths.agentSocket } },
    });
    expect(p.daemons.every((d) => d.outFile === join(up.paths.logs, `${d.name}.log`))).toBe(true);
  });

  it('owns its namespaces, cgroups, sockets and processes (its scope), nothing by name', () => {
    const scope = upScope(up, p.scope);
    expect(scope).toMatchObject({ dirs: [up.workDir, up.runDir], cgroupRoots: ['cx'], netnsPrefix: 'cx-', netns: ['cx-node'], marker: { env: 'CORRAL_UP_INSTANCE', value: up.marker } });
    expect(scope.sockets).toEqual(expect.arrayContaining([up.paths.cniSocket, up.paths.volumeSocket, up.paths.agentSocket]));
  });
});

describe('a control plane of three nodes with etcd', () => {
  const members = [
    { name: 'c1', address: '198.18.0.1' },
    { name: 'c2', address: '198.18.0.2' },
    { name: 'c3', address: '198.18.0.3' },
  ];
  const control = (i: number) =>
    nodeConfigSchema.parse({
      role: 'control',
      name: members[i]!.name,
      address: members[i]!.address,
      dir: '/var/lib/corral/node',
      components: ['etcd', 'master', 'services', 'discovery'],
      etcd: { members },
      master: { registry: 'etcd', ha: true },
    });

  it('runs one etcd member per control node, in a cluster of all three, before the master', () => {
    const p = planNode(control(1));
    expect(p.daemons.map((d) => d.name)).toEqual(['etcd', 'master', 'services', 'discovery']);
    const etcd = p.daemons[0]!;
    expect(etcd.program).toMatch(/etcd$/);
    expect(etcd.args).toEqual(['--config-file', '/var/lib/corral/node/etcd/etcd.json']);
    expect(etcd.config).toMatchObject({
      name: 'c2',
      'listen-client-urls': 'http://198.18.0.2:2379',
      'initial-advertise-peer-urls': 'http://198.18.0.2:2380',
      'initial-cluster': 'c1=http://198.18.0.1:2380,c2=http://198.18.0.2:2380,c3=http://198.18.0.3:2380',
      'initial-cluster-state': 'new',
    });
    expect(etcd.ready).toMatchObject({ url: 'http://198.18.0.2:2379/health', expect: { field: ['health'], equals: 'true' } });
  });

  it('keeps the master registry in the etcd cluster, replicated', () => {
    expect(config(planNode(control(0)), 'master')).toMatchObject({
      store: { backend: 'etcd', etcdEndpoints: ['http://198.18.0.1:2379', 'http://198.18.0.2:2379', 'http://198.18.0.3:2379'] },
      ha: { enabled: true },
    });
  });

  it('runs a service framework daemon per control node, electing a leader in etcd and keeping its state there; discovery replicas share the Store', () => {
    const etcdStore = { backend: 'etcd', etcdEndpoints: ['http://198.18.0.1:2379', 'http://198.18.0.2:2379', 'http://198.18.0.3:2379'], namespace: 'corral/' };
    for (const i of [0, 1, 2]) {
      const p = planNode(control(i));
      expect(config(p, 'services')).toMatchObject({ host: members[i]!.address, store: etcdStore, ha: { enabled: true } });
      expect(config(p, 'discovery')).toMatchObject({ store: etcdStore, dns: { host: members[i]!.address } });
      // Each daemon is probed at its own address; a standby is ready once it knows the leader.
      expect(p.daemons.find((d) => d.name === 'services')!.ready).toMatchObject({ url: `http://${members[i]!.address}:5052/health`, expect: { field: ['ready'], equals: true } });
    }
    // Clients (the demo, `corral up`'s hints) get every daemon's URL, as node files list every control node.
    const listed = planNode(nodeConfigSchema.parse({ ...control(1), control: { addresses: members.map((m) => m.address) } }));
    expect(listed.urls.services).toBe('http://198.18.0.1:5052,http://198.18.0.2:5052,http://198.18.0.3:5052');
  });

  it('keeps a node alone as it was: one services daemon on its embedded Store, no election', () => {
    // Plain HTTP asked for (--insecure): the URLs below are http.
    const p = planNode(initNode({ role: 'control', name: 'c0', address: '198.18.0.1', insecure: true }));
    const c = config(p, 'services') as Record<string, unknown>;
    expect(c.store).toBeUndefined();
    expect(c.ha).toBeUndefined();
    expect(p.urls.services).toBe('http://198.18.0.1:5052');
  });

  it('refuses inconsistent node files with the field and the reason', () => {
    const bad = (patch: Record<string, unknown>) => () => nodeConfigSchema.parse({ role: 'control', name: 'c1', address: '198.18.0.1', dir: '/d', ...patch });
    expect(bad({ master: { ha: true } })).toThrow(/registry in etcd/);
    expect(bad({ master: { registry: 'etcd' } })).toThrow(/list the etcd members/);
    expect(bad({ components: ['etcd'], etcd: { members: [{ name: 'c9', address: '198.18.0.9' }] } })).toThrow(/not among etcd.members/);
  });
});

describe('corral node init --control-plane', () => {
  it('writes a control node file with its etcd member and a replicated master', () => {
    const plane = [
      { name: 'c1', address: '198.18.0.1' },
      { name: 'c2', address: '198.18.0.2' },
      { name: 'c3', address: '198.18.0.3' },
    ];
    const n = initNode({ role: 'control', name: 'c3', address: '198.18.0.3', controlPlane: plane });
    // Every control node runs a service framework daemon (one leading) and a discovery replica.
    expect(n.components).toEqual(['etcd', 'master', 'services', 'discovery']);
    expect(initNode({ role: 'control', name: 'c1', address: '198.18.0.1', controlPlane: plane }).components).toEqual(['etcd', 'master', 'services', 'discovery']);
    expect(n.control.addresses).toEqual(['198.18.0.1', '198.18.0.2', '198.18.0.3']);
    expect(n.etcd.members).toEqual(plane);
    expect(n.master).toMatchObject({ registry: 'etcd', ha: true });
    expect(() => initNode({ role: 'control', name: 'c4', address: '198.18.0.4', controlPlane: plane })).toThrow(/not among etcd.members/);
  });
});

describe('an agent of replicated masters', () => {
  it('gives every daemon that is a client the list of masters, and probes its own master by its own address', () => {
    const agent = initNode({ role: 'agent', name: 'h1', address: '198.18.0.11', control: '198.18.0.1,198.18.0.2,198.18.0.3', insecure: true });
    const p = planNode(agent);
    const list = 'http://198.18.0.1:5050,http://198.18.0.2:5050,http://198.18.0.3:5050';
    expect(config(p, 'agent')).toMatchObject({ master: list });
    expect(config(p, 'cni')).toMatchObject({ store: { backend: 'remote', url: list }, bgp: { master: { url: list } } });
    const control = planNode(
      initNode({
        role: 'control',
        name: 'c2',
        address: '198.18.0.2',
        insecure: true,
        controlPlane: [
          { name: 'c1', address: '198.18.0.1' },
          { name: 'c2', address: '198.18.0.2' },
          { name: 'c3', address: '198.18.0.3' },
        ],
      }),
    );
    expect(control.daemons.find((d) => d.name === 'master')!.ready).toMatchObject({ url: 'http://198.18.0.2:5050/health' });
    expect(config(control, 'discovery')).toMatchObject({ master: { url: list } });
  });
});

describe('discovery ACLs on provisioned nodes', () => {
  it('are on with default deny and a bootstrap token file that node up writes once, 0600', () => {
    const dir = mkdtempSync(join(tmpdir(), 'corral-acl-'));
    try {
      const p = planNode(initNode({ role: 'control', name: 'c0', address: '198.18.0.1', dir }), SECRETS);
      const tokenFile = join(dir, 'discovery', 'acl-bootstrap-token');
      expect(config(p, 'discovery')).toMatchObject({ acl: { enabled: true, defaultPolicy: 'deny', bootstrapTokenFile: tokenFile } });
      // Never on a command line.
      expect(p.daemons.find((d) => d.name === 'discovery')!.args.join(' ')).not.toMatch(/token/i);
      writeNodeFiles(p);
      const token = readFileSync(tokenFile, 'utf8').trim();
      expect(token).toMatch(/^[0-9a-f-]{36}$/);
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      writeNodeFiles(p);
      expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
      const off = planNode(nodeConfigSchema.parse({ ...initNode({ role: 'control', name: 'c0', address: '198.18.0.1', dir }), discovery: { acl: { enabled: false } } }), SECRETS);
      expect(config(off, 'discovery')).not.toHaveProperty('acl');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('every planned configuration is one its daemon accepts', () => {
  const schemas: Record<string, { parse(x: unknown): unknown }> = {
    master: masterConfigSchema,
    agent: agentConfigSchema,
    services: servicesConfigSchema,
    discovery: discoveryConfigSchema,
    cni: daemonConfigSchema,
    volumes: volumeDriverConfigSchema,
  };
  const plane = [
    { name: 'c1', address: '198.18.0.1' },
    { name: 'c2', address: '198.18.0.2' },
    { name: 'c3', address: '198.18.0.3' },
  ];
  // Secure by default (TLS, authentication: each client daemon with the host's own credential), and plain HTTP with insecure.
  const own = { admin: cred('discovery-c1'), frameworks: cred('services'), agents: cred('agent-h1'), cni: cred('cni-h1') };
  const nodes = {
    'a control node of three': initNode({ role: 'control', name: 'c1', address: '198.18.0.1', controlPlane: plane }),
    'an agent of three masters': initNode({ role: 'agent', name: 'h1', address: '198.18.0.11', control: '198.18.0.1,198.18.0.2,198.18.0.3' }),
    'a single control node': initNode({ role: 'control', name: 'c0', address: '198.18.0.1' }),
    'an agent from a bundle': initNode({ role: 'agent', name: 'h1', address: '198.18.0.11', control: '198.18.0.1', bundle: '/etc/corral/bundle' }),
    'a control node of three, insecure': initNode({ role: 'control', name: 'c1', address: '198.18.0.1', controlPlane: plane, insecure: true }),
    'an agent of three masters, insecure': initNode({ role: 'agent', name: 'h1', address: '198.18.0.11', control: '198.18.0.1,198.18.0.2,198.18.0.3', insecure: true }),
  };
  for (const [what, node] of Object.entries(nodes)) {
    it(what, () => {
      const p = planNode(node, node.security ? own : undefined);
      for (const d of p.daemons) {
        if (schemas[d.name]) expect(() => schemas[d.name]!.parse(d.config), d.name).not.toThrow();
        if (d.name === 'master' || d.name === 'services' || d.name === 'agent') expect(d.config, d.name).toHaveProperty(node.security ? 'credentials' : 'noAuth');
        if (schemas[d.name] && d.name !== 'volumes') expect(d.config, d.name).toHaveProperty(node.tls ? 'tls' : 'insecure');
      }
    });
  }
});
