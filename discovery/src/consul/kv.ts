/**
 * Consul's key/value semantics on the cluster Store. A Consul entry is one
 * Store key whose value is an envelope: a small JSON header (flags, lock
 * session, lock index, lock-delay deadline) followed by the raw bytes, so
 * values are stored as given, without base64. CreateIndex/ModifyIndex are
 * the Store's create/mod revisions, so X-Consul-Index is a Store revision.
 *
 * Every conditional write (cas, acquire, release) is one Store transaction
 * guarded by the key's modRevision, retried when another writer got there first.
 */
import { CorralError, isCorralError } from '../../../contracts/errors.js';
import type { KeyValue, Op, Compare, Store } from '../../../contracts/store/types.js';

export const KV_PREFIX = 'corral/discovery/kv/';
export const LOCKS_PREFIX = 'corral/discovery/locks/';
export const SESSIONS_PREFIX = 'corral/discovery/sessions/';
/** Consul's default limit on one value. */
const MAX_VALUE_BYTES = 512 * 1024;
const MAX_RETRIES = 16;

export interface Header {
  /** Flags: an opaque uint64 in Consul; JS numbers keep 53 bits exactly. */
  f: number;
  /** Session holding the lock, if any. */
  s?: string;
  /** Times the lock was acquired. */
  l: number;
  /** Lock-delay deadline (ms since the epoch) after the holder's session was invalidated. */
  d?: number;
}

export interface Entry {
  key: string;
  header: Header;
  value: Buffer;
  createIndex: number;
  modifyIndex: number;
}

/** The JSON shape of an entry in Consul's API. */
export interface ConsulEntry {
  LockIndex: number;
  Key: string;
  Flags: number;
  Value: string | null;
  Session?: string;
  CreateIndex: number;
  ModifyIndex: number;
}

export function encodeEnvelope(header: Header, value: Buffer): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const out = Buffer.allocUnsafe(4 + h.length + value.length);
  out.writeUInt32BE(h.length, 0);
  h.copy(out, 4);
  value.copy(out, 4 + h.length);
  return out;
}

export function decodeEntry(kv: KeyValue): Entry {
  const buf = kv.value;
  const hlen = buf.length >= 4 ? buf.readUInt32BE(0) : 0;
  let header: Header = { f: 0, l: 0 };
  if (hlen > 0 && 4 + hlen <= buf.length) header = JSON.parse(buf.toString('utf8', 4, 4 + hlen)) as Header;
  return { key: kv.key.slice(KV_PREFIX.length), header, value: buf.subarray(4 + hlen), createIndex: kv.createRevision, modifyIndex: kv.modRevision };
}

export function toConsul(e: Entry): ConsulEntry {
  return {
    LockIndex: e.header.l,
    Key: e.key,
    Flags: e.header.f,
    Value: e.value.length ? e.value.toString('base64') : null,
    ...(e.header.s ? { Session: e.header.s } : {}),
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  };
}

export function checkKey(key: string): void {
  if (key.length === 0) throw new CorralError('INVALID_ARGUMENT', 'missing key name');
  if (Buffer.byteLength(key) > 2048) throw new CorralError('INVALID_ARGUMENT', 'key is longer than 2048 bytes');
}

export function checkValue(value: Buffer): void {
  if (value.length > MAX_VALUE_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `value of ${value.length} bytes exceeds the limit of ${MAX_VALUE_BYTES} bytes`);
}

interface PutOptions {
  flags?: number | undefined;
  cas?: number | undefined;
  acquire?: string | undefined;
  release?: string | undefined;
}

/** What a write wants to do to one key, decided from what is there now. */
interface Plan {
  ok: boolean;
  /** The write would leave the entry as it is: nothing to run. */
  unchanged?: boolean;
  compares: Compare[];
  ops: Op[];
}

const lockKey = (session: string, key: string): string => `${LOCKS_PREFIX}${session}/${key}`;
export const sessionKey = (id: string): string => `${SESSIONS_PREFIX}${id}`;

/**
 * The Store operations for a Consul PUT on `key` given its current entry
 * (undefined when absent). Pure: the caller runs the plan in a transaction.
 */
export function planPut(key: string, current: Entry | undefined, currentRev: number, value: Buffer, opts: PutOptions, now: number): Plan {
  const storeKey = KV_PREFIX + key;
  const guard: Compare = { key: storeKey, target: 'modRevision', op: '=', value: currentRev };
  const fail: Plan = { ok: false, compares: [], ops: [] };
  if (opts.cas !== undefined && opts.cas !== (current?.modifyIndex ?? 0)) return fail;
  // Every Consul PUT writes the whole entry: without ?flags the flags become 0 (agent/kvs_endpoint.go).
  const header: Header = { f: opts.flags ?? 0, l: current?.header.l ?? 0 };
  if (current?.header.s) header.s = current.header.s;
  if (current?.header.d && current.header.d > now) header.d = current.header.d;
  const ops: Op[] = [];
  const compares: Compare[] = [guard];
  if (opts.acquire !== undefined) {
    if (current?.header.s && current.header.s !== opts.acquire) return fail;
    if (header.d && header.d > now && current?.header.s !== opts.acquire) return fail;
    if (current?.header.s !== opts.acquire) header.l++;
    header.s = opts.acquire;
    delete header.d;
    // The session must still exist when the lock is taken.
    compares.push({ key: sessionKey(opts.acquire), target: 'createRevision', op: '>', value: 0 });
    ops.push({ type: 'put', key: lockKey(opts.acquire, key), value: '' });
  } else if (opts.release !== undefined) {
    if (current?.header.s !== opts.release) return fail;
    delete header.s;
    ops.push({ type: 'delete', key: lockKey(opts.release, key) });
  }
  // Consul skips a write that changes nothing: the ModifyIndex stays and blocking readers sleep on.
  if (current && sameEntry(current, header, value)) return { ok: true, unchanged: true, compares, ops: [] };
  ops.unshift({ type: 'put', key: storeKey, value: encodeEnvelope(header, value) });
  return { ok: true, compares, ops };
}

function sameEntry(current: Entry, header: Header, value: Buffer): boolean {
  const h = current.header;
  return h.f === header.f && h.l === header.l && (h.s ?? '') === (header.s ?? '') && (h.d ?? 0) === (header.d ?? 0) && current.value.equals(value);
}

export class Kv {
  constructor(readonly store: Store) {}

  async get(key: string): Promise<{ entry: Entry | undefined; revision: number }> {
    const kv = await this.store.get(KV_PREFIX + key);
    if (kv) return { entry: decodeEntry(kv), revision: kv.modRevision };
    return { entry: undefined, revision: await this.store.currentRevision() };
  }

  async list(prefix: string): Promise<{ entries: Entry[]; revision: number }> {
    const r = await this.store.range(KV_PREFIX + prefix);
    return { entries: r.kvs.map(decodeEntry), revision: r.revision };
  }

  async keys(prefix: string, separator: string | undefined): Promise<{ keys: string[]; revision: number }> {
    const r = await this.store.range(KV_PREFIX + prefix, { keysOnly: true });
    const out = new Set<string>();
    for (const kv of r.kvs) {
      const key = kv.key.slice(KV_PREFIX.length);
      const cut = separator ? key.indexOf(separator, prefix.length) : -1;
      out.add(cut >= 0 ? key.slice(0, cut + separator!.length) : key);
    }
    return { keys: [...out], revision: r.revision };
  }

  /** Consul PUT: true when written, false when a cas/acquire/release condition did not hold. */
  async put(key: string, value: Buffer, opts: PutOptions): Promise<boolean> {
    checkKey(key);
    checkValue(value);
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const kv = await this.store.get(KV_PREFIX + key);
      const current = kv ? decodeEntry(kv) : undefined;
      const plan = planPut(key, current, kv?.modRevision ?? 0, value, opts, Date.now());
      if (!plan.ok) return false;
      if (plan.unchanged) {
        if (opts.acquire !== undefined && !(await this.store.get(sessionKey(opts.acquire)))) throw new CorralError('INVALID_ARGUMENT', `invalid session "${opts.acquire}"`);
        return true;
      }
      const r = await this.store.txn({ compare: plan.compares, success: plan.ops });
      if (r.succeeded) return true;
      // A vanished session is a definite no; a changed key is worth another look.
      if (opts.acquire !== undefined && !(await this.store.get(sessionKey(opts.acquire)))) throw new CorralError('INVALID_ARGUMENT', `invalid session "${opts.acquire}"`);
    }
    throw new CorralError('CONFLICT', `key "${key}" kept changing; try again`);
  }

  /**
   * Consul DELETE: with cas, only if the key's ModifyIndex matches. As in
   * Consul's state store, a cas delete of a key that is already gone is a
   * success whatever the index; cas=0 never deletes a key that exists.
   */
  async delete(key: string, opts: { recurse?: boolean; cas?: number | undefined }): Promise<boolean> {
    if (opts.recurse) {
      await this.store.deletePrefix(KV_PREFIX + key);
      return true;
    }
    checkKey(key);
    if (opts.cas === undefined) {
      await this.store.delete(KV_PREFIX + key);
      return true;
    }
    if (opts.cas === 0) return !(await this.store.get(KV_PREFIX + key));
    try {
      const r = await this.store.delete(KV_PREFIX + key, { ifModRevision: opts.cas });
      return r.deleted > 0 || !(await this.store.get(KV_PREFIX + key));
    } catch (err) {
      if (isCorralError(err, 'STORE_CONFLICT')) return !(await this.store.get(KV_PREFIX + key));
      throw err;
    }
  }
}
