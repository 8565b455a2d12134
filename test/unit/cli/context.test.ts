import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { operatorClient } from '../../../cli/context.js';
import type { OperatorClient } from '../../../contracts/client/operator-client.js';

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
