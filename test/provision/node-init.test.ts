/**
 * `corral node init` is secure by default (TLS on every API, authentication
 * against the node's security file); plain HTTP without authentication only
 * with --insecure; a host provisioned from the operator's bundle names it
 * with --bundle (or --security and --no-ca-dir); contradictory options are
 * refused. `corral node bundle` writes one host's bundle on the operator's
 * machine, and `node up` on a host without its security file says where it
 * comes from.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { principalsBySecret, readSecurityFile } from '../harness/security-file.js';
import { nodeFileFor, type NodeInitOptions } from '../../provision/src/init.js';
import { REPO } from '../volume-driver/helpers.js';
import { testDir } from '../harness/resources.js';

const root = testDir('node-init');
afterAll(() => rmSync(root, { recursive: true, force: true }));

function corral(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(REPO, 'cli/corral.ts'), ...args], { cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const control = (o: Partial<NodeInitOptions> = {}) => nodeFileFor({ role: 'control', name: 'c1', address: '198.18.0.1', dir: '/n', ...o });
const agent = (o: Partial<NodeInitOptions> = {}) => nodeFileFor({ role: 'agent', name: 'h1', address: '198.18.0.11', control: '198.18.0.1', dir: '/n', ...o });

describe('node files: secure by default', () => {
  it('TLS and authentication unless asked otherwise; the control node keeps the CA, an agent has none', () => {
    expect(control()).toMatchObject({ tls: { dir: '/n/tls', caDir: '/n/ca' }, security: { file: '/n/security.yaml' } });
    expect(agent().tls).toEqual({ dir: '/n/tls' });
    expect(agent().security).toEqual({ file: '/n/security.yaml' });
  });

  it('--insecure: plain HTTP, no security file', () => {
    expect(control({ insecure: true })).not.toHaveProperty('tls');
    expect(control({ insecure: true })).not.toHaveProperty('security');
    expect(agent({ insecure: true })).not.toHaveProperty('tls');
  });

  it("a host from the operator's bundle: its certificates and security file there, no CA on the node", () => {
    expect(control({ bundle: '/etc/corral/bundle' })).toMatchObject({ tls: { dir: '/etc/corral/bundle/tls' }, security: { file: '/etc/corral/bundle/security.yaml' } });
    expect(control({ bundle: '/etc/corral/bundle' }).tls).not.toHaveProperty('caDir');
    // The same by parts: --tls-dir, --no-ca-dir, --security.
    expect(control({ tls: { dir: '/b/tls', caDir: false }, security: '/b/sec.yaml' })).toMatchObject({ tls: { dir: '/b/tls' }, security: { file: '/b/sec.yaml' } });
    expect(control({ tls: { caDir: false } }).tls).toEqual({ dir: '/n/tls' });
  });

  it('refuses contradictory options, naming them', () => {
    expect(() => control({ insecure: true, tls: { dir: '/t' } })).toThrow(/--insecure .*contradicts --tls-dir/);
    expect(() => control({ insecure: true, tls: { caDir: '/ca' } })).toThrow(/contradicts --ca-dir/);
    expect(() => agent({ insecure: true, security: '/s.yaml' })).toThrow(/contradicts --security/);
    expect(() => agent({ insecure: true, bundle: '/b' })).toThrow(/contradicts --bundle/);
    expect(() => agent({ bundle: '/b', security: '/s.yaml' })).toThrow(/--bundle .*contradicts --security/);
    expect(() => control({ bundle: '/b', tls: { caDir: '/ca' } })).toThrow(/--bundle .*contradicts --ca-dir/);
  });
});

describe('corral node init and corral node bundle (the CLI)', () => {
  it('prints the secure node file by default; --tls is accepted as before; --insecure with TLS options is refused', async () => {
    const base = ['node', 'init', '--role', 'agent', '--name', 'h1', '--address', '198.18.0.11', '--control', '198.18.0.1', '--dir', '/n'];
    const secure = await corral(base);
    expect(secure.code).toBe(0);
    expect(JSON.parse(secure.stdout)).toEqual(agent());
    const tls = await corral([...base, '--tls']);
    expect(JSON.parse(tls.stdout)).toEqual(agent());
    const insecure = await corral([...base, '--insecure']);
    expect(JSON.parse(insecure.stdout)).toEqual(agent({ insecure: true }));
    const both = await corral([...base, '--insecure', '--tls']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--tls contradicts --insecure/);
    const withDir = await corral([...base, '--insecure', '--tls-dir', '/t']);
    expect(withDir.code).toBe(1);
    expect(withDir.stderr).toMatch(/--insecure .*contradicts --tls-dir/);
    expect(withDir.stdout).toBe('');
    // A relative bundle directory is made absolute; --no-ca-dir leaves a control node without a CA.
    const fromBundle = await corral(['node', 'init', '--role', 'control', '--name', 'c1', '--address', '198.18.0.1', '--dir', '/n', '--bundle', 'b']);
    expect(JSON.parse(fromBundle.stdout)).toEqual(control({ bundle: join(REPO, 'b') }));
    const noCa = await corral(['node', 'init', '--role', 'control', '--name', 'c1', '--address', '198.18.0.1', '--dir', '/n', '--no-ca-dir', '--security', '/s.yaml']);
    expect(JSON.parse(noCa.stdout)).toEqual(control({ tls: { caDir: false }, security: '/s.yaml' }));
  }, 120_000);

  it("node bundle: one host's certificates and security file, 0700, its own secrets only; the CA key stays with the operator", async () => {
    const op = join(root, 'operator');
    const out = join(root, 'bundle-h1');
    const r = await corral(['node', 'bundle', '--operator-dir', op, '--role', 'agent', '--name', 'h1', '--address', '198.18.0.11', '--out', out, '--peers', 'c1=control,h1=agent,h2=agent']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`bundle for agent node h1 in ${out}`);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(out, 'tls')).sort()).toEqual(['agent.crt', 'agent.key', 'ca.crt', 'cni.crt', 'cni.key']);
    expect(statSync(join(out, 'tls', 'agent.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'security.yaml')).mode & 0o777).toBe(0o600);
    expect(existsSync(join(op, 'ca', 'ca.key'))).toBe(true);
    const sec = readSecurityFile(join(out, 'security.yaml'));
    expect(principalsBySecret(sec)).toEqual({ plain: ['agent-h1', 'cni-h1'], hashed: ['admin', 'agent-h2', 'cni-h2', 'discovery-c1', 'services'] });
    expect(sec.acls).toMatchObject({ operators: ['admin'], agents: ['agent-h1', 'agent-h2'] });
    // Its own secret is the one the operator directory keeps for that principal.
    expect(sec.credentials.find((c) => c.principal === 'agent-h1')!.secret).toBe(readFileSync(join(op, 'secrets', 'agent-h1.secret'), 'utf8').trim());
    // The node file made from it plans (its certificates and security file are there).
    const nodeFile = join(root, 'h1.json');
    const init = await corral(['node', 'init', '--role', 'agent', '--name', 'h1', '--address', '198.18.0.11', '--control', '198.18.0.1', '--dir', join(root, 'h1'), '--bundle', out]);
    writeFileSync(nodeFile, init.stdout);
    const plan = await corral(['node', 'plan', '--config', nodeFile]);
    expect(plan.code).toBe(0);
    expect(JSON.parse(plan.stdout).daemons.find((d: { name: string }) => d.name === 'agent').config).toMatchObject({ master: 'https://198.18.0.1:5050', credentials: join(out, 'security.yaml') });
  }, 120_000);

  it('node bundle refuses an output directory overlapping the operator directory, and malformed peers', async () => {
    const op = join(root, 'operator2');
    const inside = await corral(['node', 'bundle', '--operator-dir', op, '--role', 'agent', '--name', 'h1', '--address', '198.18.0.11', '--out', join(op, 'h1')]);
    expect(inside.code).toBe(1);
    expect(inside.stderr).toMatch(/overlap: a host's bundle must never hold the CA's key/);
    const peers = await corral(['node', 'bundle', '--operator-dir', op, '--role', 'agent', '--name', 'h1', '--address', '198.18.0.11', '--out', join(root, 'b2'), '--peers', 'c1=master']);
    expect(peers.code).toBe(1);
    expect(peers.stderr).toMatch(/--peers: "c1=master" is not name=control or name=agent/);
    expect(existsSync(op)).toBe(false);
  }, 120_000);

  it('node up without the security file says where it comes from, before starting anything', async () => {
    const dir = join(root, 'lonely');
    const nodeFile = join(root, 'lonely.json');
    const init = await corral(['node', 'init', '--role', 'agent', '--name', 'h9', '--address', '198.18.0.19', '--control', '198.18.0.1', '--dir', dir]);
    writeFileSync(nodeFile, init.stdout);
    const up = await corral(['node', 'up', '--config', nodeFile]);
    expect(up.code).toBe(1);
    expect(up.stderr).toMatch(/its security file .*security.yaml does not exist: make this host's bundle on the operator's machine \(corral node bundle .*--name h9/);
    expect(up.stderr).toMatch(/corral node init --insecure/);
    expect(existsSync(join(dir, 'node-state.json'))).toBe(false);
  }, 120_000);
});
