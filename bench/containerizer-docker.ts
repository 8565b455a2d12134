/**
 * Docker containerizer launch-to-running vs a bare `docker run -d` of the
 * same busybox image (`sleep 300`, `--network none`, one private dockerd),
 * interleaved so both see the same machine; plus dockerode's bare
 * create + start, the API floor the containerizer builds on. The
 * containerizer's launch includes validation, the image check, create,
 * start, the inspect that gives the task's pid, the log follower and its
 * state file. Goal: overhead ≤ 10% over `docker run -d`.
 *
 * Usage: npx tsx bench/containerizer-docker.ts [--runs 30] [--json]
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { DockerContainerizer } from '../plugins/isolator/src/docker/containerizer.js';
import { startDockerd, uniqueName } from '../test/harness/dockerd.js';
import { testDir } from '../test/harness/resources.js';
import { flag, fmt, jsonOutput, median, ms, pct, printFigures } from './volume-common.js';

const runs = flag('--runs', 30);
const dir = testDir('bench-docker');
const dockerd = await startDockerd();
try {
  const image = await dockerd.importBusybox();
  const docker = new Dockerode({ socketPath: dockerd.socket });
  const z = new DockerContainerizer({ docker, runDir: join(dir, 'run'), instance: uniqueName('bench') });
  let n = 0;

  const viaContainerizer = async (): Promise<number> => {
    const id = `b${n++}`;
    const sandbox = join(dir, 'sandboxes', id);
    mkdirSync(sandbox, { recursive: true });
    const t0 = process.hrtime.bigint();
    await z.launch({
      containerId: id,
      frameworkId: 'bench',
      taskId: id,
      sandbox,
      image: { kind: 'docker', name: image, forcePull: false },
      command: { shell: false, value: 'sleep', arguments: ['sleep', '300'], environment: {} },
      resources: { cpus: 0.1, memMb: 32, diskMb: 0, gpus: 0, ports: [] },
      limits: {},
      volumes: [],
      network: { mode: 'isolated' },
      logs: { stdout: 'stdout', stderr: 'stderr', maxBytes: 1 << 20, maxFiles: 2 },
      labels: {},
    });
    const t = ms(t0);
    await z.destroy(id);
    return t;
  };
  const viaCli = async (): Promise<number> => {
    const t0 = process.hrtime.bigint();
    const id = (await dockerd.docker(['run', '-d', '--network', 'none', image, 'sleep', '300'])).trim();
    const t = ms(t0);
    await dockerd.docker(['rm', '-f', id]);
    return t;
  };
  const viaApi = async (): Promise<number> => {
    const t0 = process.hrtime.bigint();
    const c = await docker.createContainer({ Image: image, Cmd: ['sleep', '300'], HostConfig: { NetworkMode: 'none' } });
    await c.start();
    const t = ms(t0);
    await c.remove({ force: true });
    return t;
  };

  for (let i = 0; i < 3; i++) for (const f of [viaContainerizer, viaCli, viaApi]) await f(); // warm-up
  const tz: number[] = [];
  const tc: number[] = [];
  const ta: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Rotate the order so none always runs right after another's teardown.
    const order = [
      [viaContainerizer, tz],
      [viaCli, tc],
      [viaApi, ta],
    ] as const;
    for (let k = 0; k < 3; k++) {
      const [f, out] = order[(i + k) % 3]!;
      out.push(await f());
    }
  }
  const ratio = median(tz) / median(tc);
  printFigures(
    `Docker launch to running, ${runs} runs each (ms; median / p90)`,
    [
      {
        what: 'launch to running',
        corral: `${fmt(median(tz))} / ${fmt(pct(tz, 90))} (DockerContainerizer.launch)`,
        peer: `${fmt(median(tc))} / ${fmt(pct(tc, 90))} (docker run -d)`,
        goal: 'overhead ≤ 10%',
        verdict: `${fmt((ratio - 1) * 100)}% ${ratio <= 1.1 ? 'met' : 'missed'}`,
      },
      {
        what: 'API floor',
        corral: '-',
        peer: `${fmt(median(ta))} / ${fmt(pct(ta, 90))} (dockerode create + start)`,
        goal: '-',
        verdict: `containerizer vs floor: +${fmt(median(tz) - median(ta))} ms`,
      },
    ],
    jsonOutput(),
  );
  await z.close();
} finally {
  await dockerd.stop();
  rmSync(dir, { recursive: true, force: true });
}
