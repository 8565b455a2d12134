/**
 * Sustained ADD throughput on one host and the node daemon's memory at 1,000
 * containers. 1,000 container namespaces, ADDs through the real shim with a
 * fixed number in flight (a runtime starting many pods), then DELs the same
 * way. Memory is the daemon's VmRSS before any container and at 1,000.
 * Runs inside a throw-away host namespace, like bench/cni-add-del.ts.
 *
 * Usage: npx tsx bench/cni-throughput.ts [--containers 1000] [--concurrency 8] [--json]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNamedNetns, deleteNamedNetns, namedNetnsPath } from '../common/netkit/netns.js';
import { execPlugin } from '../common/cni-runtime/exec.js';
import { spawnDaemon } from '../plugins/cni-calico-like/src/daemon/spawn.js';
import { shimPath } from '../plugins/cni-calico-like/src/install.js';
import { printTable, summarize } from './cni-stats.js';

const HOST_NS = 'ct-cnitp-h';
const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const count = flag('--containers', 1000);
const concurrency = flag('--concurrency', 8);
const json = args.includes('--json');
const nsName = (i: number): string => `ct-cnitp-c${i}`;

async function outer(): Promise<void> {
  await createNamedNetns(HOST_NS);
  try {
    for (let i = 0; i < count; i++) await createNamedNetns(nsName(i));
    const self = fileURLToPath(import.meta.url);
    const res = spawnSync('ip', ['netns', 'exec', HOST_NS, process.execPath, ...process.execArgv, self, '--inside', ...args], { stdio: 'inherit' });
    process.exitCode = res.status ?? 1;
  } finally {
    for (let i = 0; i < count; i++) await deleteNamedNetns(nsName(i));
    await deleteNamedNetns(HOST_NS);
  }
}

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function pool(n: number, width: number, fn: (i: number) => Promise<number>): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) latencies.push(await fn(next++));
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, latencies };
}

async function inside(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'corral-cnitp-'));
  const socket = join(dir, 'cni.sock');
  const configFile = join(dir, 'daemon.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      node: 'tp',
      socket,
      stateDir: join(dir, 'state'),
      store: { backend: 'embedded', path: join(dir, 'cluster.db'), sync: 'normal' },
      pools: [{ name: 'tp', cidr: '100.96.0.0/16' }],
      reconcile: { intervalMs: 0 },
      log: { level: 'warn', file: join(dir, 'daemon.log') },
    }),
  );
  const daemon = await spawnDaemon({ configFile, socket, logFile: join(dir, 'daemon.out') });
  try {
    const conf = { cniVersion: '1.0.0', name: 'tp', type: 'corral', daemonSocket: socket };
    const call = (command: string, i: number) => ({ command, containerId: `tp-${i}`, netns: namedNetnsPath(nsName(i)), ifname: 'eth0' });
    await new Promise((r) => setTimeout(r, 500));
    const rssIdle = rssMiB(daemon.pid);
    const adds = await pool(count, concurrency, async (i) => {
      const r = await execPlugin(shimPath(), call('ADD', i), conf);
      if (r.code !== 0) throw new Error(`ADD ${i}: ${r.stdout}`);
      return r.ms;
    });
    await new Promise((r) => setTimeout(r, 1000));
    const rssFull = rssMiB(daemon.pid);
    const dels = await pool(count, concurrency, async (i) => {
      const r = await execPlugin(shimPath(), call('DEL', i), conf);
      if (r.code !== 0) throw new Error(`DEL ${i}: ${r.stdout}`);
      return r.ms;
    });
    const a = summarize(adds.latencies);
    const d = summarize(dels.latencies);
    const rows = [
      { metric: 'ADD throughput', value: count / adds.seconds, unit: 'containers/s', note: `${concurrency} in flight; median ${a.median.toFixed(2)} ms, p99 ${a.p99.toFixed(2)} ms` },
      { metric: 'DEL throughput', value: count / dels.seconds, unit: 'containers/s', note: `median ${d.median.toFixed(2)} ms, p99 ${d.p99.toFixed(2)} ms` },
      { metric: 'daemon RSS, idle', value: rssIdle, unit: 'MiB', note: '' },
      { metric: `daemon RSS, ${count} containers`, value: rssFull, unit: 'MiB', note: `+${(rssFull - rssIdle).toFixed(1)} MiB` },
    ];
    if (json) process.stdout.write(JSON.stringify({ count, concurrency, rows }, null, 2) + '\n');
    else {
      process.stdout.write(`Sustained CNI throughput on one host (${count} containers, ${concurrency} in flight)\n`);
      printTable(rows);
    }
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.includes('--inside')) await inside();
else await outer();
