/**
 * Replicated masters: which master leads. Every master campaigns in an etcd
 * election with its MasterInfo (id, hostname, ip, port, url) as the value and
 * follows the current leader. Until it wins, a master neither recovers the
 * registry nor serves calls (the HTTP gate answers 307 to the leader). When it
 * wins it recovers the registry from etcd and serves, and from then on every
 * registry write is fenced with a compare on its election key.
 *
 * A follower also watches the leader's process (leader-probe.ts): when it
 * finds it crashed (nothing listens at its URL any more) it revokes the
 * leader's lease, so a successor is elected at once rather than a lease TTL
 * later. A frozen, slow or cut-off leader is left to its lease.
 *
 * Leadership is lost for good: a leader whose lease expires (it froze, or lost
 * etcd) or whose fenced write is refused stops writing at once and the process
 * exits, as a Mesos master "commits suicide" when ZooKeeper drops it; its
 * supervisor starts it again as a follower.
 */
import { CorralError, errorMessage } from '../../../contracts/errors.js';
import { EtcdElection, type Candidacy, type ElectedKey } from '../../../common/store/etcd-election.js';
import { LeaderProbe, type ProbeResult, type ProbeTarget } from './leader-probe.js';
import { logger } from '../../../common/log.js';
import { z } from '../../../common/validate.js';
import type { RegistryFence } from './registry.js';

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

type State = 'following' | 'recovering' | 'leading' | 'lost' | 'closed';

interface LeadershipOptions {
  etcd: { endpoints: string[]; namespace?: string; dialTimeoutMs?: number };
  electionName: string;
  leaseTtlSeconds: number;
  self: LeaderInfo;
  /** Won: recover the registry (the fence is set), start serving. A throw counts as lost leadership. */
  onElected(fence: RegistryFence): Promise<void>;
  /** Leadership is gone for good (called once); the daemon exits. */
  onLost(reason: string): void;
  /** Revoke a crashed leader's lease (default on); off, a crashed leader is replaced when its lease expires. */
  crashDetection?: boolean;
  /** Probe pacing (tests); see leader-probe.ts. */
  probe?: { intervalMs?: number; confirmAfterMs?: number; timeoutMs?: number };
}

const WATCHDOG_MS = 250;

export class Leadership {
  private readonly log = logger('leadership');
  private readonly election: EtcdElection;
  private candidacy: Candidacy | undefined;
  private state: State = 'following';
  private observed: LeaderInfo | undefined;
  /** The election value of the observed leader, as etcd holds it. */
  private observedValue: string | undefined;
  private readonly probe: LeaderProbe | undefined;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private electedAt = 0;

  constructor(private readonly opts: LeadershipOptions) {
    this.election = new EtcdElection({ ...opts.etcd, name: opts.electionName, ttlSeconds: opts.leaseTtlSeconds });
    if (opts.crashDetection !== false) this.probe = new LeaderProbe({ ...opts.probe, onCrash: (target, evidence) => this.revokeCrashed(target, evidence) });
  }

  start(): void {
    this.election.observe((value) => this.onObserved(value));
    this.campaign();
  }

  /** This master leads and has recovered: it serves calls. */
  get serving(): boolean {
    return this.state === 'leading';
  }

  get leading(): boolean {
    return this.state === 'leading' || this.state === 'recovering';
  }

  get self(): LeaderInfo {
    return this.opts.self;
  }

  /** The leader as far as this master knows (itself while it leads); undefined while there is none. */
  get leader(): LeaderInfo | undefined {
    if (this.leading) return this.opts.self;
    if (this.state !== 'following') return undefined;
    // A follower whose own lease etcd has not renewed within its TTL cannot see the election any more (no quorum, or
    // etcd out of reach): the leader it last saw may be gone, so it names none rather than redirect to a dead one.
    if (this.cutOff()) return undefined;
    return this.observed;
  }

  /** etcd has not answered this master's keepalives for a whole TTL. */
  cutOff(): boolean {
    return this.candidacy !== undefined && Date.now() >= this.candidacy.leaseValidUntil();
  }

  /** For /health. */
  status(): { leading: boolean; state: State; leader: LeaderInfo | null; elected_at?: string; leader_probe?: ProbeResult } {
    const probed = this.state === 'following' ? this.probe?.last : undefined;
    return {
      leading: this.serving,
      state: this.state,
      leader: this.leader ?? null,
      ...(this.electedAt ? { elected_at: new Date(this.electedAt).toISOString() } : {}),
      ...(probed ? { leader_probe: probed } : {}),
    };
  }

  /** Step down (graceful stop): revoke the lease so a follower is elected at once. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimers();
    this.probe?.stop();
    await this.candidacy?.resign().catch((err: unknown) => this.log.warn({ err }, 'resigning from the election failed; the lease will expire'));
    await this.election.close();
  }

  private campaign(): void {
    this.retry = undefined;
    if (this.state !== 'following') return;
    this.candidacy = this.election.campaign(JSON.stringify(this.opts.self), {
      onElected: (key) => void this.won(key),
      onError: (err) => this.campaignFailed(err),
    });
  }

  private campaignFailed(err: Error): void {
    if (this.leading) {
      this.lose(`the leader's etcd lease was lost: ${errorMessage(err)}`);
      return;
    }
    if (this.state !== 'following') return;
    // A follower's campaign can fail when etcd is unreachable: stand again once it may be back.
    this.log.warn({ err }, 'election campaign failed; standing again');
    this.candidacy?.resign().catch(() => undefined);
    this.retry = setTimeout(() => this.campaign(), 1000);
    this.retry.unref();
  }

  private async won(key: ElectedKey): Promise<void> {
    if (this.state !== 'following') return;
    this.state = 'recovering';
    this.probe?.stop();
    this.electedAt = Date.now();
    // Leadership changes are logged at warn: an operator wants them even at a quiet log level.
    this.log.warn({ key: key.key, revision: key.createRevision, master: this.opts.self.id }, 'elected leader; recovering the registry');
    const candidacy = this.candidacy!;
    const fence: RegistryFence = {
      compare: [{ key: key.key, target: 'createRevision', op: '=', value: key.createRevision }],
      holds: () => this.leading && Date.now() < candidacy.leaseValidUntil(),
      lost: (why) => this.lose(`a registry write was refused: ${why}`),
    };
    // A frozen leader must notice on waking that its lease may be gone, even with no write pending.
    this.watchdog = setInterval(() => {
      if (this.leading && Date.now() >= candidacy.leaseValidUntil()) this.lose('its etcd lease was not renewed within its TTL');
    }, WATCHDOG_MS);
    this.watchdog.unref();
    try {
      await this.opts.onElected(fence);
    } catch (err) {
      this.lose(`recovery after the election failed: ${errorMessage(err)}`);
      return;
    }
    if (this.state !== 'recovering') return;
    this.state = 'leading';
    this.log.warn({ master: this.opts.self.id, url: this.opts.self.url, ms: Date.now() - this.electedAt }, 'leading: registry recovered, serving calls');
  }

  private onObserved(value: string | undefined): void {
    let info: LeaderInfo | undefined;
    if (value !== undefined) {
      try {
        info = leaderInfoSchema.parse(JSON.parse(value));
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'the election holds a value that is not a master; treating the leader as unknown');
      }
    }
    const before = this.observed?.id;
    this.observed = info;
    this.observedValue = info ? value : undefined;
    if (this.state === 'following') this.probe?.watch(info && info.id !== this.opts.self.id ? { id: info.id, url: info.url } : undefined);
    // What a leader observes is not acted upon (an observation can lag the election); its lease and fence decide.
    if (info?.id !== before) this.log.info({ leader: info?.url ?? null }, info ? 'leading master is %s' : 'no leading master', info?.url);
  }

  /**
   * The leader `target` crashed: revoke its lease, if it still leads, so the
   * oldest remaining candidate is elected now. True when nothing is left to do.
   */
  private async revokeCrashed(target: ProbeTarget, evidence: string): Promise<boolean> {
    const value = this.observedValue;
    if (this.state !== 'following' || !value || this.observed?.id !== target.id) return true;
    // Cut off from etcd, this master could not revoke anything; it asks again once the probe confirms again.
    if (this.cutOff()) return false;
    try {
      const outcome = await this.election.revokeLeader(value);
      if (outcome.revoked)
        this.log.warn({ leader: target.id, url: target.url, lease: outcome.lease, key: outcome.key, evidence }, 'the leading master crashed (%s); revoked its etcd lease %s', evidence, outcome.lease);
      else this.log.info({ leader: target.id, why: outcome.why, evidence }, 'the leading master looks crashed, but it no longer leads or its lease is gone already');
      return true;
    } catch (err) {
      this.log.warn({ err: errorMessage(err), leader: target.id }, 'revoking the crashed leader’s lease failed; trying again');
      return false;
    }
  }

  private lose(reason: string): void {
    if (this.state === 'lost' || this.state === 'closed') return;
    const wasLeading = this.leading;
    this.state = 'lost';
    this.stopTimers();
    this.probe?.stop();
    this.log.fatal({ reason, master: this.opts.self.id, wasLeading }, 'lost leadership: %s', reason);
    this.opts.onLost(reason);
  }

  private stopTimers(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.retry) clearTimeout(this.retry);
    this.watchdog = undefined;
    this.retry = undefined;
  }
}

/** A clear error for a master that cannot serve because it does not lead. */
export function notLeading(leader: LeaderInfo | undefined, self: LeaderInfo, recovering: boolean, cutOff = false): CorralError {
  if (cutOff) return new CorralError('UNAVAILABLE', 'this master cannot reach a quorum of etcd, so no leading master is known; retry once etcd is back', { master: self.id });
  if (recovering) return new CorralError('UNAVAILABLE', 'this master was just elected and is recovering the registry; retry shortly', { master: self.id });
  if (!leader) return new CorralError('UNAVAILABLE', 'no leading master is known yet (election in progress); retry shortly', { master: self.id });
  return new CorralError('UNAVAILABLE', `master ${self.id} does not lead; the leader is ${leader.url}`, { leader: leader.url });
}
