/**
 * Replicated master processes on one etcd, for the HA tests: start several
 * sharing a fresh namespace, wait for the one leader they all name, and check
 * that a leader frozen past its deposition writes nothing when it wakes.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { EtcdStore } from '../../common/store/etcd.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { MasterProcess, writeHaMasterConfig } from './master-process.js';
import { freePort } from './ports.js';
import { untilValue, within } from './wait.js';

/** A master's GET /health. */
export interface MasterHealth {
  master: string;
  leading: boolean;
  state: string;
  leader: { id: string; url: string } | null;
  /** A follower's last look at the leader it follows. */
  leader_probe?: string;
}

export interface ReplicatedMastersOptions {
  etcdEndpoint: string;
  /** Their work dirs go below it (m0, m1, …); it is removed after the test. */
  dir: string;
  /** Names their namespace of the etcd (`<name>-<time>/`). */
  name: string;
  /** Their namespace, when the test must know it before they start (etcd users granted on it); default from `name`. */
  namespace?: string;
  leaseTtlSeconds: number;
  n: number;
  /** More master config (beside the store and ha sections). */
  extra?: Record<string, unknown>;
  /** More of the store section (all endpoints of a cluster, etcdTls, etcdAuth). */
  store?: Record<string, unknown>;
}

/** `n` masters sharing a fresh namespace of the etcd, all started; their stops (and the dir's removal) queued on `cleanup`. */
export async function startReplicatedMasters(cleanup: Array<() => Promise<unknown>>, opts: ReplicatedMastersOptions): Promise<{ masters: MasterProcess[]; namespace: string }> {
  cleanup.push(async () => rmSync(opts.dir, { recursive: true, force: true }));
  const namespace = opts.namespace ?? `${opts.name}-${Date.now()}/`;
  const masters: MasterProcess[] = [];
  for (let i = 0; i < opts.n; i++) {
    const workDir = join(opts.dir, `m${i}`);
    const config = writeHaMasterConfig(workDir, { etcdEndpoint: opts.etcdEndpoint, namespace, leaseTtlSeconds: opts.leaseTtlSeconds, extra: opts.extra, store: opts.store });
    const m = new MasterProcess(workDir, await freePort(), ['--no-auth', '--config', config]);
    cleanup.push(() => m.kill());
    masters.push(m);
  }
  await Promise.all(masters.map((m) => m.start()));
  return { masters, namespace };
}

export async function masterHealth(m: MasterProcess): Promise<MasterHealth> {
  const res = await fetch(`${m.url}/health`, { signal: AbortSignal.timeout(2000) });
  expect(res.status).toBe(200);
  return (await res.json()) as MasterHealth;
}

/**
 * The one serving leader among the running masters, once every running master
 * names it (and, with `probed`, every follower's probe has found it alive).
 */
export function agreedLeader(masters: MasterProcess[], timeoutMs = 30_000, probed = false): Promise<MasterProcess> {
  return untilValue(
    'one leader named by every running master',
    async () => {
      const running = masters.filter((m) => m.running);
      const hs = await Promise.all(running.map(masterHealth));
      const leaders = running.filter((_, i) => hs[i]!.leading);
      if (leaders.length !== 1) return undefined;
      const id = hs[running.indexOf(leaders[0]!)]!.master;
      if (!hs.every((h) => h.leader?.id === id)) return undefined;
      if (probed && !hs.every((h) => h.leading || h.leader_probe === 'alive')) return undefined;
      return leaders[0];
    },
    timeoutMs,
  );
}

/** A JSON POST that does not follow redirects (a follower's 307 is the answer under test). */
export function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), redirect: 'manual', signal: AbortSignal.timeout(10_000) });
}

/** The registry's keys and their modRevisions: what nobody but the leader may change. */
export async function registrySnapshot(store: EtcdStore): Promise<Map<string, number>> {
  const { kvs } = await store.range('corral/registry/');
  return new Map(kvs.map((kv) => [kv.key, kv.modRevision]));
}

/** Sets the weight of `role` through the operator API of the master at `url`. */
export async function setWeight(cleanup: Array<() => Promise<unknown>>, url: string, role: string, weight: number): Promise<void> {
  const ops = new OperatorClient({ master: url });
  cleanup.push(() => ops.close());
  await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role, weight }] } });
}

/**
 * The agreed leader, once it has written to the registry (weight 3 for role
 * "before"), then frozen (SIGSTOP; continued after the test at the latest).
 */
export async function frozenLeaderAfterWrite(cleanup: Array<() => Promise<unknown>>, masters: MasterProcess[]): Promise<MasterProcess> {
  const leader = await agreedLeader(masters);
  await setWeight(cleanup, leader.url, 'before', 3);
  leader.signal('SIGSTOP');
  cleanup.push(async () => leader.signal('SIGCONT'));
  return leader;
}

/**
 * Wakes a deposed leader frozen (SIGSTOP) with a write waiting in its socket —
 * the first thing it sees on waking, when it may still believe it leads — and
 * checks that the write is not accepted, that the old leader exits having lost
 * its leadership, and that the registry in `store` is as its successor found
 * it (the snapshot taken before the wake, which it returns): from then on
 * nobody may change it but the successor, and nothing talks to the successor
 * until the old leader is gone.
 */
export async function expectThawedLeaderWritesNothing(frozen: MasterProcess, store: EtcdStore): Promise<Map<string, number>> {
  const snapshot = await registrySnapshot(store);
  const late = postJson(`${frozen.url}/api/v1`, { type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'late', weight: 9 }] } }).catch((err: unknown) => err);
  frozen.signal('SIGCONT');
  const answer = await late;
  if (answer instanceof Response) expect(answer.status).toBeGreaterThanOrEqual(300);

  expect(await within(frozen.exited(), 30_000)).toEqual({ code: 1, signal: null });
  expect(frozen.output).toMatch(/lost leadership/);

  expect(await registrySnapshot(store)).toEqual(snapshot);
  expect(await store.get('corral/registry/weights/late')).toBeUndefined();
  return snapshot;
}

/** The successor writes to the registry as usual. */
export async function expectSuccessorWrites(cleanup: Array<() => Promise<unknown>>, successor: MasterProcess, store: EtcdStore): Promise<void> {
  await setWeight(cleanup, successor.url, 'after', 4);
  expect((await store.get('corral/registry/weights/after'))?.value.toString()).toBe('4');
}
