/**
 * Input checks and key-range arithmetic shared by both Store backends, so that
 * a bad key or transaction fails the same way (INVALID_ARGUMENT) whether the
 * cluster runs on the embedded store or on etcd.
 */
import { CorralError } from '../errors.js';
import type { Compare, Op, Txn, WatchOptions } from './types.js';

export const MAX_KEY_BYTES = 4096;
/** etcd rejects requests over 1.5 MiB by default; leave headroom for the key, namespace and framing. */
export const MAX_VALUE_BYTES = 1536 * 1024 - 16 * 1024;
/** etcd's default --max-txn-ops; enforced on both backends so a txn valid on one is valid on the other. */
export const MAX_TXN_OPS = 128;
/** etcd's MaxLeaseTTL. */
const MAX_LEASE_TTL = 9_000_000_000;

const invalid = (message: string, details?: Record<string, unknown>) => new CorralError('INVALID_ARGUMENT', message, details);

export const closedError = (): CorralError => new CorralError('STORE_CLOSED', 'store is closed');

export const conflictError = (key: string, expected: number, actual: number): CorralError =>
  new CorralError('STORE_CONFLICT', `modRevision of ${JSON.stringify(key.slice(0, 200))} is ${actual}, expected ${expected}`, {
    key,
    expected,
    actual,
  });

// Lone surrogates cannot be encoded as UTF-8, so such a key would silently change on the way to disk.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkText(s: unknown, what: string, allowEmpty: boolean): string {
  if (typeof s !== 'string') throw invalid(`${what} must be a string`);
  if (!allowEmpty && s.length === 0) throw invalid(`${what} must not be empty`);
  if (s.includes('\0')) throw invalid(`${what} must not contain NUL`);
  if (LONE_SURROGATE.test(s)) throw invalid(`${what} is not well-formed Unicode`);
  if (s.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(s, 'utf8') > MAX_KEY_BYTES) {
    throw invalid(`${what} is longer than ${MAX_KEY_BYTES} bytes`);
  }
  return s;
}

export const checkKey = (key: unknown, what = 'key'): string => checkText(key, what, false);
/** A prefix may be empty: it then means every key. */
export const checkPrefix = (prefix: unknown, what = 'prefix'): string => checkText(prefix, what, true);

export function toValue(value: unknown): Buffer {
  let buf: Buffer;
  if (typeof value === 'string') buf = Buffer.from(value, 'utf8');
  else if (Buffer.isBuffer(value)) buf = value;
  else if (value instanceof Uint8Array) buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  else throw invalid('value must be a Buffer or a string');
  if (buf.length > MAX_VALUE_BYTES) throw invalid(`value is larger than ${MAX_VALUE_BYTES} bytes`, { bytes: buf.length });
  return buf;
}

function checkInt(n: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw invalid(`${what} must be an integer between ${min} and ${max}`);
  }
  return n;
}

/** 0 or undefined = no limit, as in etcd. */
export const checkLimit = (limit: unknown): number => (limit === undefined ? 0 : checkInt(limit, 'limit', 0));
export const checkRevision = (rev: unknown, what = 'revision'): number => checkInt(rev, what, 0);
export const checkLeaseId = (id: unknown, allowZero = false): number => checkInt(id, 'lease id', allowZero ? 0 : 1);
export const checkTtl = (ttl: unknown): number => checkInt(ttl, 'lease TTL', 1, MAX_LEASE_TTL);

/** Watch options; `from` 0 means "from now" (etcd's start_revision 0). */
export function checkWatch(opts: WatchOptions): { prefix: string; from: number } {
  if (typeof opts !== 'object' || opts === null || typeof opts.onEvents !== 'function') throw invalid('watch needs an onEvents callback');
  if (opts.onError !== undefined && typeof opts.onError !== 'function') throw invalid('onError must be a function');
  return { prefix: checkPrefix(opts.prefix), from: opts.fromRevision === undefined ? 0 : checkInt(opts.fromRevision, 'fromRevision', 0) };
}

/** Ops and compares with values already turned into Buffers. */
export type CheckedOp =
  | { type: 'put'; key: string; value: Buffer; lease: number }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string }
  | { type: 'get'; key: string }
  | { type: 'range'; prefix: string; limit: number };

export type CheckedCompare =
  { key: string; target: 'modRevision' | 'createRevision' | 'version'; op: '=' | '!=' | '<' | '>'; value: number } | { key: string; target: 'value'; op: '=' | '!='; value: Buffer };

export interface CheckedTxn {
  compare: CheckedCompare[];
  success: CheckedOp[];
  failure: CheckedOp[];
}

const NUM_TARGETS = new Set(['modRevision', 'createRevision', 'version']);
const NUM_OPS = new Set(['=', '!=', '<', '>']);

function checkCompare(c: Compare): CheckedCompare {
  if (typeof c !== 'object' || c === null) throw invalid('compare must be an object');
  const key = checkKey(c.key, 'compare key');
  if (c.target === 'value') {
    if (c.op !== '=' && c.op !== '!=') throw invalid(`compare op ${String(c.op)} is not allowed on value`);
    return { key, target: 'value', op: c.op, value: toValue(c.value) };
  }
  if (!NUM_TARGETS.has(c.target)) throw invalid(`unknown compare target ${String((c as { target: unknown }).target)}`);
  if (!NUM_OPS.has(c.op)) throw invalid(`unknown compare op ${String(c.op)}`);
  return { key, target: c.target, op: c.op, value: checkInt(c.value, 'compare value', 0) };
}

function checkOp(op: Op): CheckedOp {
  if (typeof op !== 'object' || op === null) throw invalid('txn op must be an object');
  switch (op.type) {
    case 'put':
      return { type: 'put', key: checkKey(op.key), value: toValue(op.value), lease: op.lease === undefined ? 0 : checkLeaseId(op.lease, true) };
    case 'delete':
      return { type: 'delete', key: checkKey(op.key) };
    case 'deletePrefix':
      return { type: 'deletePrefix', prefix: checkPrefix(op.prefix) };
    case 'get':
      return { type: 'get', key: checkKey(op.key) };
    case 'range':
      return { type: 'range', prefix: checkPrefix(op.prefix), limit: checkLimit(op.limit) };
    default:
      throw invalid(`unknown txn op type ${String((op as { type: unknown }).type)}`);
  }
}

/**
 * etcd refuses a txn branch that writes one key twice or puts a key that a
 * delete in the same branch covers (the outcome would depend on op order);
 * both backends refuse it the same way.
 */
function checkBranch(ops: CheckedOp[]): void {
  const puts = new Set<string>();
  const deletedKeys = new Set<string>();
  const deletedPrefixes: string[] = [];
  for (const op of ops) {
    if (op.type === 'delete') deletedKeys.add(op.key);
    else if (op.type === 'deletePrefix') deletedPrefixes.push(op.prefix);
  }
  for (const op of ops) {
    if (op.type !== 'put') continue;
    if (puts.has(op.key) || deletedKeys.has(op.key) || deletedPrefixes.some((p) => op.key.startsWith(p))) {
      throw invalid(`key ${JSON.stringify(op.key.slice(0, 200))} is written more than once in one txn branch`);
    }
    puts.add(op.key);
  }
}

export function checkTxn(txn: Txn): CheckedTxn {
  if (typeof txn !== 'object' || txn === null) throw invalid('txn must be an object');
  const { compare, success, failure = [] } = txn;
  if (!Array.isArray(compare) || !Array.isArray(success) || !Array.isArray(failure)) {
    throw invalid('txn compare, success and failure must be arrays');
  }
  if (compare.length > MAX_TXN_OPS || success.length > MAX_TXN_OPS || failure.length > MAX_TXN_OPS) {
    throw invalid(`a txn may hold at most ${MAX_TXN_OPS} compares and ${MAX_TXN_OPS} ops per branch`);
  }
  const checked: CheckedTxn = { compare: compare.map(checkCompare), success: success.map(checkOp), failure: failure.map(checkOp) };
  checkBranch(checked.success);
  checkBranch(checked.failure);
  return checked;
}

/**
 * The smallest string greater than every string starting with `prefix`, in
 * UTF-8 byte order (which is code point order); undefined when no such bound
 * exists (empty prefix, or only U+10FFFF). Lets SQLite answer prefix queries
 * with an index range instead of LIKE, which mishandles % and _.
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const cp = cps[cps.length - 1]!.codePointAt(0)!;
    if (cp < 0x10ffff) {
      // Skip the surrogate block: those code points cannot appear in a well-formed key.
      const next = cp === 0xd7ff ? 0xe000 : cp + 1;
      cps[cps.length - 1] = String.fromCodePoint(next);
      return cps.join('');
    }
    cps.pop();
  }
  return undefined;
}

/** etcd's range_end for a prefix: bump the last byte below 0xff; `\0` means "to the end of the keyspace". */
export function bytesPrefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
