/**
 * The lab's secure configuration, without namespaces: lab/security.ts makes
 * the CA in the operator's directory, each machine's certificates and its
 * security file (its own secrets in plain text, everyone else's hashes), and
 * provisioning reads from each file exactly the host's own credentials.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { controlNodeConfig, hostNodeConfig, planLab, servicesBundleNode, servicesNodeConfig, LAB_DEFAULTS } from '../../lab/topology.js';
import { labOperatorFiles, machinePrincipals, secureLab } from '../../lab/security.js';
import { nodeConfigSchema } from '../../provision/src/config.js';
import { planNode } from '../../provision/src/plan.js';
import { secretsOf } from '../../provision/src/run.js';
import { Authority, loadSecurity } from '../../core-scheduler/src/master/auth.js';
import { testDir } from '../harness/resources.js';
import { principalsBySecret, readSecurityFile } from '../harness/security-file.js';

const dir = testDir('lab-security');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lab security: the CA with the operator, each machine its own certificates and credentials', () => {
  const plan = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 2, dir, routeReflector: false, full: true, controls: 3 });
  const nodes = [...plan.controls.map((c) => controlNodeConfig(plan, c)), ...plan.hosts.map((h) => hostNodeConfig(plan, h))];

  it('writes every file, the CA key only in the operator directory, keys and security files 0600', async () => {
    const admin = await secureLab(
      dir,
      nodes.map((node) => ({ node, own: machinePrincipals(node) })),
    );
    const op = labOperatorFiles(dir);
    expect(plan.operator).toEqual({ ca: op.ca, credentials: op.credentials, curlrc: op.curlrc });
    expect(existsSync(join(op.caDir, 'ca.key'))).toBe(true);
    expect(statSync(op.dir).mode & 0o077).toBe(0);
    expect(readFileSync(op.curlrc, 'utf8')).toBe(`cacert = "${op.ca}"\nuser = "admin:${admin.secret}"\nlocation-trusted\n`);
    const machineDirs = [...plan.controls.map((c) => c.dir), ...plan.hosts.map((h) => h.dir)];
    for (const d of machineDirs) {
      const files = readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
      expect(files.some((e) => e.name === 'ca.key')).toBe(false);
      for (const e of files.filter((x) => x.name.endsWith('.key') || x.name.endsWith('.yaml'))) expect(statSync(join(e.parentPath, e.name)).mode & 0o077, e.name).toBe(0);
      expect(readFileSync(join(d, 'security.yaml'), 'utf8')).not.toContain(admin.secret);
    }
    // The first control node runs etcd's auth set-up, which needs the CA's directory: the operator's, named in its node file.
    expect(nodes[0]!.tls).toEqual({ dir: join(plan.controls[0]!.dir, 'tls'), caDir: op.caDir });
    expect(nodes.slice(1).every((n) => n.tls?.caDir === undefined)).toBe(true);
  });

  it("a host's file: its own principals in plain text, every other a hash; provisioning picks the host's own", () => {
    const h1 = nodes.find((n) => n.name === 'h1')!;
    expect(principalsBySecret(readSecurityFile(h1.security!.file))).toEqual({
      plain: ['agent-h1', 'cni-h1'],
      hashed: ['admin', 'agent-h2', 'cni-h2', 'discovery-control', 'discovery-control2', 'discovery-control3', 'services'].sort(),
    });
    const node = nodeConfigSchema.parse(h1);
    const secrets = secretsOf(node)!;
    expect(Object.keys(secrets).sort()).toEqual(['agents', 'cni']);
    expect(secrets.agents!.principal).toBe('agent-h1');
    expect(secrets.cni!.principal).toBe('cni-h1');
    const p = planNode(node, secrets);
    const agent = p.daemons.find((d) => d.name === 'agent')!.config as Record<string, unknown>;
    expect(agent).toMatchObject({ principal: 'agent-h1', master: plan.masterUrls.join(',') });
    expect(plan.masterUrls.every((u) => u.startsWith('https://'))).toBe(true);
    // The agent's certificate CN is its principal (mutual TLS at the master).
    expect(new X509Certificate(readFileSync(join(h1.tls!.dir, 'agent.crt'))).subject).toContain('CN=agent-h1');
  });

  it("a control node's file: the services framework's and its discovery's secrets only", () => {
    const c2 = nodes.find((n) => n.name === 'control2')!;
    expect(principalsBySecret(readSecurityFile(c2.security!.file)).plain).toEqual(['discovery-control2', 'services']);
    const secrets = secretsOf(nodeConfigSchema.parse(c2))!;
    expect(secrets.admin!.principal).toBe('discovery-control2');
    expect(secrets.frameworks!.principal).toBe('services');
    expect(secrets.agents).toBeUndefined();
    expect(
      readdirSync(c2.tls!.dir)
        .filter((f) => f.endsWith('.key'))
        .sort(),
    ).toEqual(['discovery.key', 'etcd-client.key', 'etcd-discovery.key', 'etcd-services.key', 'etcd.key', 'master.key', 'services.key']);
  });

  it("the master's checks: every principal verifies against its hash, with the ACLs each needs", async () => {
    const master = new Authority(loadSecurity(nodes[0]!.security!.file));
    const h2 = readSecurityFile(nodes.find((n) => n.name === 'h2')!.security!.file);
    const own = (p: string) => h2.credentials.find((c) => c.principal === p)!.secret!;
    const basic = (p: string, s: string) => ({ headers: { authorization: `Basic ${Buffer.from(`${p}:${s}`).toString('base64')}` } }) as unknown as IncomingMessage;
    expect(await master.authenticate(basic('agent-h2', own('agent-h2')))).toBe('agent-h2');
    expect(await master.authenticate(basic('cni-h2', own('cni-h2')))).toBe('cni-h2');
    await expect(master.authenticate(basic('agent-h2', own('cni-h2')))).rejects.toThrow();
    const acls = readSecurityFile(nodes[0]!.security!.file).acls;
    expect(acls).toMatchObject({ operators: ['admin'], agents: ['agent-h1', 'agent-h2'] });
    expect(acls.view).toEqual(expect.arrayContaining(['cni-h1', 'cni-h2', 'discovery-control']));
  });
});

describe('lab security, CNI-only lab: etcd and the lab master secured with the same CA and bundles', () => {
  const cniDir = join(dir, 'cni-only');
  const plan = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 2, dir: cniDir, routeReflector: false });

  it("the services machine holds the CA's directory for etcd's set-up, its master and agent certificates and agent-control's secret; each host its CNI daemon's", async () => {
    expect(plan.operator).toEqual({ ca: labOperatorFiles(cniDir).ca, credentials: labOperatorFiles(cniDir).credentials, curlrc: labOperatorFiles(cniDir).curlrc });
    expect([plan.etcdUrl, plan.masterUrl, ...plan.masterUrls].every((u) => u.startsWith('https://'))).toBe(true);
    const svc = servicesNodeConfig(plan);
    // Provisioned: etcd only (the master and the simulated agents are the lab's own process), its root password with the CA.
    expect(svc.components).toEqual(['etcd']);
    expect(svc.tls).toEqual({ dir: join(plan.services.dir, 'tls'), caDir: labOperatorFiles(cniDir).caDir });
    const hosts = plan.hosts.map((h) => hostNodeConfig(plan, h));
    await secureLab(
      cniDir,
      [servicesBundleNode(plan), ...hosts].map((node) => ({ node, own: machinePrincipals(node) })),
    );
    const cn = (file: string): string => new X509Certificate(readFileSync(file)).subject;
    expect(cn(join(plan.services.dir, 'tls', 'agent.crt'))).toContain('CN=agent-control');
    expect(new X509Certificate(readFileSync(join(plan.services.dir, 'tls', 'master.crt'))).subjectAltName).toContain(`IP Address:${plan.services.ip}`);
    expect(cn(join(plan.hosts[0]!.dir, 'tls', 'etcd-cni.crt'))).toContain('CN=corral-cni');
    const svcSec = readSecurityFile(svc.security!.file);
    expect(svcSec.credentials.filter((c) => c.secret).map((c) => c.principal)).toEqual(['agent-control']);
    expect(svcSec.acls).toMatchObject({ agents: ['agent-control'], view: ['cni-h1', 'cni-h2'] });
    // The host's CNI daemon: its own credential for the master's agent list, its own certificate (corral-cni) for etcd.
    const p = planNode(nodeConfigSchema.parse(hosts[0]), secretsOf(nodeConfigSchema.parse(hosts[0]))!);
    const cni = p.daemons.find((d) => d.name === 'cni')!.config as { store: Record<string, unknown>; bgp: { master: Record<string, unknown> } };
    expect(cni.store).toEqual({
      backend: 'etcd',
      etcdEndpoints: [plan.etcdUrl],
      namespace: '',
      etcdTls: { ca: join(plan.hosts[0]!.dir, 'tls', 'ca.crt'), cert: join(plan.hosts[0]!.dir, 'tls', 'etcd-cni.crt'), key: join(plan.hosts[0]!.dir, 'tls', 'etcd-cni.key') },
    });
    expect(cni.bgp.master).toMatchObject({ url: plan.masterUrl, principal: 'cni-h1' });
  });
});
