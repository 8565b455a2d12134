/**
 * The multi-host lab with real exabgp, a real master (mesh from its agent
 * list), real etcd and a real bird2 route reflector: containers on different
 * hosts reach each other over plain routing, a killed speaker's routes vanish
 * from its peers within a second and come back with it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDir, recordPid, forgetPid, run } from '../harness/resources.js';
import { labDown, labStatus, labUp, type LabState } from '../../lab/lab.js';
import { upLinkKinds } from '../../lab/underlay.js';
import { ipJson, ping } from './helpers.js';

const recorded: Array<[string, number]> = [];
const remember = (name: string, pid: number): void => {
  recordPid(name, pid);
  recorded.push([name, pid]);
};
const forgetAll = (): void => {
  for (const [name, pid] of recorded.splice(0)) forgetPid(name, pid);
};

interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string | number;
}

async function waitConverged(dir: string, hosts: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const s = await labStatus(dir);
    last = s;
    if (s.every((h) => h.daemon && h.peers > 0 && h.sessionsUp === h.peers && h.routes === hosts - 1)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`lab did not converge: ${JSON.stringify(last)}`);
}

const routesVia = async (netns: string, gateway: string): Promise<Route[]> => (await ipJson<Route[]>(netns, ['route', 'show'])).filter((r) => r.gateway === gateway);

describe('3-host lab, full mesh from the master', () => {
  let lab: LabState;
  const dir = testDir('cni-lab');

  beforeAll(async () => {
    lab = await labUp({ prefix: 'ct-cnilb', hosts: 3, dir, containers: 1, onPid: (name, pid) => remember(`cni-lab-${name}`, pid) });
    await waitConverged(dir, 3);
  }, 120_000);

  afterAll(async () => {
    await labDown(dir);
    forgetAll();
  }, 60_000);

  it('containers on different hosts ping each other with no encapsulation anywhere', async () => {
    for (const from of lab.containers) {
      for (const to of lab.containers) {
        if (from.host === to.host) continue;
        expect(await ping(from.netns, to.ip)).toContain(' 0% packet loss');
      }
    }
    for (const h of lab.plan.hosts) {
      expect(await upLinkKinds(h.netns)).toEqual(['loopback', 'veth']);
      const learned = (await ipJson<Route[]>(h.netns, ['route', 'show', 'proto', '77'])).filter((r) => r.gateway);
      expect(learned).toHaveLength(2);
      for (const r of learned) expect(r).toMatchObject({ dev: 'ul0' });
    }
  });

  it('each host peers with every other host the master lists', async () => {
    const status = await labStatus(dir);
    expect(status.map((s) => `${s.sessionsUp}/${s.peers}`)).toEqual(['2/2', '2/2', '2/2']);
  });

  it("a killed exabgp's routes leave its peers within 1 s and come back with it", async () => {
    const [h1, h2, h3] = lab.plan.hosts;
    const pid = Number(readFileSync(join(h1!.dir, 'state', 'bgp', 'exabgp.pid'), 'utf8'));
    expect(await routesVia(h2!.netns, h1!.ip)).toHaveLength(1);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    let goneAfter = Infinity;
    while (Date.now() - killedAt < 5000) {
      if ((await routesVia(h2!.netns, h1!.ip)).length === 0 && (await routesVia(h3!.netns, h1!.ip)).length === 0) {
        goneAfter = Date.now() - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(goneAfter).toBeLessThan(1000);
    let backAfter = Infinity;
    while (Date.now() - killedAt < 30_000) {
      if ((await routesVia(h2!.netns, h1!.ip)).length === 1 && (await routesVia(h3!.netns, h1!.ip)).length === 1) {
        backAfter = Date.now() - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(backAfter).toBeLessThan(30_000);
    const c1 = lab.containers.find((c) => c.host === 'h1')!;
    const c2 = lab.containers.find((c) => c.host === 'h2')!;
    expect(await ping(c2.netns, c1.ip)).toContain(' 0% packet loss');
  }, 60_000);
});

describe('3-host lab through a bird2 route reflector', () => {
  let lab: LabState;
  const dir = testDir('cni-labrr');

  beforeAll(async () => {
    lab = await labUp({ prefix: 'ct-cnirr', hosts: 3, dir, containers: 1, routeReflector: true, onPid: (name, pid) => remember(`cni-labrr-${name}`, pid) });
    await waitConverged(dir, 3);
  }, 120_000);

  afterAll(async () => {
    await labDown(dir);
    forgetAll();
  }, 60_000);

  it('hosts peer only with the reflector, learn every block through it, and containers reach each other', async () => {
    const status = await labStatus(dir);
    expect(status.map((s) => `${s.sessionsUp}/${s.peers}`)).toEqual(['1/1', '1/1', '1/1']);
    const birdc = await run('birdc', ['-s', join(lab.plan.reflector!.dir, 'bird.ctl'), 'show', 'protocols']);
    expect(birdc.match(/Established/g)).toHaveLength(3);
    for (const h of lab.plan.hosts) {
      const learned = (await ipJson<Route[]>(h.netns, ['route', 'show', 'proto', '77'])).filter((r) => r.gateway);
      // Next hops stay the originating hosts (the reflector is not in the data path).
      expect(learned.map((r) => r.gateway).sort()).toEqual(
        lab.plan.hosts
          .filter((x) => x !== h)
          .map((x) => x.ip)
          .sort(),
      );
    }
    const [a, b, c] = lab.containers;
    expect(await ping(a!.netns, b!.ip)).toContain(' 0% packet loss');
    expect(await ping(c!.netns, a!.ip)).toContain(' 0% packet loss');
  });
});
