/**
 * Sequential write and read MB/s through a mounted rbd volume (ext4 on loop on
 * rbd-fuse, the attach path used here) vs `rbd bench` on the same cluster and
 * image size, to show what the attach path costs. Writes end with fsync; the
 * read happens after a detach/attach cycle so no page cache is involved.
 *
 * Usage: npx tsx bench/volume-rbd-throughput.ts [--mib 128] [--json]
 */
import { rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startCeph } from '../test/harness/ceph.js';
import { run, testDir } from '../test/harness/resources.js';
import { startDriver, teardownHost } from '../test/volume-driver/helpers.js';
import { flag, fmt, jsonOutput, ms, printFigures } from './volume-common.js';

const mib = flag('--mib', 128);
const dir = testDir('bench-vol-tput');
const ceph = await startCeph({ pools: ['corral'], memstoreBytes: 4 * 1024 ** 3 });
const driver = await startDriver({ hostId: 'tput', dir, ceph, defaultBackend: 'rbd' });
// Incompressible data from tmpfs, so neither side benefits from zeros.
const source = join('/dev/shm', `corral-bench-${process.pid}`);
try {
  writeFileSync(source, randomBytes(mib * 1024 * 1024));
  const size = `${mib * 2}M`;
  await driver.client.create('tput', { size });
  let mp = await driver.client.mount('tput', 'bench');
  let t0 = process.hrtime.bigint();
  await run('dd', [`if=${source}`, `of=${join(mp, 'big')}`, 'bs=4M', 'conv=fsync'], { timeoutMs: 300_000 });
  const writeMBs = mib / (ms(t0) / 1000);
  await driver.client.unmount('tput', 'bench');
  mp = await driver.client.mount('tput', 'bench');
  t0 = process.hrtime.bigint();
  await run('dd', [`if=${join(mp, 'big')}`, 'of=/dev/null', 'bs=4M'], { timeoutMs: 300_000 });
  const readMBs = mib / (ms(t0) / 1000);
  await driver.client.unmount('tput', 'bench');

  // rbd bench on a fresh image of the same size in the same pool.
  await ceph.rbd(['create', 'corral/rbdbench', '--size', size, '--image-feature', 'layering']);
  const bench = async (type: string, threads: number): Promise<number> => {
    const out = await ceph.rbd(['bench', '--io-type', type, '--io-size', '4M', '--io-threads', String(threads), '--io-total', `${mib}M`, '--io-pattern', 'seq', 'corral/rbdbench'], 300_000);
    // "elapsed: 1  ops: 32  ops/sec: 30.1  bytes/sec: 120 MiB/s"
    const m = /bytes\/sec:\s*([\d.]+)\s*(B|KiB|MiB|GiB)\/s/.exec(out);
    if (!m) throw new Error(`unexpected rbd bench output: ${out.slice(-300)}`);
    const scale: Record<string, number> = { B: 1 / 1048576, KiB: 1 / 1024, MiB: 1, GiB: 1024 };
    return Number(m[1]) * scale[m[2]!]!;
  };
  const rbdWrite1 = await bench('write', 1);
  const rbdRead1 = await bench('read', 1);
  const rbdWrite16 = await bench('write', 16);
  const rbdRead16 = await bench('read', 16);
  printFigures(
    `sequential I/O, ${mib} MiB, 4 MiB blocks, one-node memstore cluster (MB/s)`,
    [
      {
        what: 'write (fsync at end)',
        corral: fmt(writeMBs),
        peer: `rbd bench: ${fmt(rbdWrite1)} (1 thread), ${fmt(rbdWrite16)} (16 threads)`,
        goal: 'show overhead',
        verdict: `${fmt((writeMBs / rbdWrite1) * 100, 0)}% of rbd bench (1 thread)`,
      },
      {
        what: 'read (cold cache)',
        corral: fmt(readMBs),
        peer: `rbd bench: ${fmt(rbdRead1)} (1 thread), ${fmt(rbdRead16)} (16 threads)`,
        goal: 'show overhead',
        verdict: `${fmt((readMBs / rbdRead1) * 100, 0)}% of rbd bench (1 thread)`,
      },
    ],
    jsonOutput(),
  );
} finally {
  rmSync(source, { force: true });
  await driver.kill();
  await teardownHost(dir);
  await ceph.stop();
  rmSync(dir, { recursive: true, force: true });
}
