/**
 * Provisioning with TLS: `corral node init` (TLS by default) makes a node file whose
 * control node keeps the cluster CA; node up issues each node's certificates
 * (keys 0600, the CA's key never in a node's certificate directory); an agent
 * node without the CA needs certificates handed over, and says so.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureClusterCa, initNode, issueNodeCertificates, planNode, revokeCertificates } from '../../provision/src/index.js';
import { ensureNodeCertificates } from '../../provision/src/tls.js';
import { loadTls } from '../../common/tls/index.js';

const root = mkdtempSync(join(tmpdir(), 'corral-tls-provision-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const control = initNode({ role: 'control', name: 'c1', address: '198.18.0.1', dir: join(root, 'c1') });
const agent = initNode({ role: 'agent', name: 'a1', address: '198.18.0.2', control: '198.18.0.1', dir: join(root, 'a1') });

describe('node files with TLS', () => {
  it('a control node keeps the CA; an agent node only a certificate directory', () => {
    expect(control.tls).toEqual({ dir: join(root, 'c1', 'tls'), caDir: join(root, 'c1', 'ca') });
    expect(agent.tls).toEqual({ dir: join(root, 'a1', 'tls') });
    const p = planNode(agent, { agents: { principal: 'agent-a1', secret: 's' }, cni: { principal: 'cni-a1', secret: 's' } });
    expect(p.urls.master).toBe('https://198.18.0.1:5050');
    expect(p.daemons.find((d) => d.name === 'agent')!.config).toMatchObject({ tls: { ca: join(root, 'a1', 'tls', 'ca.crt'), cert: join(root, 'a1', 'tls', 'agent.crt') } });
  });

  it('node up on the control node makes the CA (key 0600) and its daemons certificates; the CA key stays out of tls/', async () => {
    await ensureNodeCertificates(control);
    expect(statSync(join(root, 'c1', 'ca', 'ca.key')).mode & 0o777).toBe(0o600);
    const tlsDir = join(root, 'c1', 'tls');
    expect(readdirSync(tlsDir).sort()).toEqual(['ca.crt', 'discovery.crt', 'discovery.key', 'master.crt', 'master.key', 'services.crt', 'services.key']);
    for (const f of readdirSync(tlsDir).filter((f) => f.endsWith('.key'))) expect(statSync(join(tlsDir, f)).mode & 0o777).toBe(0o600);
    const master = new X509Certificate(readFileSync(join(tlsDir, 'master.crt')));
    expect(master.subjectAltName).toContain('IP Address:198.18.0.1');
    expect(master.checkIssued(new X509Certificate(readFileSync(join(root, 'c1', 'ca', 'ca.crt'))))).toBe(true);
    // Again: nothing is re-issued while the certificates are current.
    const before = readFileSync(join(tlsDir, 'master.crt'), 'utf8');
    await ensureNodeCertificates(control);
    expect(readFileSync(join(tlsDir, 'master.crt'), 'utf8')).toBe(before);
  });

  it('an agent node without its certificates refuses to start, saying where they come from', async () => {
    await expect(ensureNodeCertificates(agent)).rejects.toThrow(/does not exist.*must be issued on the node holding the cluster CA and copied here, keys 0600/);
  });

  it("certificates issued for the agent node on the CA's node (corral node certs) make it start, its CN the agent's principal", async () => {
    const ca = await ensureClusterCa(join(root, 'c1', 'ca'), 'unused: the CA exists');
    const issued = await issueNodeCertificates(ca, agent, { agent: 'agent-a1' });
    expect(issued.sort()).toEqual(['agent', 'cni']);
    await ensureNodeCertificates(agent);
    const m = loadTls({ ca: join(root, 'a1', 'tls', 'ca.crt'), cert: join(root, 'a1', 'tls', 'agent.crt'), key: join(root, 'a1', 'tls', 'agent.key') });
    expect(m.subject).toBe('agent-a1');
    expect(existsSync(join(root, 'a1', 'tls', 'ca.key'))).toBe(false);
  });

  it("the CA's revocation list travels with the certificates (node up on the CA's node, node certs) and every daemon of the node is given it", async () => {
    const caDir = join(root, 'c1', 'ca');
    await revokeCertificates(caDir, { certs: [join(root, 'a1', 'tls', 'cni.crt')], reason: 'superseded', validDays: 30 });
    await ensureNodeCertificates(control);
    expect(readFileSync(join(root, 'c1', 'tls', 'ca.crl'), 'utf8')).toBe(readFileSync(join(caDir, 'ca.crl'), 'utf8'));
    await issueNodeCertificates(await ensureClusterCa(caDir, 'unused'), agent, { agent: 'agent-a1' }, caDir);
    const p = planNode(agent, { agents: { principal: 'agent-a1', secret: 's' }, cni: { principal: 'cni-a1', secret: 's' } });
    for (const d of p.daemons.filter((d) => (d.config as { tls?: unknown }).tls)) expect((d.config as { tls: { crl?: string } }).tls.crl, d.name).toBe(join(root, 'a1', 'tls', 'ca.crl'));
    // The agent's own certificate still loads; the revoked one is on the list every daemon of the node now holds.
    expect(loadTls({ ca: join(root, 'a1', 'tls', 'ca.crt'), crl: join(root, 'a1', 'tls', 'ca.crl') }).revoked).toBe(1);
  });
});
