/**
 * rbd volume latencies on a real one-node Ceph cluster (memstore), through the
 * volume-driver processes' admin API (the path Docker's Mount and the
 * isolator take):
 *  - create + first mount (image, registry entry, lock, rbd-fuse, loop, mkfs,
 *    mount) — goal ≤ 1 s;
 *  - takeover on another host after the holder died hard, including the
 *    liveness probe and fencing (blocklist) — goal ≤ 2 s.
 *
 * Usage: npx tsx bench/volume-rbd-attach.ts [--rounds 5] [--json]
 */
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startCeph } from '../test/harness/ceph.js';
import { testDir } from '../test/harness/resources.js';
import { helperPids, startDriver, teardownHost, type DriverProcess } from '../test/volume-driver/helpers.js';
import { flag, fmt, jsonOutput, median, ms, printFigures } from './volume-common.js';

const rounds = flag('--rounds', 5);
const root = testDir('bench-vol-rbd');
const ceph = await startCeph({ pools: ['corral'] });
const hosts: Record<string, DriverProcess> = {};
const dirOf = (h: string) => join(root, h);
try {
  for (const h of ['a', 'b']) hosts[h] = await startDriver({ hostId: `bench-${h}`, dir: dirOf(h), ceph, defaultBackend: 'rbd' });
  const createMount: number[] = [];
  const createOnly: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    await hosts.a!.client.create(`cm-${i}`, { size: '256M' });
    createOnly.push(ms(t0));
    await hosts.a!.client.mount(`cm-${i}`, 'bench');
    createMount.push(ms(t0));
    await hosts.a!.client.unmount(`cm-${i}`, 'bench');
  }
  const takeover: number[] = [];
  let holder = 'a';
  for (let i = 0; i < rounds; i++) {
    const other = holder === 'a' ? 'b' : 'a';
    const name = `to-${i}`;
    await hosts[holder]!.client.create(name, { size: '64M' });
    const mp = await hosts[holder]!.client.mount(name, 'bench');
    const fd = openSync(join(mp, 'data'), 'w');
    writeSync(fd, 'payload');
    fsyncSync(fd);
    closeSync(fd);
    // The holder dies hard: its plugin and its rbd-fuse.
    await hosts[holder]!.kill('SIGKILL');
    for (const pid of helperPids(dirOf(holder))) process.kill(pid, 'SIGKILL');
    const t0 = process.hrtime.bigint();
    await hosts[other]!.client.mount(name, 'bench');
    takeover.push(ms(t0));
    await hosts[other]!.client.unmount(name, 'bench');
    await teardownHost(dirOf(holder));
    await hosts[holder]!.restart();
    holder = other;
  }
  const verdict = (v: number, goal: number) => `${v <= goal ? 'met' : 'missed'}`;
  printFigures(
    `rbd volumes on a one-node memstore cluster, rbd-fuse + loop attach, ${rounds} rounds (ms)`,
    [
      { what: 'create', corral: `${fmt(median(createOnly))} median`, peer: '-', goal: '-', verdict: '-' },
      {
        what: 'create + first mount',
        corral: `${fmt(median(createMount))} median, ${fmt(Math.max(...createMount))} max`,
        peer: 'brief: rbd create 140 + fuse 70 + losetup 20 + mkfs 50 + mount 10',
        goal: '≤ 1000',
        verdict: verdict(Math.max(...createMount), 1000),
      },
      { what: 'takeover incl. fencing', corral: `${fmt(median(takeover))} median, ${fmt(Math.max(...takeover))} max`, peer: '-', goal: '≤ 2000', verdict: verdict(Math.max(...takeover), 2000) },
    ],
    jsonOutput(),
  );
} finally {
  for (const h of Object.values(hosts)) await h.kill();
  for (const h of ['a', 'b']) await teardownHost(dirOf(h));
  await ceph.stop();
  rmSync(root, { recursive: true, force: true });
}
