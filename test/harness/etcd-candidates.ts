/**
 * Candidates of one election on a real etcd, for the election and fencing
 * tests: a Store on a fresh namespace, and two candidates standing in it at
 * once ("candidate-0", "candidate-1"), either of which may win.
 */
import { EtcdElection, type Candidacy, type ElectedKey } from '../../common/store/etcd-election.js';
import { EtcdStore } from '../../common/store/etcd.js';
import { untilValue } from './wait.js';

/** A Store on `namespace` of the etcd at `endpoint`, closed after the test. */
export async function openEtcdStore(cleanup: Array<() => Promise<unknown>>, endpoint: string, namespace: string): Promise<EtcdStore> {
  const store = await EtcdStore.open({ endpoints: [endpoint], namespace });
  cleanup.push(() => store.close());
  return store;
}

export interface TwoCandidates {
  namespace: string;
  store: EtcdStore;
  elections: EtcdElection[];
  candidacies: Candidacy[];
  /** The key each candidate was elected with, once it is. */
  won: Array<ElectedKey | undefined>;
  /** The loss each candidacy reported, if any. */
  errors: Array<Error | undefined>;
  /** The candidate elected first, its key, and the other candidate. */
  leaderIdx: number;
  first: ElectedKey;
  other: number;
}

/** Two candidates campaigning at once on a fresh namespace (`<name>-<time>/`) of the etcd; resolves once one is elected. */
export async function twoCandidates(cleanup: Array<() => Promise<unknown>>, endpoint: string, name: string, ttlSeconds: number): Promise<TwoCandidates> {
  const namespace = `${name}-${Date.now()}/`;
  const store = await openEtcdStore(cleanup, endpoint, namespace);
  const elections = [0, 1].map(() => new EtcdElection({ endpoints: [endpoint], namespace, name: 'm', ttlSeconds }));
  for (const e of elections) cleanup.push(() => e.close());
  const won: Array<ElectedKey | undefined> = [undefined, undefined];
  const errors: Array<Error | undefined> = [undefined, undefined];
  const candidacies = elections.map((e, i) => e.campaign(`candidate-${i}`, { onElected: (k) => (won[i] = k), onError: (err) => (errors[i] = err) }));
  const leaderIdx = await untilValue('a candidate elected', async () => (won[0] ? 0 : won[1] ? 1 : undefined), 15_000);
  return { namespace, store, elections, candidacies, won, errors, leaderIdx, first: won[leaderIdx]!, other: 1 - leaderIdx };
}
