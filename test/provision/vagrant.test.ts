/**
 * The per-machine step without machines: VMs cannot run here, so what the
 * Vagrant lab would do is checked as far as it can be.
 *  - node files for both roles (`corral node init --bundle`, what
 *    provision.sh writes) validate and plan into the right daemons with the
 *    right addresses, sockets, cgroup roots and Ceph client files, on HTTPS
 *    with authentication;
 *  - the operator's handover (vagrant/handover.sh, what the Vagrantfile runs
 *    on the host before each VM comes up) makes each VM's bundle, and
 *    provision.sh in its dry-run mode turns each bundle into that VM's node
 *    file: modes, each VM only its own secrets, no CA key on any VM;
 *  - the lab's node files (the same step, per namespace) keep hosts apart;
 *  - the Vagrantfile parses (`ruby -c`) and calls provision.sh per machine
 *    with its role; provision.sh passes shellcheck.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { nodeConfigSchema } from '../../provision/src/config.js';
import { nodeFileFor } from '../../provision/src/init.js';
import { planNode, type NodePlan } from '../../provision/src/plan.js';
import { secretsOf } from '../../provision/src/run.js';
import { Authority, loadSecurity } from '../../core-scheduler/src/master/auth.js';
import { controlNodeConfig, hostNodeConfig, planLab, LAB_DEFAULTS } from '../../lab/topology.js';
import { REPO } from '../volume-driver/helpers.js';
import { principalsBySecret, readSecurityFile } from '../harness/security-file.js';
import { testDir } from '../harness/resources.js';

const SECRET = (principal: string) => ({ principal, secret: `s-${principal}` });
// A lab node's security file is written by lab/security.ts at lab up; the plan only needs the credentials it would hold.
const plan = (input: unknown): NodePlan => {
  const n = nodeConfigSchema.parse(input);
  return planNode(n, n.security ? { admin: SECRET(`discovery-${n.name}`), frameworks: SECRET('services'), agents: SECRET(`agent-${n.name}`), cni: SECRET(`cni-${n.name}`) } : undefined);
};
const daemon = (p: NodePlan, name: string) => p.daemons.find((d) => d.name === name)!;
// The planned configurations are plain JSON read field by field below.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const cfg = (p: NodePlan, name: string) => daemon(p, name).config as Record<string, any>;

function sh(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: REPO, env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const BUNDLE = '/etc/corral/bundle';

describe('node files for the Vagrant lab (corral node init --bundle)', () => {
  const control = plan(nodeFileFor({ role: 'control', name: 'control', address: '192.168.56.10', ceph: true, agentTimeoutMs: 5000, bundle: BUNDLE }));
  const agent = plan(
    nodeFileFor({
      role: 'agent',
      name: 'agent1',
      address: '192.168.56.11',
      control: '192.168.56.10',
      cephConf: '/etc/corral/ceph/ceph.client.conf',
      cephKeyring: '/etc/corral/ceph/keyring',
      bundle: BUNDLE,
    }),
  );
  const tls = (daemon: string) => ({ ca: `${BUNDLE}/tls/ca.crt`, cert: `${BUNDLE}/tls/${daemon}.crt`, key: `${BUNDLE}/tls/${daemon}.key` });

  it('a node from a bundle: its certificates and security file from the bundle, no CA on the node', () => {
    const n = nodeConfigSchema.parse(nodeFileFor({ role: 'control', name: 'control', address: '192.168.56.10', bundle: BUNDLE }));
    expect(n.tls).toEqual({ dir: `${BUNDLE}/tls` });
    expect(n.security).toEqual({ file: `${BUNDLE}/security.yaml` });
  });

  it('control: a memstore Ceph, then master, services and discovery, all bound to the node address', () => {
    expect(control.ceph).toMatchObject({ address: '192.168.56.10', monPort: 3300, pools: ['corral'] });
    expect(control.daemons.map((d) => d.name)).toEqual(['master', 'services', 'discovery']);
    expect(daemon(control, 'master').args).toEqual(['master', '--config', '/var/lib/corral/node/master/master.json']);
    expect(cfg(control, 'master')).toMatchObject({
      host: '192.168.56.10',
      port: 5050,
      agents: { heartbeatIntervalMs: 1000, maxMissedHeartbeats: 3, unreachableTimeoutMs: 5000 },
      credentials: `${BUNDLE}/security.yaml`,
      tls: tls('master'),
    });
    expect(cfg(control, 'services')).toMatchObject({
      host: '192.168.56.10',
      master: { url: 'https://192.168.56.10:5050', principal: 'services' },
      unreachable: { replaceAfterSeconds: 0 },
      credentials: `${BUNDLE}/security.yaml`,
      tls: tls('services'),
    });
    expect(cfg(control, 'discovery')).toMatchObject({
      master: { url: 'https://192.168.56.10:5050', principal: 'discovery-control' },
      dns: { host: '192.168.56.10', port: 8600 },
      http: { host: '192.168.56.10', port: 8500 },
      tls: tls('discovery'),
    });
    for (const d of control.daemons) expect(d.config, d.name).not.toHaveProperty('insecure');
    for (const d of control.daemons) expect(d.config, d.name).not.toHaveProperty('noAuth');
    // Ready once it serves and follows the master.
    expect(daemon(control, 'discovery').ready).toMatchObject({ kind: 'http', url: 'https://192.168.56.10:8500/v1/corral/status', expect: { field: ['master', 'connected'], equals: true } });
  });

  it('agent: CNI daemon, volume driver and agent, pointed at the control node, with per-node sockets, cgroup root and netns prefix', () => {
    expect(agent.ceph).toBeUndefined();
    expect(agent.daemons.map((d) => d.name)).toEqual(['cni', 'volumes', 'agent']);
    expect(cfg(agent, 'cni')).toMatchObject({
      node: 'agent1',
      socket: '/run/corral/node/cni.sock',
      store: { backend: 'remote', url: 'https://192.168.56.10:5050', principal: 'cni-agent1' },
      tls: tls('cni'),
      pools: [{ name: 'default', cidr: '100.96.0.0/16', blockSize: 26 }],
      bgp: { enabled: true, localAddress: '192.168.56.11', holdTime: 9, master: { url: 'https://192.168.56.10:5050', principal: 'cni-agent1' } },
    });
    expect(agent.cni).toEqual({ binDir: '/var/lib/corral/node/cni/bin', confDir: '/var/lib/corral/node/cni/net.d', network: 'corral', socket: '/run/corral/node/cni.sock' });
    expect(cfg(agent, 'volumes')).toMatchObject({
      hostId: 'agent1',
      socket: '/run/corral/node/volumes.sock',
      defaultBackend: 'rbd',
      rbd: { enabled: true, confFile: '/etc/corral/ceph/ceph.client.conf', keyring: '/etc/corral/ceph/keyring', pool: 'corral' },
      // Task references whose unmount was lost are released against this node's agent, on its unix socket (its port is HTTPS).
      reconcile: { liveContainers: { url: 'http://agent/api/v1/containers', socketPath: '/run/corral/node/agent.sock' } },
    });
    expect(cfg(agent, 'agent')).toMatchObject({
      master: 'https://192.168.56.10:5050',
      principal: 'agent-agent1',
      credentials: `${BUNDLE}/security.yaml`,
      tls: tls('agent'),
      apiSocket: '/run/corral/node/agent.sock',
      host: '192.168.56.11',
      advertiseHost: '192.168.56.11',
      attributes: 'host:agent1',
      containerizers: ['MESOS'],
      cniConfDir: '/var/lib/corral/node/cni/net.d',
      volumeSocket: '/run/corral/node/volumes.sock',
      mesos: { cgroupRoot: 'corral-agent1', netnsPrefix: 'corral-agent1-', runDir: '/run/corral/node/containerizer' },
    });
    expect(cfg(agent, 'agent').mesos.maskedPaths).toContain('/var/lib/corral/node/volumes');
  });

  it('refuses an agent without a control address, and unknown keys in a node file', () => {
    expect(() => nodeFileFor({ role: 'agent', name: 'a', address: '10.0.0.2' })).toThrow(/control/);
    expect(() => nodeConfigSchema.parse({ role: 'agent', name: 'a', address: '10.0.0.2', dir: '/x', contrl: {} })).toThrow(/contrl/);
    expect(() => nodeConfigSchema.parse({ role: 'agent', name: 'A_1', address: '10.0.0.2', dir: '/x' })).toThrow(/DNS label/);
  });
});

describe('the namespace lab runs the same step per host', () => {
  it("gives every host its own sockets, state, cgroup root and container namespaces, and masks the other hosts' volumes", () => {
    const lab = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 4, dir: '/tmp/lab', routeReflector: false, full: true });
    const c = plan(controlNodeConfig(lab));
    expect(c.components).toEqual(['ceph', 'master', 'services', 'discovery']);
    expect(c.ceph?.address).toBe('198.18.0.1');
    const hosts = lab.hosts.map((h) => plan(hostNodeConfig(lab, h)));
    const unique = (f: (p: NodePlan) => string) => new Set(hosts.map(f)).size;
    expect(unique((p) => cfg(p, 'cni').socket)).toBe(4);
    expect(unique((p) => cfg(p, 'volumes').socket)).toBe(4);
    expect(unique((p) => cfg(p, 'agent').mesos.cgroupRoot)).toBe(4);
    expect(unique((p) => cfg(p, 'agent').mesos.netnsPrefix)).toBe(4);
    expect(unique((p) => cfg(p, 'agent').workDir)).toBe(4);
    expect(hosts[0]!.cni!.socket).toBe(lab.hosts[0]!.socket);
    expect(cfg(hosts[0]!, 'agent').mesos.maskedPaths).toEqual(['/run/netns', '/tmp/lab/h1/volumes', '/tmp/lab/h2/volumes', '/tmp/lab/h3/volumes', '/tmp/lab/h4/volumes']);
    // Ceph: each host its own least-privilege client, its files in its own directory; client.admin's keyring stays with the control node.
    expect(cfg(hosts[1]!, 'volumes').rbd).toMatchObject({ confFile: '/tmp/lab/h2/ceph/ceph.client.conf', keyring: '/tmp/lab/h2/ceph/keyring', clientName: 'client.corral-volumes-h2' });
    expect(c.ceph?.clients).toEqual(lab.hosts.map((h) => ({ host: h.name, name: `client.corral-volumes-${h.name}`, dir: `${h.dir}/ceph` })));
    expect(hosts.every((p) => !JSON.stringify(p.daemons.map((d) => d.config)).includes(c.ceph!.dir))).toBe(true);
    // Secure by default: every daemon on HTTPS with its own certificate, the agent and the CNI daemon each with the host's credential.
    expect(cfg(hosts[0]!, 'agent')).toMatchObject({ master: 'https://198.18.0.1:5050', principal: 'agent-h1', credentials: '/tmp/lab/h1/security.yaml', tls: { cert: '/tmp/lab/h1/tls/agent.crt' } });
    expect(cfg(hosts[0]!, 'cni').bgp.master).toMatchObject({ url: 'https://198.18.0.1:5050', principal: 'cni-h1' });
    expect(cfg(c, 'master')).toMatchObject({ credentials: '/tmp/lab/services/security.yaml', tls: { key: '/tmp/lab/services/tls/master.key' } });
    expect(cfg(c, 'master')).not.toHaveProperty('insecure');
    const insecure = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 1, dir: '/tmp/lab', routeReflector: false, full: true, insecure: true });
    expect(cfg(plan(hostNodeConfig(insecure, insecure.hosts[0]!)), 'agent')).toMatchObject({ master: 'http://198.18.0.1:5050', insecure: true, noAuth: true });
    // CNI-only lab: just the node daemon, IPAM in the lab's etcd over TLS, as the host's corral-cni user.
    const cniOnly = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 2, dir: '/tmp/lab', routeReflector: false });
    const h = plan(hostNodeConfig(cniOnly, cniOnly.hosts[0]!));
    expect(h.daemons.map((d) => d.name)).toEqual(['cni']);
    expect(cfg(h, 'cni').store).toEqual({
      backend: 'etcd',
      etcdEndpoints: ['https://198.18.0.1:2379'],
      namespace: '',
      etcdTls: { ca: '/tmp/lab/h1/tls/ca.crt', cert: '/tmp/lab/h1/tls/etcd-cni.crt', key: '/tmp/lab/h1/tls/etcd-cni.key' },
    });
  });
});

const secretsIn = (file: string) => principalsBySecret(readSecurityFile(file)).plain;
const hashesIn = (file: string) => principalsBySecret(readSecurityFile(file)).hashed;
const mode = (file: string) => statSync(file).mode & 0o777;
const filesUnder = (dir: string) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));

describe('vagrant/: the operator hands each VM its own bundle', () => {
  const vms = [
    { name: 'control', role: 'control', ip: '192.168.56.10' },
    { name: 'agent1', role: 'agent', ip: '192.168.56.11' },
    { name: 'agent2', role: 'agent', ip: '192.168.56.12' },
  ] as const;
  const peers = vms.map((v) => `${v.name}=${v.role}`).join(',');

  it('handover.sh makes the CA and each VM bundle; provision.sh (dry run) writes each VM node file from its own, TLS and authentication on', async () => {
    const root = testDir('vagrant-handover');
    const handover = join(root, '.corral');
    try {
      // The host's side, as the Vagrantfile runs it before each VM comes up.
      for (const v of vms) {
        const r = await sh('bash', ['vagrant/handover.sh', v.name, v.role, v.ip, peers], { CORRAL_HANDOVER: handover, CORRAL_FROM_SOURCE: '1' });
        expect(r.stderr).toContain(`bundle for ${v.role} node ${v.name}`);
        expect(r.code).toBe(0);
      }
      const op = join(handover, 'operator');
      expect(mode(handover)).toBe(0o700);
      expect(mode(op)).toBe(0o700);
      expect(mode(join(op, 'ca', 'ca.key'))).toBe(0o600);
      // The Ceph client files the Vagrantfile fetches from the control node into each agent's bundle (ceph/).
      for (const a of ['agent1', 'agent2']) {
        mkdirSync(join(handover, a, 'ceph'), { mode: 0o700 });
        writeFileSync(join(handover, a, 'ceph', 'ceph.client.conf'), '[global]\nmon host = v2:192.168.56.10:3300\n');
        writeFileSync(join(handover, a, 'ceph', 'keyring'), `[client.${a}]\n\tkey = k-${a}\n`, { mode: 0o600 });
      }
      const all = ['admin', 'agent-agent1', 'agent-agent2', 'cni-agent1', 'cni-agent2', 'discovery-control', 'services'];
      const own: Record<string, string[]> = { control: ['discovery-control', 'services'], agent1: ['agent-agent1', 'cni-agent1'], agent2: ['agent-agent2', 'cni-agent2'] };
      for (const v of vms) {
        const bundle = join(handover, v.name);
        // Each VM's folder: 0700, keys and its security file 0600, no CA key, its own secrets only, every other principal hashed.
        expect(mode(bundle)).toBe(0o700);
        expect(filesUnder(bundle).some((f) => f.endsWith('ca.key'))).toBe(false);
        for (const f of filesUnder(bundle).filter((x) => x.endsWith('.key') || x.endsWith('.yaml') || x.endsWith('keyring'))) expect(mode(f), f).toBe(0o600);
        expect(secretsIn(join(bundle, 'security.yaml'))).toEqual(own[v.name]);
        expect(hashesIn(join(bundle, 'security.yaml'))).toEqual(all.filter((p) => !own[v.name]!.includes(p)));
        const ca = new X509Certificate(readFileSync(join(op, 'ca', 'ca.crt')));
        for (const crt of filesUnder(join(bundle, 'tls')).filter((f) => f.endsWith('.crt') && !f.endsWith('ca.crt'))) {
          const c = new X509Certificate(readFileSync(crt));
          expect(c.checkIssued(ca), crt).toBe(true);
          expect(c.subjectAltName).toContain(`IP Address:${v.ip}`);
        }

        // The VM's side: the bundle synced to it, then provision.sh.
        const etc = join(root, `etc-${v.name}`);
        const args = v.role === 'control' ? ['control', v.name, v.ip, '192.168.56.10', '4000'] : ['agent', v.name, v.ip, '192.168.56.10'];
        const r = await sh('bash', ['vagrant/provision.sh', ...args], {
          CORRAL_ROOT: REPO,
          CORRAL_ETC: etc,
          CORRAL_BUNDLE: bundle,
          CORRAL_CEPH_CLIENTS: 'agent1,agent2',
          CORRAL_DRY_RUN: '1',
          CORRAL_FROM_SOURCE: '1',
        });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const file = JSON.parse(readFileSync(join(etc, 'node.json'), 'utf8'));
        expect(file).toEqual(
          v.role === 'control'
            ? nodeFileFor({ role: 'control', name: v.name, address: v.ip, ceph: true, cephClients: ['agent1', 'agent2'], agentTimeoutMs: 4000, bundle })
            : nodeFileFor({ role: 'agent', name: v.name, address: v.ip, control: '192.168.56.10', cephConf: join(etc, 'ceph', 'ceph.client.conf'), cephKeyring: join(etc, 'ceph', 'keyring'), bundle }),
        );
        const node = nodeConfigSchema.parse(file);
        expect(node.tls).toEqual({ dir: join(bundle, 'tls') });
        expect(node.security).toEqual({ file: join(bundle, 'security.yaml') });
        // Provisioning picks this VM's own credentials; every daemon plans on HTTPS with authentication.
        const secrets = secretsOf(node)!;
        expect(
          Object.values(secrets)
            .map((c) => c.principal)
            .sort(),
        ).toEqual(own[v.name]);
        const p = planNode(node, secrets);
        for (const d of p.daemons.filter((x) => x.name !== 'volumes')) expect(d.config, d.name).toHaveProperty('tls');
        expect([p.urls.master, p.urls.services, p.urls.discoveryHttp].every((u) => u.startsWith('https://'))).toBe(true);
        if (v.role === 'agent') {
          // The Ceph client files, installed from the bundle: the keyring 0600 in a 0700 directory.
          expect(readFileSync(join(etc, 'ceph', 'keyring'), 'utf8')).toContain(`k-${v.name}`);
          expect(mode(join(etc, 'ceph', 'keyring'))).toBe(0o600);
          expect(mode(join(etc, 'ceph'))).toBe(0o700);
          expect(new X509Certificate(readFileSync(join(bundle, 'tls', 'agent.crt'))).subject).toContain(`CN=agent-${v.name}`);
        }
      }
      // The control node's master verifies each agent's own secret against the hash it was given, and the operator's.
      const master = new Authority(loadSecurity(join(handover, 'control', 'security.yaml')));
      const secretOf = (vm: string, p: string) => readSecurityFile(join(handover, vm, 'security.yaml')).credentials.find((c) => c.principal === p)!.secret!;
      const basic = (p: string, s: string) => ({ headers: { authorization: `Basic ${Buffer.from(`${p}:${s}`).toString('base64')}` } }) as unknown as IncomingMessage;
      expect(await master.authenticate(basic('agent-agent2', secretOf('agent2', 'agent-agent2')))).toBe('agent-agent2');
      await expect(master.authenticate(basic('agent-agent2', secretOf('agent1', 'agent-agent1')))).rejects.toThrow();
      const admin = readSecurityFile(join(op, 'admin.yaml')).credentials[0]!;
      expect(await master.authenticate(basic('admin', admin.secret!))).toBe('admin');
      expect(readFileSync(join(op, 'curlrc'), 'utf8')).toBe(`cacert = "${join(op, 'ca', 'ca.crt')}"\nuser = "admin:${admin.secret}"\nlocation-trusted\n`);
      // Again (vagrant up or reload once more): the same secrets, so the VMs already provisioned keep working.
      const again = await sh('bash', ['vagrant/handover.sh', 'agent1', 'agent', '192.168.56.11', peers], { CORRAL_HANDOVER: handover, CORRAL_FROM_SOURCE: '1' });
      expect(again.code).toBe(0);
      expect(secretOf('agent1', 'agent-agent1')).toBe(readFileSync(join(op, 'secrets', 'agent-agent1.secret'), 'utf8').trim());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 180_000);

  it('provision.sh refuses a missing or incomplete bundle, one holding a CA key, and an agent bundle without the Ceph client files', async () => {
    const root = testDir('vagrant-nobundle');
    try {
      const env = (bundle: string) => ({ CORRAL_ROOT: REPO, CORRAL_ETC: join(root, 'etc'), CORRAL_BUNDLE: bundle, CORRAL_DRY_RUN: '1', CORRAL_FROM_SOURCE: '1' });
      const missing = await sh('bash', ['vagrant/provision.sh', 'agent', 'agent1', '192.168.56.11', '192.168.56.10'], env(join(root, 'none')));
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/bundle is incomplete .*missing: security.yaml tls\/ca.crt.*vagrant\/handover.sh/);
      const r = await sh('bash', ['vagrant/handover.sh', 'agent1', 'agent', '192.168.56.11', 'control=control,agent1=agent'], { CORRAL_HANDOVER: join(root, 'h'), CORRAL_FROM_SOURCE: '1' });
      expect(r.code).toBe(0);
      const noCeph = await sh('bash', ['vagrant/provision.sh', 'agent', 'agent1', '192.168.56.11', '192.168.56.10'], env(join(root, 'h', 'agent1')));
      expect(noCeph.code).toBe(1);
      expect(noCeph.stderr).toMatch(/no Ceph client files/);
      expect(existsSync(join(root, 'etc', 'node.json'))).toBe(false);
      writeFileSync(join(root, 'h', 'agent1', 'tls', 'ca.key'), 'not for a VM');
      const withKey = await sh('bash', ['vagrant/provision.sh', 'agent', 'agent1', '192.168.56.11', '192.168.56.10'], env(join(root, 'h', 'agent1')));
      expect(withKey.code).toBe(1);
      expect(withKey.stderr).toMatch(/holds a CA key/);
      const bad = await sh('bash', ['vagrant/provision.sh', 'worker', 'w', '1.2.3.4', '1.2.3.4'], env(join(root, 'none')));
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/role must be control or agent/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 120_000);

  it('three control nodes (replicated masters): each bundle with its etcd member certificates, and their node files', async () => {
    const root = testDir('vagrant-ha');
    const handover = join(root, '.corral');
    try {
      const plane = 'control=192.168.56.10,control2=192.168.56.8,control3=192.168.56.9';
      const members = [
        { name: 'control', address: '192.168.56.10' },
        { name: 'control2', address: '192.168.56.8' },
        { name: 'control3', address: '192.168.56.9' },
      ];
      const peers = 'control=control,control2=control,control3=control,agent1=agent';
      for (const m of members) {
        const h = await sh('bash', ['vagrant/handover.sh', m.name, 'control', m.address, peers, plane], { CORRAL_HANDOVER: handover, CORRAL_FROM_SOURCE: '1' });
        expect(h.code).toBe(0);
        expect(existsSync(join(handover, m.name, 'tls', 'etcd.crt'))).toBe(true);
      }
      const env = (vm: string) => ({ CORRAL_ROOT: REPO, CORRAL_ETC: join(root, `etc-${vm}`), CORRAL_BUNDLE: join(handover, vm), CORRAL_DRY_RUN: '1', CORRAL_FROM_SOURCE: '1' });
      const first = await sh('bash', ['vagrant/provision.sh', 'control', 'control', '192.168.56.10', '192.168.56.10', '5000', plane], env('control'));
      expect(first.stderr).toBe('');
      expect(JSON.parse(readFileSync(join(root, 'etc-control', 'node.json'), 'utf8'))).toEqual(
        nodeFileFor({ role: 'control', name: 'control', address: '192.168.56.10', ceph: true, agentTimeoutMs: 5000, controlPlane: members, bundle: join(handover, 'control') }),
      );
      const second = await sh('bash', ['vagrant/provision.sh', 'control', 'control2', '192.168.56.8', '192.168.56.10', '5000', plane], env('control2'));
      expect(second.code).toBe(0);
      const file = nodeConfigSchema.parse(JSON.parse(readFileSync(join(root, 'etc-control2', 'node.json'), 'utf8')));
      // Ceph stays on the first control node; every control node runs a service framework daemon (one leading) and discovery.
      expect(planNode(file, secretsOf(file)).daemons.map((d) => d.name)).toEqual(['etcd', 'master', 'services', 'discovery']);
      expect(secretsIn(join(handover, 'control2', 'security.yaml'))).toEqual(['discovery-control2', 'services']);
      const a = await sh('bash', ['vagrant/handover.sh', 'agent1', 'agent', '192.168.56.11', peers], { CORRAL_HANDOVER: handover, CORRAL_FROM_SOURCE: '1' });
      expect(a.code).toBe(0);
      mkdirSync(join(handover, 'agent1', 'ceph'), { mode: 0o700 });
      writeFileSync(join(handover, 'agent1', 'ceph', 'ceph.client.conf'), '[global]\n');
      writeFileSync(join(handover, 'agent1', 'ceph', 'keyring'), '[client.agent1]\n', { mode: 0o600 });
      const agent = await sh('bash', ['vagrant/provision.sh', 'agent', 'agent1', '192.168.56.11', '192.168.56.10,192.168.56.8,192.168.56.9'], env('agent1'));
      expect(agent.code).toBe(0);
      const n = nodeConfigSchema.parse(JSON.parse(readFileSync(join(root, 'etc-agent1', 'node.json'), 'utf8')));
      expect(cfg(planNode(n, secretsOf(n)), 'agent').master).toBe('https://192.168.56.10:5050,https://192.168.56.8:5050,https://192.168.56.9:5050');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 180_000);

  it('the Vagrantfile parses, hands each VM only its own folder and keeps the handover out of the repository copy', async () => {
    const ruby = await sh('ruby', ['-c', 'vagrant/Vagrantfile']);
    expect(ruby.stdout.trim()).toBe('Syntax OK');
    const text = readFileSync(join(REPO, 'vagrant', 'Vagrantfile'), 'utf8');
    expect(text).toContain('path: "provision.sh", args: ["control", name, ip, CONTROL_IP, AGENT_TIMEOUT_MS, CONTROL_PLANE],\n        env: { "CORRAL_CEPH_CLIENTS" => CEPH_CLIENTS }');
    // Each agent's bundle gets its own Ceph client's files from the control node, over Vagrant's ssh channel.
    expect(text).toContain('dir = "/var/lib/corral/node/ceph/clients/#{agent}"');
    expect(text).toContain('hand_over_ceph_files(env, name, machine.provider_name)');
    expect(text).toContain('path: "provision.sh", args: ["agent", name, ip, MASTERS, AGENT_TIMEOUT_MS]');
    // One synced folder per VM, its own handover folder, owned by root on the VM; the repository's copy leaves .corral/ out.
    expect(text.match(/node\.vm\.synced_folder File\.join\(HANDOVER, name\), BUNDLE_ON_VM, type: "rsync", create: true, owner: "root", group: "root"/g)).toHaveLength(2);
    expect(text).toMatch(/synced_folder "\.\.", "\/corral", type: "rsync",\s+rsync__exclude: \[[^\]]*"\.corral\/"/);
    expect(text).toContain('config.vm.synced_folder ".", "/vagrant", disabled: true');
    expect(text).toContain('BUNDLE_ON_VM = "/etc/corral/bundle"');
    // The bundle is made on the host before each VM comes up, without a shell.
    expect(text.match(/trigger\.before \[:up, :reload\]/g)).toHaveLength(2);
    expect(text).toContain('args = [File.join(__dir__, "handover.sh"), name, role, ip, PEERS]');
    expect(text).toContain('system(*args)');
    // No token or secret travels through the environment or the KV any more.
    expect(text).not.toMatch(/KV_TOKEN|CORRAL_LAB_KV_TOKEN/);
    expect(readFileSync(join(REPO, 'vagrant', '.gitignore'), 'utf8')).toContain('.corral/');
    const provision = readFileSync(join(REPO, 'vagrant', 'provision.sh'), 'utf8');
    expect(provision).toContain('node up --config $NODE_FILE');
    expect(provision).toContain('--bundle "$BUNDLE"');
    expect(provision).not.toMatch(/8500\/v1\/kv|--insecure/);
  });

  it('provision.sh and handover.sh pass shellcheck', async () => {
    const r = await sh('shellcheck', ['-x', '-P', 'SCRIPTDIR', 'vagrant/provision.sh', 'vagrant/handover.sh']);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
