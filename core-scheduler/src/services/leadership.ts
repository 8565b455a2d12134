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
 * master does).
 */
import { CorralError, errorMessage } from '../../../contracts/errors.js';
import type { Compare } from '../../../contracts/store/types.js';
import { EtcdElection, type Candidacy, type ElectedKey } from '../../../common/store/etcd-election.js';
import { logger } from '../../../common/log.js';
import { z } from '../../../common/validate.js';

/** What a services daemon announces in the election. */
const leaderSchema = z.object({ id: z.string().min(1), url: z.string().min(1) });
export type ServicesLeader = z.output<typeof leaderSchema>;

/** Guards the leader's Store writes: add `compare` to each txn; a refused one means leadership is gone. */
export interface WriteFence {
  compare: Compare[];
  /** The lease is still certainly alive (checked before a write goes out). */
  holds(): boolean;
  /** A fenced write was refused, or the fence no longer holds: leadership is lost. */
  lost(why: string): void;
}

type State = 'standby' | 'loading' | 'leading' | 'lost' | 'closed';

interface LeadershipOptions {
  etcd: { endpoints: string[]; namespace?: string; dialTimeoutMs?: number };
  electionName: string;
  leaseTtlSeconds: number;
  self: ServicesLeader;
  /** Won: load the state and start the framework with this fence. A throw counts as lost leadership. */
  onElected(fence: WriteFence): Promise<void>;
  /** Leadership is gone for good (called once). */
  onLost(reason: string): void;
}

const WATCHDOG_MS = 250;
const RETRY_MS = 1000;

export class ServicesLeadership {
  private readonly log = logger('services-leadership');
  private readonly election: EtcdElection;
  private candidacy: Candidacy | undefined;
  private state: State = 'standby';
  private observed: ServicesLeader | undefined;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private electedAt = 0;

  constructor(private readonly opts: LeadershipOptions) {
    this.election = new EtcdElection({ ...opts.etcd, name: opts.electionName, ttlSeconds: opts.leaseTtlSeconds });
  }

  start(): void {
    this.election.observe((value) => this.onObserved(value));
    this.campaign();
  }

  /** This daemon leads and has loaded its state: it serves the API. */
  get serving(): boolean {
    return this.state === 'leading';
  }

  get leading(): boolean {
    return this.state === 'leading' || this.state === 'loading';
  }

  get self(): ServicesLeader {
    return this.opts.self;
  }

  /** The leader as far as this daemon knows; undefined while none is known (or etcd is out of reach). */
  get leader(): ServicesLeader | undefined {
    if (this.leading) return this.opts.self;
    if (this.state !== 'standby') return undefined;
    // A standby whose own lease etcd has not renewed for a TTL cannot see the election: the leader it saw may be gone.
    if (this.candidacy && Date.now() >= this.candidacy.leaseValidUntil()) return undefined;
    return this.observed;
  }

  status(): { leading: boolean; state: State; leader: ServicesLeader | null; elected_at?: string } {
    return { leading: this.serving, state: this.state, leader: this.leader ?? null, ...(this.electedAt ? { elected_at: new Date(this.electedAt).toISOString() } : {}) };
  }

  /** Step down (graceful stop): the lease is revoked, so a standby is elected at once. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimers();
    await this.candidacy?.resign().catch((err: unknown) => this.log.warn({ err }, 'resigning from the election failed; the lease will expire'));
    await this.election.close();
  }

  private campaign(): void {
    this.retry = undefined;
    if (this.state !== 'standby') return;
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
    if (this.state !== 'standby') return;
    // etcd may be out of reach for a while: stand again later.
    this.log.warn({ err }, 'election campaign failed; standing again');
    this.candidacy?.resign().catch(() => undefined);
    this.retry = setTimeout(() => this.campaign(), RETRY_MS);
    this.retry.unref();
  }

  private async won(key: ElectedKey): Promise<void> {
    if (this.state !== 'standby') return;
    this.state = 'loading';
    this.electedAt = Date.now();
    this.log.warn({ key: key.key, revision: key.createRevision, id: this.opts.self.id }, 'elected leader of the service framework; loading its state');
    const candidacy = this.candidacy!;
    const fence: WriteFence = {
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
      this.lose(`starting as the leader failed: ${errorMessage(err)}`);
      return;
    }
    if (this.state !== 'loading') return;
    this.state = 'leading';
    this.log.warn({ id: this.opts.self.id, url: this.opts.self.url, ms: Date.now() - this.electedAt }, 'leading the service framework');
  }

  private onObserved(value: string | undefined): void {
    let info: ServicesLeader | undefined;
    if (value !== undefined) {
      try {
        info = leaderSchema.parse(JSON.parse(value));
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'the election holds a value that is not a services daemon; the leader is unknown');
      }
    }
    const before = this.observed?.id;
    this.observed = info;
    if (info?.id !== before) this.log.info({ leader: info?.url ?? null }, info ? 'the service framework leader is %s' : 'no service framework leader', info?.url);
  }

  private lose(reason: string): void {
    if (this.state === 'lost' || this.state === 'closed') return;
    const wasLeading = this.leading;
    this.state = 'lost';
    this.stopTimers();
    this.log.fatal({ reason, id: this.opts.self.id, wasLeading }, 'lost the service framework leadership: %s', reason);
    this.opts.onLost(reason);
  }

  private stopTimers(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.retry) clearTimeout(this.retry);
    this.watchdog = undefined;
    this.retry = undefined;
  }
}

/** Why a standby does not serve a call itself. */
export function notLeading(l: ServicesLeadership): CorralError {
  if (l.leading) return new CorralError('UNAVAILABLE', 'this service framework daemon was just elected and is loading its state; retry shortly', { id: l.self.id });
  return new CorralError('UNAVAILABLE', 'no service framework leader is known yet (election in progress, or etcd out of reach); retry shortly', { id: l.self.id });
}
