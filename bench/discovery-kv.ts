/**
 * Consul-compatible KV: blocking-query wake-up latency (a PUT on a key to the
 * answer of a blocked GET ?index=… on it) and KV writes per second through
 * the HTTP API, on each Store backend side by side: embedded (sync full and
 * normal) and etcd (a real etcd started here), with the backend's own put
 * rate as the floor.
 *
 * Usage: npx tsx bench/discovery-kv.ts [--rounds 200] [--seconds 5] [--concurrency 32] [--json]
 */
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { startDiscovery } from '../discovery/src/daemon.js';
import type { StoreConfigInput } from '../common/store/index.js';
import { startEtcd } from '../test/harness/etcd.js';
import { testDir } from '../test/harness/resources.js';
import { configureLogging } from '../common/log.js';
import { flag } from './volume-common.js';

const ROUNDS = flag('--rounds', 200);
const SECONDS = flag('--seconds', 5);
const CONCURRENCY = flag('--concurrency', 32);
const JSON_OUT = process.argv.includes('--json');

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

interface Row {
  backend: string;
  wakeP50: number;
  wakeP99: number;
  httpWritesPerSec: number;
  storePutsPerSec: number;
}

async function rate(seconds: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        await op(w * 1_000_000 + i);
        done++;
      }
    }),
  );
  return done / seconds;
}

async function bench(name: string, store: StoreConfigInput, dir: string): Promise<Row> {
  const d = await startDiscovery({ insecure: true, workDir: dir, store, dns: { port: 0, workers: 0 }, http: { port: 0 } });
  const pool = new Pool(d.httpUrl, { connections: CONCURRENCY + 2 });
  const put = async (key: string, body: string): Promise<void> => {
    const r = await pool.request({ path: `/v1/kv/${key}`, method: 'PUT', body });
    await r.body.text();
  };
  try {
    const wake: number[] = [];
    await put('bench/watched', 'v0');
    for (let i = 0; i < ROUNDS; i++) {
      const cur = await pool.request({ path: '/v1/kv/bench/watched', method: 'GET' });
      const index = Number(cur.headers['x-consul-index']);
      await cur.body.text();
      let woke = 0;
      const blocked = pool.request({ path: `/v1/kv/bench/watched?index=${index}&wait=30s`, method: 'GET' }).then(async (r) => {
        woke = performance.now();
        await r.body.text();
      });
      // Let the blocked read reach the server and start waiting.
      await new Promise((r) => setTimeout(r, 5));
      const t0 = performance.now();
      await put('bench/watched', `v${i + 1}`);
      await blocked;
      wake.push(woke - t0);
    }
    const httpWritesPerSec = await rate(SECONDS, CONCURRENCY, (i) => put(`bench/w/${i % 1000}`, 'x'.repeat(100)));
    const storePutsPerSec = await rate(SECONDS, CONCURRENCY, (i) => d.store.put(`bench-direct/${i % 1000}`, 'x'.repeat(100)));
    return { backend: name, wakeP50: pct(wake, 50), wakeP99: pct(wake, 99), httpWritesPerSec, storePutsPerSec };
  } finally {
    await pool.close();
    await d.close();
  }
}

async function main(): Promise<void> {
  configureLogging({ level: 'error' });
  const root = testDir('bench-kv');
  const rows: Row[] = [];
  const etcd = await startEtcd();
  try {
    rows.push(await bench('embedded (sync full)', { backend: 'embedded', path: join(root, 'full.db'), sync: 'full' }, join(root, 'a')));
    rows.push(await bench('embedded (sync normal)', { backend: 'embedded', path: join(root, 'normal.db'), sync: 'normal' }, join(root, 'b')));
    rows.push(await bench('etcd 3.4 (1 member)', { backend: 'etcd', etcdEndpoints: [etcd.endpoint] }, join(root, 'c')));
  } finally {
    await etcd.stop();
    rmSync(root, { recursive: true, force: true });
  }
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, rows }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`KV through the Consul API: ${ROUNDS} blocking wake-ups; writes for ${SECONDS} s with ${CONCURRENCY} in flight (100-byte values)\n`);
  process.stdout.write('store backend             wake p50 ms  wake p99 ms  HTTP PUT/s  Store put/s (floor)\n');
  for (const r of rows)
    process.stdout.write(
      `${r.backend.padEnd(24)} ${r.wakeP50.toFixed(2).padStart(11)}  ${r.wakeP99.toFixed(2).padStart(11)}  ${r.httpWritesPerSec.toFixed(0).padStart(10)}  ${r.storePutsPerSec.toFixed(0).padStart(10)}\n`,
    );
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
