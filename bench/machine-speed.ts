/**
 * How fast this machine's CPU is right now, as the CPU time of a fixed piece
 * of work: parsing and encoding the same JSON (status updates, the placement
 * benchmark's commonest message) a fixed number of times, one thread.
 *
 * On a shared VM the same work takes from ~0.9 to ~1.5 times as long from
 * one minute to the next with no CPU reported stolen (the host's other
 * guests share the physical cores and caches; steal time does not show it).
 * Printed beside a throughput figure, it tells a slow run from a slow machine.
 *
 * The work runs in a fresh process of its own, after a round to warm it up:
 * in a benchmark's process it would also measure that process's heap.
 * Usage as a program: node dist/bench/machine-speed.js  (prints the milliseconds)
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median } from './volume-common.js';

const CORPUS = JSON.stringify(
  Array.from({ length: 2000 }, (_, i) => ({
    task_id: { value: `t${i}` },
    state: 'TASK_RUNNING',
    source: 'SOURCE_EXECUTOR',
    uuid: 'iclZEQdzWtWMME+Gn6frtA==',
    timestamp: 1_796_685_851.844 + i,
    agent_id: { value: `c4b1f3a2-5d9e-4f7a-9b21-3e8d7c6a5b40-S${i % 97}` },
  })),
);

/** CPU milliseconds of one round of the fixed work. */
function round(): number {
  const c0 = process.cpuUsage();
  let n = 0;
  for (let i = 0; i < 40; i++) n += JSON.stringify(JSON.parse(CORPUS)).length;
  const c = process.cpuUsage(c0);
  if (n !== CORPUS.length * 40) throw new Error('reference work went wrong');
  return (c.user + c.system) / 1000;
}

/** The median of `rounds` rounds, after one to warm up, in this process. */
function measureHere(rounds: number): number {
  round();
  return median(Array.from({ length: rounds }, round));
}

const self = fileURLToPath(import.meta.url);
const compiled = self.endsWith('.js');

/** CPU milliseconds the fixed work takes now, measured in a fresh process (NaN if it could not run). */
export function referenceWorkMs(rounds = 5): number {
  const args = compiled ? [self, String(rounds)] : ['--import', 'tsx', self, String(rounds)];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0 ? Number(r.stdout.trim()) : NaN;
}

if (process.argv[1] === self) process.stdout.write(`${measureHere(Number(process.argv[2] ?? 5)).toFixed(1)}\n`);
