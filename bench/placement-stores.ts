/**
 * Placement with the registry on etcd beside the embedded Store, in one
 * sitting: runs `dist/bench/placement.js` alternately with each backend
 * (a fresh single-member etcd for every etcd run, so no run recovers an
 * earlier one's registry) and prints every run and the ratio of medians.
 * The third column is etcd as provisioning deploys it: TLS with client
 * certificates required, authentication on, the master acting as the
 * least-privilege user `corral-master` (its certificate's CN) under `corral/`.
 *
 * Usage: npm run build && npx tsx bench/placement-stores.ts [--runs 3] [--agents 10000] [--cpus 10] [--json] [--recover]
 * (--recover: after each placement the master is SIGKILLed and restarted on its Store; its recovery is timed)
 * Goals (issue: HA on etcd): etcd ≥ 0.75× embedded and ≥ 15,000 tasks/s; (issue: security) TLS+auth ≥ 0.8× plain etcd.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { corralMasterUser, setupEtcdAuth } from '../common/store/etcd-auth.js';
import { startEtcd } from '../test/harness/etcd.js';
import { makeEtcdPki, type EtcdPki } from '../test/harness/etcd-pki.js';
import { flag } from './volume-common.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const RUNS = flag('--runs', 3, { whole: true, min: 1 });
const AGENTS = flag('--agents', 10_000, { whole: true, min: 1 });
const CPUS = flag('--cpus', 10, { whole: true, min: 1 });

interface Figure {
  metric: string;
  value: number;
  unit: string;
}

const RECOVER = process.argv.includes('--recover');
const recoveryLines: string[] = [];

function placement(extra: string[], label = extra.length ? 'etcd' : 'embedded', env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(root, 'dist', 'bench', 'placement.js'), '--agents', String(AGENTS), '--cpus', String(CPUS), '--json', ...(RECOVER ? ['--recover'] : []), ...extra],
      { maxBuffer: 16 * 1024 * 1024, timeout: 600_000, env },
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
            .map((l) => `${label}: ${l.trim()}`),
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

/** One placement on a fresh etcd with TLS, client certificates and authentication, the master as corral-master under corral/. */
async function securePlacement(pki: EtcdPki): Promise<number> {
  const e = await startEtcd({ tls: pki.server });
  try {
    const cert = await pki.client('corral-master');
    await setupEtcdAuth({ endpoints: [e.endpoint], tls: { ca: pki.caFile, ...(await pki.client('bench-setup')) } }, { rootPassword: 'bench-root', users: [corralMasterUser('corral/')] });
    // The master's store settings beyond its flags (CORRAL_MASTER_STORE is merged under --store-backend and --etcd-endpoints).
    const store = { namespace: 'corral/', etcdTls: { ca: pki.caFile, ...cert } };
    return await placement(['--etcd-endpoints', e.endpoint], 'etcd+TLS', { ...process.env, CORRAL_MASTER_STORE: JSON.stringify(store) });
  } finally {
    await e.stop();
  }
}

async function main(): Promise<void> {
  const embedded: number[] = [];
  const etcd: number[] = [];
  const etcdTls: number[] = [];
  const pkiDir = mkdtempSync(join(tmpdir(), 'corral-bench-etcd-pki-'));
  const pki = await makeEtcdPki(pkiDir);
  try {
    const columns: Array<() => Promise<void>> = [
      async () => void embedded.push(await placement([])),
      async () => {
        const e = await startEtcd();
        try {
          etcd.push(await placement(['--etcd-endpoints', e.endpoint]));
        } finally {
          await e.stop();
        }
      },
      async () => void etcdTls.push(await securePlacement(pki)),
    ];
    for (let run = 1; run <= RUNS; run++) {
      // Each run starts with another column: none always runs first (or last) on a machine whose load drifts.
      for (let c = 0; c < columns.length; c++) await columns[(run - 1 + c) % columns.length]!();
      console.error(`run ${run}: embedded ${embedded.at(-1)!.toFixed(0)} tasks/s, etcd ${etcd.at(-1)!.toFixed(0)} tasks/s, etcd+TLS ${etcdTls.at(-1)!.toFixed(0)} tasks/s`);
    }
  } finally {
    rmSync(pkiDir, { recursive: true, force: true });
  }
  const ratio = median(etcd) / median(embedded);
  const tlsRatio = median(etcdTls) / median(etcd);
  const rows = [
    { store: 'embedded (SQLite)', runs: embedded.map((v) => Math.round(v)), median: Math.round(median(embedded)), goal: '≥ 20,000 every run, ≥ 30,000 median' },
    { store: 'etcd 3.4 (1 member)', runs: etcd.map((v) => Math.round(v)), median: Math.round(median(etcd)), goal: '≥ 15,000 and ≥ 0.75× embedded' },
    { store: 'etcd 3.4 TLS+auth', runs: etcdTls.map((v) => Math.round(v)), median: Math.round(median(etcdTls)), goal: '≥ 0.8× plain etcd' },
  ];
  if (process.argv.includes('--json')) console.log(JSON.stringify({ rows, ratio, tlsRatio }, null, 2));
  else {
    console.log(`placement, ${AGENTS} agents × ${CPUS} CPUs, ${RUNS} alternating runs per Store`);
    for (const r of rows) console.log(`${r.store.padEnd(22)} runs ${r.runs.join(' / ').padEnd(26)} median ${String(r.median).padStart(6)} tasks/s   goal ${r.goal}`);
    console.log(`etcd / embedded (medians): ${ratio.toFixed(2)}×   ${ratio >= 0.75 && Math.min(...etcd) >= 15_000 ? 'met' : 'not met'}`);
    console.log(`etcd+TLS / etcd (medians): ${tlsRatio.toFixed(2)}×   ${tlsRatio >= 0.8 ? 'met' : 'not met'}`);
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
