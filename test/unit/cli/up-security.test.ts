/**
 * The credentials `corral up` generates: one per daemon and the operator's,
 * the master's file with hashes only, and each daemon's config file with its
 * own secret and no other.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { ensureSecurityFile, masterSecurityFile, planSecretsOf, UP_PRINCIPALS } from '../../../cli/up/security.js';
import { makePlan, upNodeConfig } from '../../../cli/up/plan.js';
import { Authority, loadSecurity } from '../../../core-scheduler/src/master/auth.js';
import { nodeConfigSchema } from '../../../provision/src/config.js';
import { planNode } from '../../../provision/src/plan.js';
import { basicAuthHeader } from '../../../contracts/client/auth-header.js';
import { tempDirsRemovedAfterAll } from '../../harness/temp-dirs.js';

const tempDir = tempDirsRemovedAfterAll();

const dir = tempDir('corral-up-sec-');
const mode = (f: string): number => statSync(f).mode & 0o777;

describe("corral up's credentials", () => {
  const operatorFile = join(dir, 'security.yaml');
  const sec = ensureSecurityFile(operatorFile);

  it('writes the master a file of hashes only, and each secret to a file of its own, readable by root only', () => {
    expect(sec.masterFile).toBe(masterSecurityFile(operatorFile));
    const master = loadSecurity(sec.masterFile);
    expect(master.credentials.map((c) => c.principal).sort()).toEqual([...UP_PRINCIPALS].sort());
    for (const c of master.credentials) {
      expect(c.secret, c.principal).toBeUndefined();
      expect(c.secret_hash).toMatch(/^scrypt\$/);
    }
    const text = readFileSync(sec.masterFile, 'utf8');
    for (const p of UP_PRINCIPALS) expect(text.includes(sec.credentials[p].secret), p).toBe(false);
    expect(mode(sec.masterFile)).toBe(0o600);
    expect(mode(join(dir, 'security'))).toBe(0o700);
    expect(mode(operatorFile)).toBe(0o600);
    for (const p of UP_PRINCIPALS.filter((x) => x !== 'admin')) {
      const f = join(dir, 'security', `${p}.secret`);
      expect(mode(f)).toBe(0o600);
      expect(readFileSync(f, 'utf8')).toBe(`${sec.credentials[p].secret}\n`);
    }
    // The operator's file: admin's secret only.
    const op = loadSecurity(operatorFile);
    expect(op.credentials).toEqual([{ principal: 'admin', secret: sec.credentials.admin.secret }]);
    expect(new Set(UP_PRINCIPALS.map((p) => sec.credentials[p].secret)).size).toBe(UP_PRINCIPALS.length);
  });

  it("the master's file verifies every credential, and its ACLs give each only what it needs", async () => {
    const master = loadSecurity(sec.masterFile);
    const auth = new Authority(master);
    for (const p of UP_PRINCIPALS) {
      const req = { headers: { authorization: basicAuthHeader(p, sec.credentials[p].secret) } } as IncomingMessage;
      await expect(auth.authenticate(req)).resolves.toBe(p);
    }
    expect(() => auth.authorizeAgent('agent')).not.toThrow();
    expect(() => auth.authorizeAgent('services')).toThrow();
    expect(() => auth.authorizeOperatorCall('discovery', 'GET_STATE')).not.toThrow();
    expect(() => auth.authorizeOperatorCall('discovery', 'TEARDOWN')).toThrow(/teardown_frameworks/);
    expect(() => auth.authorizeOperatorCall('agent', 'GET_STATE')).toThrow();
    expect(auth.taskRefusal('services', { user: 'www-data', capabilities: [] })).toBeUndefined();
    expect(auth.taskRefusal('frameworks', { user: 'root', capabilities: [] })).toMatch(/root/);
  });

  it('is kept across runs', () => {
    const again = ensureSecurityFile(operatorFile);
    expect(again.credentials).toEqual(sec.credentials);
  });

  it("hands each daemon's config its own secret only; the master and the APIs get the hashes", () => {
    const up = makePlan({
      workDir: dir,
      name: 'cx',
      masterPort: 15050,
      agentPort: 15051,
      servicesPort: 15052,
      dnsPort: 18600,
      discoveryPort: 18500,
      pool: '100.96.0.0/12',
      blockSize: 26,
      hostNetwork: false,
    });
    const plan = planNode(nodeConfigSchema.parse(upNodeConfig(up)), planSecretsOf(sec));
    const own: Record<string, string | undefined> = { agent: 'agent', services: 'services', discovery: 'discovery' };
    for (const d of plan.daemons) {
      const text = JSON.stringify(d.config);
      for (const p of UP_PRINCIPALS) expect(text.includes(sec.credentials[p].secret), `${d.name} holds the secret of ${p}`).toBe(own[d.name] === p);
    }
    const master = plan.daemons.find((d) => d.name === 'master')!.config as { credentials: string };
    expect(master.credentials).toBe(sec.masterFile);
  });

  it('a work directory from before keeps its operator secret', () => {
    const old = tempDir('corral-up-old-');
    const file = join(old, 'security.yaml');
    writeFileSync(file, 'credentials:\n  - { principal: admin, secret: kept }\n  - { principal: agents, secret: gone }\nacls: { operators: [admin], agents: [agents] }\n');
    const s = ensureSecurityFile(file);
    expect(s.credentials.admin.secret).toBe('kept');
    expect(readFileSync(file, 'utf8')).not.toContain('gone');
  });
});
