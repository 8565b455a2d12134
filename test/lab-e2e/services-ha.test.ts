/**
 * The service framework and discovery replicated across three control nodes
 * of a full namespace lab (each control node runs an etcd member, a master,
 * a service framework daemon and a discovery replica; two agent hosts).
 * During a deploy, the service framework's leader and one discovery replica
 * are SIGKILLed. What must hold: another daemon leads and completes the
 * deploy (every instance running, none twice), and the app's names keep
 * resolving on the surviving discovery replicas, which answer alike.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { forgetPid, recordPid, testDir } from '../harness/resources.js';
import { labDown, provisionNode } from '../../lab/lab.js';
import { loadNodeState, ours } from '../../provision/src/lifecycle.js';
import { signalProcess } from '../../common/sys/process.js';
import type { ControlPlan } from '../../lab/topology.js';
import { appName, deployAndWait, nsRun, operatorCall, operatorCurl, runningWithIp, startFullLab, storeApp, until, type FullLab } from './full-lab.js';

const recorded: Array<[string, number]> = [];
const remember = (name: string, pid: number): void => {
  recordPid(`lab-svcha-${name}`, pid);
  recorded.push([`lab-svcha-${name}`, pid]);
};

let lab: FullLab;
/** http or https: the lab's (https unless it was brought up insecure). */
const scheme = (): string => new URL(lab.state.plan.masterUrl).protocol.replace(':', '');
const dir = testDir('lab-svcha');

beforeAll(async () => {
  lab = await startFullLab({ prefix: 'ct-lsha', hosts: 2, controls: 3, dir, onPid: remember });
}, 300_000);

afterAll(async () => {
  await labDown(dir);
  for (const [name, pid] of recorded.splice(0)) forgetPid(name, pid);
}, 180_000);

interface ServicesHealth {
  ready: boolean;
  connected: boolean;
  leading: boolean;
  leader: { url: string } | null;
}

const servicesHealth = async (c: ControlPlan): Promise<ServicesHealth | undefined> => {
  try {
    return JSON.parse(await nsRun(c.netns, 'curl', [...operatorCurl(lab.state), '-s', '--max-time', '2', `${scheme()}://${c.ip}:5052/health`])) as ServicesHealth;
  } catch {
    return undefined;
  }
};

/** The control node whose services daemon leads and is subscribed, once every other live daemon names it. */
const servicesLeader = async (live: ControlPlan[]): Promise<ControlPlan | undefined> => {
  const hs = await Promise.all(live.map(servicesHealth));
  const leaders = live.filter((_, i) => hs[i]?.leading && hs[i]?.connected);
  if (leaders.length !== 1) return undefined;
  const url = `${scheme()}://${leaders[0]!.ip}:5052`;
  return hs.every((h) => h?.leader?.url === url) ? leaders[0] : undefined;
};

/** A-record answers of one discovery replica. */
const digAt = async (fromNetns: string, server: ControlPlan, name: string): Promise<string[]> => {
  const out = await nsRun(fromNetns, 'dig', [`@${server.ip}`, '-p', '8600', '+short', '+time=1', '+tries=1', name, 'A']);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l))
    .sort();
};

const pidOf = (c: ControlPlan, daemon: string): number => {
  const p = loadNodeState(join(c.nodeDir, 'node-state.json'))!.processes.find((x) => x.name === daemon)!;
  expect(ours(p)).toBe(true);
  return p.pid;
};

interface MasterTask {
  task_id: { value: string };
  framework_id: { value: string };
  state: string;
}

const masterTasks = async (from: ControlPlan): Promise<MasterTask[]> => (await operatorCall<{ get_tasks: { tasks: MasterTask[] } }>(lab.state, from, 'GET_TASKS')).get_tasks.tasks;

describe('three control nodes: a replicated service framework and discovery', () => {
  it('runs one service framework leader; the other daemons redirect to it; every discovery replica answers the same names', async () => {
    const controls = lab.state.plan.controls;
    const leader = await until('one service framework leader named by all', () => servicesLeader(controls), 90_000, 200);
    for (const c of controls.filter((x) => x !== leader)) {
      const headers = await nsRun(c.netns, 'curl', [...operatorCurl(lab.state), '-s', '-o', '/dev/null', '-D', '-', '--max-time', '2', `${scheme()}://${c.ip}:5052/v1/apps`]);
      expect(headers).toMatch(/^HTTP\/1\.1 307/);
      expect(headers).toMatch(new RegExp(`location: ${scheme()}://${leader.ip.replace(/\./g, '\\.')}:5052/v1/apps`, 'i'));
    }
    const { tasks } = await deployAndWait(lab, { ...storeApp('first', 2), volumes: [] }, 'h1');
    const ips = tasks.map((t) => t.ips[0]!).sort();
    const from = lab.netnsOf('h2');
    for (const c of controls)
      await until(`${c.name}'s discovery answering first`, async () => (JSON.stringify(await digAt(from, c, appName('first'))) === JSON.stringify(ips) ? true : undefined), 60_000, 100);
  }, 180_000);

  it("survives a SIGKILL of the service framework's leader and of a discovery replica during a deploy: the deploy completes, no instance twice, names keep resolving", async () => {
    const controls = lab.state.plan.controls;
    const leader = await until('one service framework leader', () => servicesLeader(controls), 60_000, 200);
    // A discovery replica on another control node than the leader's: two of the three machines lose a daemon.
    const dnsVictim = controls.find((c) => c !== leader)!;
    const survivors = controls.filter((c) => c !== dnsVictim);
    const frameworkId = (await lab.api<{ framework: { id: string } }>('GET', '/v1/info')).framework.id;
    const firstIps = runningWithIp((await lab.app('first')).tasks)
      .map((t) => t.ips[0]!)
      .sort();

    const app = { ...storeApp('web', 4), volumes: [], constraints: [] };
    await lab.api('PUT', '/v1/apps/web', app);
    const killedAt = Date.now();
    signalProcess(pidOf(leader, 'services'), 'SIGKILL');
    signalProcess(pidOf(dnsVictim, 'discovery'), 'SIGKILL');

    const live = controls.filter((c) => c !== leader);
    const next = await until('another service framework daemon leading', () => servicesLeader(live), 90_000, 200);
    expect(next).not.toBe(leader);
    const takeoverMs = Date.now() - killedAt;
    // The same framework, failed over.
    expect((await lab.api<{ framework: { id: string } }>('GET', '/v1/info')).framework.id).toBe(frameworkId);

    const web = await until(
      'the deploy complete: four instances of web running',
      async () => {
        const r = runningWithIp((await lab.app('web')).tasks);
        return r.length === 4 ? r : undefined;
      },
      120_000,
      200,
    );
    const deployedMs = Date.now() - killedAt;
    console.log(`services leader SIGKILL → new leader subscribed in ${takeoverMs} ms; deploy of 4 complete ${deployedMs} ms after the kill`);
    const webIps = web.map((t) => t.ips[0]!).sort();
    expect(new Set(webIps).size).toBe(4);
    // The master runs exactly these four tasks of web for the framework: none launched twice.
    const running = (await masterTasks(next)).filter((t) => t.framework_id.value === frameworkId && t.state === 'TASK_RUNNING' && t.task_id.value.startsWith('web.'));
    expect(running.map((t) => t.task_id.value).sort()).toEqual(web.map((t) => t.taskId!).sort());

    // Names keep resolving on the surviving replicas, which answer alike: the new app and the one from before.
    const from = lab.netnsOf('h1');
    for (const c of survivors) {
      await until(`${c.name}'s discovery answering web`, async () => (JSON.stringify(await digAt(from, c, appName('web'))) === JSON.stringify(webIps) ? true : undefined), 60_000, 100);
      expect(await digAt(from, c, appName('first'))).toEqual(firstIps);
    }

    // Both come back with their nodes' lifecycle: the killed daemon as a standby, the replica serving the same names.
    for (const c of [leader, dnsVictim]) await provisionNode(c.netns, c.nodeFile, join(c.dir, 'node-up-again.log'), remember);
    await until('the old leader following the new one', async () => ((await servicesHealth(leader))?.leader?.url === `${scheme()}://${next.ip}:5052` ? true : undefined), 60_000, 200);
    await until(
      `${dnsVictim.name}'s discovery back and answering web`,
      async () => (JSON.stringify(await digAt(from, dnsVictim, appName('web'))) === JSON.stringify(webIps) ? true : undefined),
      60_000,
      200,
    );
  }, 400_000);
});
