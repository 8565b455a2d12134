/**
 * The cluster Store through the master's store API (the `remote` backend)
 * side by side with the embedded store used directly and with a real etcd:
 * puts per second and gets per second with many calls in flight, the latency
 * of a single get and put, and the time from a put to the watch event.
 *
 * The master runs as its own process (`corral master`, as on a real cluster)
 * with an embedded store at the same sync level as the embedded row it is
 * compared with; etcd is a one-member etcd started here (it fsyncs every
 * commit, like sync full).
 *
 * Usage: npx tsx bench/store-remote.ts [--seconds 5] [--concurrency 16] [--rounds 2000] [--json]
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { configureLogging } from '../common/log.js';
import { EmbeddedStore } from '../common/store/embedded.js';
import { EtcdStore } from '../common/store/etcd.js';
import { RemoteStore } from '../common/store/remote.js';
import type { Store } from '../contracts/store/types.js';
import { startEtcd } from '../test/harness/etcd.js';
import { MasterProcess } from '../test/harness/master-process.js';
import { freePort } from '../test/harness/ports.js';
import { testDir } from '../test/harness/resources.js';
import { flag } from './volume-common.js';

const SECONDS = flag('--seconds', 5);
const CONCURRENCY = flag('--concurrency', 16);
const ROUNDS = flag('--rounds', 2000);
const JSON_OUT = process.argv.includes('--json');
const KEYS = 1000;
const VALUE = 'x'.repeat(100);

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

interface Row {
  backend: string;
  putsPerSec: number;
  getsPerSec: number;
  getP50: number;
  getP99: number;
  putP50: number;
  watchP50: number;
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

async function latencies(rounds: number, op: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await op(i);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Time from starting a put to its watch event, one at a time. */
async function watchDelay(s: Store, rounds: number): Promise<number[]> {
  let wake: (() => void) | undefined;
  const w = s.watch({ prefix: 'bench/watched', onEvents: () => wake?.() });
  try {
    await s.put('bench/watched', 'warm-up');
    await new Promise((r) => setTimeout(r, 200));
    const out: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const seen = new Promise<void>((resolve) => (wake = resolve));
      const t0 = performance.now();
      await s.put('bench/watched', `v${i}`);
      await seen;
      out.push(performance.now() - t0);
    }
    return out;
  } finally {
    w.cancel();
  }
}

async function bench(backend: string, s: Store): Promise<Row> {
  for (let i = 0; i < KEYS; i++) await s.put(`bench/get/${i}`, VALUE);
  const gets = await latencies(ROUNDS, (i) => s.get(`bench/get/${i % KEYS}`));
  const puts = await latencies(Math.min(ROUNDS, 500), (i) => s.put(`bench/lat/${i % KEYS}`, VALUE));
  const watch = await watchDelay(s, Math.min(ROUNDS, 500));
  const putsPerSec = await rate(SECONDS, CONCURRENCY, (i) => s.put(`bench/put/${i % KEYS}`, VALUE));
  const getsPerSec = await rate(SECONDS, CONCURRENCY, (i) => s.get(`bench/get/${i % KEYS}`));
  return { backend, putsPerSec, getsPerSec, getP50: pct(gets, 50), getP99: pct(gets, 99), putP50: pct(puts, 50), watchP50: pct(watch, 50) };
}

async function withMaster<T>(root: string, sync: 'full' | 'normal', fn: (url: string) => Promise<T>): Promise<T> {
  const workDir = join(root, `master-${sync}`);
  const config = join(root, `master-${sync}.json`);
  writeFileSync(config, JSON.stringify({ store: { backend: 'embedded', path: join(workDir, 'registry.db'), sync } }));
  const master = new MasterProcess(workDir, await freePort(), ['--no-auth', '--config', config]);
  try {
    await master.start();
    return await fn(master.url);
  } finally {
    await master.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  configureLogging({ level: 'error' });
  const root = testDir('bench-store-remote');
  const rows: Row[] = [];
  const etcd = await startEtcd();
  try {
    for (const sync of ['full', 'normal'] as const) {
      const embedded = new EmbeddedStore({ path: join(root, `embedded-${sync}.db`), sync });
      try {
        rows.push(await bench(`embedded, direct (sync ${sync})`, embedded));
      } finally {
        await embedded.close();
      }
      await withMaster(root, sync, async (url) => {
        const remote = await RemoteStore.open({ url, namespace: 'bench-ns/' });
        try {
          rows.push(await bench(`remote → master (sync ${sync})`, remote));
        } finally {
          await remote.close();
        }
      });
    }
    const e = await EtcdStore.open({ endpoints: [etcd.endpoint], namespace: 'bench/' });
    try {
      rows.push(await bench('etcd 3.4 (1 member)', e));
    } finally {
      await e.close();
    }
  } finally {
    await etcd.stop();
    rmSync(root, { recursive: true, force: true });
  }
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ seconds: SECONDS, concurrency: CONCURRENCY, rounds: ROUNDS, rows }, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    `Store: ${CONCURRENCY} calls in flight for ${SECONDS} s per rate; latencies one call at a time (${ROUNDS} gets, ${Math.min(ROUNDS, 500)} puts and watch events); 100-byte values\n`,
  );
  process.stdout.write('backend                          put/s    get/s  get p50 ms  get p99 ms  put p50 ms  put→watch p50 ms\n');
  for (const r of rows) {
    process.stdout.write(
      `${r.backend.padEnd(30)} ${r.putsPerSec.toFixed(0).padStart(7)}  ${r.getsPerSec.toFixed(0).padStart(7)}  ${r.getP50.toFixed(3).padStart(10)}  ${r.getP99.toFixed(3).padStart(10)}  ${r.putP50.toFixed(3).padStart(10)}  ${r.watchP50.toFixed(3).padStart(16)}\n`,
    );
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
