/**
 * What every client subcommand needs: where the master is, who we are,
 * and whether to print JSON. Flags beat environment beat the security file.
 * `--master` / CORRAL_MASTER may name several masters separated by commas:
 * the clients follow the leader among them (contracts/client/masters.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadSecurity } from '../core-scheduler/src/index.js';
import { OperatorClient } from '../contracts/client/operator-client.js';
import { masterSpecProblem } from '../contracts/client/masters.js';
import { CorralError } from '../contracts/errors.js';
import { clientTls, defaultScheme } from './tls-options.js';

export { defaultScheme };

export const DEFAULT_SECURITY_FILE = '/var/lib/corral/security.yaml';
interface GlobalOptions {
  /** One master URL, or several separated by commas. */
  master: string;
  json: boolean;
  principal?: string;
  secret?: string;
  credentials?: string;
}

export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as Partial<GlobalOptions> & { secretFile?: string };
  const secret = secretOf(o.secretFile ?? process.env.CORRAL_SECRET_FILE, process.env.CORRAL_SECRET);
  return {
    master: o.master ?? process.env.CORRAL_MASTER ?? `${defaultScheme()}://127.0.0.1:5050`,
    json: o.json ?? false,
    ...((o.principal ?? process.env.CORRAL_PRINCIPAL) ? { principal: o.principal ?? process.env.CORRAL_PRINCIPAL } : {}),
    ...(secret ? { secret } : {}),
    ...((o.credentials ?? process.env.CORRAL_CREDENTIALS) ? { credentials: o.credentials ?? process.env.CORRAL_CREDENTIALS } : {}),
  };
}

/**
 * The principal's secret: from a file (its first line), else from the
 * environment. Never a flag's value: a command line is visible to every user
 * of the host (ps, /proc/<pid>/cmdline).
 */
function secretOf(file: string | undefined, fromEnv: string | undefined): string | undefined {
  if (file === undefined) return fromEnv || undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `--secret-file (or CORRAL_SECRET_FILE): cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const secret = text.split('\n')[0]!.trim();
  if (!secret) throw new CorralError('INVALID_ARGUMENT', `--secret-file (or CORRAL_SECRET_FILE): ${file} is empty; it must hold the secret on its first line`);
  return secret;
}

/** Principal and secret: explicit ones, else the first operator of the security file (if there is one). */
export function identity(g: GlobalOptions): { principal?: string; secret?: string } {
  if (g.principal && g.secret) return { principal: g.principal, secret: g.secret };
  const file = g.credentials ?? (existsSync(DEFAULT_SECURITY_FILE) ? DEFAULT_SECURITY_FILE : undefined);
  if (!file) return {};
  const sec = loadSecurity(file);
  const ops = sec.acls.operators;
  // The operator's own secret is the one in plain text (the master's file holds only hashes).
  const cred = sec.credentials.find((c) => c.secret !== undefined && (ops === 'ANY' ? true : ops.includes(c.principal)) && (!g.principal || c.principal === g.principal));
  return cred ? { principal: cred.principal, secret: cred.secret! } : {};
}

export function operatorClient(cmd: Command): OperatorClient {
  const g = globals(cmd);
  const problem = masterSpecProblem(g.master);
  if (problem) throw new CorralError('INVALID_ARGUMENT', `--master (or CORRAL_MASTER): ${problem}`);
  return new OperatorClient({ master: g.master, ...identity(g), tls: clientTls(cmd) });
}
