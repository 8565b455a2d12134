/**
 * Replicated masters on etcd: one real etcd, three real master processes.
 * One leads; the others answer 307 to it; the leader killed (SIGKILL) or
 * frozen past its lease (SIGSTOP) is replaced, the registry survives, and a
 * frozen leader that wakes up writes nothing and exits.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { etcdForTests } from '../harness/etcd-suite.js';
import { MasterProcess, writeHaMasterConfig } from '../harness/master-process.js';
import { TestFramework } from '../harness/framework.js';
import { testDir } from '../harness/resources.js';
import { freePort } from '../harness/ports.js';
import { untilValue } from '../harness/wait.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { EtcdStore } from '../../common/store/etcd.js';
import type { V1AgentSummary, V1MasterInfo } from '../../contracts/v1/v1.js';

interface Health {
  master: string;
  leading: boolean;
  state: string;
  leader: { id: string; url: string } | null;
}

const etcd = etcdForTests();
const cleanup: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

/** Three masters sharing a fresh namespace of the etcd. */
async function startMasters(name: string, leaseTtlSeconds = 5, n = 3): Promise<MasterProcess[]> {
  const root = testDir(`ha-${name}`);
  cleanup.push(async () => rmSync(root, { recursive: true, force: true }));
  const namespace = `${name}-${Date.now()}/`;
  const masters: MasterProcess[] = [];
  for (let i = 0; i < n; i++) {
    const workDir = join(root, `m${i}`);
    const config = writeHaMasterConfig(workDir, { etcdEndpoint: etcd().endpoint, namespace, leaseTtlSeconds });
    const m = new MasterProcess(workDir, await freePort(), ['--no-auth', '--config', config]);
    cleanup.push(() => m.kill());
    masters.push(m);
  }
  await Promise.all(masters.map((m) => m.start()));
  return masters;
}

async function health(m: MasterProcess): Promise<Health> {
  const res = await fetch(`${m.url}/health`, { signal: AbortSignal.timeout(2000) });
  expect(res.status).toBe(200);
  return (await res.json()) as Health;
}

/** The one serving leader among the running masters, once every running master names it. */
async function agreedLeader(masters: MasterProcess[], timeoutMs = 30_000): Promise<MasterProcess> {
  return untilValue(
    'one leader named by every master',
    async () => {
      const running = masters.filter((m) => m.running);
      const hs = await Promise.all(running.map(health));
      const leaders = running.filter((_, i) => hs[i]!.leading);
      if (leaders.length !== 1) return undefined;
      const id = hs[running.indexOf(leaders[0]!)]!.master;
      return hs.every((h) => h.leader?.id === id) ? leaders[0] : undefined;
    },
    timeoutMs,
  );
}

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), redirect: 'manual', signal: AbortSignal.timeout(5000) });
}

describe('replicated masters on etcd', () => {
  it('elect exactly one leader; followers answer 307 with the leader’s Location', async () => {
    const masters = await startMasters('redirect');
    const leader = await agreedLeader(masters);
    const followers = masters.filter((m) => m !== leader);
    expect(followers).toHaveLength(2);
    // Scheme-relative, as a Mesos master forms it ("//" + hostname + ":" + port + path).
    const at = `//127.0.0.1:${leader.port}`;
    const leaderHealth = await health(leader);
    expect(leaderHealth.leader?.url).toBe(leader.url);

    for (const f of followers) {
      const h = await health(f);
      expect(h.leading).toBe(false);
      expect(h.state).toBe('following');

      const sched = await post(`${f.url}/api/v1/scheduler`, { type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'n' } } });
      expect(sched.status).toBe(307);
      expect(sched.headers.get('location')).toBe(`${at}/api/v1/scheduler`);

      const op = await post(`${f.url}/api/v1`, { type: 'GET_MASTER' });
      expect(op.status).toBe(307);
      expect(op.headers.get('location')).toBe(`${at}/api/v1`);

      for (const path of ['/api/v1/agent', '/api/v1/store']) {
        const r = await post(`${f.url}${path}`, {});
        expect(r.status, path).toBe(307);
        expect(r.headers.get('location')).toBe(`${at}${path}`);
      }
      const state = await fetch(`${f.url}/master/state?jsonp=x`, { redirect: 'manual' });
      expect(state.status).toBe(307);
      expect(state.headers.get('location')).toBe(`${at}/master/state?jsonp=x`);
    }

    // /master/redirect sends every master's caller to the leader's base URL, the leader's own included.
    // A client that follows it (fetch resolves the scheme-relative Location) reaches the leader.
    const followed = await fetch(`${followers[0]!.url}/master/redirect`, { redirect: 'follow', signal: AbortSignal.timeout(5000) });
    expect(new URL(followed.url).port).toBe(String(leader.port));
    for (const m of masters) {
      const r = await fetch(`${m.url}/master/redirect`, { redirect: 'manual' });
      expect(r.status).toBe(307);
      expect(r.headers.get('location')).toBe(at);
    }

    // The leader serves, and its GET_MASTER names itself.
    const res = await post(`${leader.url}/api/v1`, { type: 'GET_MASTER' });
    expect(res.status).toBe(200);
    const info = ((await res.json()) as { get_master: { master_info: V1MasterInfo } }).get_master.master_info;
    expect(info.id).toBe(leaderHealth.master);
    expect(info.port).toBe(leader.port);
  }, 120_000);

  it('a SIGKILLed leader is replaced within 30 s and the registry survives', async () => {
    const masters = await startMasters('sigkill');
    const first = await agreedLeader(masters);

    const ops = new OperatorClient({ master: first.url });
    cleanup.push(() => ops.close());
    await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 2 }] } });
    const agent = new SimAgent({ master: first.url, hostname: 'ha-host', resources: 'cpus:2;mem:1024', reconnect: false });
    cleanup.push(() => agent.stop());
    const agentId = await agent.start();
    const fw = new TestFramework(first.url, { name: 'ha-fw', failover_timeout: 3600 });
    cleanup.push(() => fw.client.close());
    const frameworkId = await fw.subscribe();

    await first.kill('SIGKILL');
    await agent.stop();
    fw.client.disconnect();

    const next = await agreedLeader(masters, 30_000);
    expect(next).not.toBe(first);
    const ops2 = new OperatorClient({ master: next.url });
    cleanup.push(() => ops2.close());
    // Recovered from etcd: the agent waits to re-register, the framework to re-subscribe, the weights hold.
    const recovered = await ops2.call<{ get_agents: { recovered_agents?: Array<{ id?: { value: string } }>; agents: V1AgentSummary[] } }>('GET_AGENTS');
    const known = [...recovered.get_agents.agents.map((a) => a.agent_info.id?.value), ...(recovered.get_agents.recovered_agents ?? []).map((a) => a.id?.value)];
    expect(known).toContain(agentId);
    const weights = await ops2.call<{ get_weights: { weight_infos: Array<{ role: string; weight: number }> } }>('GET_WEIGHTS');
    expect(weights.get_weights.weight_infos).toEqual([{ role: 'web', weight: 2 }]);

    const agent2 = new SimAgent({ master: next.url, hostname: 'ha-host', resources: 'cpus:2;mem:1024', agentId });
    cleanup.push(() => agent2.stop());
    expect(await agent2.start()).toBe(agentId);
    const fw2 = new TestFramework(next.url, { name: 'ha-fw', failover_timeout: 3600, id: { value: frameworkId } });
    cleanup.push(() => fw2.client.close());
    expect(await fw2.subscribe()).toBe(frameworkId);

    const agents = (await ops2.call<{ get_agents: { agents: V1AgentSummary[] } }>('GET_AGENTS')).get_agents.agents;
    expect(agents.map((a) => a.agent_info.id?.value)).toEqual([agentId]);
    const frameworks = await ops2.call<{ get_frameworks: { frameworks: Array<{ framework_info: { id?: { value: string } }; active: boolean }> } }>('GET_FRAMEWORKS');
    expect(frameworks.get_frameworks.frameworks.map((f) => f.framework_info.id?.value)).toEqual([frameworkId]);
    // Offers flow from the new leader: the agent's resources reach the re-subscribed framework.
    const offers = await fw2.offers(15_000);
    expect(offers[0]?.agent_id.value).toBe(agentId);
  }, 120_000);

  it('a leader frozen past its lease is replaced; thawed, it writes nothing to etcd and exits', async () => {
    const masters = await startMasters('sigstop', 2);
    const first = await agreedLeader(masters);
    const ops = new OperatorClient({ master: first.url });
    cleanup.push(() => ops.close());
    await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'before', weight: 3 }] } });
    const config = JSON.parse(readFileSync(join(first.workDir, 'master-ha.json'), 'utf8')) as { store: { namespace: string } };
    const store = await EtcdStore.open({ endpoints: [etcd().endpoint], namespace: config.store.namespace });
    cleanup.push(() => store.close());

    first.signal('SIGSTOP');
    cleanup.push(async () => first.signal('SIGCONT'));
    // A frozen process answers nothing: the vote is among the other two.
    const next = await agreedLeader(
      masters.filter((m) => m !== first),
      30_000,
    );
    expect(next).not.toBe(first);

    // The registry as the new leader found it; from here on nobody may change it but the new leader,
    // and nothing talks to the new leader until the old one is gone.
    const before = await store.range('corral/registry/');
    const snapshot = new Map(before.kvs.map((kv) => [kv.key, kv.modRevision]));
    expect(snapshot.has('corral/registry/weights/before')).toBe(true);

    // A write asked of it while frozen waits in its socket and is the first thing it sees on waking,
    // when it may still believe it leads: it must not land.
    const late = post(`${first.url}/api/v1`, { type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'late', weight: 9 }] } }).catch((err: unknown) => err);
    first.signal('SIGCONT');
    const answer = await late;
    if (answer instanceof Response) expect(answer.status).toBeGreaterThanOrEqual(300);

    const exit = await Promise.race([first.exited(), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(first.output).toMatch(/lost leadership/);

    const after = await store.range('corral/registry/');
    expect(new Map(after.kvs.map((kv) => [kv.key, kv.modRevision]))).toEqual(snapshot);
    expect(await store.get('corral/registry/weights/late')).toBeUndefined();

    // The successor writes as usual.
    const ops2 = new OperatorClient({ master: next.url });
    cleanup.push(() => ops2.close());
    await ops2.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'after', weight: 4 }] } });
    expect((await store.get('corral/registry/weights/after'))?.value.toString()).toBe('4');
    expect((await health(next)).leading).toBe(true);
  }, 120_000);
});
