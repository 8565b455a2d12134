/**
 * DNS throughput and latency: corral discovery vs knot serving the same
 * records, measured side by side with dnsperf. Two workloads:
 *
 * - small: UDP, mixed A/SRV names of running tasks (1–10 records each).
 * - large: names whose A RRset has 60 records (≈1 KB) mixed 1:1 with small
 *   names. Over UDP (no EDNS, 512-byte limit) the large answers come back
 *   truncated (TC=1); a client then asks again over TCP and gets the whole
 *   RRset. dnsperf has no retry mode, so the pattern is two dnsperf runs:
 *   one over UDP on the mixed names (the truncated answers and the small
 *   ones) and one over TCP (`-m tcp`, queries pipelined on each connection)
 *   on the large names — each alone, then both at once against the same
 *   server.
 *
 * Goal: ≥ 0.5× knot on both workloads (≥ 100k qps on 2 cores for small).
 * Peers quoted: Mesos-DNS ~8.5k qps per core, CoreDNS ~17k per core.
 *
 * --tls: instead, the small workload against two `corral discovery`
 * daemons side by side, serving the same records: one following a master on
 * HTTPS (its own Consul API on HTTPS too, the cluster CA and its
 * certificate), one following a plain-HTTP master (--insecure). Runs
 * alternate which one goes first. Goal (issue: security): DNS unchanged —
 * answers come from memory over UDP and never touch TLS.
 *
 * Usage: npx tsx bench/discovery-dns.ts [--tasks 200] [--large 60] [--seconds 10] [--only small|large] [--json]
 *        npx tsx bench/discovery-dns.ts --tls [--runs 3] [--tasks 200] [--seconds 10] [--json]
 */
import { availableParallelism } from 'node:os';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, type TestCluster } from '../test/discovery/cluster.js';
import { startKnot, zoneFile } from '../test/discovery/knot.js';
import { run, testDir } from '../test/harness/resources.js';
import { servedRecords } from '../discovery/src/status.js';
import { configureLogging } from '../common/log.js';
import { flag } from './volume-common.js';
import { dnsperf as runDnsperf, startServingChild } from './dns-common.js';

const TASKS = flag('--tasks', 200);
/** Records in each large RRset (three such names). */
const LARGE = flag('--large', 60);
const LARGE_NAMES = 3;
const SECONDS = flag('--seconds', 10);
const JSON_OUT = process.argv.includes('--json');
const TLS = process.argv.includes('--tls');
const RUNS = flag('--runs', 3);
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;

interface Run {
  server: string;
  qps: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  lost: number;
}

const dnsperf = (args: string[]): Promise<string> => runDnsperf(args, SECONDS);

const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

const parseQps = (out: string): number => Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]);
const parseLost = (out: string): number => Number(/Queries lost:\s+(\d+)/.exec(out)?.[1]);

async function measure(server: string, port: number, queries: string): Promise<Run> {
  const load = ['-s', '127.0.0.1', '-p', String(port), '-d', queries, '-c', '8', '-T', '2', '-q', '200', '-Q', '1000000'];
  const out = await dnsperf([...load, '-l', String(SECONDS)]);
  const qps = parseQps(out);
  const avgMs = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1]) * 1000;
  const lost = parseLost(out);
  // Latency percentiles from a shorter verbose run at the same load.
  const verbose = await dnsperf([...load, '-l', '3', '-v']);
  const lat = verbose
    .split('\n')
    .filter((l) => l.startsWith('> '))
    .map((l) => Number(l.split(' ').at(-1)) * 1000)
    .sort((a, b) => a - b);
  return { server, qps, avgMs, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), lost };
}

interface Daemon {
  dnsPort: number;
  stop(): Promise<void>;
}

/**
 * `corral discovery` in its own process, as it runs in production (not in
 * this process, which also runs the master and the simulated agents).
 * Ready when it answers every large name in full over TCP.
 */
async function startDaemon(masterUrl: string, workDir: string, workers: string, probe: { names: string[]; records: number }, tls?: { ca: string; cert: string; key: string }): Promise<Daemon> {
  const security = tls ? ['--tls-ca', tls.ca, '--tls-cert', tls.cert, '--tls-key', tls.key] : ['--insecure'];
  const args = ['cli/corral.ts', 'discovery', '--master', masterUrl, '--dns-port', '0', '--http-port', '0', '--work-dir', workDir, '--dns-workers', workers, '--log-level', 'error', ...security];
  const { port: dnsPort, stop } = await startServingChild('discovery-bench', args, /DNS on [^\s]+:(\d+)/, 60_000);
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const counts = await Promise.all(
        probe.names.map((n) =>
          run('dig', ['+tcp', '+short', '+time=2', '+tries=1', '@127.0.0.1', '-p', String(dnsPort), n, 'A']).then(
            (o) => o.trim().split('\n').filter(Boolean).length,
            () => 0,
          ),
        ),
      );
      if (counts.every((c) => c === probe.records)) break;
      if (Date.now() > deadline) throw new Error(`corral discovery did not serve the probe names in full within 30 s (${counts.join(', ')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { dnsPort, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface LargeRun {
  server: string;
  /** Each part alone: UDP on the mixed names, TCP on the large names. */
  udpQps: number;
  tcpQps: number;
  /** Both at once, as a client population retrying truncated answers makes them. */
  bothUdpQps: number;
  bothTcpQps: number;
  lost: number;
}

/** The truncate-then-TCP pattern: UDP on the mixed names and TCP on the large ones, each alone and then at the same time. */
async function measureLarge(server: string, port: number, mixed: string, large: string): Promise<LargeRun> {
  const common = ['-s', '127.0.0.1', '-p', String(port), '-T', '1', '-Q', '1000000', '-l', String(SECONDS), '-c', '8', '-q', '200'];
  const udpArgs = [...common, '-d', mixed];
  const tcpArgs = [...common, '-m', 'tcp', '-d', large];
  const udp = await dnsperf(udpArgs);
  const tcp = await dnsperf(tcpArgs);
  const [bothUdp, bothTcp] = await Promise.all([dnsperf(udpArgs), dnsperf(tcpArgs)]);
  return {
    server,
    udpQps: parseQps(udp),
    tcpQps: parseQps(tcp),
    bothUdpQps: parseQps(bothUdp),
    bothTcpQps: parseQps(bothTcp),
    lost: [udp, tcp, bothUdp, bothTcp].map(parseLost).reduce((a, b) => a + b, 0),
  };
}

/** The same small-workload tasks on a cluster: 20 services, names with 1..n answers, A and SRV. */
async function launchSmall(cluster: TestCluster): Promise<void> {
  const launches = [];
  for (let i = 0; i < TASKS; i++)
    launches.push(cluster.launch({ id: `t-${i}`, name: `svc${i % 20}`, discovery: { name: `svc${i % 20}`, ports: { ports: [{ number: 8000 + (i % 20), name: 'http' }] } } }));
  await Promise.all(launches);
}

/** --tls: discovery following an https master beside one following a plain master, same records, alternating, RUNS times. */
async function tlsMain(): Promise<void> {
  configureLogging({ level: 'error' });
  const plain = await startCluster({ agents: 2 });
  const secure = await startCluster({ agents: 2, tls: true }).catch(async (err: unknown) => {
    await plain.dispose();
    throw err;
  });
  const dir = testDir('bench-dns-tls');
  const daemons: Daemon[] = [];
  try {
    await Promise.all([launchSmall(plain), launchSmall(secure)]);
    await new Promise((r) => setTimeout(r, 500));
    const served = (c: TestCluster): string[] =>
      [
        ...new Set(
          servedRecords(c.discovery.projector)
            .filter((r) => r.type === 'A' || r.type === 'SRV')
            .map((r) => `${r.name} ${r.type}`),
        ),
      ].sort();
    // Same names and the same number of records under each; only the per-address names (<hex IP>.addr.) differ,
    // since each cluster hands out its own addresses: each daemon gets a query file of its own names.
    const shape = (c: TestCluster): string =>
      JSON.stringify(
        servedRecords(c.discovery.projector)
          .filter((r) => r.type === 'A' || r.type === 'SRV')
          .map((r) => `${r.name.replace(/^[0-9a-f]{8}\.addr\./, 'IP.addr.')} ${r.type}`)
          .sort(),
      );
    if (shape(secure) !== shape(plain)) throw new Error('the two clusters do not serve the same records');
    const names = served(plain);
    const queries = join(dir, 'queries-http.txt');
    writeFileSync(queries, names.join('\n') + '\n');
    const secureQueries = join(dir, 'queries-https.txt');
    writeFileSync(secureQueries, served(secure).join('\n') + '\n');
    // Ready when the largest small name answers in full.
    const aCounts = new Map<string, number>();
    for (const r of servedRecords(plain.discovery.projector)) if (r.type === 'A') aCounts.set(r.name, (aCounts.get(r.name) ?? 0) + 1);
    const [probeName, probeRecords] = [...aCounts].sort((a, b) => b[1] - a[1])[0]!;
    const probe = { names: [probeName], records: probeRecords };
    const http = await startDaemon(plain.master.url, join(dir, 'disc-http'), 'auto', probe);
    daemons.push(http);
    const https = await startDaemon(secure.master.url, join(dir, 'disc-https'), 'auto', probe, secure.tls!.discovery);
    daemons.push(https);
    const httpName = `discovery ← http master (${availableParallelism()} procs)`;
    const httpsName = `discovery ← https master, API https (${availableParallelism()} procs)`;
    const runs: Array<{ run: number; http: Run; https: Run }> = [];
    for (let run = 1; run <= RUNS; run++) {
      // Alternate which goes first, so neither always meets the machine in the same state.
      if (run % 2) {
        const h = await measure(httpName, http.dnsPort, queries);
        runs.push({ run, http: h, https: await measure(httpsName, https.dnsPort, secureQueries) });
      } else {
        const t = await measure(httpsName, https.dnsPort, secureQueries);
        runs.push({ run, http: await measure(httpName, http.dnsPort, queries), https: t });
      }
      const last = runs.at(-1)!;
      process.stderr.write(`run ${run}: http ${last.http.qps.toFixed(0)} qps, https ${last.https.qps.toFixed(0)} qps\n`);
    }
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify({ tasks: TASKS, names: names.length, runs }, null, 2) + '\n');
      return;
    }
    process.stdout.write(`small answers, TLS on vs off — dnsperf, UDP, ${SECONDS} s a run, ${names.length} names (A/SRV) of ${TASKS} tasks, 8 clients × 2 threads\n`);
    process.stdout.write('run  server                                             qps   avg ms  p50 ms  p99 ms  lost\n');
    for (const r of runs)
      for (const x of [r.http, r.https])
        process.stdout.write(
          `${String(r.run).padStart(3)}  ${x.server.padEnd(48)} ${x.qps.toFixed(0).padStart(7)}  ${x.avgMs.toFixed(3).padStart(6)}  ${x.p50Ms.toFixed(3).padStart(6)}  ${x.p99Ms.toFixed(3).padStart(6)}  ${x.lost}\n`,
        );
    const range = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
    const h = runs.map((r) => r.http.qps);
    const t = runs.map((r) => r.https.qps);
    const overlap = Math.max(Math.min(...h), Math.min(...t)) <= Math.min(Math.max(...h), Math.max(...t));
    process.stdout.write(`qps range: http ${range(h)}, https ${range(t)}; ${overlap ? 'the ranges overlap' : 'the ranges do not overlap'}\n`);
  } finally {
    for (const d of daemons.reverse()) await d.stop();
    await secure.dispose();
    await plain.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (TLS) return tlsMain();
  configureLogging({ level: 'error' });
  const cluster = await startCluster({ agents: 2 });
  const dir = testDir('bench-dns');
  const runs: Run[] = [];
  const largeRuns: LargeRun[] = [];
  try {
    // Tasks of 20 services: names with 1..n answers, A and SRV.
    const launches: Array<Promise<unknown>> = [launchSmall(cluster)];
    // Three services of LARGE instances each: A RRsets of LARGE records.
    for (let b = 0; b < LARGE_NAMES; b++) for (let i = 0; i < LARGE; i++) launches.push(cluster.launch({ id: `big${b}-${i}`, name: `big${b}` }));
    await Promise.all(launches);
    await new Promise((r) => setTimeout(r, 500));
    const records = servedRecords(cluster.discovery.projector);
    const isBig = (name: string): boolean => /^(_?)big\d/.test(name);
    const names = [...new Set(records.filter((r) => (r.type === 'A' || r.type === 'SRV') && !isBig(r.name)).map((r) => `${r.name} ${r.type}`))];
    const queries = join(dir, 'queries.txt');
    writeFileSync(queries, names.join('\n') + '\n');
    // Large names (the task-name A records with LARGE addresses), and a 1:1 mix with small A names.
    const bigNames = [...new Set(records.filter((r) => r.type === 'A' && /^big\d\.[^.]+\.corral$/.test(r.name) && !r.name.includes('.service.')).map((r) => r.name))];
    const counts = new Map<string, number>();
    for (const r of records) if (r.type === 'A' && bigNames.includes(r.name)) counts.set(r.name, (counts.get(r.name) ?? 0) + 1);
    if (bigNames.length !== LARGE_NAMES || [...counts.values()].some((n) => n !== LARGE)) throw new Error(`expected ${LARGE_NAMES} names of ${LARGE} A records, got ${JSON.stringify([...counts])}`);
    const smallA = names.filter((n) => n.endsWith(' A'));
    const mixed = join(dir, 'mixed.txt');
    const large = join(dir, 'large.txt');
    const mixLines: string[] = [];
    for (let i = 0; i < smallA.length; i++) mixLines.push(`${bigNames[i % bigNames.length]} A`, smallA[i]!);
    writeFileSync(mixed, mixLines.join('\n') + '\n');
    writeFileSync(large, bigNames.map((n) => `${n} A`).join('\n') + '\n');
    // The same records as a knot zone.
    const zone = zoneFile(
      'corral',
      records.map((r) => ({ name: r.name, type: r.type, data: r.data })),
    );
    // As many knot threads per transport as corral has processes (2 here): UDP and TCP alike.
    const knot = await startKnot(dir, 'corral', zone, { workers: 2, tcpWorkers: 2 });
    // discovery as `corral discovery` runs it, following the same master: workers auto (one per extra core), and one process alone.
    const probe = { names: bigNames, records: LARGE };
    const tuned = await startDaemon(cluster.master.url, join(dir, 'disc-auto'), 'auto', probe).catch(async (err: unknown) => {
      await knot.stop();
      throw err;
    });
    const single = await startDaemon(cluster.master.url, join(dir, 'disc-one'), '0', probe).catch(async (err: unknown) => {
      await tuned.stop();
      await knot.stop();
      throw err;
    });
    const tunedName = `corral discovery (${availableParallelism()} processes)`;
    const singleName = 'corral discovery (1 process)';
    try {
      if (ONLY !== 'large') {
        runs.push(await measure('knot 3.2 (2 UDP workers)', knot.port, queries));
        runs.push(await measure(tunedName, tuned.dnsPort, queries));
        runs.push(await measure(singleName, single.dnsPort, queries));
      }
      if (ONLY !== 'small') {
        largeRuns.push(await measureLarge('knot 3.2 (2 UDP, 2 TCP workers)', knot.port, mixed, large));
        largeRuns.push(await measureLarge(tunedName, tuned.dnsPort, mixed, large));
        largeRuns.push(await measureLarge(singleName, single.dnsPort, mixed, large));
      }
    } finally {
      await single.stop();
      await tuned.stop();
      await knot.stop();
    }
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify({ tasks: TASKS, names: names.length, large: LARGE, runs, largeRuns }, null, 2) + '\n');
    } else {
      if (runs.length) {
        const knotQps = runs[0]!.qps;
        process.stdout.write(`small answers — dnsperf, UDP, ${SECONDS} s, ${names.length} names (A/SRV) of ${TASKS} tasks, 8 clients × 2 threads\n`);
        process.stdout.write('server                                   qps   vs knot  avg ms  p50 ms  p99 ms  lost\n');
        for (const r of runs)
          process.stdout.write(
            `${r.server.padEnd(38)} ${r.qps.toFixed(0).padStart(7)}  ${(r.qps / knotQps).toFixed(2).padStart(6)}×  ${r.avgMs.toFixed(3).padStart(6)}  ${r.p50Ms.toFixed(3).padStart(6)}  ${r.p99Ms.toFixed(3).padStart(6)}  ${r.lost}\n`,
          );
      }
      if (largeRuns.length) {
        const k = largeRuns[0]!;
        const both = (r: LargeRun): number => r.bothUdpQps + r.bothTcpQps;
        const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
        process.stdout.write(
          `large answers — ${LARGE_NAMES} names of ${LARGE} A records, ${SECONDS} s a run, 8 clients × 1 thread: UDP on large+small names 1:1 (the large ones truncated), TCP on the large names (whole), each alone, then both at once\n`,
        );
        process.stdout.write('server                                 UDP alone       TCP alone       at once: UDP + TCP = total       lost\n');
        for (const r of largeRuns) {
          const cols = [
            `${r.udpQps.toFixed(0).padStart(7)} ${x(r.udpQps, k.udpQps).padStart(6)}`,
            `${r.tcpQps.toFixed(0).padStart(7)} ${x(r.tcpQps, k.tcpQps).padStart(6)}`,
            `${r.bothUdpQps.toFixed(0).padStart(7)} + ${r.bothTcpQps.toFixed(0).padStart(7)} = ${both(r).toFixed(0).padStart(7)} ${x(both(r), both(k)).padStart(6)}`,
          ];
          process.stdout.write(`${r.server.padEnd(38)} ${cols.join('  ')}  ${r.lost}\n`);
        }
      }
      process.stdout.write('published: Mesos-DNS ~8.5k qps per core, CoreDNS ~17k qps per core; goal ≥ 0.5× knot on both workloads\n');
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
