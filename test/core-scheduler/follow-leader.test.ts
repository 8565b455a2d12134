/**
 * Clients given a list of masters find the leader: a real master behind small
 * "follower" servers that answer as a non-leading master does (307 to the
 * leader with the same path, or 503 while no leader is known), and a master
 * that refuses connections. The operator client, a framework (SUBSCRIBE,
 * offers, ACCEPT, acknowledgements), an agent and the remote Store all reach
 * the real master through a list that starts with those; a framework's stream
 * and an agent's session move to the next master of the list when theirs
 * goes away.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework } from '../harness/framework.js';
import { freePort } from '../harness/ports.js';
import { testDir } from '../harness/resources.js';
import { until } from '../harness/wait.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { SchedulerClient } from '../../contracts/client/scheduler-client.js';
import { RemoteStore } from '../../common/store/remote.js';
import { CorralError } from '../../contracts/errors.js';
import { MasterFeed } from '../../discovery/src/cluster/feed.js';
import { FrameworkLink } from '../../core-scheduler/src/services/framework-link.js';
import { logger } from '../../common/log.js';
import { etcdForTests } from '../harness/etcd-suite.js';
import { MasterProcess, writeHaMasterConfig } from '../harness/master-process.js';
import { untilValue } from '../harness/wait.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

interface Follower {
  url: string;
  /** Requests answered, by status. */
  answered: { 307: number; 503: number };
  paths: string[];
}

/**
 * A non-leading master: 503 with a JSON error for its first `unavailable`
 * requests (no leader known yet), then 307 to `leader` with the same path.
 */
async function follower(leader: string, unavailable = 0): Promise<Follower> {
  const f: Follower = { url: '', answered: { 307: 0, 503: 0 }, paths: [] };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      f.paths.push(req.url ?? '');
      if (f.answered[503] < unavailable) {
        f.answered[503]++;
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'UNAVAILABLE', message: 'no leading master is known yet' }));
        return;
      }
      f.answered[307]++;
      res.writeHead(307, { location: leader + (req.url ?? '/') }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  f.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanup.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return f;
}

/** A master that is down: nothing listens on its port. */
async function refusing(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

async function master(overrides: Parameters<typeof startTestMaster>[0] = {}, workDir?: string): Promise<TestMaster> {
  const dir = workDir ?? join(testDir('follow-leader'), 'master');
  const m = await startTestMaster(overrides, dir);
  cleanup.push(async () => {
    await m.close().catch(() => undefined);
    // The test dir the work dir was made in (testDir), not only the work dir.
    rmSync(dirname(dir), { recursive: true, force: true });
  });
  return m;
}

describe('clients follow the leading master', () => {
  it('operator client: through a refusing master, a follower without a leader yet and a redirecting follower', async () => {
    const m = await master();
    const down = await refusing();
    const noLeaderYet = await follower(m.url, 1);
    const redirecting = await follower(m.url);
    const ops = new OperatorClient({ master: [down, noLeaderYet.url, redirecting.url].join(',') });
    cleanup.push(() => ops.close());

    const info = await ops.call<{ get_master: { master_info: { port: number } } }>('GET_MASTER');
    expect(info.get_master.master_info.port).toBe(m.port);
    expect(noLeaderYet.answered[503]).toBe(1);
    expect(redirecting.answered[307]).toBe(1);
    expect(redirecting.paths).toEqual(['/api/v1']);
    // The leader found is where the next calls go, without asking the followers again.
    await ops.call('GET_HEALTH');
    expect(redirecting.answered[307]).toBe(1);
    expect(ops.leader.url).toBe(new URL(m.url).origin);
  });

  it('operator client: a list where nobody leads ends in UNAVAILABLE naming the masters tried', async () => {
    const down1 = await refusing();
    const down2 = await refusing();
    const ops = new OperatorClient({ master: [down1, down2] });
    cleanup.push(() => ops.close());
    const err = await ops.call('GET_HEALTH').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorralError);
    expect((err as CorralError).code).toBe('UNAVAILABLE');
    expect((err as CorralError).message).toContain(down1);
    expect((err as CorralError).message).toContain(down2);
  });

  it('framework and agent: SUBSCRIBE, REGISTER, offers, ACCEPT and acknowledgements through followers', async () => {
    const m = await master();
    const down = await refusing();
    const noLeaderYet = await follower(m.url, 2);
    const redirecting = await follower(m.url);
    const masters = [down, noLeaderYet.url, redirecting.url];

    const agent = new SimAgent({ master: masters, hostname: 'follow-agent', resources: 'cpus:4;mem:4096' });
    cleanup.push(() => agent.stop());
    const agentId = await agent.start();
    expect(agentId).toMatch(/\S/);

    const f = new TestFramework(masters.join(','), { name: 'follow' });
    cleanup.push(() => f.client.close());
    await f.subscribe();
    expect(f.client.conn.streamMaster).toBe(new URL(m.url).origin);
    expect(redirecting.paths).toEqual(expect.arrayContaining(['/api/v1/agent', '/api/v1/scheduler']));
    expect(noLeaderYet.answered[503]).toBe(2);

    const [offer] = await f.offers(10_000);
    expect(offer!.agent_id.value).toBe(agentId);
    await f.launch(offer!, [{ id: 'follow-task', resources: 'cpus:1;mem:128' }]);
    const running = await f.update('follow-task', 'TASK_RUNNING', 10_000);
    expect(running.agent_id?.value).toBe(agentId);
    // The acknowledgement reached the leader: the agent forgets the update.
    await until(() => agent.updates.pending().length === 0, 10_000, 'TASK_RUNNING acknowledged');
    const direct = new OperatorClient({ master: m.url });
    cleanup.push(() => direct.close());
    const state = await direct.call<{ get_tasks: { tasks?: Array<{ task_id: { value: string }; state: string }> } }>('GET_TASKS');
    expect(state.get_tasks.tasks?.map((t) => [t.task_id.value, t.state])).toEqual([['follow-task', 'TASK_RUNNING']]);
  });

  it('remote Store: calls and a watch through followers', async () => {
    const m = await master();
    const down = await refusing();
    const noLeaderYet = await follower(m.url, 1);
    const redirecting = await follower(m.url);
    const store = await RemoteStore.open({ url: [down, noLeaderYet.url, redirecting.url].join(','), namespace: 'follow/' });
    cleanup.push(() => store.close());

    const seen: string[] = [];
    const watch = store.watch({ prefix: 'k/', onEvents: (events) => seen.push(...events.map((e) => e.kv.key)) });
    cleanup.push(async () => watch.cancel());
    const { revision } = await store.put('k/a', 'one');
    expect((await store.get('k/a'))?.value.toString()).toBe('one');
    expect(revision).toBeGreaterThan(0);
    await until(() => seen.includes('k/a'), 10_000, 'the watch sees k/a');
    expect(redirecting.paths.every((p) => p === '/api/v1/store')).toBe(true);
    expect(noLeaderYet.answered[503]).toBe(1);
  });

  it('discovery feed and service framework link: through the list to the leader', async () => {
    const m = await master();
    const down = await refusing();
    const noLeaderYet = await follower(m.url, 1);
    const redirecting = await follower(m.url);
    const url = [down, noLeaderYet.url, redirecting.url].join(',');

    const leaders: number[] = [];
    let subscribedEvents = 0;
    const feed = new MasterFeed({
      url,
      initialBackoffMs: 50,
      maxBackoffMs: 500,
      log: logger('follow-leader-test'),
      onEvent: (e) => void (e.type === 'SUBSCRIBED' && subscribedEvents++),
      onLeader: (l) => leaders.push(l.port),
    });
    cleanup.push(() => feed.stop());
    feed.start();
    await until(() => feed.connected && subscribedEvents > 0, 10_000, 'the feed follows the leader');
    expect(leaders).toEqual([m.port]);

    const subscribed: string[] = [];
    const link = new FrameworkLink({
      master: url,
      info: { user: 'test', name: 'follow-services' },
      roles: ['*'],
      frameworkId: undefined,
      reconnectInitialMs: 50,
      reconnectMaxMs: 500,
      subscribeTimeoutMs: 10_000,
      log: logger('follow-leader-test'),
      onSubscribed: (id) => subscribed.push(id),
      onEvent: () => undefined,
      onDisconnected: () => undefined,
      saveFrameworkId: async () => undefined,
    });
    cleanup.push(() => link.stop());
    link.start();
    await until(() => link.connected, 10_000, 'the framework link subscribed');
    expect(subscribed).toHaveLength(1);
    await link.call((c) => c.reconcile());
    // The feed's GET_MASTER found the leader (503 from one follower, 307 from the next) and its stream went
    // straight there; the link's own search met the first follower again, which had a leader by then.
    expect(redirecting.paths).toEqual(['/api/v1']);
    expect(noLeaderYet.paths).toEqual(['/api/v1', '/api/v1/scheduler']);
  });

  it('a framework re-subscribes with its id, and an agent re-registers, at the next master of the list when theirs goes away', async () => {
    const workDir = join(testDir('follow-leader'), 'master');
    const first = await master({}, workDir);
    const nextPort = await freePort();
    const nextUrl = `http://127.0.0.1:${nextPort}`;
    const masters = [first.url, nextUrl];

    const agent = new SimAgent({ master: masters, hostname: 'failover-agent', resources: 'cpus:2;mem:2048' });
    cleanup.push(() => agent.stop());
    const agentId = await agent.start();
    const client = new SchedulerClient({ master: masters, framework: { user: 'test', name: 'failover', failover_timeout: 3600 } });
    cleanup.push(() => client.close());
    const frameworkId = await client.subscribe();
    expect(client.conn.streamMaster).toBe(first.url);
    const store = await RemoteStore.open({ url: masters.join(',') });
    cleanup.push(() => store.close());
    const watched: string[] = [];
    const watch = store.watch({ prefix: 'failover/', onEvents: (events) => watched.push(...events.map((e) => e.kv.key)) });
    cleanup.push(async () => watch.cancel());
    await store.put('failover/before', 'x');
    await until(() => watched.includes('failover/before'), 10_000, 'the watch sees the first write');

    // The leader goes away; the next master of the list takes over with the same registry.
    const streamEnded = client.done!.catch(() => undefined);
    await first.close();
    await streamEnded;
    const second = await master({ port: nextPort }, workDir);

    // The client's own re-subscription, with its framework id, through the list (the first master refuses now).
    let offersAfterFailover = 0;
    client.on((e) => void (e.type === 'OFFERS' && offersAfterFailover++));
    const again = await client.subscribe();
    expect(again).toBe(frameworkId);
    expect(client.conn.streamMaster).toBe(nextUrl);
    await until(() => agent.session.connected && agent.session.agentId === agentId, 20_000, 'the agent re-registered at the next master');
    const direct = new OperatorClient({ master: second.url });
    cleanup.push(() => direct.close());
    const agents = await direct.call<{ get_agents: { agents: Array<{ agent_info: { id: { value: string } }; active: boolean }> } }>('GET_AGENTS');
    expect(agents.get_agents.agents.map((a) => [a.agent_info.id.value, a.active])).toEqual([[agentId, true]]);
    // The re-subscribed framework is offered the re-registered agent's resources by the new leader.
    await until(() => offersAfterFailover > 0, 10_000, 'offers from the next master');
    // The Store's calls and its watch moved too: the watch resumes where it was, nothing lost or repeated.
    await store.put('failover/after', 'y');
    await until(() => watched.includes('failover/after'), 20_000, 'the watch sees a write made at the next master');
    expect(watched).toEqual(['failover/before', 'failover/after']);
  });
});

describe('clients follow the leader among replicated masters', () => {
  const etcd = etcdForTests();

  it('operator, framework, agent and Store given all three masters ride through the leader being SIGKILLed', async () => {
    const root = testDir('follow-leader-ha');
    cleanup.push(async () => rmSync(root, { recursive: true, force: true }));
    const namespace = `follow-${Date.now()}/`;
    const masters: MasterProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const workDir = join(root, `m${i}`);
      const config = writeHaMasterConfig(workDir, { etcdEndpoint: etcd().endpoint, namespace, leaseTtlSeconds: 3 });
      const m = new MasterProcess(workDir, await freePort(), ['--no-auth', '--config', config]);
      cleanup.push(() => m.kill());
      masters.push(m);
    }
    await Promise.all(masters.map((m) => m.start()));
    const list = masters.map((m) => m.url);

    // Every client is given the whole list, and finds the leader itself.
    const ops = new OperatorClient({ master: list });
    cleanup.push(() => ops.close());
    const leaderPort = await untilValue('a leader', async () => (await ops.call<{ get_master: { master_info: { port: number } } }>('GET_MASTER')).get_master.master_info.port, 30_000);
    const first = masters.find((m) => m.port === leaderPort)!;
    expect(first).toBeDefined();

    const agent = new SimAgent({ master: list, hostname: 'ha-follow', resources: 'cpus:2;mem:1024' });
    cleanup.push(() => agent.stop());
    const agentId = await agent.start();
    const client = new SchedulerClient({ master: list.join(','), framework: { user: 'test', name: 'ha-follow', failover_timeout: 3600 } });
    cleanup.push(() => client.close());
    const frameworkId = await client.subscribe();
    expect(client.conn.streamMaster).toBe(first.url);
    const store = await RemoteStore.open({ url: list.join(',') });
    cleanup.push(() => store.close());
    const watched: string[] = [];
    const watch = store.watch({ prefix: 'ha/', onEvents: (events) => watched.push(...events.map((e) => e.kv.key)) });
    cleanup.push(async () => watch.cancel());
    await store.put('ha/before', '1');
    await until(() => watched.includes('ha/before'), 10_000, 'the watch sees the first write');

    const streamEnded = client.done!.catch(() => undefined);
    await first.kill('SIGKILL');
    await streamEnded;

    // The framework re-subscribes with its id; the followers redirect it to whoever leads now
    // (a search can give up while the election runs: a framework simply tries again).
    let offers = 0;
    client.on((e) => void (e.type === 'OFFERS' && offers++));
    const again = await untilValue('re-subscribed at the new leader', () => client.subscribe().catch(() => undefined), 60_000, 200);
    expect(again).toBe(frameworkId);
    expect(client.conn.streamMaster).not.toBe(first.url);
    expect(list).toContain(client.conn.streamMaster);

    // The agent's session re-registers by itself, the same agent id.
    await until(() => agent.session.connected && agent.session.agentId === agentId, 60_000, 'the agent re-registered at the new leader');
    const info = await ops.call<{ get_master: { master_info: { port: number } } }>('GET_MASTER');
    expect(info.get_master.master_info.port).not.toBe(first.port);
    expect(client.conn.streamMaster).toBe(`http://127.0.0.1:${info.get_master.master_info.port}`);
    await until(() => offers > 0, 30_000, 'offers from the new leader');

    // The Store's calls and watch moved with it, nothing lost or repeated.
    await untilValue('a write at the new leader', () => store.put('ha/after', '2').catch(() => undefined), 30_000, 200);
    await until(() => watched.includes('ha/after'), 30_000, 'the watch sees the write at the new leader');
    expect(watched).toEqual(['ha/before', 'ha/after']);
  }, 180_000);
});
