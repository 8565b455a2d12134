/**
 * `docker run --rm -v vol:/data` with corral's local backend vs Docker's
 * built-in `local` driver, side by side on one private dockerd, same image,
 * runs interleaved (one of each per round) so both see the same machine.
 * Goal: corral's median ≤ 1.15× the built-in driver's.
 *
 * Usage: npx tsx bench/volume-docker-run.ts [--runs 40] [--json]
 */
import { rmSync } from 'node:fs';
import { startDockerd, uniqueName } from '../test/harness/dockerd.js';
import { testDir } from '../test/harness/resources.js';
import { startDriver, teardownHost } from '../test/volume-driver/helpers.js';
import { flag, fmt, jsonOutput, median, ms, pct, printFigures } from './volume-common.js';

const runs = flag('--runs', 40);
const driverName = uniqueName('corral');
const socket = `/run/docker/plugins/${driverName}.sock`;
const dir = testDir('bench-vol-docker');
const driver = await startDriver({ hostId: 'bench', dir, socket });
const dockerd = await startDockerd();
try {
  const image = await dockerd.importBusybox();
  await dockerd.docker(['volume', 'create', 'bench-builtin']);
  await dockerd.docker(['volume', 'create', '-d', driverName, 'bench-corral']);
  const runOnce = async (args: string[]): Promise<number> => {
    const t0 = process.hrtime.bigint();
    await dockerd.docker(['run', '--rm', '--network', 'none', ...args, image, 'true']);
    return ms(t0);
  };
  const builtin = ['-v', 'bench-builtin:/data'];
  const corral = ['--volume-driver', driverName, '-v', 'bench-corral:/data'];
  const plain: number[] = [];
  for (let i = 0; i < 3; i++) {
    await runOnce(builtin);
    await runOnce(corral);
  }
  const tb: number[] = [];
  const tc: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternate which goes first so neither always follows the other's teardown.
    if (i % 2 === 0) {
      tb.push(await runOnce(builtin));
      tc.push(await runOnce(corral));
    } else {
      tc.push(await runOnce(corral));
      tb.push(await runOnce(builtin));
    }
    if (i % 4 === 0) plain.push(await runOnce([]));
  }
  const ratio = median(tc) / median(tb);
  printFigures(
    `docker run --rm -v vol:/data, ${runs} runs each (ms; median / p90)`,
    [
      {
        what: 'run with volume',
        corral: `${fmt(median(tc))} / ${fmt(pct(tc, 90))}`,
        peer: `${fmt(median(tb))} / ${fmt(pct(tb, 90))} (docker local)`,
        goal: '≤ 1.15×',
        verdict: `${fmt(ratio, 3)}× ${ratio <= 1.15 ? 'met' : 'missed'}`,
      },
      {
        what: 'run without volume',
        corral: '-',
        peer: `${fmt(median(plain))} (docker, no volume)`,
        goal: '-',
        verdict: `volume overhead: corral ${fmt(median(tc) - median(plain))} ms, local ${fmt(median(tb) - median(plain))} ms`,
      },
    ],
    jsonOutput(),
  );
  await dockerd.docker(['volume', 'rm', 'bench-builtin', 'bench-corral']);
} finally {
  await dockerd.stop();
  await driver.kill();
  await teardownHost(dir);
  rmSync(socket, { force: true });
  rmSync(dir, { recursive: true, force: true });
}
