/**
 * Placement with TLS on every connection beside plain HTTP, in one sitting:
 * runs `dist/bench/placement.js` alternately without and with `--tls` (the
 * master on HTTPS, the simulated agents presenting client certificates as
 * real agents do, the framework verifying the master) and prints every run
 * and the ratio of medians.
 *
 * Usage: npx tsc -p tsconfig.build.json && node dist/bench/placement-tls.js [--runs 3] [--agents 10000] [--cpus 10] [--json]
 * Goal (issue: security): TLS ≥ 0.8× plain.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flag } from './volume-common.js';

// The repository root, from bench/ under tsx or from dist/bench/ once compiled.
const root = fileURLToPath(new URL(import.meta.url.endsWith('.js') ? '../..' : '..', import.meta.url));
const RUNS = flag('--runs', 3, { whole: true, min: 1 });
const AGENTS = flag('--agents', 10_000, { whole: true, min: 1 });
const CPUS = flag('--cpus', 10, { whole: true, min: 1 });

interface Figure {
  metric: string;
  value: number;
  unit: string;
}

interface Run {
  tasksPerSecond: number;
  /** CPU seconds during placement. */
  cpu: { master: number; fleet: number; framework: number };
  /** The master's CPU seconds in the kernel during placement (see placement.ts). */
  masterKernel: number;
  /** Seconds until every agent had registered (a TLS handshake each with --tls). */
  registration: number;
  /** The master's write system calls during placement (how well its writes were coalesced). */
  writes: number;
  /** The framework's calls that failed (a sound run has none). */
  failedCalls: number;
}

const figure = (figures: Figure[], prefix: string): number => figures.find((f) => f.metric.startsWith(prefix))?.value ?? NaN;

function placement(extra: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(root, 'dist', 'bench', 'placement.js'), '--agents', String(AGENTS), '--cpus', String(CPUS), '--json', ...extra],
      { maxBuffer: 16 * 1024 * 1024, timeout: 900_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`placement failed: ${err.message}\n${stderr}`));
        const start = stdout.indexOf('[');
        const end = stdout.indexOf('\n]', start) + 2;
        const figures = JSON.parse(stdout.slice(start, end)) as Figure[];
        resolve({
          tasksPerSecond: figures.find((f) => f.unit === 'tasks/s')!.value,
          cpu: {
            master: figure(figures, 'CPU during placement: master'),
            fleet: figure(figures, 'CPU during placement: simulated agents'),
            framework: figure(figures, 'CPU during placement: framework'),
          },
          masterKernel: figure(figures, 'kernel CPU during placement: master'),
          registration: figure(figures, 'agent registration'),
          writes: figure(figures, 'master write system calls'),
          failedCalls: figure(figures, 'framework calls failed'),
        });
      },
    );
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const plainRuns: Run[] = [];
  const tlsRuns: Run[] = [];
  for (let run = 1; run <= RUNS; run++) {
    plainRuns.push(await placement([]));
    tlsRuns.push(await placement(['--tls']));
    const line = (r: Run): string =>
      `${r.tasksPerSecond.toFixed(0)} tasks/s, master ${r.cpu.master.toFixed(2)} s CPU (${r.masterKernel.toFixed(2)} s in the kernel), ${r.writes} writes, ${r.failedCalls} failed calls, registration ${r.registration.toFixed(1)} s`;
    console.error(`run ${run}: plain ${line(plainRuns.at(-1)!)}; TLS ${line(tlsRuns.at(-1)!)}`);
  }
  const plain = plainRuns.map((r) => r.tasksPerSecond);
  const tls = tlsRuns.map((r) => r.tasksPerSecond);
  const ratio = median(tls) / median(plain);
  // Where the CPU goes (medians, seconds during placement): the simulated agents share the master's 2 cores here.
  const cpu = (runs: Run[]): string => (['master', 'fleet', 'framework'] as const).map((k) => `${k} ${median(runs.map((r) => r.cpu[k])).toFixed(1)} s`).join(', ');
  // The master's CPU per task is steadier than tasks/s on a shared machine.
  const perTask = (runs: Run[]): number => median(runs.map((r) => (r.cpu.master / (AGENTS * CPUS)) * 1e6));
  const row = (transport: string, runs: Run[]) => ({
    transport,
    runs: runs.map((r) => Math.round(r.tasksPerSecond)),
    median: Math.round(median(runs.map((r) => r.tasksPerSecond))),
    cpu: cpu(runs),
    masterMicrosPerTask: Math.round(perTask(runs)),
    registrationSeconds: Number(median(runs.map((r) => r.registration)).toFixed(1)),
  });
  const rows = [row('plain HTTP (--insecure)', plainRuns), row('TLS (mutual for agents)', tlsRuns)];
  const cpuRatio = perTask(tlsRuns) / perTask(plainRuns);
  if (process.argv.includes('--json')) console.log(JSON.stringify({ rows, ratio, cpuRatio }, null, 2));
  else {
    console.log(`placement, ${AGENTS} agents × ${CPUS} CPUs, ${RUNS} alternating runs each`);
    for (const r of rows)
      console.log(
        `${r.transport.padEnd(26)} runs ${r.runs.join(' / ').padEnd(26)} median ${String(r.median).padStart(6)} tasks/s   CPU ${r.cpu}   master ${r.masterMicrosPerTask} µs/task   registration ${r.registrationSeconds} s`,
      );
    console.log(`master CPU per task, TLS / plain (medians): ${cpuRatio.toFixed(2)}×`);
    console.log(`TLS / plain (medians): ${ratio.toFixed(2)}×   goal ≥ 0.8×: ${ratio >= 0.8 ? 'met' : 'not met'}`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
