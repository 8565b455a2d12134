/**
 * Replicated masters across machines: a full namespace lab with three
 * control nodes (an etcd member, a master, a service framework daemon and
 * a discovery replica each, one master leading; Ceph on the first) and two
 * agent hosts, every node provisioned by `corral node up` in its
 * namespace. An app runs an instance on each host; the leading master is
 * SIGKILLed. What must hold:
 * another master leads within the failover bound, the agents, the service
 * framework and discovery follow it by themselves, no task is lost or
 * restarted, placements continue, and the killed master comes back as a
 * follower.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { forgetPid, recordPid, testDir } from '../harness/resources.js';
import { labDown, provisionNode } from '../../lab/lab.js';
import { loadNodeState, ours } from '../../provision/src/lifecycle.js';
import { signalProcess } from '../../common/sys/process.js';
import type { ControlPlan } from '../../lab/topology.js';
import { deployAndWait, nsRun, operatorCall, operatorCurl, runningWithIp, startFullLab, storeApp, until, type FullLab } from './full-lab.js';

const recorded: Array<[string, number]> = [];
const remember = (name: string, pid: number): void => {
  recordPid(`lab-ha-${name}`, pid);
  recorded.push([`lab-ha-${name}`, pid]);
};

let lab: FullLab;
/** http or https: the lab's (https unless it was brought up insecure). */
const scheme = (): string => new URL(lab.state.plan.masterUrl).protocol.replace(':', '');
const dir = testDir('lab-ha');

beforeAll(async () => {
  lab = await startFullLab({ prefix: 'ct-lbha', hosts: 2, controls: 3, dir, onPid: remember });
}, 300_000);

afterAll(async () => {
  await labDown(dir);
  for (const [name, pid] of recorded.splice(0)) forgetPid(name, pid);
}, 180_000);

interface Health {
  leading: boolean;
  leader?: { url: string };
}

const health = async (c: ControlPlan): Promise<Health | undefined> => {
  try {
    return JSON.parse(await nsRun(c.netns, 'curl', [...operatorCurl(lab.state), '-s', '--max-time', '2', `${scheme()}://${c.ip}:5050/health`])) as Health;
  } catch {
    return undefined;
  }
};

/** The control nodes whose master leads right now. */
const leaders = async (): Promise<ControlPlan[]> => {
  const out: ControlPlan[] = [];
  for (const c of lab.state.plan.controls) if ((await health(c))?.leading) out.push(c);
  return out;
};

/** An operator call to whichever master answers, following its redirect to the leader (curl -L keeps the POST). */
const operator = <T>(from: ControlPlan, type: string): Promise<T> => operatorCall<T>(lab.state, from, type);

const activeAgents = async (from: ControlPlan): Promise<number> =>
  (await operator<{ get_agents: { agents: Array<{ active: boolean }> } }>(from, 'GET_AGENTS')).get_agents.agents.filter((a) => a.active).length;

describe('three control nodes: replicated masters on a three-member etcd', () => {
  it('runs with TLS and authentication by default: https URLs, plain HTTP, a client without the lab CA and an unauthenticated call refused', async () => {
    const { plan } = lab.state;
    for (const url of [plan.masterUrl, ...plan.masterUrls, ...plan.servicesUrls, plan.discoveryUrl, ...plan.hosts.map((h) => h.agentUrl)]) expect(url).toMatch(/^https:\/\//);
    const c = plan.controls[0]!;
    const op = plan.operator!;
    const call = (args: string[]): Promise<string> => nsRun(c.netns, 'curl', ['-s', '--max-time', '5', ...args]);
    // Asked of the leading master: a standby redirects (307) before it looks at credentials.
    const leader = await until('one leading master', async () => (await leaders())[0], 60_000, 200);
    const getAgents = ['-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '-H', 'content-type: application/json', '-d', '{"type":"GET_AGENTS"}', `https://${leader.ip}:5050/api/v1`];
    // Plain HTTP on the HTTPS port: a plain 400 saying to use https://.
    expect(await call(['-w', ' %{http_code}', `http://${c.ip}:5050/health`])).toMatch(/https:\/\/[\s\S]* 400$/);
    // A client that does not trust the lab's CA: the handshake fails (curl 60: peer certificate cannot be authenticated).
    await expect(call([`${plan.masterUrl}/health`])).rejects.toThrow(/failed/);
    expect(await call(['-o', '/dev/null', '-w', '%{http_code}', '--cacert', op.ca, `${plan.masterUrl}/health`])).toBe('200');
    // Trusting the CA but without credentials, or with a wrong secret: 401.
    expect(await call(['--cacert', op.ca, ...getAgents])).toBe('401');
    const wrong = join(plan.options.dir, 'operator', 'wrong-secret.curlrc');
    writeFileSync(wrong, `cacert = "${op.ca}"\nuser = "admin:not-the-secret"\n`, { mode: 0o600 });
    expect(await call(['-K', wrong, ...getAgents])).toBe('401');
    expect(await call(['-K', op.curlrc, ...getAgents])).toBe('200');
    // The agent API of the master wants a client certificate of the lab CA (mutual TLS): the operator's Basic credentials are not enough.
    const register = await call(['-K', op.curlrc, '-w', ' %{http_code}', '-X', 'POST', '-H', 'content-type: application/json', '-d', '{}', `https://${leader.ip}:5050/api/v1/agent`]);
    expect(register).toMatch(/requires mutual TLS[\s\S]* 401$/);
  }, 90_000);

  it('hands each machine only its own certificates and credentials; the CA key stays in the operator directory', async () => {
    const { plan } = lab.state;
    const machines = [...plan.controls.map((c) => ({ name: c.name, dir: c.dir })), ...plan.hosts.map((h) => ({ name: h.name, dir: h.dir }))];
    const files = (d: string): string[] =>
      readdirSync(d, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name));
    for (const m of machines) {
      const all = files(m.dir);
      expect(
        all.filter((f) => f.endsWith('ca.key')),
        `${m.name} holds no CA key`,
      ).toEqual([]);
      for (const key of all.filter((f) => f.endsWith('.key') || f.endsWith('security.yaml'))) expect(statSync(key).mode & 0o077, `${key} is 0600`).toBe(0);
      const sec = parseYaml(readFileSync(join(m.dir, 'security.yaml'), 'utf8')) as { credentials: Array<{ principal: string; secret?: string; secret_hash?: string }> };
      const plain = sec.credentials
        .filter((x) => x.secret !== undefined)
        .map((x) => x.principal)
        .sort();
      const host = plan.hosts.some((h) => h.name === m.name);
      expect(plain, `${m.name}'s plain-text secrets`).toEqual(host ? [`agent-${m.name}`, `cni-${m.name}`] : [`discovery-${m.name}`, 'services']);
      expect(sec.credentials.every((x) => x.secret !== undefined || x.secret_hash?.startsWith('scrypt$'))).toBe(true);
      // Only its own daemons' key pairs (the etcd ones only on control nodes: each daemon's own etcd user).
      const keys = readdirSync(join(m.dir, 'tls'))
        .filter((f) => f.endsWith('.key'))
        .sort();
      expect(keys).toEqual(host ? ['agent.key', 'cni.key'] : ['discovery.key', 'etcd-client.key', 'etcd-discovery.key', 'etcd-services.key', 'etcd.key', 'master.key', 'services.key']);
    }
    expect(existsSync(join(plan.options.dir, 'operator', 'ca', 'ca.key'))).toBe(true);
    expect(statSync(join(plan.options.dir, 'operator')).mode & 0o077).toBe(0);
  });

  it('elects exactly one leading master; the others redirect to it', async () => {
    const leader = await until(
      'one leading master',
      async () => {
        const l = await leaders();
        return l.length === 1 ? l[0] : undefined;
      },
      60_000,
      200,
    );
    for (const c of lab.state.plan.controls.filter((x) => x !== leader)) {
      const headers = await nsRun(c.netns, 'curl', [...operatorCurl(lab.state), '-s', '-o', '/dev/null', '-D', '-', '--max-time', '2', `${scheme()}://${c.ip}:5050/master/redirect`]);
      expect(headers).toMatch(/^HTTP\/1\.1 307/);
      // Scheme-relative, as a Mesos master sends it.
      expect(headers).toMatch(new RegExp(`location: //${leader.ip.replace(/\./g, '\\.')}:5050`, 'i'));
    }
    expect(await until('both agents registered with the leader', async () => ((await activeAgents(lab.state.plan.controls[0]!)) === 2 ? true : undefined), 60_000, 200)).toBe(true);
    expect(await until('leader.corral naming the leader', async () => ((await lab.dig(lab.state.plan.services.netns, 'leader.corral')).join(',') === leader.ip ? true : undefined), 60_000, 200)).toBe(
      true,
    );
  }, 120_000);

  it('survives a SIGKILL of the leading master: a new leader, agents and the framework follow, no task lost or restarted, placements go on', async () => {
    const before = await deployAndWait(lab, storeApp('ha1', 2), 'h1');
    const taskIds = before.tasks.map((t) => t.taskId).sort();
    const [leader] = await leaders();
    const master = loadNodeState(join(leader!.nodeDir, 'node-state.json'))!.processes.find((p) => p.name === 'master')!;
    expect(ours(master)).toBe(true);
    const killedAt = Date.now();
    signalProcess(master.pid, 'SIGKILL');

    const next = await until(
      'another master leading',
      async () => {
        const l = await leaders();
        return l.length === 1 && l[0] !== leader ? l[0] : undefined;
      },
      60_000,
      100,
    );
    const electedMs = Date.now() - killedAt;
    await until('both agents re-registered with the new leader', async () => ((await activeAgents(next).catch(() => 0)) === 2 ? true : undefined), 60_000, 200);
    await until(
      'the service framework subscribed again',
      async () => {
        // Asked of the leading service framework daemon, wherever it runs (a standby redirects to it).
        const info = await lab.api<{ framework?: { connected?: boolean } }>('GET', '/v1/info');
        return info.framework?.connected === true ? true : undefined;
      },
      60_000,
      200,
    );

    // Discovery follows too: the zone's leader name answers the new leader.
    await until('leader.corral naming the new leader', async () => ((await lab.dig(lab.state.plan.services.netns, 'leader.corral')).join(',') === next.ip ? true : undefined), 60_000, 200);

    // The same tasks, still running: nothing was lost or relaunched.
    const after = runningWithIp((await lab.app('ha1')).tasks);
    expect(after.map((t) => t.taskId).sort()).toEqual(taskIds);
    const tasks = (await operator<{ get_tasks: { tasks: Array<{ task_id: { value: string }; state: string }> } }>(next, 'GET_TASKS')).get_tasks.tasks;
    for (const id of taskIds) expect(tasks.find((t) => t.task_id.value === id)?.state).toBe('TASK_RUNNING');

    // Placements go on through the new leader.
    const more = await deployAndWait(lab, { ...storeApp('ha2', 1), volumes: [] }, 'h2');
    expect(more.tasks).toHaveLength(1);
    console.log(`leader SIGKILL → new leader elected in ${electedMs} ms`);

    // The killed master comes back (its node's lifecycle starts it again) and follows.
    await provisionNode(leader!.netns, leader!.nodeFile, join(leader!.dir, 'node-up-again.log'), remember);
    const back = await until(
      'the old leader following',
      async () => {
        const h = await health(leader!);
        return h && !h.leading && h.leader?.url === `${scheme()}://${next.ip}:5050` ? h : undefined;
      },
      60_000,
      200,
    );
    expect(back.leading).toBe(false);
  }, 300_000);

  it('without etcd quorum the leader steps down and no write is taken; with quorum back a master leads with nothing lost', async () => {
    const first = lab.state.plan.controls[0]!;
    const tasksBefore = (await operator<{ get_tasks: { tasks: Array<{ task_id: { value: string } }> } }>(first, 'GET_TASKS')).get_tasks.tasks.map((t) => t.task_id.value).sort();
    const [leader] = await leaders();
    const leaderMaster = loadNodeState(join(leader!.nodeDir, 'node-state.json'))!.processes.find((p) => p.name === 'master')!;
    // Two of the three etcd members go: no quorum.
    const etcdDown = lab.state.plan.controls.filter((c) => c !== first).slice(0, 2);
    for (const c of etcdDown) signalProcess(loadNodeState(join(c.nodeDir, 'node-state.json'))!.processes.find((p) => p.name === 'etcd')!.pid, 'SIGKILL');

    // The leader cannot keep its lease: it stops (as a Mesos master that loses ZooKeeper does), so nothing it would write lands.
    await until('the leader stepping down', async () => (ours(leaderMaster) ? undefined : true), 60_000, 200);
    // A write sent to any master, redirects followed, is not taken while there is no quorum.
    const write = (c: ControlPlan): Promise<string> =>
      nsRun(c.netns, 'curl', [
        ...operatorCurl(lab.state),
        '-sL',
        '--max-time',
        '3',
        '-w',
        ' %{http_code}',
        '-X',
        'POST',
        '-H',
        'content-type: application/json',
        '-d',
        JSON.stringify({ type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'quorum', weight: 5 }] } }),
        `${scheme()}://${c.ip}:5050/api/v1`,
      ]).catch(() => 'no answer');
    for (const c of lab.state.plan.controls) expect(await write(c)).not.toMatch(/ 20[02]$/);
    // The masters still running cannot see the election any more: they name no leader (a clear 503), not the dead one.
    const alive = lab.state.plan.controls.filter((c) => c !== leader);
    const answers = await until(
      'the other masters naming no leader',
      async () => {
        const a = await Promise.all(
          alive.map((c) => nsRun(c.netns, 'curl', [...operatorCurl(lab.state), '-s', '--max-time', '3', '-w', ' %{http_code}', `${scheme()}://${c.ip}:5050/master/redirect`]).catch(() => 'no answer')),
        );
        return a.every((x) => x.endsWith(' 503')) ? a : undefined;
      },
      30_000,
      200,
    );
    for (const a of answers) expect(a).toMatch(/cannot reach a quorum of etcd/);

    // Quorum back: each control node's lifecycle starts what is missing (its etcd member, the master that stopped).
    // A daemon elected while the members are still rejoining can lose its first lease and exit (fenced, as it must);
    // node up then fails and, as an operator or a supervisor would, is run again until every node is up.
    let lastFailure: unknown;
    await until(
      'every control node up again with quorum back',
      async () => {
        try {
          await Promise.all(lab.state.plan.controls.map((c) => provisionNode(c.netns, c.nodeFile, join(c.dir, 'node-up-quorum.log'), remember)));
          return true;
        } catch (err) {
          lastFailure = err;
          return undefined;
        }
      },
      180_000,
      1000,
    ).catch((err: unknown) => {
      throw lastFailure ?? err;
    });
    const next = await until(
      'a leading master again',
      async () => {
        const l = await leaders();
        return l.length === 1 ? l[0] : undefined;
      },
      90_000,
      200,
    );
    await until('both agents registered again', async () => ((await activeAgents(next).catch(() => 0)) === 2 ? true : undefined), 60_000, 200);
    const tasksAfter = (await operator<{ get_tasks: { tasks: Array<{ task_id: { value: string } }> } }>(next, 'GET_TASKS')).get_tasks.tasks.map((t) => t.task_id.value).sort();
    expect(tasksAfter).toEqual(tasksBefore);
    // Nothing of the refused writes was applied; writes are taken again.
    const weights = await operator<{ get_weights: { weight_infos: Array<{ role: string }> } }>(next, 'GET_WEIGHTS');
    expect(weights.get_weights.weight_infos.map((w) => w.role)).not.toContain('quorum');
    expect(await write(next)).toMatch(/ 202$/);
  }, 300_000);
});
