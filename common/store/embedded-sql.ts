/**
 * SQLite schema and prepared statements of the embedded store. Values are
 * always bound as parameters; the only SQL assembled at run time picks between
 * fixed fragments (bounded/unbounded prefix range, keys-only), once, here.
 *
 * Small columns come before the value blob so that metadata reads never walk
 * a large value's overflow pages.
 */
import Database from 'better-sqlite3';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { prefixEnd } from '../../contracts/store/check.js';
import type { KeyValue } from '../../contracts/store/types.js';

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_lease ON kv(lease) WHERE lease <> 0;
-- Every change ever made (until compacted): rowid order is commit order.
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY,
  rev INTEGER NOT NULL,
  type INTEGER NOT NULL, -- 0 put, 1 delete
  key TEXT NOT NULL,
  create_rev INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  value BLOB
);
CREATE INDEX IF NOT EXISTS history_rev ON history(rev);
CREATE INDEX IF NOT EXISTS history_key ON history(key, rev);
-- AUTOINCREMENT: a lease id is never reused, even after the newest lease is revoked.
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl INTEGER NOT NULL);
`;

export interface KvRow {
  key: string;
  create_rev: number;
  mod_rev: number;
  version: number;
  lease: number;
  value: Buffer;
}

export interface HistRow {
  rev: number;
  type: number;
  key: string;
  create_rev: number;
  version: number;
  lease: number;
  value: Buffer | null;
}

export const EMPTY = Buffer.alloc(0);

export const toKv = (r: KvRow): KeyValue => ({
  key: r.key,
  value: r.value ?? EMPTY,
  createRevision: r.create_rev,
  modRevision: r.mod_rev,
  version: r.version,
  lease: r.lease,
});

export const histToKv = (r: HistRow): KeyValue => ({
  key: r.key,
  value: r.value ?? EMPTY,
  createRevision: r.create_rev,
  modRevision: r.rev,
  version: r.version,
  lease: r.lease,
});

/** SQLite failures reach callers as UNAVAILABLE (disk full, I/O error…); CorralErrors pass through. */
export function wrapSqlite(err: unknown, what: string): Error {
  if (err instanceof CorralError) return err;
  const code = (err as { code?: unknown }).code;
  return new CorralError('UNAVAILABLE', `embedded store ${what} failed: ${errorMessage(err)}`, typeof code === 'string' ? { sqlite: code } : undefined, {
    cause: err,
  });
}

/**
 * Opens a SQLite file for this process alone, in WAL mode. The exclusive
 * locking mode must precede the switch to WAL: the WAL index then lives in
 * heap memory and the file lock is never released, so a second opener fails
 * with SQLITE_BUSY at its first write instead of sharing the file.
 */
export function openExclusiveWal(path: string, sync: 'full' | 'normal'): Database.Database {
  const db = new Database(path, { timeout: 250 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`could not enable WAL (journal_mode is ${String(mode)})`);
    db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Opens the file exclusively in WAL mode and creates the schema; a second opener gets UNAVAILABLE, not a shared file. */
export function openSchema(path: string, sync: 'full' | 'normal'): Database.Database {
  if (sync !== 'full' && sync !== 'normal') throw new CorralError('INVALID_ARGUMENT', `sync must be 'full' or 'normal', got ${String(sync)}`);
  let db: Database.Database | undefined;
  try {
    db = openExclusiveWal(path, sync);
    const init = db.transaction(() => {
      db!.exec(SCHEMA);
      const version = db!.prepare(`SELECT value FROM meta WHERE name = 'schema'`).pluck().get() as number | undefined;
      if (version !== undefined && version > SCHEMA_VERSION) {
        throw new CorralError('UNAVAILABLE', `store database ${path} has schema ${version}, newer than this corral understands (${SCHEMA_VERSION})`);
      }
      db!.prepare(`INSERT INTO meta(name, value) VALUES ('schema', ?) ON CONFLICT(name) DO NOTHING`).run(SCHEMA_VERSION);
      // A real write at open takes the exclusive lock now rather than at the first put.
      db!.prepare(`INSERT INTO meta(name, value) VALUES ('opens', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1`).run();
    });
    init.immediate();
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof CorralError) throw err;
    const code = (err as { code?: unknown }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
      throw new CorralError('UNAVAILABLE', `store database ${path} is already open in another process (or another store in this one); only one may use it at a time`, { path }, { cause: err });
    }
    throw new CorralError('UNAVAILABLE', `cannot open store database ${path}: ${errorMessage(err)}`, { path }, { cause: err });
  }
}

const KV_COLS = 'key, create_rev, mod_rev, version, lease';
const HIST_COLS = 'rev, type, key, create_rev, version, lease, value';

export class Statements {
  readonly getKv: Database.Statement;
  /** Metadata only, for compares. */
  readonly getMeta3: Database.Statement;
  readonly upsertKv: Database.Statement;
  readonly delKv: Database.Statement;
  readonly insHist: Database.Statement;
  readonly histPrev: Database.Statement;
  readonly setMeta: Database.Statement;
  readonly insLease: Database.Statement;
  readonly delLease: Database.Statement;
  readonly allLeases: Database.Statement;
  readonly keysOfLease: Database.Statement;
  readonly deleteByLease: Database.Statement;
  readonly compact: Database.Statement;
  readonly consistency: Database.Statement;
  private readonly metaStmt: Database.Statement;
  private readonly rangeStmts: Record<'bounded' | 'open', Record<'full' | 'keys', Database.Statement>>;
  private readonly delRangeStmts: Record<'bounded' | 'open', Database.Statement>;
  private readonly histStmts: Record<'bounded' | 'open', Database.Statement>;

  constructor(db: Database.Database) {
    this.getKv = db.prepare(`SELECT ${KV_COLS}, value FROM kv WHERE key = ?`);
    this.getMeta3 = db.prepare(`SELECT create_rev, mod_rev, version FROM kv WHERE key = ?`);
    this.upsertKv = db.prepare(
      `INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, version = excluded.version, lease = excluded.lease`,
    );
    this.delKv = db.prepare(`DELETE FROM kv WHERE key = ? RETURNING ${KV_COLS}, value`);
    this.insHist = db.prepare(`INSERT INTO history (rev, type, key, value, create_rev, version, lease) VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.histPrev = db.prepare(`SELECT ${HIST_COLS} FROM history WHERE key = ? AND rev < ? ORDER BY rev DESC LIMIT 1`);
    this.metaStmt = db.prepare(`SELECT value FROM meta WHERE name = ?`).pluck();
    this.setMeta = db.prepare(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`);
    this.insLease = db.prepare(`INSERT INTO leases (ttl) VALUES (?) RETURNING id`);
    this.delLease = db.prepare(`DELETE FROM leases WHERE id = ?`);
    this.allLeases = db.prepare(`SELECT id, ttl FROM leases`);
    // The literal "lease <> 0" lets SQLite use the partial index.
    this.keysOfLease = db.prepare(`SELECT key FROM kv WHERE lease = ? AND lease <> 0 ORDER BY key`);
    this.deleteByLease = db.prepare(`DELETE FROM kv WHERE lease = ? AND lease <> 0 RETURNING ${KV_COLS}, value`);
    // Drop history below `to`, except each key's newest put below `to` (kept, as etcd does, so prevKv
    // stays available). Only keys changed since the previous compaction can have anything to drop.
    this.compact = db.prepare(
      `DELETE FROM history WHERE rev < :to
         AND key IN (SELECT key FROM history WHERE rev >= :from AND rev < :to)
         AND (type = 1 OR EXISTS (SELECT 1 FROM history h2 WHERE h2.key = history.key AND h2.rev > history.rev AND h2.rev < :to))`,
    );
    this.consistency = db.prepare(
      `SELECT
         (SELECT count(*) FROM kv WHERE mod_rev > @rev OR create_rev > mod_rev OR version < 1) AS kv_rows_out_of_range,
         (SELECT count(*) FROM kv WHERE NOT EXISTS
            (SELECT 1 FROM history h WHERE h.key = kv.key AND h.rev = kv.mod_rev AND h.type = 0)) AS kv_rows_without_history,
         (SELECT count(*) FROM history WHERE rev > @rev) AS history_after_revision,
         (SELECT count(*) FROM kv WHERE lease <> 0 AND lease NOT IN (SELECT id FROM leases)) AS keys_with_missing_lease`,
    );
    const where = { bounded: 'key >= ? AND key < ?', open: 'key >= ?' } as const;
    this.rangeStmts = {
      bounded: {
        full: db.prepare(`SELECT ${KV_COLS}, value FROM kv WHERE ${where.bounded} ORDER BY key LIMIT ?`),
        keys: db.prepare(`SELECT ${KV_COLS}, X'' AS value FROM kv WHERE ${where.bounded} ORDER BY key LIMIT ?`),
      },
      open: {
        full: db.prepare(`SELECT ${KV_COLS}, value FROM kv WHERE ${where.open} ORDER BY key LIMIT ?`),
        keys: db.prepare(`SELECT ${KV_COLS}, X'' AS value FROM kv WHERE ${where.open} ORDER BY key LIMIT ?`),
      },
    };
    this.delRangeStmts = {
      bounded: db.prepare(`DELETE FROM kv WHERE ${where.bounded} RETURNING ${KV_COLS}, value`),
      open: db.prepare(`DELETE FROM kv WHERE ${where.open} RETURNING ${KV_COLS}, value`),
    };
    this.histStmts = {
      bounded: db.prepare(`SELECT ${HIST_COLS} FROM history WHERE rev >= ? AND rev <= ? AND ${where.bounded} ORDER BY rev, id`),
      open: db.prepare(`SELECT ${HIST_COLS} FROM history WHERE rev >= ? AND rev <= ? AND ${where.open} ORDER BY rev, id`),
    };
  }

  getMeta(name: string): number | undefined {
    return this.metaStmt.get(name) as number | undefined;
  }

  /** `limit` -1 means no limit (SQLite's convention). */
  range(prefix: string, limit: number, keysOnly: boolean): KvRow[] {
    const end = prefixEnd(prefix);
    const kind = keysOnly ? 'keys' : 'full';
    return (end === undefined ? this.rangeStmts.open[kind].all(prefix, limit) : this.rangeStmts.bounded[kind].all(prefix, end, limit)) as KvRow[];
  }

  deleteRange(prefix: string): KvRow[] {
    const end = prefixEnd(prefix);
    return (end === undefined ? this.delRangeStmts.open.all(prefix) : this.delRangeStmts.bounded.all(prefix, end)) as KvRow[];
  }

  history(prefix: string, from: number, to: number): HistRow[] {
    const end = prefixEnd(prefix);
    return (end === undefined ? this.histStmts.open.all(from, to, prefix) : this.histStmts.bounded.all(from, to, prefix, end)) as HistRow[];
  }
}
