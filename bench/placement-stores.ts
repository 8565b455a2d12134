/**
 * Placement with the registry on etcd beside the embedded Store, in one
 * sitting: runs `dist/bench/placement.js` alternately with each backend
 * (a fresh single-member etcd for every etcd run, so no run recovers an
 * earlier one's registry) and prints every run and the ratio of medians.
 *
 * Usage: npm run build && npx tsx bench/placement-stores.ts [--runs 3] [--agents 10000] [--cpus 10] [--json] [--recover]
 * (--recover: after each placement the master is SIGKILLed and restarted on its Store; its recovery is timed)
 * Goals (issue: HA on etcd): etcd ≥ 0.75× embedded and ≥ 15,000 tasks/s.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd } from '../test/harness/etcd.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('--runs', 3);
const AGENTS = arg('--agents', 10_000);
const CPUS = arg('--cpus', 10);

interface Figure {
  metric: string;
  value: number;
  unit: string;
}

const RECOVER = process.argv.includes('--recover');
const recoveryLines: string[] = [];

function placement(extra: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(root, 'dist', 'bench', 'placement.js'), '--agents', String(AGENTS), '--cpus', String(CPUS), '--json', ...(RECOVER ? ['--recover'] : []), ...extra],
      { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`placement failed: ${err.message}\n${stderr}`));
        const start = stdout.indexOf('[');
        const end = stdout.indexOf('\n]', start) + 2;
        const figures = JSON.parse(stdout.slice(start, end)) as Figure[];
        // --recover: the recovery figures follow the JSON, one line each.
        recoveryLines.push(
          ...stdout
            .slice(end)
            .split('\n')
            .filter((l) => l.trim() && !l.startsWith('errors'))
            .map((l) => `${extra.length ? 'etcd' : 'embedded'}: ${l.trim()}`),
        );
        resolve(figures.find((f) => f.unit === 'tasks/s')!.value);
      },
    );
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const embedded: number[] = [];
  const etcd: number[] = [];
  for (let run = 1; run <= RUNS; run++) {
    embedded.push(await placement([]));
    const e = await startEtcd();
    try {
      etcd.push(await placement(['--etcd-endpoints', e.endpoint]));
    } finally {
      await e.stop();
    }
    console.error(`run ${run}: embedded ${embedded.at(-1)!.toFixed(0)} tasks/s, etcd ${etcd.at(-1)!.toFixed(0)} tasks/s`);
  }
  const ratio = median(etcd) / median(embedded);
  const rows = [
    { store: 'embedded (SQLite)', runs: embedded.map((v) => Math.round(v)), median: Math.round(median(embedded)), goal: '≥ 20,000 every run, ≥ 30,000 median' },
    { store: 'etcd 3.4 (1 member)', runs: etcd.map((v) => Math.round(v)), median: Math.round(median(etcd)), goal: '≥ 15,000 and ≥ 0.75× embedded' },
  ];
  if (process.argv.includes('--json')) console.log(JSON.stringify({ rows, ratio }, null, 2));
  else {
    console.log(`placement, ${AGENTS} agents × ${CPUS} CPUs, ${RUNS} alternating runs per Store`);
    for (const r of rows) console.log(`${r.store.padEnd(22)} runs ${r.runs.join(' / ').padEnd(26)} median ${String(r.median).padStart(6)} tasks/s   goal ${r.goal}`);
    console.log(`etcd / embedded (medians): ${ratio.toFixed(2)}×   ${ratio >= 0.75 && Math.min(...etcd) >= 15_000 ? 'met' : 'not met'}`);
    for (const l of recoveryLines) console.log(l);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
