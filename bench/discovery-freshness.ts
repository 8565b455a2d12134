/**
 * Name freshness: from the moment a task's RUNNING status leaves its agent
 * (and from the moment the master relays it on its event stream) to the
 * first DNS answer that contains the task's address; likewise from a failing
 * health report to the first answer without it. p50/p99 over many tasks.
 * Goal: p99 ≤ 100 ms. Peer: Mesos-DNS polls every 60 s (answers up to 60 s stale).
 *
 * Usage: npx tsx bench/discovery-freshness.ts [--tasks 200] [--parallel 4] [--json]
 */
import { performance } from 'node:perf_hooks';
import { startCluster } from '../test/discovery/cluster.js';
import { addresses } from '../test/discovery/dns-client.js';
import { V1Connection } from '../contracts/client/connection.js';
import { configureLogging } from '../common/log.js';
import { flag } from './volume-common.js';

const TASKS = flag('--tasks', 200);
const PARALLEL = flag('--parallel', 4);
const JSON_OUT = process.argv.includes('--json');

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

async function main(): Promise<void> {
  configureLogging({ level: 'error' });
  const cluster = await startCluster({ agents: 2, discovery: { dns: { port: 0, workers: 'auto' } } });
  const port = cluster.discovery.dnsPort;
  const reported = new Map<string, number>();
  const relayed = new Map<string, number>();
  cluster.onReport = (taskId, state) => {
    if (state === 'TASK_RUNNING' && !reported.has(taskId)) reported.set(taskId, performance.now());
  };
  // Our own subscriber to the master's event stream: when the relay leaves the master.
  const conn = new V1Connection({ master: cluster.master.url, path: '/api/v1' });
  await conn.subscribe({ type: 'SUBSCRIBE' }, (e) => {
    const u = (e as { task_updated?: { state: string; status: { task_id: { value: string } } } }).task_updated;
    if (u?.state === 'TASK_RUNNING' && !relayed.has(u.status.task_id.value)) relayed.set(u.status.task_id.value, performance.now());
  });
  const fromAgent: number[] = [];
  const fromMaster: number[] = [];
  const healthGone: number[] = [];
  try {
    const poll = async (name: string, pred: (ips: string[]) => boolean): Promise<number> => {
      for (;;) {
        const ips = await addresses(port, name);
        if (pred(ips)) return performance.now();
      }
    };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < TASKS) {
        const i = next++;
        const id = `fresh-${i}`;
        const name = `fresh${i}.marathon.corral`;
        const ip = cluster.ipOf(id);
        // Start polling before the launch so the first correct answer is seen within one round trip.
        const seen = poll(name, (ips) => ips.includes(ip));
        await cluster.launch({ id, name: `fresh${i}` });
        const at = await seen;
        fromAgent.push(at - reported.get(id)!);
        if (relayed.has(id)) fromMaster.push(Math.max(0, at - relayed.get(id)!));
        // Health fails: how long until the name stops answering.
        const gone = poll(name, (ips) => ips.length === 0);
        const t0 = performance.now();
        cluster.agentOf(id).setHealth(cluster.frameworkId, id, false);
        healthGone.push((await gone) - t0);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
  } finally {
    await conn.close();
    await cluster.dispose();
  }
  const row = (what: string, xs: number[]) => ({ what, n: xs.length, p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) });
  const rows = [row('agent RUNNING → answer', fromAgent), row('master relay → answer', fromMaster), row('health failed → name gone', healthGone)];
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ tasks: TASKS, parallel: PARALLEL, rows }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`name freshness, ${TASKS} tasks (${PARALLEL} at a time), answers polled back to back over UDP\n`);
  process.stdout.write('interval                       n     p50 ms  p99 ms  max ms\n');
  for (const r of rows) process.stdout.write(`${r.what.padEnd(28)} ${String(r.n).padStart(4)}  ${r.p50.toFixed(2).padStart(7)} ${r.p99.toFixed(2).padStart(7)} ${r.max.toFixed(2).padStart(7)}\n`);
  process.stdout.write('goal: p99 ≤ 100 ms; Mesos-DNS (60 s poll): up to 60000 ms\n');
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
