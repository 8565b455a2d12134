/**
 * DNS throughput and latency: corral discovery vs knot serving the same
 * records, measured side by side with dnsperf (UDP, mixed A/SRV names of
 * running tasks, 10 s each). Goal: ≥ 0.5× knot (≥ 100k qps on 2 cores).
 * Peers quoted: Mesos-DNS ~8.5k qps per core, CoreDNS ~17k per core.
 *
 * Usage: npx tsx bench/discovery-dns.ts [--tasks 200] [--seconds 10] [--json]
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster } from '../test/discovery/cluster.js';
import { startKnot, zoneFile } from '../test/discovery/knot.js';
import { testDir } from '../test/harness/resources.js';
import { servedRecords } from '../discovery/src/status.js';
import { startDiscovery } from '../discovery/src/daemon.js';
import { configureLogging } from '../common/log.js';
import { flag } from './volume-common.js';

const TASKS = flag('--tasks', 200);
const SECONDS = flag('--seconds', 10);
const JSON_OUT = process.argv.includes('--json');

interface Run {
  server: string;
  qps: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  lost: number;
}

function dnsperf(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dnsperf', args, { maxBuffer: 512 * 1024 * 1024, timeout: (SECONDS + 30) * 1000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

async function measure(server: string, port: number, queries: string): Promise<Run> {
  const load = ['-s', '127.0.0.1', '-p', String(port), '-d', queries, '-c', '8', '-T', '2', '-q', '200', '-Q', '1000000'];
  const out = await dnsperf([...load, '-l', String(SECONDS)]);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]);
  const avgMs = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1]) * 1000;
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1]);
  // Latency percentiles from a shorter verbose run at the same load.
  const verbose = await dnsperf([...load, '-l', '3', '-v']);
  const lat = verbose
    .split('\n')
    .filter((l) => l.startsWith('> '))
    .map((l) => Number(l.split(' ').at(-1)) * 1000)
    .sort((a, b) => a - b);
  return { server, qps, avgMs, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), lost };
}

async function main(): Promise<void> {
  configureLogging({ level: 'error' });
  const cluster = await startCluster({ agents: 2 });
  const dir = testDir('bench-dns');
  const runs: Run[] = [];
  try {
    // Tasks of 20 services: names with 1..n answers, A and SRV.
    const launches = [];
    for (let i = 0; i < TASKS; i++) launches.push(cluster.launch({ id: `t-${i}`, name: `svc${i % 20}`, discovery: { name: `svc${i % 20}`, ports: { ports: [{ number: 8000 + (i % 20), name: 'http' }] } } }));
    await Promise.all(launches);
    await new Promise((r) => setTimeout(r, 500));
    const records = servedRecords(cluster.discovery.projector);
    const names = [...new Set(records.filter((r) => r.type === 'A' || r.type === 'SRV').map((r) => `${r.name} ${r.type}`))];
    const queries = join(dir, 'queries.txt');
    writeFileSync(queries, names.join('\n') + '\n');
    // The same records as a knot zone.
    const zone = zoneFile('corral', records.map((r) => ({ name: r.name, type: r.type, data: r.data })));
    const knot = await startKnot(dir, 'corral', zone, { workers: 2 });
    // discovery as `corral discovery` runs it: workers auto (one per extra core), following the same master.
    const tuned = await startDiscovery({
      workDir: join(dir, 'disc'),
      store: { backend: 'embedded', path: join(dir, 'disc', 'kv.db'), sync: 'normal' },
      master: { url: cluster.master.url },
      dns: { port: 0, workers: 'auto' },
      http: { port: 0 },
    });
    try {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && servedRecords(tuned.projector).length < records.length) await new Promise((r) => setTimeout(r, 50));
      runs.push(await measure('knot 3.2 (2 UDP workers)', knot.port, queries));
      runs.push(await measure(`corral discovery (${1 + tuned.dnsWorkerPids.length} processes)`, tuned.dnsPort, queries));
      runs.push(await measure('corral discovery (1 process)', cluster.discovery.dnsPort, queries));
    } finally {
      await tuned.close();
      await knot.stop();
    }
    const knotQps = runs[0]!.qps;
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify({ tasks: TASKS, names: names.length, runs }, null, 2) + '\n');
    } else {
      process.stdout.write(`dnsperf, UDP, ${SECONDS} s, ${names.length} names (A/SRV) of ${TASKS} tasks, 8 clients × 2 threads\n`);
      process.stdout.write('server                                   qps   vs knot  avg ms  p50 ms  p99 ms  lost\n');
      for (const r of runs) process.stdout.write(`${r.server.padEnd(38)} ${r.qps.toFixed(0).padStart(7)}  ${(r.qps / knotQps).toFixed(2).padStart(6)}×  ${r.avgMs.toFixed(3).padStart(6)}  ${r.p50Ms.toFixed(3).padStart(6)}  ${r.p99Ms.toFixed(3).padStart(6)}  ${r.lost}\n`);
      process.stdout.write('published: Mesos-DNS ~8.5k qps per core, CoreDNS ~17k qps per core; goal ≥ 0.5× knot (≥ 100k qps)\n');
    }
  } finally {
    await cluster.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
