/**
 * TLS on the command line. Global flags `--tls-ca`, `--tls-cert`, `--tls-key`,
 * `--tls-crl` (env CORRAL_TLS_CA, CORRAL_TLS_CERT, CORRAL_TLS_KEY, CORRAL_TLS_CRL for the client commands)
 * name PEM files; the daemons take them as their `tls` block and add
 * `--insecure` for plain HTTP.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadTls } from '../common/tls/load.js';
import type { ClientTls } from '../contracts/client/tls.js';

/** The default `corral up` instance's cluster CA: with it present the clients' default URLs are https. */
export const DEFAULT_TLS_CA = '/var/lib/corral/tls/ca.crt';

/** http or https for a client's default URL (a flag or variable naming a URL says for itself). */
export const defaultScheme = (): 'http' | 'https' => (defaultInstanceTls() ? 'https' : 'http');

/**
 * Whether the default `corral up` instance serves TLS: its plan says so (an instance brought up
 * again with --insecure keeps its old certificates on disk), else its CA file is there.
 */
export function defaultInstanceTls(): boolean {
  try {
    return (JSON.parse(readFileSync('/var/lib/corral/up.json', 'utf8')) as { tls?: unknown }).tls !== undefined;
  } catch {
    return existsSync(DEFAULT_TLS_CA);
  }
}

interface TlsFlags {
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCrl?: string;
}

/** Add the global TLS flags to the program. */
export function addTlsOptions(program: Command): Command {
  return program
    .option('--tls-ca <file>', 'CA certificate (PEM) to trust for https masters and daemons (env CORRAL_TLS_CA); for a daemon: its tls.ca')
    .option('--tls-cert <file>', 'client certificate (PEM) for mutual TLS (env CORRAL_TLS_CERT); for a daemon: its own certificate, tls.cert')
    .option('--tls-key <file>', 'key of --tls-cert (PEM, mode 0600) (env CORRAL_TLS_KEY); for a daemon: tls.key')
    .option('--tls-crl <file>', "the CA's revocation list (PEM, corral security revoke): refuse peers it names (env CORRAL_TLS_CRL); for a daemon: tls.crl");
}

/** A daemon's `tls` and `insecure` flags, as loadConfig takes them (unset ones left to the file and env). */
export function daemonTlsFlags(cmd: Command, o: { insecure?: boolean }): { tls?: Record<string, string | undefined>; insecure?: true } {
  const g = cmd.optsWithGlobals() as TlsFlags;
  const tls = { ca: g.tlsCa, cert: g.tlsCert, key: g.tlsKey, crl: g.tlsCrl };
  return { ...(Object.values(tls).some((v) => v !== undefined) && { tls }), ...(o.insecure && { insecure: true as const }) };
}

export const INSECURE_HELP = 'serve plain HTTP, without TLS (local use only; otherwise --tls-cert/--tls-key/--tls-ca are required)';

/** The client commands' TLS: flags, else environment; files checked and read (clear errors). */
export function clientTls(cmd: Command, env: NodeJS.ProcessEnv = process.env): ClientTls | undefined {
  const g = cmd.optsWithGlobals() as TlsFlags;
  const ca = g.tlsCa ?? (env.CORRAL_TLS_CA || undefined);
  const cert = g.tlsCert ?? (env.CORRAL_TLS_CERT || undefined);
  const key = g.tlsKey ?? (env.CORRAL_TLS_KEY || undefined);
  const crl = g.tlsCrl ?? (env.CORRAL_TLS_CRL || undefined);
  if (!ca && !cert && !key) {
    // The default `corral up` instance's CA, as the security file is found by itself.
    return defaultInstanceTls() && existsSync(DEFAULT_TLS_CA) ? { ca: loadTls({ ca: DEFAULT_TLS_CA }, DEFAULT_TLS_CA).ca } : undefined;
  }
  const m = loadTls({ ca, cert, key, crl }, g.tlsCa || g.tlsCert ? '--tls' : 'CORRAL_TLS');
  return { ca: m.ca, cert: m.cert, key: m.key, crl: m.crl };
}
