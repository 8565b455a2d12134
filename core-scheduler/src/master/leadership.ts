/**
 * Replicated masters: which master leads. Every master campaigns in an etcd
 * election (common/store/etcd-leadership.ts, shared with the service
 * framework daemons) with its MasterInfo (id, hostname, ip, port, url) as the
 * value and follows the current leader. Until it wins, a master neither
 * recovers the registry nor serves calls (the HTTP gate answers 307 to the
 * leader). When it wins it recovers the registry from etcd and serves, and
 * from then on every registry write is fenced with a compare on its election
 * key.
 *
 * A follower also watches the leader's process: when it crashed, the
 * follower revokes its lease at once instead of waiting out the TTL.
 *
 * Leadership is lost for good: a leader whose lease expires (it froze, or lost
 * etcd), whose key is deleted, or whose fenced write is refused stops writing
 * at once and the process exits, as a Mesos master "commits suicide" when
 * ZooKeeper drops it; its supervisor starts it again as a follower.
 */
import { CorralError } from '../../../contracts/errors.js';
import { EtcdLeadership, type EtcdLeadershipOptions } from '../../../common/store/etcd-leadership.js';
import { z } from '../../../common/validate.js';

/** What a master announces in the election (a MasterInfo plus the URL clients are sent to). */
const leaderInfoSchema = z.object({
  id: z.string().min(1),
  hostname: z.string(),
  /** Packed IPv4, as V1MasterInfo.ip. */
  ip: z.number().int(),
  port: z.number().int().min(1).max(65535),
  /** Base URL, e.g. http://10.0.0.5:5050: followers redirect to url + the request's path. */
  url: z.string().min(1),
});
export type LeaderInfo = z.output<typeof leaderInfoSchema>;

/** The masters' election: a follower is "following", a new leader "recovering" (its registry) until it serves. */
export type Leadership = EtcdLeadership<LeaderInfo>;

export function masterLeadership(opts: Omit<EtcdLeadershipOptions<LeaderInfo>, 'schema' | 'role' | 'phaseNames'>): Leadership {
  return new EtcdLeadership({ ...opts, schema: leaderInfoSchema, role: 'master', phaseNames: { following: 'following', starting: 'recovering' }, probe: { idField: 'master', ...opts.probe } });
}

/** A clear error for a master that cannot serve because it does not lead. */
export function notLeading(leader: LeaderInfo | undefined, self: LeaderInfo, recovering: boolean, cutOff = false): CorralError {
  if (cutOff) return new CorralError('UNAVAILABLE', 'this master cannot reach a quorum of etcd, so no leading master is known; retry once etcd is back', { master: self.id });
  if (recovering) return new CorralError('UNAVAILABLE', 'this master was just elected and is recovering the registry; retry shortly', { master: self.id });
  if (!leader) return new CorralError('UNAVAILABLE', 'no leading master is known yet (election in progress); retry shortly', { master: self.id });
  return new CorralError('UNAVAILABLE', `master ${self.id} does not lead; the leader is ${leader.url}`, { leader: leader.url });
}
