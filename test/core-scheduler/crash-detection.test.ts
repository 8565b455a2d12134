/**
 * A crashed leader is replaced through its followers, not its lease: a
 * follower that finds nothing listening at the leader's URL any more
 * (connection refused twice) revokes the leader's etcd lease, and the next
 * candidate is elected at once. A leader that is merely frozen (its port still
 * accepts connections) is left to its lease. And revoking a live leader's
 * lease is safe: it steps down and none of its writes lands.
 *
 * The probe on local HTTP servers; the election on a real etcd; the whole on
 * real master processes.
 */
import { describe, expect, it } from 'vitest';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { LeaderProbe, type ProbeTarget } from '../../common/store/leader-probe.js';
import { EtcdElection, type ElectedKey } from '../../common/store/etcd-election.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { etcdForTests } from '../harness/etcd-suite.js';
import { openEtcdStore, twoCandidates } from '../harness/etcd-candidates.js';
import type { MasterProcess } from '../harness/master-process.js';
import { agreedLeader, expectSuccessorWrites, expectThawedLeaderWritesNothing, frozenLeaderAfterWrite, masterHealth, startReplicatedMasters } from '../harness/replicated-masters.js';
import { freePort } from '../harness/ports.js';
import { testDir } from '../harness/resources.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { until, untilValue, within } from '../harness/wait.js';

const cleanup = stopsAfterEach();

/** An HTTP server answering /health as master `id` (changeable), on a free loopback port. */
async function healthServer(id: { current: string }): Promise<{ server: Server; url: string; port: number }> {
  const server = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ healthy: true, master: id.current }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  cleanup.push(() => new Promise((r) => server.close(r)));
  return { server, url: `http://127.0.0.1:${port}`, port };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

function startProbe(crashes: Array<{ target: ProbeTarget; evidence: string }>): LeaderProbe {
  const probe = new LeaderProbe({
    intervalMs: 50,
    confirmAfterMs: 20,
    timeoutMs: 300,
    onCrash: async (target, evidence) => {
      crashes.push({ target, evidence });
      return true;
    },
  });
  cleanup.push(async () => probe.stop());
  return probe;
}

describe('leader probe', () => {
  it('reports a leader that answered as itself and then refuses connections, once', async () => {
    const { server, url } = await healthServer({ current: 'L' });
    const crashes: Array<{ target: ProbeTarget; evidence: string }> = [];
    const probe = startProbe(crashes);
    probe.watch({ id: 'L', url });
    await until(() => probe.last === 'alive', 10_000, 'the leader identified');
    expect(crashes).toEqual([]);

    await closeServer(server);
    await until(() => crashes.length > 0, 10_000, 'the crash reported');
    expect(crashes[0]).toEqual({ target: { id: 'L', url }, evidence: expect.stringMatching(/refused/) });
    // Reported once: the probe rests until it is given the next leader, which it then watches.
    const { url: nextUrl } = await healthServer({ current: 'N' });
    probe.watch({ id: 'N', url: nextUrl });
    await until(() => probe.last === 'alive', 10_000, 'the next leader identified');
    expect(crashes).toHaveLength(1);
  });

  it('reports a leader whose URL is answered by another master (restarted in its place)', async () => {
    const id = { current: 'L' };
    const { url } = await healthServer(id);
    const crashes: Array<{ target: ProbeTarget; evidence: string }> = [];
    const probe = startProbe(crashes);
    probe.watch({ id: 'L', url });
    await until(() => probe.last === 'alive', 10_000, 'the leader identified');
    id.current = 'M';
    await until(() => crashes.length > 0, 10_000, 'the crash reported');
    expect(crashes[0]!.evidence).toMatch(/another master/);
  });

  it('never reports a leader that accepts connections but does not answer (frozen or slow)', async () => {
    const id = { current: 'L' };
    const { server, url, port } = await healthServer(id);
    const crashes: Array<{ target: ProbeTarget; evidence: string }> = [];
    const probe = startProbe(crashes);
    probe.watch({ id: 'L', url });
    await until(() => probe.last === 'alive', 10_000, 'the leader identified');

    // The same port now accepts and never answers, as a SIGSTOPped process's listening socket does.
    await closeServer(server);
    const sockets: Socket[] = [];
    const hang = createTcpServer((s) => sockets.push(s));
    await new Promise<void>((r) => hang.listen(port, '127.0.0.1', r));
    cleanup.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hang.close(r));
    });
    await until(() => sockets.length >= 4, 20_000, 'several probes met the hanging port');
    expect(probe.last).toBe('no-answer');
    expect(crashes).toEqual([]);
  });

  it('never reports a URL where the leader never answered (nothing proves it reaches the leader)', async () => {
    const port = await freePort();
    const crashes: Array<{ target: ProbeTarget; evidence: string }> = [];
    const probe = startProbe(crashes);
    probe.watch({ id: 'L', url: `http://127.0.0.1:${port}` });
    await until(() => probe.probes >= 5, 10_000, 'several probes');
    expect(probe.last).toBe('refused');
    expect(crashes).toEqual([]);
  });
});

describe('revoking the leader’s lease on etcd', () => {
  const etcd = etcdForTests();

  it('revokes only the leader named; the live leader it revokes hears of it and its fenced write fails in etcd', async () => {
    const { store, elections, won, errors, leaderIdx, first, other } = await twoCandidates(cleanup, etcd().endpoint, 'revoke', 30);
    const held = await elections[other]!.leaderKey();
    expect(held).toMatchObject({ key: first.key, value: `candidate-${leaderIdx}`, createRevision: first.createRevision });
    expect(held!.lease).not.toBe('0');

    // A stale observation (a value that does not lead) revokes nothing.
    expect(await elections[other]!.revokeLeader(`candidate-${other}`)).toEqual({ revoked: false, why: 'not-leader' });
    expect(await elections[other]!.revokeLeader('somebody-else')).toEqual({ revoked: false, why: 'not-leader' });
    expect((await elections[other]!.leaderKey())?.key).toBe(first.key);

    // Revoked while alive (the TTL is 30 s: nothing expires in this test).
    expect(await elections[other]!.revokeLeader(`candidate-${leaderIdx}`)).toEqual({ revoked: true, lease: held!.lease, key: first.key });
    const lost = await untilValue('the revoked leader hears of it', async () => errors[leaderIdx], 15_000);
    expect(lost.message).toMatch(/was deleted|lease/);
    const second = await untilValue('the other candidate elected', async () => won[other], 15_000);
    expect(second.key).not.toBe(first.key);
    expect(await elections[other]!.revokeLeader(`candidate-${leaderIdx}`)).toEqual({ revoked: false, why: 'not-leader' });

    // The old leader's fenced write fails inside etcd; the successor's lands.
    const fenced = (k: ElectedKey, key: string) => store.txn({ compare: [{ key: k.key, target: 'createRevision', op: '=', value: k.createRevision }], success: [{ type: 'put', key, value: 'x' }] });
    expect((await fenced(first, 'after/old')).succeeded).toBe(false);
    expect(await store.get('after/old')).toBeUndefined();
    expect((await fenced(second, 'after/new')).succeeded).toBe(true);
  }, 60_000);
});

describe('replicated master processes', () => {
  const etcd = etcdForTests();

  const startMasters = (name: string, leaseTtlSeconds: number, n: number): Promise<{ masters: MasterProcess[]; namespace: string }> =>
    startReplicatedMasters(cleanup, { etcdEndpoint: etcd().endpoint, dir: testDir(`crash-${name}`), name, leaseTtlSeconds, n });

  function electionOf(namespace: string): EtcdElection {
    const e = new EtcdElection({ endpoints: [etcd().endpoint], namespace, name: 'corral-master', ttlSeconds: 5 });
    cleanup.push(() => e.close());
    return e;
  }

  it('a SIGKILLed leader is replaced through the crash path: a follower revokes its lease while etcd still holds it', async () => {
    // A 10 s lease: had the successor waited for it to expire, the revocation below would have found no lease.
    const { masters, namespace } = await startMasters('sigkill', 10, 3);
    const first = await agreedLeader(masters, 30_000, true);
    const ops = new OperatorClient({ master: first.url });
    cleanup.push(() => ops.close());
    await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 2 }] } });
    const held = await electionOf(namespace).leaderKey();
    expect(held?.value).toContain(first.url);

    await first.kill('SIGKILL');
    const next = await agreedLeader(masters, 60_000);
    expect(next).not.toBe(first);

    // A follower revoked exactly that lease, and etcd accepted it: the lease was still alive (an expired one is "not found").
    const revokers = masters.filter((m) => m !== first && m.output.includes('revoked its etcd lease'));
    expect(revokers.length).toBeGreaterThanOrEqual(1);
    const line = revokers[0]!.output.split('\n').find((l) => l.includes('revoked its etcd lease'))!;
    expect(JSON.parse(line)).toMatchObject({ lease: held!.lease, key: held!.key, evidence: expect.stringMatching(/refused/) });
    expect((await electionOf(namespace).leaderKey())?.key).not.toBe(held!.key);

    // The registry survived, and the successor writes.
    const ops2 = new OperatorClient({ master: next.url });
    cleanup.push(() => ops2.close());
    const weights = await ops2.call<{ get_weights: { weight_infos: Array<{ role: string; weight: number }> } }>('GET_WEIGHTS');
    expect(weights.get_weights.weight_infos).toEqual([{ role: 'web', weight: 2 }]);
    await ops2.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 3 }] } });
  }, 180_000);

  it('a SIGSTOPped leader is not taken for crashed (its port still accepts); continued, none of its writes lands', async () => {
    // A 10 s lease leaves the followers' probes time to meet the frozen port before it expires.
    const { masters, namespace } = await startMasters('sigstop', 10, 3);
    const first = await agreedLeader(masters, 30_000, true);
    const followers = masters.filter((m) => m !== first);
    const held = await electionOf(namespace).leaderKey();
    const store = await openEtcdStore(cleanup, etcd().endpoint, namespace);

    first.signal('SIGSTOP');
    cleanup.push(async () => first.signal('SIGCONT'));
    // Every follower's probe meets a port that accepts and does not answer.
    await until(async () => (await Promise.all(followers.map(masterHealth))).every((h) => h.leader_probe === 'no-answer'), 30_000, 'the followers see a leader that does not answer');
    const next = await agreedLeader(followers, 60_000);

    // Replaced by its lease expiring: no follower revoked it.
    for (const m of followers) expect(m.output).not.toContain('revoked its etcd lease');
    expect((await electionOf(namespace).leaderKey())?.key).not.toBe(held!.key);

    await expectThawedLeaderWritesNothing(first, store);
    expect((await masterHealth(next)).leading).toBe(true);
  }, 180_000);

  it('a running leader whose lease is revoked steps down at once and exits', async () => {
    // A 30 s lease: the loss can only come from the revocation.
    const { masters, namespace } = await startMasters('revoke-live', 30, 2);
    const first = await agreedLeader(masters);
    const held = await electionOf(namespace).leaderKey();
    expect(await electionOf(namespace).revokeLeader(held!.value)).toEqual({ revoked: true, lease: held!.lease, key: held!.key });
    expect(await within(first.exited(), 30_000)).toEqual({ code: 1, signal: null });
    expect(first.output).toMatch(/lost leadership/);
    const next = await agreedLeader(masters, 30_000);
    expect(next).not.toBe(first);
  }, 120_000);

  it('a frozen leader whose lease is revoked believes it leads on waking, yet its write fails in etcd', async () => {
    // A 30 s lease: on waking the leader's own estimate says its lease is alive; only etcd's fence can stop its write.
    const { masters, namespace } = await startMasters('revoke-frozen', 30, 2);
    const store = await openEtcdStore(cleanup, etcd().endpoint, namespace);
    const first = await frozenLeaderAfterWrite(cleanup, masters);
    const held = await electionOf(namespace).leaderKey();
    expect((await electionOf(namespace).revokeLeader(held!.value)).revoked).toBe(true);
    const next = await agreedLeader(
      masters.filter((m) => m !== first),
      30_000,
    );

    const found = await expectThawedLeaderWritesNothing(first, store);
    expect(found.has('corral/registry/weights/before')).toBe(true);
    await expectSuccessorWrites(cleanup, next, store);
  }, 120_000);
});
