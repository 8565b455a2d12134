import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { globals, operatorClient } from '../../../cli/context.js';
import type { OperatorClient } from '../../../contracts/client/operator-client.js';
import { tempDirsRemovedAfterAll } from '../../harness/temp-dirs.js';

const tempDir = tempDirsRemovedAfterAll();

const clients: OperatorClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  delete process.env.CORRAL_MASTER;
});

/** The command a subcommand's action gets, parsed from `argv`. */
function parsed(argv: string[]): Command {
  const cmd = new Command().option('--master <url>').exitOverride();
  cmd.parse(argv, { from: 'user' });
  return cmd;
}

describe('cli context: --master / CORRAL_MASTER', () => {
  it('takes several masters separated by commas, in order', () => {
    const c = operatorClient(parsed(['--master', 'http://m1:5050, http://m2:5050,http://m3:5050']));
    clients.push(c);
    expect(c.leader.masters).toEqual(['http://m1:5050', 'http://m2:5050', 'http://m3:5050']);
    expect(c.leader.url).toBe('http://m1:5050');
  });

  it('reads the list from CORRAL_MASTER when there is no flag, and keeps a single URL as given', () => {
    process.env.CORRAL_MASTER = 'http://a:5050,http://b:5050';
    const fromEnv = operatorClient(parsed([]));
    clients.push(fromEnv);
    expect(fromEnv.leader.masters).toEqual(['http://a:5050', 'http://b:5050']);
    const single = operatorClient(parsed(['--master', 'http://a:5050']));
    clients.push(single);
    expect(single.leader.masters).toEqual(['http://a:5050']);
  });

  it('names the flag when an entry is not a URL', () => {
    expect(() => operatorClient(parsed(['--master', 'http://a:5050,not-a-url']))).toThrow(/--master \(or CORRAL_MASTER\): master "not-a-url" is not a URL/);
  });
});

describe('cli context: the secret comes from a file or the environment, never a flag', () => {
  const dir = tempDir('corral-secret-');
  afterEach(() => {
    delete process.env.CORRAL_SECRET;
    delete process.env.CORRAL_SECRET_FILE;
  });

  function withSecretFlags(argv: string[]): Command {
    const cmd = new Command().option('--master <url>').option('--principal <name>').option('--secret-file <file>').exitOverride();
    cmd.parse(argv, { from: 'user' });
    return cmd;
  }

  it('reads the first line of --secret-file, before CORRAL_SECRET', () => {
    const file = join(dir, 'secret');
    writeFileSync(file, 's3cret\nignored\n', { mode: 0o600 });
    process.env.CORRAL_SECRET = 'from-env';
    expect(globals(withSecretFlags(['--principal', 'ops', '--secret-file', file]))).toMatchObject({ principal: 'ops', secret: 's3cret' });
  });

  it('reads CORRAL_SECRET_FILE, else CORRAL_SECRET', () => {
    const file = join(dir, 'secret2');
    writeFileSync(file, 'from-file\n', { mode: 0o600 });
    process.env.CORRAL_SECRET = 'from-env';
    expect(globals(withSecretFlags([])).secret).toBe('from-env');
    process.env.CORRAL_SECRET_FILE = file;
    expect(globals(withSecretFlags([])).secret).toBe('from-file');
  });

  it('names the flag when the file is missing or empty', () => {
    expect(() => globals(withSecretFlags(['--secret-file', join(dir, 'missing')]))).toThrow(/--secret-file \(or CORRAL_SECRET_FILE\): cannot read .*missing: ENOENT/);
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(() => globals(withSecretFlags(['--secret-file', empty]))).toThrow(/is empty/);
  });

  it('the corral command has no flag that takes a secret itself', async () => {
    const { main } = await import('../../../cli/main.js');
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      await main(['node', 'corral', '--secret', 'x', 'cluster', 'status']);
    } finally {
      process.stderr.write = write;
    }
    expect(process.exitCode).toBe(2);
    process.exitCode = 0;
    expect(written.join('')).toMatch(/unknown option '--secret'/);
  });
});
