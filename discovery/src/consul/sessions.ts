/**
 * Consul sessions on the Store. A session is a Store key; a TTL session's
 * key rides on a Store lease, so it expires by itself when not renewed. Any
 * way a session ends (destroy, TTL) shows up as the key's deletion in one
 * watch, which then applies the session's behaviour to the locks it held:
 * `release` (the default) frees them and starts their lock-delay, `delete`
 * removes the keys. Whoever runs the watch does the clean-up, and it is
 * idempotent, so several daemons on one Store do not fight.
 */
import { randomUUID } from 'node:crypto';
import { CorralError, errorMessage, isCorralError } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import type { Store, Watch, KeyValue } from '../../../contracts/store/types.js';
import { KV_PREFIX, LOCKS_PREFIX, SESSIONS_PREFIX, decodeEntry, encodeEnvelope, sessionKey } from './kv.js';
import { formatSeconds } from './http-util.js';

interface SessionRecord {
  ID: string;
  Name: string;
  Node: string;
  /** Nanoseconds, as Consul reports it. */
  LockDelay: number;
  Behavior: 'release' | 'delete';
  TTL: string;
  Checks: string[];
  NodeChecks: string[];
  ServiceChecks: null;
  /** Store lease carrying a TTL session; 0 without TTL. */
  lease: number;
}

type SessionView = Omit<SessionRecord, 'lease'> & { CreateIndex: number; ModifyIndex: number };

interface CreateSession {
  name: string;
  node: string;
  lockDelayMs: number;
  behavior: 'release' | 'delete';
  ttlMs: number | undefined;
  /** The TTL as the client wrote it ("30s", "1m"), reported back as given, like Consul does. */
  ttlText?: string | undefined;
  checks: string[];
}

const view = (kv: KeyValue): SessionView => {
  const { lease: _lease, ...rest } = JSON.parse(kv.value.toString('utf8')) as SessionRecord;
  void _lease;
  return { ...rest, CreateIndex: kv.createRevision, ModifyIndex: kv.modRevision };
};

export class Sessions {
  private watch: Watch | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Start applying behaviours of sessions that end (from any daemon sharing the Store). */
  start(): void {
    this.watch = this.store.watch({
      prefix: SESSIONS_PREFIX,
      prevKv: true,
      onEvents: (events) => {
        for (const e of events) if (e.type === 'delete' && e.prevKv) void this.invalidated(e.prevKv);
      },
      onError: (err) => {
        if (!isCorralError(err, 'STORE_CLOSED')) this.log.error({ err: errorMessage(err) }, 'session watch ended; restarting it');
        if (!isCorralError(err, 'STORE_CLOSED')) this.start();
      },
    });
  }

  stop(): void {
    this.watch?.cancel();
    this.watch = undefined;
  }

  async create(c: CreateSession): Promise<string> {
    const id = randomUUID();
    const lease = c.ttlMs ? await this.store.grantLease(Math.ceil(c.ttlMs / 1000)) : 0;
    const rec: SessionRecord = {
      ID: id,
      Name: c.name,
      Node: c.node,
      LockDelay: Math.round(c.lockDelayMs * 1e6),
      Behavior: c.behavior,
      TTL: c.ttlMs ? (c.ttlText ?? formatSeconds(c.ttlMs)) : '',
      Checks: c.checks,
      NodeChecks: c.checks,
      ServiceChecks: null,
      lease,
    };
    await this.store.put(sessionKey(id), JSON.stringify(rec), lease ? { lease } : {});
    return id;
  }

  async info(id: string): Promise<SessionView | undefined> {
    const kv = await this.store.get(sessionKey(id));
    return kv ? view(kv) : undefined;
  }

  async list(): Promise<{ sessions: SessionView[]; revision: number }> {
    const r = await this.store.range(SESSIONS_PREFIX);
    return { sessions: r.kvs.map(view), revision: r.revision };
  }

  /** Renew a TTL session; undefined when it no longer exists. */
  async renew(id: string): Promise<SessionView | undefined> {
    const kv = await this.store.get(sessionKey(id));
    if (!kv) return undefined;
    if (kv.lease) {
      try {
        await this.store.keepAlive(kv.lease);
      } catch (err) {
        if (isCorralError(err, 'LEASE_NOT_FOUND')) return undefined;
        throw err;
      }
    }
    return view(kv);
  }

  /** End a session; its locks are handled by the watch like any other invalidation. */
  async destroy(id: string): Promise<void> {
    const kv = await this.store.get(sessionKey(id));
    if (!kv) return;
    if (kv.lease)
      await this.store.revokeLease(kv.lease).catch((err: unknown) => {
        if (!isCorralError(err, 'LEASE_NOT_FOUND')) throw err;
      });
    else await this.store.delete(sessionKey(id));
  }

  private async invalidated(kv: KeyValue): Promise<void> {
    let rec: SessionRecord;
    try {
      rec = JSON.parse(kv.value.toString('utf8')) as SessionRecord;
    } catch {
      return;
    }
    try {
      const locks = await this.store.range(`${LOCKS_PREFIX}${rec.ID}/`);
      for (const lk of locks.kvs) await this.releaseOne(rec, lk.key.slice(`${LOCKS_PREFIX}${rec.ID}/`.length));
      await this.store.deletePrefix(`${LOCKS_PREFIX}${rec.ID}/`);
    } catch (err) {
      if (!isCorralError(err, 'STORE_CLOSED')) this.log.error({ err: errorMessage(err), session: rec.ID }, 'could not release the locks of an ended session');
    }
  }

  private async releaseOne(rec: SessionRecord, key: string): Promise<void> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const kv = await this.store.get(KV_PREFIX + key);
      if (!kv) return;
      const e = decodeEntry(kv);
      if (e.header.s !== rec.ID) return;
      const guard = [{ key: kv.key, target: 'modRevision' as const, op: '=' as const, value: kv.modRevision }];
      const op =
        rec.Behavior === 'delete'
          ? { type: 'delete' as const, key: kv.key }
          : (() => {
              const header = { ...e.header };
              delete header.s;
              if (rec.LockDelay > 0) header.d = Date.now() + rec.LockDelay / 1e6;
              return { type: 'put' as const, key: kv.key, value: encodeEnvelope(header, e.value) };
            })();
      const r = await this.store.txn({ compare: guard, success: [op] });
      if (r.succeeded) return;
    }
    throw new CorralError('CONFLICT', `key ${key} kept changing while its lock was released`);
  }
}
