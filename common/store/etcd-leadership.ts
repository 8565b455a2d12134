/**
 * One leader among several processes of a group (the masters, the service
 * framework daemons), elected in etcd. Every process campaigns with its
 * announcement (an id and a URL, and whatever else the group puts there) as
 * the value and follows the current leader. Until it wins, a process does not
 * act (its HTTP edge sends callers to the leader). When it wins, the group's
 * `onElected` loads its state and starts; from then on every Store write is
 * fenced with a compare on its election key.
 *
 * Leadership is lost for good: a leader whose lease expires (it froze, or
 * lost etcd), whose key is deleted (a follower revoked it) or whose fenced
 * write is refused stops at once and `onLost` ends the process, as a Mesos
 * master "commits suicide" when ZooKeeper drops it; its supervisor starts it
 * again as a follower.
 *
 * A follower also watches the leader's process (leader-probe.ts): when it
 * crashed, the follower revokes its lease at once instead of waiting out the
 * TTL.
 */
import { errorMessage } from '../../contracts/errors.js';
import type { Compare } from '../../contracts/store/types.js';
import { EtcdElection, type Candidacy, type ElectedKey } from './etcd-election.js';
import type { EtcdStoreOptions } from './etcd.js';
import { LeaderProbe, type LeaderProbeOptions, type ProbeResult, type ProbeTarget } from './leader-probe.js';
import { logger } from '../log.js';
import type { z } from '../validate.js';

/** What every candidate announces: who it is and where callers are sent. */
export interface Candidate {
  id: string;
  url: string;
}

/** Guards a leader's Store writes: add `compare` to each txn; a refused one means leadership is gone. */
export interface LeaderFence {
  /** Store compares that hold only while this process leads; a write whose compares fail changes nothing. */
  compare: Compare[];
  /** False once this process cannot be sure it still leads (its lease may have run out): nothing is sent then. */
  holds(): boolean;
  /** Called at the first write refused for lost leadership. */
  lost(reason: string): void;
}

type Phase = 'following' | 'starting' | 'leading' | 'lost' | 'closed';

export interface EtcdLeadershipOptions<T extends Candidate> {
  /** Where the election lives: the Store's etcd connection (endpoints, TLS, auth) and namespace. */
  etcd: EtcdStoreOptions;
  electionName: string;
  leaseTtlSeconds: number;
  self: T;
  /** Reads another candidate's announcement. */
  schema: z.ZodType<T>;
  /** What the group's processes are, for log lines ("master", "service framework daemon"). */
  role: string;
  /** How /health names the phases a follower and a new leader are in (default "following", "starting"). */
  phaseNames?: { following: string; starting: string };
  /** Won: load the state (the fence is set) and start. A throw counts as lost leadership. */
  onElected(fence: LeaderFence): Promise<void>;
  /** Leadership is gone for good (called once); the process exits. */
  onLost(reason: string): void;
  /** Revoke a crashed leader's lease (default on); off, a crashed leader is replaced when its lease expires. */
  crashDetection?: boolean;
  /** How the leader's process is probed (idField: where its /health names its id); pacing for tests. */
  probe?: Omit<LeaderProbeOptions, 'onCrash' | 'role'>;
}

const WATCHDOG_MS = 250;
const RETRY_MS = 1000;

export class EtcdLeadership<T extends Candidate> {
  private readonly log;
  private readonly election: EtcdElection;
  private candidacy: Candidacy | undefined;
  private phase: Phase = 'following';
  private observed: T | undefined;
  /** The election value of the observed leader, as etcd holds it. */
  private observedValue: string | undefined;
  private readonly probe: LeaderProbe | undefined;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private electedAt = 0;

  constructor(private readonly opts: EtcdLeadershipOptions<T>) {
    this.log = logger(`${opts.role.replace(/ /g, '-')}-leadership`);
    this.election = new EtcdElection({ ...opts.etcd, name: opts.electionName, ttlSeconds: opts.leaseTtlSeconds });
    if (opts.crashDetection !== false) this.probe = new LeaderProbe({ ...opts.probe, role: opts.role, onCrash: (target, evidence) => this.revokeCrashed(target, evidence) });
  }

  start(): void {
    this.election.observe((value) => this.onObserved(value));
    this.campaign();
  }

  /** This process leads and has started: it serves calls. */
  get serving(): boolean {
    return this.phase === 'leading';
  }

  /** Elected, started or still starting. */
  get leading(): boolean {
    return this.phase === 'leading' || this.phase === 'starting';
  }

  get self(): T {
    return this.opts.self;
  }

  /** The leader as far as this process knows (itself while it leads); undefined while there is none. */
  get leader(): T | undefined {
    if (this.leading) return this.opts.self;
    if (this.phase !== 'following') return undefined;
    // A follower whose own lease etcd has not renewed within its TTL cannot see the election any more (no quorum, or
    // etcd out of reach): the leader it last saw may be gone, so it names none rather than send callers to a dead one.
    if (this.cutOff()) return undefined;
    return this.observed;
  }

  /** etcd has not answered this process's keepalives for a whole TTL. */
  cutOff(): boolean {
    return this.candidacy !== undefined && Date.now() >= this.candidacy.leaseValidUntil();
  }

  /** For /health. */
  status(): { leading: boolean; state: string; leader: T | null; elected_at?: string; leader_probe?: ProbeResult } {
    const probed = this.phase === 'following' ? this.probe?.last : undefined;
    return {
      leading: this.serving,
      state: this.phaseName(),
      leader: this.leader ?? null,
      ...(this.electedAt ? { elected_at: new Date(this.electedAt).toISOString() } : {}),
      ...(probed ? { leader_probe: probed } : {}),
    };
  }

  private phaseName(): string {
    if (this.phase === 'following') return this.opts.phaseNames?.following ?? 'following';
    if (this.phase === 'starting') return this.opts.phaseNames?.starting ?? 'starting';
    return this.phase;
  }

  /** Step down (graceful stop): revoke the lease so a follower is elected at once. */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.stopTimers();
    this.probe?.stop();
    await this.candidacy?.resign().catch((err: unknown) => this.log.warn({ err }, 'resigning from the election failed; the lease will expire'));
    await this.election.close();
  }

  private campaign(): void {
    this.retry = undefined;
    if (this.phase !== 'following') return;
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
    if (this.phase !== 'following') return;
    // A follower's campaign can fail when etcd is unreachable: stand again once it may be back.
    this.log.warn({ err }, 'election campaign failed; standing again');
    this.candidacy?.resign().catch(() => undefined);
    this.retry = setTimeout(() => this.campaign(), RETRY_MS);
    this.retry.unref();
  }

  private async won(key: ElectedKey): Promise<void> {
    if (this.phase !== 'following') return;
    this.phase = 'starting';
    this.probe?.stop();
    this.electedAt = Date.now();
    // Leadership changes are logged at warn: an operator wants them even at a quiet log level.
    this.log.warn({ key: key.key, revision: key.createRevision, id: this.opts.self.id }, 'elected leader (%s); starting', this.opts.role);
    const candidacy = this.candidacy!;
    const fence: LeaderFence = {
      compare: [{ key: key.key, target: 'createRevision', op: '=', value: key.createRevision }],
      holds: () => this.leading && Date.now() < candidacy.leaseValidUntil(),
      lost: (why) => this.lose(`a fenced write was refused: ${why}`),
    };
    // A frozen leader must notice on waking that its lease may be gone, even with no write pending.
    this.watchdog = setInterval(() => {
      if (this.leading && Date.now() >= candidacy.leaseValidUntil()) this.lose('its etcd lease was not renewed within its TTL');
    }, WATCHDOG_MS);
    this.watchdog.unref();
    try {
      await this.opts.onElected(fence);
    } catch (err) {
      this.lose(`starting after the election failed: ${errorMessage(err)}`);
      return;
    }
    if (this.phase !== 'starting') return;
    this.phase = 'leading';
    this.log.warn({ id: this.opts.self.id, url: this.opts.self.url, ms: Date.now() - this.electedAt }, 'leading (%s): state loaded, serving calls', this.opts.role);
  }

  private onObserved(value: string | undefined): void {
    let info: T | undefined;
    if (value !== undefined) {
      try {
        info = this.opts.schema.parse(JSON.parse(value));
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'the election holds a value that is not a %s; treating the leader as unknown', this.opts.role);
      }
    }
    const before = this.observed?.id;
    this.observed = info;
    this.observedValue = info ? value : undefined;
    if (this.phase === 'following') this.probe?.watch(info && info.id !== this.opts.self.id ? { id: info.id, url: info.url } : undefined);
    // What a leader observes is not acted upon (an observation can lag the election); its lease and fence decide.
    if (info?.id !== before) this.log.info({ leader: info?.url ?? null }, info ? 'the leading %s is %s' : 'no leading %s', this.opts.role, info?.url);
  }

  /**
   * The leader `target` crashed: revoke its lease, if it still leads, so the
   * oldest remaining candidate is elected now. True when nothing is left to do.
   */
  private async revokeCrashed(target: ProbeTarget, evidence: string): Promise<boolean> {
    const value = this.observedValue;
    if (this.phase !== 'following' || !value || this.observed?.id !== target.id) return true;
    // Cut off from etcd, this process could not revoke anything; it asks again once the probe confirms again.
    if (this.cutOff()) return false;
    try {
      const outcome = await this.election.revokeLeader(value);
      if (outcome.revoked)
        this.log.warn(
          { leader: target.id, url: target.url, lease: outcome.lease, key: outcome.key, evidence },
          'the leading %s crashed (%s); revoked its etcd lease %s',
          this.opts.role,
          evidence,
          outcome.lease,
        );
      else this.log.info({ leader: target.id, why: outcome.why, evidence }, 'the leading %s looks crashed, but it no longer leads or its lease is gone already', this.opts.role);
      return true;
    } catch (err) {
      this.log.warn({ err: errorMessage(err), leader: target.id }, 'revoking the crashed leader’s lease failed; trying again');
      return false;
    }
  }

  /** Leadership is gone (also called by the owner when its own writes say so). */
  lose(reason: string): void {
    if (this.phase === 'lost' || this.phase === 'closed') return;
    const wasLeading = this.leading;
    this.phase = 'lost';
    this.stopTimers();
    this.probe?.stop();
    this.log.fatal({ reason, id: this.opts.self.id, wasLeading }, 'lost leadership (%s): %s', this.opts.role, reason);
    this.opts.onLost(reason);
  }

  private stopTimers(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.retry) clearTimeout(this.retry);
    this.watchdog = undefined;
    this.retry = undefined;
  }
}
