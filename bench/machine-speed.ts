/**
 * How fast this machine's CPU is right now, as the CPU time of a fixed piece
 * of work: parsing and encoding the same JSON (status updates, the placement
 * benchmark's commonest message) a fixed number of times, one thread.
 *
 * On a shared VM the same work takes from ~0.9 to ~1.5 times as long from
 * one minute to the next with no CPU reported stolen (the host's other
 * guests share the physical cores and caches; steal time does not show it).
 * Printed beside a throughput figure, it tells a slow run from a slow machine.
 */
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

/** CPU milliseconds the fixed work took: the median of `rounds` rounds. */
export function referenceWorkMs(rounds = 5): number {
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const c0 = process.cpuUsage();
    let n = 0;
    for (let i = 0; i < 40; i++) n += JSON.stringify(JSON.parse(CORPUS)).length;
    const c = process.cpuUsage(c0);
    if (n !== CORPUS.length * 40) throw new Error('reference work went wrong');
    times.push((c.user + c.system) / 1000);
  }
  return median(times);
}
