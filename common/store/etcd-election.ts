/**
 * Leader election on etcd with the etcd3 client's election recipe (the port of
 * the Go client's concurrency.Election): each candidate puts its value under
 * `election/<name>/<lease id>` attached to its own lease, and the candidate
 * whose key is oldest leads. A candidate that stops renewing its lease (crash,
 * freeze, partition) loses its key when the lease expires, and the next one
 * is elected.
 *
 * Keys live in the same namespace as the etcd Store, so the elected key can
 * guard Store transactions (a compare on its create revision: once the key is
 * gone, the guarded writes fail inside etcd itself).
 *
 * A crashed leader need not be waited out: whoever knows it is dead may
 * revoke its lease (revokeLeader), which deletes its key at once, so the next
 * candidate is elected without waiting for the TTL. That is safe even if the
 * leader was alive after all: its guarded writes fail in etcd, and it learns
 * of the loss from the delete of its own key (watched from the election on).
 */
import type { EventEmitter } from 'node:events';
import { Etcd3, EtcdLeaseInvalidError, type Election, type Namespace, type Watcher } from 'etcd3';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { logger } from '../log.js';
import { etcdClientOptions, etcdCredentialError, keepEtcdTokensFresh, type EtcdConnectionOptions } from './etcd-connection.js';

/** Connects as the Store does (endpoints, TLS, auth: the same options). */
interface EtcdElectionOptions extends EtcdConnectionOptions {
  /** The Store's namespace prefix (keys then live under `<namespace>election/<name>/`). */
  namespace?: string;
  name: string;
  ttlSeconds: number;
}

export interface ElectedKey {
  /** The winner's key, relative to the namespace (as the Store names keys). */
  key: string;
  /** Create revision of that key: it changes if the key is ever deleted and created again. */
  createRevision: number;
}

/** The leader's key as etcd holds it: which lease keeps it alive. */
export interface LeaderKey {
  key: string;
  value: string;
  /** The lease the key is attached to (decimal int64). */
  lease: string;
  createRevision: number;
}

/** What revokeLeader did: revoked the lease (etcd still held it), or nothing because the leader is not the one named, or its lease was gone already. */
export type RevokeOutcome = { revoked: true; lease: string; key: string } | { revoked: false; why: 'not-leader' | 'lease-gone'; lease?: string };

interface CampaignHandlers {
  /** This candidate leads; `elected` names the key to guard writes with. */
  onElected(elected: ElectedKey): void;
  /** The campaign failed or its lease was lost (before or after winning). */
  onError(err: Error): void;
}

export interface Candidacy {
  /**
   * Until when (ms since the epoch) this candidate's lease is certainly alive:
   * the send time of the oldest keepalive that etcd answered last, plus the TTL.
   * Counting from the send, not the answer, keeps the estimate on the safe side.
   */
  leaseValidUntil(): number;
  /** Give up the candidacy (revokes the lease: a successor is elected at once). */
  resign(): Promise<void>;
}

export class EtcdElection {
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly prefix: string;
  private readonly election: Election;
  private watcher: Watcher | undefined;
  /** Leaders' watches on their own key (one per campaign won). */
  private readonly ownKeyWatchers = new Set<Watcher>();
  private closed = false;
  private readonly log = logger('election');

  constructor(private readonly opts: EtcdElectionOptions) {
    if (!Number.isInteger(opts.ttlSeconds) || opts.ttlSeconds < 1) throw new CorralError('INVALID_ARGUMENT', 'election lease TTL must be a whole number of seconds, at least 1');
    this.client = new Etcd3(etcdClientOptions(opts));
    this.prefix = opts.namespace ?? '';
    this.ns = this.prefix === '' ? this.client : this.client.namespace(this.prefix);
    if (opts.auth) keepEtcdTokensFresh(this.client);
    this.election = this.ns.election(opts.name, opts.ttlSeconds);
  }

  /** Stand for election with `value` (what observers see while this candidate leads). */
  campaign(value: string, handlers: CampaignHandlers): Candidacy {
    const ttlMs = this.opts.ttlSeconds * 1000;
    // The lease is granted after this instant, so it lives at least until now + TTL.
    let validFrom = Date.now();
    const campaign = this.election.campaign(value);
    // The Campaign keeps its lease to itself; its keepalive events tell how fresh the lease is.
    const lease = (campaign as unknown as { lease?: EventEmitter }).lease;
    const sent: number[] = [];
    if (lease) {
      lease.on('keepaliveEstablished', () => (sent.length = 0));
      lease.on('keepaliveFailed', () => (sent.length = 0));
      lease.on('keepaliveFired', () => sent.push(Date.now()));
      lease.on('keepaliveSucceeded', () => {
        const at = sent.shift();
        if (at !== undefined && at > validFrom) validFrom = at;
      });
    }
    let failed = false;
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      // TLS and credential failures say so, naming the endpoint (the campaign would only say what grpc said).
      handlers.onError(etcdCredentialError(err, this.opts.endpoints, this.opts.auth?.username) ?? err);
    };
    campaign.on('error', fail);
    campaign.on('elected', () => {
      void (async () => {
        const full = await campaign.getCampaignKey();
        const key = full.slice(this.prefix.length);
        const res = await this.ns.get(key).exec();
        const kv = res.kvs[0];
        // The key is ours only if it still holds our value: a lease lost meanwhile leaves none.
        if (!kv || kv.value.toString('utf8') !== value) throw new CorralError('UNAVAILABLE', `election key ${key} vanished right after the election (lease lost)`);
        if (failed) return;
        // The key deleted (lease revoked by a peer that took this leader for dead, or expired) ends the
        // leadership at once; the keepalive would tell only at its next round, up to TTL/3 later. The watch
        // starts after the revision just read, so it misses no delete even if it is set up after the handler runs.
        this.watchOwnKey(key, BigInt(res.header.revision) + 1n, () => fail(new CorralError('UNAVAILABLE', `election key ${key} was deleted (its lease was revoked or expired)`))).catch(
          (err: unknown) => this.log.warn({ err, key }, 'watching the own election key failed; the lease keepalive still tells its loss'),
        );
        handlers.onElected({ key, createRevision: Number(kv.create_revision) });
      })().catch((err: unknown) => fail(err instanceof Error ? err : new Error(errorMessage(err))));
    });
    return {
      leaseValidUntil: () => (lease ? validFrom + ttlMs : Number.POSITIVE_INFINITY),
      resign: async () => {
        failed = true;
        await campaign.resign();
      },
    };
  }

  private async watchOwnKey(key: string, fromRevision: bigint, onDelete: () => void): Promise<void> {
    const watcher = await this.ns.watch().key(key).startRevision(fromRevision.toString()).only('delete').create();
    if (this.closed) {
      void watcher.cancel().catch(() => undefined);
      return;
    }
    this.ownKeyWatchers.add(watcher);
    watcher.once('delete', () => {
      this.ownKeyWatchers.delete(watcher);
      void watcher.cancel().catch(() => undefined);
      onDelete();
    });
    // A broken watch proves nothing about the key: the lease keepalive and the fence still guard it.
    watcher.on('error', (err) => this.log.warn({ err, key }, 'watching the own election key failed'));
  }

  /** The leader's key (the oldest under the election's prefix), or undefined while nobody stands. */
  async leaderKey(): Promise<LeaderKey | undefined> {
    const res = await this.ns.getAll().prefix(`election/${this.opts.name}/`).sort('Create', 'Ascend').limit(1).exec();
    const kv = res.kvs[0];
    if (!kv) return undefined;
    // The namespace hands keys back relative to itself, as the Store names them.
    return { key: kv.key.toString('utf8'), value: kv.value.toString('utf8'), lease: String(kv.lease), createRevision: Number(kv.create_revision) };
  }

  /**
   * Revoke the lease of the leader whose election value is `value` (a leader
   * found dead). Nothing is revoked unless that value is the leader's right
   * now: a stale observation must not depose the next leader.
   */
  async revokeLeader(value: string): Promise<RevokeOutcome> {
    const leader = await this.leaderKey();
    if (!leader || leader.value !== value) return { revoked: false, why: 'not-leader' };
    if (leader.lease === '0') return { revoked: false, why: 'lease-gone' };
    try {
      await this.client.leaseClient.leaseRevoke({ ID: leader.lease });
    } catch (err) {
      // Not found: it expired (or was revoked by another peer) in the meantime.
      if (err instanceof EtcdLeaseInvalidError) return { revoked: false, why: 'lease-gone', lease: leader.lease };
      throw err;
    }
    return { revoked: true, lease: leader.lease, key: leader.key };
  }

  /**
   * Follow the current leader's value (undefined while there is none), across
   * etcd errors. The leader is re-read (the oldest key, Election.leader()) on
   * every change under the election's prefix. etcd3's ElectionObserver is not
   * used: when several candidates' keys arrive in one watch response while it
   * knows of no leader, it takes the newest of them for the leader, and then
   * watches only that key, so an observer started with its peers could name a
   * follower for good.
   */
  observe(onChange: (value: string | undefined) => void): void {
    let reading = false;
    let again = false;
    let last: string | undefined | null = null;
    // One read at a time, and one more after it if something changed meanwhile: answers apply in order.
    const read = (): void => {
      if (this.closed) return;
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      this.election
        .leader()
        .then(
          (value) => {
            if (!this.closed && value !== last) {
              last = value;
              onChange(value);
            }
          },
          (err: unknown) => {
            this.log.warn({ err }, 'reading the election failed; reading again');
            again = true;
          },
        )
        .finally(() => {
          reading = false;
          if (again && !this.closed) {
            again = false;
            setTimeout(read, 100).unref();
          }
        });
    };
    const watch = (): void => {
      if (this.closed) return;
      this.ns
        .watch()
        .prefix(`election/${this.opts.name}/`)
        .create()
        .then((watcher) => {
          if (this.closed) {
            void watcher.cancel();
            return;
          }
          this.watcher = watcher;
          watcher.on('data', read);
          // After a reconnect the watcher resumes where it was; read anyway, cheaply.
          watcher.on('connected', read);
          watcher.on('error', (err) => {
            this.log.warn({ err }, 'watching the election failed; watching again');
            void watcher.cancel().catch(() => undefined);
            setTimeout(watch, 500).unref();
          });
          read();
        })
        .catch((err: unknown) => {
          this.log.warn({ err }, 'watching the election failed; trying again');
          setTimeout(watch, 500).unref();
        });
    };
    watch();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.watcher?.cancel().catch(() => undefined);
    await Promise.all([...this.ownKeyWatchers].map((w) => w.cancel().catch(() => undefined)));
    this.ownKeyWatchers.clear();
    this.client.close();
  }
}
