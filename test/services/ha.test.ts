/**
 * Replicated service framework daemons on a real etcd: three `corral services`
 * processes elect one leader; standbys answer the API with 307 to it; the
 * leader SIGKILLed in the middle of a deploy is replaced by a standby that
 * fails the framework over and completes the deploy with no duplicate
 * instance; a leader whose election key is gone has its writes refused.
 */
import { describe, it, expect } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { etcdForTests } from '../harness/etcd-suite.js';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { testDir } from '../harness/resources.js';
import { freePort } from '../harness/ports.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { untilValue } from '../harness/wait.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { EtcdStore } from '../../common/store/etcd.js';
import { startServices } from '../../core-scheduler/src/services/daemon.js';
import { ServicesClient } from '../../core-scheduler/src/services/client.js';
import type { ServicesConfigInput } from '../../core-scheduler/src/services/config.js';
import type { V1Task } from '../../contracts/v1/v1.js';
import { ServicesState } from '../../core-scheduler/src/services/state-store.js';
import type { WriteFence } from '../../core-scheduler/src/services/leadership.js';
import { parseAppSpec } from '../../core-scheduler/src/services/app-spec.js';
import type { AppRecord } from '../../core-scheduler/src/services/model.js';
import { logger } from '../../common/log.js';
import { ServicesProcess } from './services-process.js';

const etcd = etcdForTests();
const cleanup = stopsAfterEach();

interface Setup {
  root: string;
  namespace: string;
  master: TestMaster;
  agents: SimAgent[];
  addAgent(resources?: string): Promise<SimAgent>;
  config(): ServicesConfigInput;
}

async function setup(name: string): Promise<Setup> {
  const root = testDir(`services-ha-${name}`);
  cleanup.push(async () => rmSync(root, { recursive: true, force: true }));
  const namespace = `svc-${name}-${Date.now()}/`;
  const master = await startTestMaster({}, join(root, 'master'));
  cleanup.push(() => master.dispose());
  const agents: SimAgent[] = [];
  const addAgent = async (resources = 'cpus:4;mem:4096;disk:1000;ports:[31000-31100]'): Promise<SimAgent> => {
    const agent = new SimAgent({ master: master.url, hostname: `h${agents.length + 1}`, resources, updateRetryMs: 300 });
    cleanup.push(() => agent.stop());
    await agent.start();
    agents.push(agent);
    return agent;
  };
  const config = (): ServicesConfigInput => ({
    noAuth: true,
    insecure: true,
    store: { backend: 'etcd', etcdEndpoints: [etcd().endpoint], namespace },
    master: { url: master.url, reconnectInitialMs: 50, reconnectMaxMs: 500 },
    offers: { refuseSeconds: 0.2, idleRefuseSeconds: 1 },
    reconcile: { intervalSeconds: 2 },
    ha: { enabled: true, leaseTtlSeconds: 2 },
    log: { level: 'warn' },
  });
  return { root, namespace, master, agents, addAgent, config };
}

async function startDaemons(s: Setup, n = 3): Promise<ServicesProcess[]> {
  const daemons: ServicesProcess[] = [];
  for (let i = 0; i < n; i++) {
    const d = new ServicesProcess(join(s.root, `s${i}`), await freePort(), s.config());
    cleanup.push(() => d.kill());
    daemons.push(d);
  }
  await Promise.all(daemons.map((d) => d.start()));
  return daemons;
}

/** The one leader among the running daemons, once it is subscribed and every running daemon names it. */
async function agreedLeader(daemons: ServicesProcess[], timeoutMs = 30_000): Promise<ServicesProcess> {
  return untilValue(
    'one subscribed service framework leader named by every daemon',
    async () => {
      const running = daemons.filter((d) => d.running);
      const hs = await Promise.all(running.map((d) => d.health()));
      const leaders = running.filter((_, i) => hs[i]!.leading);
      if (leaders.length !== 1) return undefined;
      const i = running.indexOf(leaders[0]!);
      if (!hs[i]!.connected) return undefined;
      const id = hs[i]!.leader?.id;
      return id && hs.every((h) => h.leader?.id === id && h.ready) ? leaders[0] : undefined;
    },
    timeoutMs,
  );
}

async function frameworkTasks(master: TestMaster, frameworkId: string): Promise<V1Task[]> {
  const ops = new OperatorClient({ master: master.url });
  try {
    const r = await ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS');
    return r.get_tasks.tasks.filter((t) => t.framework_id.value === frameworkId);
  } finally {
    await ops.close();
  }
}

/** Tasks launched on the agents, counted one by one (one LAUNCH may carry several). */
const launches = (agents: SimAgent[]): number => agents.reduce((n, a) => n + a.received.reduce((m, e) => m + (e.type === 'LAUNCH' ? e.launch.tasks.length : 0), 0), 0);

describe('replicated service framework daemons on etcd', () => {
  it('elect one leader; standbys answer 307 to it and name it on /health; a client given every URL follows it', async () => {
    const s = await setup('redirect');
    await s.addAgent();
    const daemons = await startDaemons(s);
    const leader = await agreedLeader(daemons);
    const standbys = daemons.filter((d) => d !== leader);
    expect(standbys).toHaveLength(2);

    for (const d of standbys) {
      const h = await d.health();
      expect(h).toMatchObject({ leading: false, state: 'standby', ready: true, connected: false });
      expect(h.leader!.url).toBe(leader.url);
      // Reads and writes alike: 307 to the same path and query at the leader.
      const get = await fetch(`${d.url}/v1/apps?x=1`, { redirect: 'manual' });
      expect(get.status).toBe(307);
      expect(get.headers.get('location')).toBe(`${leader.url}/v1/apps?x=1`);
      const put = await fetch(`${d.url}/v1/apps/web`, { method: 'PUT', body: '{"cmd":"x"}', headers: { 'content-type': 'application/json' }, redirect: 'manual' });
      expect(put.status).toBe(307);
      expect(put.headers.get('location')).toBe(`${leader.url}/v1/apps/web`);
    }

    // The client starts at a standby and ends at the leader.
    const client = new ServicesClient({ url: [standbys[0]!.url, standbys[1]!.url, leader.url] });
    await client.deploy({ id: 'web', cmd: 'serve', mem: 32, instances: 2 });
    expect(client.url).toBe(leader.url);
    const web = await untilValue(
      'web running',
      async () => {
        const v = await client.get('web');
        return v.status === 'running' ? v : undefined;
      },
      20_000,
    );
    expect(web.tasks).toHaveLength(2);
    // A client pointed at one standby alone is redirected too.
    const viaStandby = new ServicesClient({ url: standbys[1]!.url });
    expect((await viaStandby.list()).map((a) => a.id)).toEqual(['web']);
  });

  it('a leader SIGKILLed mid-deploy is replaced; the new leader fails the framework over and completes the deploy with no duplicate instance', async () => {
    const s = await setup('kill');
    // Room for two instances only: the deploy of four stays in progress until a second agent comes.
    await s.addAgent('cpus:1;mem:64;disk:100;ports:[31000-31010]');
    const daemons = await startDaemons(s);
    const first = await agreedLeader(daemons);
    const client = new ServicesClient({ url: daemons.map((d) => d.url) });
    const info = await client.info();
    const frameworkId = info.framework.id!;
    expect(frameworkId).toBeTruthy();

    await client.deploy({ id: 'api', cmd: 'serve', mem: 32, cpus: 0.1, instances: 4 });
    const partial = await untilValue(
      'two of four instances running',
      async () => {
        const v = await client.get('api');
        return v.tasks.filter((t) => t.phase === 'running').length === 2 ? v : undefined;
      },
      20_000,
    );
    const firstTwo = partial.tasks.filter((t) => t.phase === 'running').map((t) => t.taskId);

    const killedAt = Date.now();
    await first.kill('SIGKILL');
    const second = await agreedLeader(daemons, 40_000);
    console.log(`services leader SIGKILL → a standby leading and subscribed in ${Date.now() - killedAt} ms (lease TTL 2 s)`);
    expect(second).not.toBe(first);
    // The same framework, failed over (not a new registration).
    expect((await client.info()).framework.id).toBe(frameworkId);

    await s.addAgent('cpus:1;mem:64;disk:100;ports:[31000-31010]');
    const done = await untilValue(
      'the deploy complete: four instances running',
      async () => {
        const v = await client.get('api');
        return v.status === 'running' && v.tasks.filter((t) => t.phase === 'running').length === 4 ? v : undefined;
      },
      40_000,
    );
    // The two that ran before the failover kept running; exactly four tasks exist, four launches were made.
    expect(done.tasks.map((t) => t.taskId)).toEqual(expect.arrayContaining(firstTwo));
    const tasks = await untilValue(
      'the master sees the same four tasks',
      async () => {
        const ts = (await frameworkTasks(s.master, frameworkId)).filter((t) => t.state === 'TASK_RUNNING');
        return ts.length === 4 ? ts : undefined;
      },
      20_000,
    );
    expect(tasks.map((t) => t.task_id.value).sort()).toEqual(done.tasks.map((t) => t.taskId).sort());
    expect(launches(s.agents)).toBe(4);
    // Nothing launched twice by a reconciliation round after the failover.
    await new Promise((r) => setTimeout(r, 2500));
    expect(launches(s.agents)).toBe(4);
    expect((await frameworkTasks(s.master, frameworkId)).filter((t) => t.state === 'TASK_RUNNING')).toHaveLength(4);

    // The killed daemon comes back as a standby of the new leader.
    await first.start();
    const h = await untilValue(
      'the restarted daemon follows the new leader',
      async () => {
        const x = await first.health();
        return x.leader?.url === second.url ? x : undefined;
      },
      20_000,
    );
    expect(h.leading).toBe(false);
  });

  it('a leader frozen past its lease is replaced, and on waking it exits without serving', async () => {
    const s = await setup('freeze');
    await s.addAgent();
    const daemons = await startDaemons(s);
    const first = await agreedLeader(daemons);
    first.signal('SIGSTOP');
    const second = await agreedLeader(
      daemons.filter((d) => d !== first),
      40_000,
    );
    expect(second).not.toBe(first);
    first.signal('SIGCONT');
    const exit = await first.exited();
    expect(exit.code).toBe(1);
    expect(first.output).toMatch(/lost leadership \(service framework daemon\)/);
  });

  it("a deposed leader's writes do not land: a fenced write after its election key is gone is refused by etcd itself", async () => {
    const s = await setup('fence');
    const store = new EtcdStore({ endpoints: [etcd().endpoint], namespace: s.namespace });
    cleanup.push(() => store.close());
    // An election key as a leader holds it, and the fence built on it.
    const electionKey = 'election/services-test/1';
    await store.put(electionKey, '{"id":"a","url":"http://a"}');
    const created = (await store.get(electionKey))!.createRevision;
    const lost: string[] = [];
    const fence: WriteFence = { compare: [{ key: electionKey, target: 'createRevision', op: '=', value: created }], holds: () => true, lost: (why) => lost.push(why) };
    const prefix = 'corral/services/fenced';
    const state = new ServicesState(store, prefix, logger('test'), fence);
    const app = (id: string): AppRecord => ({ spec: parseAppSpec({ id, cmd: 'x', mem: 32 }), version: 1, strategy: 'rolling', deleting: false, createdAt: 1, updatedAt: 1 });

    state.putApp(app('before'));
    await state.flush();
    await state.saveFrameworkId('fw-1');
    expect(await store.get(`${prefix}/apps/before`)).toBeDefined();
    expect(lost).toEqual([]);

    // The leader's lease expires while it is frozen: its key goes, a successor's key is created in its place.
    await store.delete(electionKey);
    await store.put(electionKey, '{"id":"b","url":"http://b"}');
    state.putApp(app('after'));
    await expect(state.flush()).rejects.toThrow(/no longer leads/);
    await expect(state.saveFrameworkId('fw-2')).rejects.toThrow(/no longer leads/);
    expect(lost.length).toBeGreaterThanOrEqual(2);
    expect(lost[0]).toMatch(/election key is no longer/);
    expect(await store.get(`${prefix}/apps/after`)).toBeUndefined();
    expect((await store.get(`${prefix}/framework-id`))!.value.toString()).toBe('fw-1');
    await state.close();
  });

  it('a leader that loses its election key stops serving at once: a deploy sent to it is refused and nothing reaches the Store', async () => {
    const s = await setup('deposed');
    await s.addAgent();
    const lost: string[] = [];
    const port = await freePort();
    const running = await startServices({ ...s.config(), host: '127.0.0.1', port, workDir: join(s.root, 'inproc') }, { onLeadershipLost: (why) => lost.push(why) });
    cleanup.push(() => running.close());
    const client = new ServicesClient({ url: running.url });
    await untilValue('the daemon leads and is subscribed', async () => (running.leadership!.serving && running.link.connected) || undefined, 20_000);
    await client.deploy({ id: 'before', cmd: 'x', mem: 32 });

    const store = new EtcdStore({ endpoints: [etcd().endpoint], namespace: s.namespace });
    cleanup.push(() => store.close());
    const appKey = (id: string): string => `corral/services/corral-services/apps/${id}`;
    expect(await store.get(appKey('before'))).toBeDefined();

    const { kvs } = await store.range('election/services-corral-services/');
    expect(kvs).toHaveLength(1);
    await store.delete(kvs[0]!.key);

    // Whichever comes first — the campaign noticing its key is gone, or the fenced write being refused — the deploy does not land.
    const res = await client.request('PUT', '/v1/apps/after', JSON.stringify({ cmd: 'x', mem: 32 }));
    expect(res.status).toBe(503);
    await untilValue('leadership lost', async () => lost.length > 0 || undefined, 10_000);
    expect(lost).toHaveLength(1);
    expect(await store.get(appKey('after'))).toBeUndefined();
    const h = (await (await fetch(`${running.url}/health`)).json()) as { leading: boolean; state: string };
    expect(h).toMatchObject({ leading: false, state: 'lost' });
  });

  it('answers 503 on /v1 while no leader is known (the election out of reach), and says so on /health', async () => {
    const root = testDir('services-ha-noleader');
    cleanup.push(async () => rmSync(root, { recursive: true, force: true }));
    const s = await setup('noleader');
    // The state Store is reachable, but the election's etcd is not (nothing listens there): no leader is ever known.
    const store = new EtcdStore({ endpoints: [etcd().endpoint], namespace: s.namespace });
    cleanup.push(() => store.close());
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const running = await startServices(
      { ...s.config(), host: '127.0.0.1', port: 0, workDir: root, store: { backend: 'etcd', etcdEndpoints: [nowhere], dialTimeoutMs: 500 }, log: { level: 'silent' } },
      { store, onLeadershipLost: () => undefined },
    );
    cleanup.push(() => running.close());
    const res = await fetch(`${running.url}/v1/apps`, { redirect: 'manual' });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { message: string }).message).toMatch(/no service framework leader is known/);
    expect(await (await fetch(`${running.url}/health`)).json()).toMatchObject({ ok: true, ready: false, leading: false, leader: null });
    // A client given only this daemon gets the 503 as an UNAVAILABLE error.
    await expect(new ServicesClient({ url: running.url }).list()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('refuses ha without an etcd Store, with a clear message', async () => {
    const root = testDir('services-ha-config');
    cleanup.push(async () => rmSync(root, { recursive: true, force: true }));
    await expect(startServices({ noAuth: true, insecure: true, port: 0, workDir: root, ha: { enabled: true } })).rejects.toThrow(/elect their leader in etcd/);
  });
});
