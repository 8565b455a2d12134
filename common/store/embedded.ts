/**
 * The default Store: etcd v3 semantics on a local SQLite file (better-sqlite3,
 * WAL). Every write transaction runs inside one SQLite transaction, so a crash
 * leaves either all or none of a revision on disk; with sync 'full' an
 * acknowledged write survives power loss, with 'normal' it survives a process
 * crash. The file is held with an exclusive lock: one process per database.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { logger, type Logger } from '../log.js';
import * as check from '../../contracts/store/check.js';
import type { CheckedCompare, CheckedOp, CheckedTxn } from '../../contracts/store/check.js';
import { EMPTY, histToKv, openSchema, Statements, toKv, wrapSqlite, type HistRow, type KvRow } from './embedded-sql.js';
import type { KeyValue, OpResult, PutOptions, RangeOptions, Store, Txn, TxnResult, Value, Watch, WatchEvent, WatchOptions } from '../../contracts/store/types.js';
import { WatchHub, type Batch } from './watch-hub.js';

export interface EmbeddedStoreOptions {
  path: string;
  /** 'full' (default): fsync the WAL on every commit. 'normal': survives process crashes, may lose the last commits on power loss. */
  sync?: 'full' | 'normal';
  /** Revisions of history kept for watches; older ones are compacted automatically. 0 disables automatic compaction. */
  historyRevisions?: number;
  /** How often expired leases are looked for. */
  leaseCheckIntervalMs?: number;
}

interface WriteCtx {
  rev: number;
  events: WatchEvent[];
}

interface Outcome {
  succeeded: boolean;
  results: OpResult[];
  events: WatchEvent[];
  rev: number;
}

interface LeaseState {
  ttl: number;
  expiresAt: number;
}

export class EmbeddedStore implements Store {
  readonly backend = 'embedded';
  readonly path: string;
  private readonly db: Database.Database;
  private readonly sql: Statements;
  private readonly log: Logger;
  private readonly hub: WatchHub;
  private readonly historyRevisions: number;
  private readonly leases = new Map<number, LeaseState>();
  private readonly leaseTimer: NodeJS.Timeout;
  private readonly runTxn: (t: CheckedTxn) => Outcome;
  private readonly revokeTxn: (id: number) => Outcome;
  private revision: number;
  private compactRev: number;
  private compactScheduled = false;
  private closed = false;

  static async open(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    return new EmbeddedStore(opts);
  }

  constructor(opts: EmbeddedStoreOptions) {
    if (typeof opts?.path !== 'string' || opts.path === '') throw new CorralError('INVALID_ARGUMENT', 'embedded store needs a path');
    const historyRevisions = opts.historyRevisions ?? 10_000;
    if (!Number.isSafeInteger(historyRevisions) || historyRevisions < 0) {
      throw new CorralError('INVALID_ARGUMENT', 'historyRevisions must be a non-negative integer');
    }
    const interval = opts.leaseCheckIntervalMs ?? 500;
    if (!Number.isFinite(interval) || interval < 1) throw new CorralError('INVALID_ARGUMENT', 'leaseCheckIntervalMs must be >= 1');
    this.path = resolve(opts.path);
    this.historyRevisions = historyRevisions;
    this.log = logger('store').child({ backend: 'embedded', path: this.path });
    mkdirSync(dirname(this.path), { recursive: true });
    this.db = openSchema(this.path, opts.sync ?? 'full');
    try {
      this.sql = new Statements(this.db);
      this.revision = this.sql.getMeta('revision') ?? 1;
      this.compactRev = this.sql.getMeta('compact') ?? 0;
      const now = performance.now();
      // Lease deadlines are not persisted: after a restart every lease gets its full TTL again, as on an etcd leader change.
      for (const { id, ttl } of this.sql.allLeases.all() as { id: number; ttl: number }[]) {
        this.leases.set(id, { ttl, expiresAt: now + ttl * 1000 });
      }
    } catch (err) {
      this.db.close();
      throw wrapSqlite(err, 'open');
    }
    this.runTxn = this.db.transaction((t: CheckedTxn) => this.apply(t));
    this.revokeTxn = this.db.transaction((id: number) => this.revokeInTxn(id));
    this.hub = new WatchHub(
      {
        revision: () => this.revision,
        compactRevision: () => this.compactRev,
        read: (prefix, from, to, withPrev) => this.readHistory(prefix, from, to, withPrev),
      },
      this.log,
    );
    this.leaseTimer = setInterval(() => this.expireLeases(), interval);
    this.leaseTimer.unref();
    this.log.info({ revision: this.revision, leases: this.leases.size }, 'embedded store opened');
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.ensureOpen();
    const row = this.sql.getKv.get(check.checkKey(key)) as KvRow | undefined;
    return row && toKv(row);
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<{ kvs: KeyValue[]; revision: number; more: boolean }> {
    this.ensureOpen();
    const p = check.checkPrefix(prefix);
    const limit = check.checkLimit(opts.limit);
    return { ...this.readRange(p, limit, opts.keysOnly === true), revision: this.revision };
  }

  async put(key: string, value: Value, opts: PutOptions = {}): Promise<{ revision: number; prev?: KeyValue }> {
    this.ensureOpen();
    const k = check.checkKey(key);
    const op: CheckedOp = { type: 'put', key: k, value: check.toValue(value), lease: opts.lease === undefined ? 0 : check.checkLeaseId(opts.lease, true) };
    const out = this.execute({ compare: this.casCompare(k, opts.ifModRevision), success: [op], failure: [] });
    if (!out.succeeded) throw this.conflict(k, opts.ifModRevision!);
    const res = out.results[0] as Extract<OpResult, { type: 'put' }>;
    return res.prev ? { revision: out.rev, prev: res.prev } : { revision: out.rev };
  }

  async delete(key: string, opts: { ifModRevision?: number } = {}): Promise<{ revision: number; deleted: number }> {
    this.ensureOpen();
    const k = check.checkKey(key);
    const out = this.execute({ compare: this.casCompare(k, opts.ifModRevision), success: [{ type: 'delete', key: k }], failure: [] });
    if (!out.succeeded) throw this.conflict(k, opts.ifModRevision!);
    return { revision: out.rev, deleted: (out.results[0] as { deleted: number }).deleted };
  }

  async deletePrefix(prefix: string): Promise<{ revision: number; deleted: number }> {
    this.ensureOpen();
    const out = this.execute({ compare: [], success: [{ type: 'deletePrefix', prefix: check.checkPrefix(prefix) }], failure: [] });
    return { revision: out.rev, deleted: (out.results[0] as { deleted: number }).deleted };
  }

  async txn(txn: Txn): Promise<TxnResult> {
    this.ensureOpen();
    const out = this.execute(check.checkTxn(txn));
    return { succeeded: out.succeeded, revision: out.rev, results: out.results };
  }

  watch(opts: WatchOptions): Watch {
    this.ensureOpen();
    const { prefix, from } = check.checkWatch(opts);
    return this.hub.add(prefix, from === 0 ? this.revision + 1 : from, opts);
  }

  async grantLease(ttlSeconds: number): Promise<number> {
    this.ensureOpen();
    const ttl = check.checkTtl(ttlSeconds);
    const { id } = this.sql.insLease.get(ttl) as { id: number };
    this.leases.set(id, { ttl, expiresAt: performance.now() + ttl * 1000 });
    return id;
  }

  async keepAlive(leaseId: number): Promise<number> {
    this.ensureOpen();
    const lease = this.liveLease(check.checkLeaseId(leaseId));
    if (!lease) throw leaseNotFound(leaseId);
    lease.expiresAt = performance.now() + lease.ttl * 1000;
    return lease.ttl;
  }

  async revokeLease(leaseId: number): Promise<void> {
    this.ensureOpen();
    const id = check.checkLeaseId(leaseId);
    if (!this.leases.has(id)) throw leaseNotFound(id);
    this.removeLease(id);
  }

  async leaseInfo(leaseId: number): Promise<{ ttl: number; grantedTtl: number; keys: string[] } | undefined> {
    this.ensureOpen();
    const id = check.checkLeaseId(leaseId);
    const lease = this.liveLease(id);
    if (!lease) return undefined;
    const keys = (this.sql.keysOfLease.all(id) as { key: string }[]).map((r) => r.key);
    const ttl = Math.max(0, Math.ceil((lease.expiresAt - performance.now()) / 1000));
    return { ttl, grantedTtl: lease.ttl, keys };
  }

  async currentRevision(): Promise<number> {
    this.ensureOpen();
    return this.revision;
  }

  async compact(revision: number): Promise<void> {
    this.ensureOpen();
    const rev = check.checkRevision(revision);
    if (rev > this.revision) throw new CorralError('INVALID_ARGUMENT', `cannot compact at future revision ${rev} (current ${this.revision})`);
    this.compactTo(rev);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.leaseTimer);
    try {
      await this.hub.closeAll(check.closedError());
    } finally {
      this.db.close();
      this.log.info('embedded store closed');
    }
  }

  /**
   * Structural checks beyond SQLite's own: every live key has its history row,
   * nothing is newer than the store revision, no key points at a missing lease.
   * Returns the problems found (empty when consistent).
   */
  checkIntegrity(): string[] {
    this.ensureOpen();
    const problems: string[] = [];
    const ic = this.db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
    for (const r of ic) if (r.integrity_check !== 'ok') problems.push(`sqlite: ${r.integrity_check}`);
    const c = this.sql.consistency.get({ rev: this.revision }) as Record<string, number>;
    for (const [name, n] of Object.entries(c)) if (n > 0) problems.push(`${name}: ${n}`);
    return problems;
  }

  // ---- internals ----

  private ensureOpen(): void {
    if (this.closed) throw check.closedError();
  }

  private casCompare(key: string, ifModRevision: number | undefined): CheckedCompare[] {
    if (ifModRevision === undefined) return [];
    return [{ key, target: 'modRevision', op: '=', value: check.checkRevision(ifModRevision, 'ifModRevision') }];
  }

  private conflict(key: string, expected: number): CorralError {
    const row = this.sql.getMeta3.get(key) as { mod_rev: number } | undefined;
    return check.conflictError(key, expected, row?.mod_rev ?? 0);
  }

  /** Runs a checked txn in one SQLite transaction and, once committed, publishes its revision. */
  private execute(t: CheckedTxn): Outcome {
    let out: Outcome;
    try {
      out = this.runTxn(t);
    } catch (err) {
      throw wrapSqlite(err, 'write');
    }
    if (out.events.length > 0) {
      this.revision = out.rev;
      this.hub.publish(out.rev, out.events);
      this.maybeAutoCompact();
    } else {
      out.rev = this.revision;
    }
    return out;
  }

  private apply(t: CheckedTxn): Outcome {
    const succeeded = t.compare.every((c) => this.evalCompare(c));
    const ops = succeeded ? t.success : t.failure;
    for (const op of ops) {
      if (op.type === 'put' && op.lease !== 0 && !this.liveLease(op.lease, false)) throw leaseNotFound(op.lease);
    }
    const w: WriteCtx = { rev: this.revision + 1, events: [] };
    const results = ops.map((op) => this.applyOp(op, w));
    if (w.events.length > 0) this.sql.setMeta.run('revision', w.rev);
    return { succeeded, results, events: w.events, rev: w.rev };
  }

  private evalCompare(c: CheckedCompare): boolean {
    if (c.target === 'value') {
      const row = this.sql.getKv.get(c.key) as KvRow | undefined;
      // As in etcd: a value compare against a missing key is false whatever the op.
      if (!row) return false;
      const eq = row.value.equals(c.value);
      return c.op === '=' ? eq : !eq;
    }
    const row = this.sql.getMeta3.get(c.key) as { create_rev: number; mod_rev: number; version: number } | undefined;
    const actual = !row ? 0 : c.target === 'modRevision' ? row.mod_rev : c.target === 'createRevision' ? row.create_rev : row.version;
    switch (c.op) {
      case '=':
        return actual === c.value;
      case '!=':
        return actual !== c.value;
      case '<':
        return actual < c.value;
      case '>':
        return actual > c.value;
    }
  }

  private applyOp(op: CheckedOp, w: WriteCtx): OpResult {
    switch (op.type) {
      case 'put': {
        const prevRow = this.sql.getKv.get(op.key) as KvRow | undefined;
        const kv: KeyValue = {
          key: op.key,
          value: op.value,
          createRevision: prevRow ? prevRow.create_rev : w.rev,
          modRevision: w.rev,
          version: (prevRow?.version ?? 0) + 1,
          lease: op.lease,
        };
        this.sql.upsertKv.run(kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease);
        this.sql.insHist.run(w.rev, 0, kv.key, kv.value, kv.createRevision, kv.version, kv.lease);
        const prev = prevRow && toKv(prevRow);
        w.events.push(prev ? { type: 'put', kv, prevKv: prev } : { type: 'put', kv });
        return prev ? { type: 'put', prev } : { type: 'put' };
      }
      case 'delete': {
        const row = this.sql.delKv.get(op.key) as KvRow | undefined;
        if (row) this.recordDelete(row, w);
        return { type: 'delete', deleted: row ? 1 : 0 };
      }
      case 'deletePrefix': {
        const rows = this.sql.deleteRange(op.prefix);
        rows.sort((a, b) => (a.key < b.key ? -1 : 1));
        for (const row of rows) this.recordDelete(row, w);
        return { type: 'deletePrefix', deleted: rows.length };
      }
      case 'get': {
        const row = this.sql.getKv.get(op.key) as KvRow | undefined;
        return row ? { type: 'get', kv: toKv(row) } : { type: 'get' };
      }
      case 'range':
        return { type: 'range', ...this.readRange(op.prefix, op.limit, false) };
    }
  }

  private recordDelete(row: KvRow, w: WriteCtx): void {
    this.sql.insHist.run(w.rev, 1, row.key, null, 0, 0, 0);
    w.events.push({
      type: 'delete',
      kv: { key: row.key, value: EMPTY, createRevision: 0, modRevision: w.rev, version: 0, lease: 0 },
      prevKv: toKv(row),
    });
  }

  private readRange(prefix: string, limit: number, keysOnly: boolean): { kvs: KeyValue[]; more: boolean } {
    const rows = this.sql.range(prefix, limit === 0 ? -1 : limit + 1, keysOnly);
    const more = limit > 0 && rows.length > limit;
    if (more) rows.length = limit;
    return { kvs: rows.map(toKv), more };
  }

  private readHistory(prefix: string, from: number, to: number, withPrev: boolean): Batch[] {
    const batches: Batch[] = [];
    let current: Batch | undefined;
    for (const r of this.sql.history(prefix, from, to)) {
      if (!current || current.revision !== r.rev) {
        current = { revision: r.rev, events: [] };
        batches.push(current);
      }
      const kv: KeyValue = r.type === 0 ? histToKv(r) : { key: r.key, value: EMPTY, createRevision: 0, modRevision: r.rev, version: 0, lease: 0 };
      const ev: WatchEvent = { type: r.type === 0 ? 'put' : 'delete', kv };
      if (withPrev) {
        const prev = this.sql.histPrev.get(r.key, r.rev) as HistRow | undefined;
        if (prev && prev.type === 0) ev.prevKv = histToKv(prev);
      }
      current.events.push(ev);
    }
    return batches;
  }

  /** The lease if it exists and has not run out; an expired one is reaped on the spot (unless inside a txn). */
  private liveLease(id: number, reap = true): LeaseState | undefined {
    const lease = this.leases.get(id);
    if (!lease) return undefined;
    if (performance.now() < lease.expiresAt) return lease;
    if (reap) this.removeLease(id);
    return undefined;
  }

  private removeLease(id: number): void {
    this.leases.delete(id);
    let out: Outcome;
    try {
      out = this.revokeTxn(id);
    } catch (err) {
      throw wrapSqlite(err, 'lease revoke');
    }
    if (out.events.length > 0) {
      this.revision = out.rev;
      this.hub.publish(out.rev, out.events);
      this.maybeAutoCompact();
    }
  }

  /** One revision deletes every attached key, so watchers see an expiry atomically. */
  private revokeInTxn(id: number): Outcome {
    const w: WriteCtx = { rev: this.revision + 1, events: [] };
    const rows = this.sql.deleteByLease.all(id) as KvRow[];
    rows.sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const row of rows) this.recordDelete(row, w);
    this.sql.delLease.run(id);
    if (w.events.length > 0) this.sql.setMeta.run('revision', w.rev);
    return { succeeded: true, results: [], events: w.events, rev: w.rev };
  }

  private expireLeases(): void {
    if (this.closed) return;
    const now = performance.now();
    for (const [id, lease] of this.leases) {
      if (now < lease.expiresAt) continue;
      try {
        this.removeLease(id);
        this.log.debug({ lease: id }, 'lease expired');
      } catch (err) {
        this.log.error({ lease: id, err: errorMessage(err) }, 'failed to expire lease');
      }
    }
  }

  private maybeAutoCompact(): void {
    const keep = this.historyRevisions;
    if (keep === 0 || this.compactScheduled) return;
    // Compact in steps of ~10% so the cost is amortised over many writes.
    const slack = Math.max(1, Math.min(1000, Math.floor(keep / 10)));
    if (this.revision - Math.max(this.compactRev, 1) < keep + slack) return;
    this.compactScheduled = true;
    setImmediate(() => {
      this.compactScheduled = false;
      if (this.closed) return;
      try {
        this.compactTo(this.revision - keep + 1);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'automatic compaction failed');
      }
    });
  }

  private compactTo(rev: number): void {
    if (rev <= this.compactRev) return;
    const from = this.compactRev;
    try {
      this.db.transaction(() => {
        this.sql.compact.run({ from, to: rev });
        this.sql.setMeta.run('compact', rev);
      })();
    } catch (err) {
      throw wrapSqlite(err, 'compaction');
    }
    this.compactRev = rev;
    this.log.debug({ compactRevision: rev }, 'history compacted');
  }
}

function leaseNotFound(id: number): CorralError {
  return new CorralError('LEASE_NOT_FOUND', `lease ${id} not found (expired or revoked)`, { lease: id });
}
