/**
 * A real knot DNS server for tests and benchmarks: serves one zone file from
 * a temp dir on a free loopback port, stopped by the PID we started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { forgetPid, recordPid, run } from '../harness/resources.js';

export const KNOTD = process.env.CORRAL_KNOTD_BIN ?? '/usr/sbin/knotd';

export interface KnotHandle {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Zone-file text for (name, type, data) records of `origin` (names absolute, without the trailing dot). */
export function zoneFile(origin: string, records: Array<{ name: string; type: string; data: string }>, ttl = 0): string {
  const lines = [`$ORIGIN ${origin}.`, `$TTL ${ttl}`];
  for (const r of records) lines.push(`${r.name}. ${r.type} ${r.data}`);
  return lines.join('\n') + '\n';
}

export async function startKnot(dir: string, origin: string, zone: string, opts: { workers?: number; tcpWorkers?: number } = {}): Promise<KnotHandle> {
  const port = await freePort();
  writeFileSync(join(dir, 'zone'), zone);
  writeFileSync(
    join(dir, 'knot.conf'),
    [
      'server:',
      `    listen: 127.0.0.1@${port}`,
      `    rundir: ${dir}`,
      `    pidfile: ${join(dir, 'knot.pid')}`,
      ...(opts.workers ? [`    udp-workers: ${opts.workers}`, `    tcp-workers: ${opts.tcpWorkers ?? 1}`, '    background-workers: 1'] : []),
      'database:',
      `    storage: ${dir}`,
      'log:',
      '  - target: stderr',
      '    any: error',
      'zone:',
      `  - domain: ${origin}`,
      `    file: ${join(dir, 'zone')}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(KNOTD, ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const pid = child.pid!;
  recordPid('knotd', pid);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    forgetPid('knotd', pid);
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`knotd exited: ${stderr}`);
    const out = await run('dig', ['@127.0.0.1', '-p', String(port), origin, 'SOA', '+short', '+time=1', '+tries=1']).catch(() => '');
    if (out.trim()) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`knotd did not answer within 10 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, pid, stop };
}
