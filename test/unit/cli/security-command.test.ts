/**
 * `corral security hash-secret`: the secret comes from a file or the
 * environment, never the command line, and the printed hash verifies it.
 */
import { describe, expect, it, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage } from 'node:http';
import { Authority, securitySchema } from '../../../core-scheduler/src/master/auth.js';
import { basicAuthHeader } from '../../../contracts/client/auth-header.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'corral-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function corral(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = { ...process.env };
  for (const k of ['CORRAL_SECRET', 'CORRAL_SECRET_FILE']) delete clean[k];
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), ...args], { cwd: ROOT, env: { ...clean, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const verifies = async (hash: string, secret: string): Promise<boolean> => {
  const auth = new Authority(securitySchema.parse({ credentials: [{ principal: 'p', secret_hash: hash }] }));
  return auth.authenticate({ headers: { authorization: basicAuthHeader('p', secret) } } as IncomingMessage).then(
    () => true,
    () => false,
  );
};

describe('corral security hash-secret', () => {
  it('hashes the secret of --secret-file; the hash verifies it and nothing else', async () => {
    const file = join(dir, 'secret');
    writeFileSync(file, 'the-secret\n');
    const r = await corral(['security', 'hash-secret', '--secret-file', file]);
    expect(r.code, r.stderr).toBe(0);
    const hash = r.stdout.trim();
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(await verifies(hash, 'the-secret')).toBe(true);
    expect(await verifies(hash, 'another')).toBe(false);
  }, 60_000);

  it('--generate writes a new random secret 0600 and prints its hash; without a secret it says where to give one', async () => {
    const file = join(dir, 'generated');
    const r = await corral(['security', 'hash-secret', '--generate'], { CORRAL_SECRET_FILE: file });
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await verifies(r.stdout.trim(), readFileSync(file, 'utf8').trim())).toBe(true);
    const again = await corral(['security', 'hash-secret', '--generate'], { CORRAL_SECRET_FILE: file });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/must not exist yet/);
    const none = await corral(['security', 'hash-secret']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/no secret given.*never taken from the command line/);
  }, 60_000);
});
