/**
 * Several service framework daemons, one leader. Each daemon stands in an
 * etcd election (common/store/etcd-election.ts, the recipe the masters use)
 * with its id and API URL as the value. The leader loads the apps and
 * instances from the Store, subscribes to the master as the framework (with
 * the stored framework id, so a new leader is a framework failover) and runs
 * deploys; the others serve no API of their own and send clients to it.
 *
 * Every Store write of a leader is fenced by a compare on the create revision
 * of its election key: once its lease is gone (it froze, crashed, lost etcd),
 * its writes fail inside etcd even if it has not noticed yet. A leader that
 * loses its lease or has a fenced write refused stops at once, and the
 * daemon exits for its supervisor to start it again as a standby (as a
 * master does). A standby that finds the leader's process gone (its port
 * refuses connections) revokes its lease at once, as the masters do.
 */
import { CorralError } from '../../../contracts/errors.js';
import { EtcdLeadership, type EtcdLeadershipOptions, type LeaderFence } from '../../../common/store/etcd-leadership.js';
import { z } from '../../../common/validate.js';

/** What a services daemon announces in the election. */
const leaderSchema = z.object({ id: z.string().min(1), url: z.string().min(1) });
export type ServicesLeader = z.output<typeof leaderSchema>;

/** Guards the leader's Store writes: add `compare` to each txn; a refused one means leadership is gone. */
export type WriteFence = LeaderFence;

/** The services daemons' election: a follower is a "standby", a new leader "loading" (its state) until it serves. */
export type ServicesLeadership = EtcdLeadership<ServicesLeader>;

export function servicesLeadership(opts: Omit<EtcdLeadershipOptions<ServicesLeader>, 'schema' | 'role' | 'phaseNames'>): ServicesLeadership {
  // A crashed leader is found as the masters find theirs: its /health names its id.
  return new EtcdLeadership({ ...opts, schema: leaderSchema, role: 'service framework daemon', phaseNames: { following: 'standby', starting: 'loading' }, probe: { idField: 'id', ...opts.probe } });
}

/** Why a standby does not serve a call itself. */
export function notLeading(l: ServicesLeadership): CorralError {
  if (l.leading) return new CorralError('UNAVAILABLE', 'this service framework daemon was just elected and is loading its state; retry shortly', { id: l.self.id });
  return new CorralError('UNAVAILABLE', 'no service framework leader is known yet (election in progress, or etcd out of reach); retry shortly', { id: l.self.id });
}
