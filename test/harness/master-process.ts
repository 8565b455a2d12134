/**
 * A master as a separate process (`corral master`), for tests that must kill
 * it for real (SIGKILL, SIGSTOP) and start it again on the same work directory.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonProcess } from './daemon-process.js';

export class MasterProcess extends DaemonProcess {
  constructor(workDir: string, port: number, extraArgs: string[] = ['--no-auth']) {
    super(workDir, port, {
      kind: 'master',
      label: 'master',
      // Plain HTTP, said explicitly, unless the test gives the master a certificate.
      args: ['master', '--port', String(port), '--work-dir', workDir, '--log-level', 'warn', ...(extraArgs.includes('--tls-cert') ? [] : ['--insecure']), ...extraArgs],
      env: () => ({ ...process.env, CORRAL_MASTER_ALLOCATION__INTERVAL_MS: '100', CORRAL_MASTER_ALLOCATION__BATCH_MS: '1' }),
      readyTimeoutMs: 20_000,
    });
  }
}

/**
 * Config file for one of several replicated masters sharing `etcdEndpoint`
 * (under `namespace`): the ha section and the etcd store. Pass it with
 * `--config <file>`.
 */
export function writeHaMasterConfig(
  workDir: string,
  opts: { etcdEndpoint: string; namespace: string; leaseTtlSeconds?: number; electionName?: string; extra?: Record<string, unknown>; store?: Record<string, unknown> },
): string {
  mkdirSync(workDir, { recursive: true });
  const file = join(workDir, 'master-ha.json');
  const config = {
    // `store` adds to the etcd store section (more endpoints, etcdTls, etcdAuth).
    store: { backend: 'etcd', etcdEndpoints: [opts.etcdEndpoint], namespace: opts.namespace, ...opts.store },
    ha: { enabled: true, leaseTtlSeconds: opts.leaseTtlSeconds ?? 5, electionName: opts.electionName ?? 'corral-master' },
    ...opts.extra,
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}
