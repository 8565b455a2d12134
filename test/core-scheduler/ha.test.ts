/**
 * Replicated masters on etcd: one real etcd, three real master processes.
 * One leads; the others answer 307 to it; the leader killed (SIGKILL) or
 * frozen past its lease (SIGSTOP) is replaced, the registry survives, and a
 * frozen leader that wakes up writes nothing and exits.
 */
import { describe, it, expect } from 'vitest';
import { etcdForTests } from '../harness/etcd-suite.js';
import { openEtcdStore } from '../harness/etcd-candidates.js';
import type { MasterProcess } from '../harness/master-process.js';
import { agreedLeader, expectSuccessorWrites, expectThawedLeaderWritesNothing, frozenLeaderAfterWrite, masterHealth, postJson, startReplicatedMasters } from '../harness/replicated-masters.js';
import { TestFramework } from '../harness/framework.js';
import { testDir } from '../harness/resources.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import type { V1AgentSummary, V1MasterInfo } from '../../contracts/v1/v1.js';

const etcd = etcdForTests();
const cleanup = stopsAfterEach();

/** Three masters sharing a fresh namespace of the etcd. */
async function startMasters(name: string, leaseTtlSeconds = 5, n = 3): Promise<{ masters: MasterProcess[]; namespace: string }> {
  return startReplicatedMasters(cleanup, { etcdEndpoint: etcd().endpoint, dir: testDir(`ha-${name}`), name, leaseTtlSeconds, n });
}

describe('replicated masters on etcd', () => {
  it('elect exactly one leader; followers answer 307 with the leader’s Location', async () => {
    const { masters } = await startMasters('redirect');
    const leader = await agreedLeader(masters);
    const followers = masters.filter((m) => m !== leader);
    expect(followers).toHaveLength(2);
    // Scheme-relative, as a Mesos master forms it ("//" + hostname + ":" + port + path).
    const at = `//127.0.0.1:${leader.port}`;
    const leaderHealth = await masterHealth(leader);
    expect(leaderHealth.leader?.url).toBe(leader.url);

    for (const f of followers) {
      const h = await masterHealth(f);
      expect(h.leading).toBe(false);
      expect(h.state).toBe('following');

      const sched = await postJson(`${f.url}/api/v1/scheduler`, { type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'n' } } });
      expect(sched.status).toBe(307);
      expect(sched.headers.get('location')).toBe(`${at}/api/v1/scheduler`);

      const op = await postJson(`${f.url}/api/v1`, { type: 'GET_MASTER' });
      expect(op.status).toBe(307);
      expect(op.headers.get('location')).toBe(`${at}/api/v1`);

      for (const path of ['/api/v1/agent', '/api/v1/store']) {
        const r = await postJson(`${f.url}${path}`, {});
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
    const res = await postJson(`${leader.url}/api/v1`, { type: 'GET_MASTER' });
    expect(res.status).toBe(200);
    const info = ((await res.json()) as { get_master: { master_info: V1MasterInfo } }).get_master.master_info;
    expect(info.id).toBe(leaderHealth.master);
    expect(info.port).toBe(leader.port);
  }, 120_000);

  it('a SIGKILLed leader is replaced within 30 s and the registry survives', async () => {
    const { masters } = await startMasters('sigkill');
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
    const { masters, namespace } = await startMasters('sigstop', 2);
    const store = await openEtcdStore(cleanup, etcd().endpoint, namespace);
    const first = await frozenLeaderAfterWrite(cleanup, masters);
    // A frozen process answers nothing: the vote is among the other two.
    const next = await agreedLeader(
      masters.filter((m) => m !== first),
      30_000,
    );
    expect(next).not.toBe(first);

    // Thawed, its write waiting since the freeze must not land; the registry stays as the new leader found it,
    // the weight written before the freeze included.
    const found = await expectThawedLeaderWritesNothing(first, store);
    expect(found.has('corral/registry/weights/before')).toBe(true);
    await expectSuccessorWrites(cleanup, next, store);
    expect((await masterHealth(next)).leading).toBe(true);
  }, 120_000);
});
