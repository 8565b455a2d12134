/**
 * The per-machine step without machines: VMs cannot run here, so what the
 * Vagrant lab would do is checked as far as it can be.
 *  - node files for both roles (`corral node init`, what provision.sh
 *    writes) validate and plan into the right daemons with the right
 *    addresses, sockets, cgroup roots and Ceph client files;
 *  - provision.sh itself, in its dry-run mode, writes those node files;
 *  - the lab's node files (the same step, per namespace) keep hosts apart;
 *  - the Vagrantfile parses (`ruby -c`) and calls provision.sh per machine
 *    with its role; provision.sh passes shellcheck.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nodeConfigSchema } from '../../provision/src/config.js';
import { nodeFileFor } from '../../provision/src/init.js';
import { planNode, type NodePlan } from '../../provision/src/plan.js';
import { controlNodeConfig, hostNodeConfig, planLab, LAB_DEFAULTS } from '../../lab/topology.js';
import { REPO } from '../volume-driver/helpers.js';
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

describe('node files for the Vagrant lab (corral node init)', () => {
  const control = plan(nodeFileFor({ role: 'control', name: 'control', address: '192.168.56.10', ceph: true, agentTimeoutMs: 5000 }));
  const agent = plan(
    nodeFileFor({ role: 'agent', name: 'agent1', address: '192.168.56.11', control: '192.168.56.10', cephConf: '/etc/corral/ceph/ceph.client.conf', cephKeyring: '/etc/corral/ceph/keyring' }),
  );

  it('control: a memstore Ceph, then master, services and discovery, all bound to the node address', () => {
    expect(control.ceph).toMatchObject({ address: '192.168.56.10', monPort: 3300, pools: ['corral'] });
    expect(control.daemons.map((d) => d.name)).toEqual(['master', 'services', 'discovery']);
    expect(daemon(control, 'master').args).toEqual(['master', '--config', '/var/lib/corral/node/master/master.json']);
    expect(cfg(control, 'master')).toMatchObject({ host: '192.168.56.10', port: 5050, agents: { heartbeatIntervalMs: 1000, maxMissedHeartbeats: 3, unreachableTimeoutMs: 5000 } });
    expect(cfg(control, 'services')).toMatchObject({ host: '192.168.56.10', master: { url: 'http://192.168.56.10:5050' }, unreachable: { replaceAfterSeconds: 0 } });
    expect(cfg(control, 'discovery')).toMatchObject({ master: { url: 'http://192.168.56.10:5050' }, dns: { host: '192.168.56.10', port: 8600 }, http: { host: '192.168.56.10', port: 8500 } });
    // Ready once it serves and follows the master.
    expect(daemon(control, 'discovery').ready).toMatchObject({ kind: 'http', url: 'http://192.168.56.10:8500/v1/corral/status', expect: { field: ['master', 'connected'], equals: true } });
  });

  it('agent: CNI daemon, volume driver and agent, pointed at the control node, with per-node sockets, cgroup root and netns prefix', () => {
    expect(agent.ceph).toBeUndefined();
    expect(agent.daemons.map((d) => d.name)).toEqual(['cni', 'volumes', 'agent']);
    expect(cfg(agent, 'cni')).toMatchObject({
      node: 'agent1',
      socket: '/run/corral/node/cni.sock',
      store: { backend: 'remote', url: 'http://192.168.56.10:5050' },
      pools: [{ name: 'default', cidr: '100.96.0.0/16', blockSize: 26 }],
      bgp: { enabled: true, localAddress: '192.168.56.11', holdTime: 9, master: { url: 'http://192.168.56.10:5050' } },
    });
    expect(agent.cni).toEqual({ binDir: '/var/lib/corral/node/cni/bin', confDir: '/var/lib/corral/node/cni/net.d', network: 'corral', socket: '/run/corral/node/cni.sock' });
    expect(cfg(agent, 'volumes')).toMatchObject({
      hostId: 'agent1',
      socket: '/run/corral/node/volumes.sock',
      defaultBackend: 'rbd',
      rbd: { enabled: true, confFile: '/etc/corral/ceph/ceph.client.conf', keyring: '/etc/corral/ceph/keyring', pool: 'corral' },
      // Task references whose unmount was lost are released against this node's agent.
      reconcile: { liveContainers: { url: 'http://192.168.56.11:5051/api/v1/containers' } },
    });
    expect(cfg(agent, 'agent')).toMatchObject({
      master: 'http://192.168.56.10:5050',
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
    // CNI-only lab: just the node daemon, IPAM in the lab's etcd.
    const cniOnly = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 2, dir: '/tmp/lab', routeReflector: false });
    const h = plan(hostNodeConfig(cniOnly, cniOnly.hosts[0]!));
    expect(h.daemons.map((d) => d.name)).toEqual(['cni']);
    expect(cfg(h, 'cni').store).toEqual({ backend: 'etcd', etcdEndpoints: ['http://198.18.0.1:2379'], namespace: 'ct-x/' });
  });
});

describe('vagrant/', () => {
  it('provision.sh (dry run) writes the node file corral node init makes, for both roles', async () => {
    const etc = testDir('vagrant-etc');
    try {
      const env = { CORRAL_ROOT: REPO, CORRAL_ETC: etc, CORRAL_DRY_RUN: '1', CORRAL_FROM_SOURCE: '1' };
      const c = await sh('bash', ['vagrant/provision.sh', 'control', 'control', '192.168.56.10', '192.168.56.10', '4000'], env);
      expect(c.stderr).toBe('');
      expect(c.code).toBe(0);
      expect(JSON.parse(readFileSync(join(etc, 'node.json'), 'utf8'))).toEqual(nodeFileFor({ role: 'control', name: 'control', address: '192.168.56.10', ceph: true, agentTimeoutMs: 4000 }));
      const a = await sh('bash', ['vagrant/provision.sh', 'agent', 'agent2', '192.168.56.12', '192.168.56.10'], env);
      expect(a.code).toBe(0);
      const file = JSON.parse(readFileSync(join(etc, 'node.json'), 'utf8'));
      expect(file).toEqual(
        nodeFileFor({ role: 'agent', name: 'agent2', address: '192.168.56.12', control: '192.168.56.10', cephConf: join(etc, 'ceph', 'ceph.client.conf'), cephKeyring: join(etc, 'ceph', 'keyring') }),
      );
      expect(plan(file).daemons.map((d) => d.name)).toEqual(['cni', 'volumes', 'agent']);
      const bad = await sh('bash', ['vagrant/provision.sh', 'worker', 'w', '1.2.3.4', '1.2.3.4'], env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/role must be control or agent/);
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  }, 60_000);

  it('provision.sh (dry run) writes the node files of three control nodes (replicated masters) and of their agents', async () => {
    const etc = testDir('vagrant-ha');
    try {
      const env = { CORRAL_ROOT: REPO, CORRAL_ETC: etc, CORRAL_DRY_RUN: '1', CORRAL_FROM_SOURCE: '1' };
      const plane = 'control=192.168.56.10,control2=192.168.56.8,control3=192.168.56.9';
      const members = [
        { name: 'control', address: '192.168.56.10' },
        { name: 'control2', address: '192.168.56.8' },
        { name: 'control3', address: '192.168.56.9' },
      ];
      const first = await sh('bash', ['vagrant/provision.sh', 'control', 'control', '192.168.56.10', '192.168.56.10', '5000', plane], env);
      expect(first.stderr).toBe('');
      expect(JSON.parse(readFileSync(join(etc, 'node.json'), 'utf8'))).toEqual(
        nodeFileFor({ role: 'control', name: 'control', address: '192.168.56.10', ceph: true, agentTimeoutMs: 5000, controlPlane: members }),
      );
      const second = await sh('bash', ['vagrant/provision.sh', 'control', 'control2', '192.168.56.8', '192.168.56.10', '5000', plane], env);
      expect(second.code).toBe(0);
      const file = JSON.parse(readFileSync(join(etc, 'node.json'), 'utf8'));
      // Ceph stays on the first control node; every control node runs a service framework daemon (one leading) and discovery.
      expect(plan(file).daemons.map((d) => d.name)).toEqual(['etcd', 'master', 'services', 'discovery']);
      const agent = await sh('bash', ['vagrant/provision.sh', 'agent', 'agent1', '192.168.56.11', '192.168.56.10,192.168.56.8,192.168.56.9'], env);
      expect(agent.code).toBe(0);
      expect(cfg(plan(JSON.parse(readFileSync(join(etc, 'node.json'), 'utf8'))), 'agent').master).toBe('http://192.168.56.10:5050,http://192.168.56.8:5050,http://192.168.56.9:5050');
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  }, 60_000);

  it('the Vagrantfile parses and provisions one control node and N agents with provision.sh by role', async () => {
    const ruby = await sh('ruby', ['-c', 'vagrant/Vagrantfile']);
    expect(ruby.stdout.trim()).toBe('Syntax OK');
    const text = readFileSync(join(REPO, 'vagrant', 'Vagrantfile'), 'utf8');
    expect(text).toContain('path: "provision.sh", args: ["control", name, ip, CONTROL_IP, AGENT_TIMEOUT_MS, CONTROL_PLANE]');
    expect(text).toContain('path: "provision.sh", args: ["agent", name, ip, MASTERS, AGENT_TIMEOUT_MS]');
    expect(text).toMatch(/CONTROLS = Integer\(ENV.fetch\("CORRAL_CONTROLS", "1"\)\)/);
    expect(text).toMatch(/config\.vm\.box = BOX/);
    expect(text).toMatch(/"private_network", ip: ip/);
    expect(text).toContain(`["control", CONTROL_IP]`);
    const provision = readFileSync(join(REPO, 'vagrant', 'provision.sh'), 'utf8');
    expect(provision).toContain('node up --config $NODE_FILE');
  });

  it('provision.sh passes shellcheck', async () => {
    const r = await sh('shellcheck', ['-x', '-P', 'SCRIPTDIR', 'vagrant/provision.sh']);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
