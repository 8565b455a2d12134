/**
 * /v1/kv/<key> and /v1/txn. Blocking reads wait on a Store watch of the key
 * (or prefix) from the client's index, so they wake on the first relevant
 * write and never on unrelated ones; a read that times out with nothing new
 * reports the client's own index back, so a watcher sees no false change.
 */
import { CorralError } from '../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import type { Store } from '../../../contracts/store/types.js';
import { Kv, KV_PREFIX, checkValue, toConsul } from './kv.js';
import { MAX_TXN_OPS, runTxn, txnSchema } from './txn.js';
import { Acl, permissionDenied } from '../acl/request.js';
import type { Authorizer } from '../acl/authorizer.js';
import { blockingParams, flag, jsonBody, pathParam, rawJsonBody, setIndex, uintParam, type Blocking } from './http-util.js';

interface KvMetrics {
  blockingWaiting: { inc(): void; dec(): void };
  writes: { inc(labels: { op: string }): void };
}

/**
 * Wait until something under `prefix` (exactly `prefix` when `exact`) changes
 * after revision `b.index`, or the wait runs out. True when woken by a change.
 */
function waitForKv(store: Store, prefix: string, exact: boolean, b: Blocking, metrics?: KvMetrics): Promise<boolean> {
  if (b.index === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    metrics?.blockingWaiting.inc();
    let finished = false;
    const finish = (changed: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      watch.cancel();
      metrics?.blockingWaiting.dec();
      resolve(changed);
    };
    const timer = setTimeout(() => finish(false), b.waitMs);
    const watch = store.watch({
      prefix,
      fromRevision: b.index! + 1,
      onEvents: (events) => {
        if (!exact || events.some((e) => e.kv.key === prefix)) finish(true);
      },
      // History compacted past the client's index: answer now, it re-reads anyway.
      onError: () => finish(true),
    });
  });
}

export function mountKv(server: HttpServer, store: Store, acl: Acl, metrics?: KvMetrics): void {
  const kv = new Kv(store);
  const open = !acl.enabled;

  server.route('GET', '/v1/kv/*', async (ctx) => {
    const key = pathParam(ctx, 'key');
    const recurse = flag(ctx, 'recurse');
    const keysOnly = ctx.query.has('keys');
    if (!key && !recurse && !keysOnly) throw new CorralError('INVALID_ARGUMENT', 'Missing key name');
    const authz = await acl.authorize(ctx);
    // One key: no read right is a 403; lists are filtered to what the token may read (Consul's KVS.Get / List).
    if (!recurse && !keysOnly && !authz.allowed('key', key, 'read')) throw permissionDenied(authz, 'key:read', key);
    const b = blockingParams(ctx);
    // A waiting query counts against the server's caps on long-lived requests (429/503 over them).
    if (b.index !== undefined) ctx.admit('blocking');
    const changed = await waitForKv(store, KV_PREFIX + key, !recurse && !keysOnly, b, metrics);
    const reportIndex = (index: number): void => setIndex(ctx, changed ? index : Math.min(index, b.index ?? index));
    if (keysOnly) {
      // Consul still reads its historic misspelling; the right one wins when both are given.
      const sep = ctx.query.get('separator') ?? ctx.query.get('seperator') ?? undefined;
      const r = await kv.keys(key, sep || undefined);
      reportIndex(r.revision);
      if (!open) r.keys = readable(ctx, authz, r.keys, (k) => k);
      // No keys under the root is an empty list, not a 404 (agent/kvs_endpoint.go).
      if (r.keys.length === 0 && key !== '') return notFound(ctx);
      return r.keys;
    }
    if (recurse) {
      const r = await kv.list(key);
      reportIndex(r.revision);
      if (!open) r.entries = readable(ctx, authz, r.entries, (e) => e.key);
      if (r.entries.length === 0) return notFound(ctx);
      return r.entries.map(toConsul);
    }
    const r = await kv.get(key);
    reportIndex(r.revision);
    if (!r.entry) return notFound(ctx);
    if (flag(ctx, 'raw')) {
      // Consul's headers for raw values: a stored value must never run as a page in a browser.
      ctx.res.setHeader('Content-Type', 'text/plain');
      ctx.res.setHeader('X-Content-Type-Options', 'nosniff');
      ctx.res.setHeader('Content-Security-Policy', 'sandbox');
      ctx.res.setHeader('Content-Length', r.entry.value.length);
      ctx.res.end(r.entry.value);
      return undefined;
    }
    return [toConsul(r.entry)];
  });

  server.route('PUT', '/v1/kv/*', async (ctx) => {
    const key = pathParam(ctx, 'key');
    const authz = await acl.authorize(ctx);
    if (!authz.allowed('key', key, 'write')) throw permissionDenied(authz, 'key:write', key);
    const value = await ctx.body();
    checkValue(value);
    conflictingFlags(ctx, ['cas', 'acquire', 'release']);
    const acquire = ctx.query.get('acquire') ?? undefined;
    const release = ctx.query.get('release') ?? undefined;
    if (acquire === '' || release === '') throw new CorralError('INVALID_ARGUMENT', 'acquire/release need a session ID');
    const ok = await kv.put(key, value, { flags: uintParam(ctx, 'flags'), cas: uintParam(ctx, 'cas'), acquire, release });
    metrics?.writes.inc({ op: acquire ? 'acquire' : release ? 'release' : 'put' });
    return ok;
  });

  server.route('DELETE', '/v1/kv/*', async (ctx) => {
    const key = pathParam(ctx, 'key');
    conflictingFlags(ctx, ['recurse', 'cas']);
    const authz = await acl.authorize(ctx);
    if (flag(ctx, 'recurse') ? !authz.allowedKeyWritePrefix(key) : !authz.allowed('key', key, 'write')) throw permissionDenied(authz, 'key:write', key);
    const ok = await kv.delete(key, { recurse: flag(ctx, 'recurse'), cas: uintParam(ctx, 'cas') });
    metrics?.writes.inc({ op: 'delete' });
    return ok;
  });

  server.route('PUT', '/v1/txn', async (ctx) => {
    // Too many operations is a 413 in Consul (txn_endpoint.go), not a malformed body.
    const raw = await rawJsonBody(ctx);
    if (Array.isArray(raw) && raw.length > MAX_TXN_OPS) throw new CorralError('PAYLOAD_TOO_LARGE', `Transaction contains too many operations (${raw.length} > ${MAX_TXN_OPS})`);
    const ops = await jsonBody(ctx, txnSchema, 'transaction');
    const authz = await acl.authorize(ctx);
    // Writes are vetted first and a refused one fails the transaction (409, as Consul's vetTxnOp); reads are filtered after.
    const denied = open ? [] : vetTxn(authz, ops);
    if (denied.length) {
      ctx.res.statusCode = 409;
      return { Results: null, Errors: denied };
    }
    const r = await runTxn(store, ops);
    if (!open && r.status === 200) r.body.Results = readable(ctx, authz, r.body.Results, (x) => x.KV.Key);
    metrics?.writes.inc({ op: 'txn' });
    ctx.res.statusCode = r.status;
    if (r.status === 200) setIndex(ctx, await store.currentRevision());
    return r.body;
  });
}

const READ_VERBS = new Set(['get', 'get-tree', 'check-index', 'check-session', 'check-not-exists']);

function vetTxn(authz: Authorizer, ops: Array<{ KV: { Verb: string; Key: string } }>): Array<{ OpIndex: number; What: string }> {
  const out: Array<{ OpIndex: number; What: string }> = [];
  ops.forEach(({ KV }, i) => {
    const ok = READ_VERBS.has(KV.Verb)
      ? KV.Verb === 'get-tree' || authz.allowed('key', KV.Key, 'read')
      : KV.Verb === 'delete-tree'
        ? authz.allowedKeyWritePrefix(KV.Key)
        : authz.allowed('key', KV.Key, 'write');
    if (!ok) out.push({ OpIndex: i, What: permissionDenied(authz, READ_VERBS.has(KV.Verb) ? 'key:read' : 'key:write', KV.Key).message });
  });
  return out;
}

/** Entries the token may read; the answer says when some were left out. */
function readable<T>(ctx: RequestContext, authz: Authorizer, items: T[], key: (t: T) => string): T[] {
  const out = items.filter((t) => authz.allowed('key', key(t), 'read'));
  Acl.markFiltered(ctx, out.length < items.length);
  return out;
}

/** Consul refuses parameters that do not compose (cas with acquire, recurse with cas…) with a 400. */
function conflictingFlags(ctx: RequestContext, names: string[]): void {
  const given = names.filter((n) => ctx.query.has(n));
  if (given.length > 1) throw new CorralError('INVALID_ARGUMENT', `Conflicting flags: ${given.join(', ')}`);
}

function notFound(ctx: RequestContext): undefined {
  ctx.res.statusCode = 404;
  ctx.res.end();
  return undefined;
}
