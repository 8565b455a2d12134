/**
 * PUT /v1/txn: Consul's atomic KV transactions. All keys involved are read,
 * every verb's condition is checked against what was read, and the writes go
 * to the Store as one transaction guarded by those reads' modRevisions; if
 * anything moved in between, the whole thing is evaluated again.
 */
import { CorralError } from '../../../contracts/errors.js';
import type { Compare, Op, Store } from '../../../contracts/store/types.js';
import { z } from '../../../common/validate.js';
import { KV_PREFIX, checkKey, checkValue, decodeEntry, planPut, toConsul, type ConsulEntry, type Entry } from './kv.js';

const VERBS = ['set', 'cas', 'lock', 'unlock', 'get', 'get-tree', 'check-index', 'check-session', 'check-not-exists', 'delete', 'delete-tree', 'delete-cas'] as const;

/** Consul's limit on the operations of one transaction. */
export const MAX_TXN_OPS = 64;

export const txnSchema = z
  .array(
    z.object({
      KV: z.object({
        Verb: z.enum(VERBS),
        Key: z.string().max(2048),
        Value: z.string().max(800_000).optional().nullable(),
        Flags: z.number().int().nonnegative().optional(),
        Index: z.number().int().nonnegative().optional(),
        Session: z.string().max(128).optional(),
      }),
    }),
  )
  .min(1)
  .max(MAX_TXN_OPS, 'a transaction holds at most 64 operations');

type TxnOps = z.output<typeof txnSchema>;

type TxnResponse = { status: 200; body: { Results: Array<{ KV: ConsulEntry }>; Errors: null } } | { status: 409; body: { Results: null; Errors: Array<{ OpIndex: number; What: string }> } };

function decodeValue(v: string | null | undefined, at: number): Buffer {
  if (!v) return Buffer.alloc(0);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new CorralError('INVALID_ARGUMENT', `operation ${at}: Value must be base64`);
  const buf = Buffer.from(v, 'base64');
  checkValue(buf);
  return buf;
}

export async function runTxn(store: Store, ops: TxnOps): Promise<TxnResponse> {
  for (let attempt = 0; attempt < 16; attempt++) {
    const out = await attemptTxn(store, ops);
    if (out) return out;
  }
  throw new CorralError('CONFLICT', 'the keys of this transaction kept changing; try again');
}

/** Keys whose state the transaction has already changed get this ModifyIndex, which no cas can match. */
const PENDING = -1;

async function attemptTxn(store: Store, ops: TxnOps): Promise<TxnResponse | undefined> {
  // What each single key holds: read once, then changed in order as the verbs apply, as Consul shows later verbs earlier ones.
  const state = new Map<string, { entry: Entry | undefined; rev: number }>();
  for (const { KV } of ops) {
    if (KV.Verb === 'get-tree' || KV.Verb === 'delete-tree' || state.has(KV.Key)) continue;
    checkKey(KV.Key);
    const kv = await store.get(KV_PREFIX + KV.Key);
    state.set(KV.Key, { entry: kv ? decodeEntry(kv) : undefined, rev: kv?.modRevision ?? 0 });
  }
  const errors: Array<{ OpIndex: number; What: string }> = [];
  const compares: Compare[] = [];
  // The Store takes one write per key: a later verb on a key replaces the earlier write.
  const writes = new Map<string, Op>();
  const treeDeletes: Op[] = [];
  const reads: Array<{ index: number; key: string; tree: boolean }> = [];
  const now = Date.now();
  ops.forEach(({ KV }, i) => {
    const cur = state.get(KV.Key);
    const fail = (what: string): void => void errors.push({ OpIndex: i, What: what });
    const remove = (): void => {
      writes.set(KV_PREFIX + KV.Key, { type: 'delete', key: KV_PREFIX + KV.Key });
      cur!.entry = undefined;
    };
    switch (KV.Verb) {
      case 'get':
        if (!cur?.entry) fail(`key "${KV.Key}" doesn't exist`);
        else reads.push({ index: i, key: KV.Key, tree: false });
        return;
      case 'get-tree':
        reads.push({ index: i, key: KV.Key, tree: true });
        return;
      case 'check-index':
        if ((cur?.entry?.modifyIndex ?? 0) !== (KV.Index ?? 0)) fail(`current modify index ${cur?.entry?.modifyIndex ?? 0} != ${KV.Index ?? 0}`);
        return;
      case 'check-session':
        if (cur?.entry?.header.s !== KV.Session) fail(`lock is not held by session "${KV.Session ?? ''}"`);
        return;
      case 'check-not-exists':
        if (cur?.entry) fail(`key "${KV.Key}" exists`);
        return;
      case 'delete':
        return remove();
      case 'delete-cas':
        if (!cur?.entry || cur.entry.modifyIndex !== (KV.Index ?? 0)) return fail(`failed to delete key "${KV.Key}", index is stale`);
        return remove();
      case 'delete-tree':
        treeDeletes.push({ type: 'deletePrefix', prefix: KV_PREFIX + KV.Key });
        for (const [k, st] of state) if (k.startsWith(KV.Key)) st.entry = undefined;
        return;
      default: {
        if ((KV.Verb === 'lock' || KV.Verb === 'unlock') && !KV.Session) return fail('a session is required');
        const opts = {
          ...(KV.Flags !== undefined ? { flags: KV.Flags } : {}),
          ...(KV.Verb === 'cas' ? { cas: KV.Index ?? 0 } : {}),
          ...(KV.Verb === 'lock' ? { acquire: KV.Session } : {}),
          ...(KV.Verb === 'unlock' ? { release: KV.Session } : {}),
        };
        const plan = planPut(KV.Key, cur!.entry, cur!.rev, decodeValue(KV.Value, i), opts, now);
        if (!plan.ok) return fail(`failed to ${KV.Verb} key "${KV.Key}"`);
        compares.push(...plan.compares);
        for (const op of plan.ops) if (op.type === 'put' || op.type === 'delete') writes.set(op.key, op);
        const put = plan.ops[0] as { value: Buffer };
        cur!.entry = decodeEntry({ key: KV_PREFIX + KV.Key, value: put.value, createRevision: cur!.entry?.createIndex ?? 0, modRevision: PENDING, version: 0, lease: 0 });
        reads.push({ index: i, key: KV.Key, tree: false });
      }
    }
  });
  if (errors.length) return { status: 409, body: { Results: null, Errors: errors } };
  for (const [key, st] of state) compares.push({ key: KV_PREFIX + key, target: 'modRevision', op: '=', value: st.rev });
  const dedup = new Map<string, Compare>();
  for (const c of compares) dedup.set(`${c.key}\n${c.target}\n${c.op}`, c);
  const r = await store.txn({ compare: [...dedup.values()], success: [...treeDeletes, ...writes.values()] });
  if (!r.succeeded) return undefined;
  // Results come from a read after the commit: the entries as the transaction left them.
  const results: Array<{ KV: ConsulEntry }> = [];
  for (const rd of reads) {
    if (rd.tree) for (const kv of (await store.range(KV_PREFIX + rd.key)).kvs) results.push({ KV: toConsul(decodeEntry(kv)) });
    else {
      const kv = await store.get(KV_PREFIX + rd.key);
      if (kv) results.push({ KV: toConsul(decodeEntry(kv)) });
    }
  }
  return { status: 200, body: { Results: results, Errors: null } };
}
