/**
 * POST /api/v1/store — the cluster Store contract (common/store/types.ts)
 * over HTTP, so daemons on other hosts (the CNI node daemon's IPAM,
 * discovery's KV, …) share the master's Store without running etcd. The
 * client is RemoteStore (common/store/remote.ts); the wire format lives in
 * common/store/remote-wire.ts.
 *
 * Every call is one JSON POST answered 200 with `{ type, <type>: {...} }`
 * (202 with no body for REVOKE_LEASE and COMPACT). WATCH answers 200 with a
 * RecordIO stream: CREATED (the first revision it will deliver), one EVENTS
 * record per revision, a HEARTBEAT every few seconds so a client notices a
 * dead peer, and at most one ERROR (STORE_COMPACTED, STORE_CLOSED, …) last.
 *
 * Who: the principals in the `store` ACL (default: operators and agents).
 * What: everything but the master's own registry. A key under
 * `corral/registry/` is refused with FORBIDDEN, and so is a prefix that
 * overlaps it — one inside it, or one it starts with, like "" or "corral/" —
 * wherever it appears: calls, txn compares and ops, watches. Revoking a lease
 * that holds registry keys is refused too, and LEASE_INFO leaves them out.
 */
import { CorralError, forbidden } from '../../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../../common/http/server.js';
import { EventStream } from '../../../../common/http/stream.js';
import * as check from '../../../../contracts/store/check.js';
import type { Store, Watch } from '../../../../contracts/store/types.js';
import {
  compareFromWire,
  eventsToWire,
  kvToWire,
  opFromWire,
  resultToWire,
  storeCallSchema,
  STORE_API_PATH,
  STORE_CALL_TYPES,
  type StoreCall,
  type WatchRecord,
  type WireOp,
} from '../../../../contracts/store/wire.js';
import type { Master } from '../master.js';
import { accepted, readCall } from './calls.js';

/** Where the master keeps its registry (core-scheduler/src/master/registry.ts); never exposed. */
export const REGISTRY_PREFIX = 'corral/registry/';

/** How often an idle watch stream carries a HEARTBEAT record. */
const HEARTBEAT_MS = 5_000;

const quote = (s: string): string => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);

function guardKey(key: string, where: string): void {
  if (key.startsWith(REGISTRY_PREFIX)) {
    throw forbidden(`${where} ${quote(key)} is in the master's registry (${REGISTRY_PREFIX}), which the store API does not expose`);
  }
}

/** A prefix is refused if it covers any registry key ("", "corral/") or lies inside the registry. */
function guardPrefix(prefix: string, where: string): void {
  if (prefix.startsWith(REGISTRY_PREFIX) || REGISTRY_PREFIX.startsWith(prefix)) {
    throw forbidden(
      `${where} ${quote(prefix)} overlaps the master's registry (${REGISTRY_PREFIX}), which the store API does not expose; ` +
        `use a prefix that neither starts with ${REGISTRY_PREFIX} nor is the start of it (so not "" or "corral/")`,
    );
  }
}

function guardOp(op: WireOp, where: string): void {
  switch (op.type) {
    case 'PUT':
      return guardKey(op.put.key, `${where} PUT key`);
    case 'DELETE':
      return guardKey(op.delete.key, `${where} DELETE key`);
    case 'GET':
      return guardKey(op.get.key, `${where} GET key`);
    case 'DELETE_PREFIX':
      return guardPrefix(op.delete_prefix.prefix, `${where} DELETE_PREFIX prefix`);
    case 'RANGE':
      return guardPrefix(op.range.prefix, `${where} RANGE prefix`);
  }
}

function guard(call: StoreCall): void {
  switch (call.type) {
    case 'GET':
      return guardKey(call.get.key, 'key');
    case 'PUT':
      return guardKey(call.put.key, 'key');
    case 'DELETE':
      return guardKey(call.delete.key, 'key');
    case 'RANGE':
      return guardPrefix(call.range.prefix, 'prefix');
    case 'DELETE_PREFIX':
      return guardPrefix(call.delete_prefix.prefix, 'prefix');
    case 'WATCH':
      return guardPrefix(call.watch.prefix, 'watch prefix');
    case 'TXN':
      for (const c of call.txn.compare) guardKey(c.key, 'txn compare key');
      call.txn.success.forEach((op, i) => guardOp(op, `txn success[${i}]`));
      (call.txn.failure ?? []).forEach((op, i) => guardOp(op, `txn failure[${i}]`));
      return;
    default:
      return;
  }
}

export function mountStoreApi(server: HttpServer, m: Master, store: Store): void {
  const calls = m.metrics.counter('store_calls_total', 'Store API calls', ['type']);
  const watches = m.metrics.gauge('store_watches', 'Open store API watch streams');
  server.route('POST', STORE_API_PATH, async (ctx) => {
    const principal = await m.auth.authenticate(ctx.req);
    m.auth.authorizeStore(principal);
    const call = await readCall(ctx, storeCallSchema, STORE_CALL_TYPES, 'store API');
    calls.inc({ type: call.type });
    guard(call);
    if (call.type === 'WATCH') {
      await openWatch(
        ctx,
        store,
        call.watch,
        principal,
        () => watches.inc(),
        () => watches.dec(),
      );
      return undefined;
    }
    return handle(ctx, store, call);
  });
}

const reply = (type: string, field: string, value: unknown): Record<string, unknown> => ({ type, [field]: value });

async function handle(ctx: RequestContext, store: Store, call: Exclude<StoreCall, { type: 'WATCH' }>): Promise<unknown> {
  switch (call.type) {
    case 'GET': {
      const kv = await store.get(call.get.key);
      return reply(call.type, 'get', kv ? { kv: kvToWire(kv) } : {});
    }
    case 'RANGE': {
      const { prefix, limit, keys_only } = call.range;
      const r = await store.range(prefix, { ...(limit !== undefined && { limit }), ...(keys_only !== undefined && { keysOnly: keys_only }) });
      return reply(call.type, 'range', { kvs: r.kvs.map(kvToWire), revision: r.revision, more: r.more });
    }
    case 'PUT': {
      const { key, value, lease, if_mod_revision } = call.put;
      const r = await store.put(key, Buffer.from(value, 'base64'), {
        ...(lease !== undefined && { lease }),
        ...(if_mod_revision !== undefined && { ifModRevision: if_mod_revision }),
      });
      return reply(call.type, 'put', { revision: r.revision, ...(r.prev && { prev_kv: kvToWire(r.prev) }) });
    }
    case 'DELETE': {
      const { key, if_mod_revision } = call.delete;
      return reply(call.type, 'delete', await store.delete(key, if_mod_revision === undefined ? {} : { ifModRevision: if_mod_revision }));
    }
    case 'DELETE_PREFIX':
      return reply(call.type, 'delete_prefix', await store.deletePrefix(call.delete_prefix.prefix));
    case 'TXN': {
      const t = call.txn;
      const r = await store.txn({
        compare: t.compare.map(compareFromWire),
        success: t.success.map(opFromWire),
        ...(t.failure && { failure: t.failure.map(opFromWire) }),
      });
      return reply(call.type, 'txn', { succeeded: r.succeeded, revision: r.revision, results: r.results.map(resultToWire) });
    }
    case 'GRANT_LEASE':
      return reply(call.type, 'grant_lease', { id: await store.grantLease(call.grant_lease.ttl) });
    case 'KEEP_ALIVE':
      return reply(call.type, 'keep_alive', { ttl: await store.keepAlive(call.keep_alive.id) });
    case 'REVOKE_LEASE': {
      const id = call.revoke_lease.id;
      const info = await store.leaseInfo(id);
      const held = info?.keys.find((k) => k.startsWith(REGISTRY_PREFIX));
      // Revoking deletes the attached keys: that would be a registry write.
      if (held !== undefined) throw forbidden(`lease ${id} holds registry key ${quote(held)}; the store API does not revoke it`);
      await store.revokeLease(id);
      accepted(ctx);
      return undefined;
    }
    case 'LEASE_INFO': {
      const info = await store.leaseInfo(call.lease_info.id);
      const lease = info && { ttl: info.ttl, granted_ttl: info.grantedTtl, keys: info.keys.filter((k) => !k.startsWith(REGISTRY_PREFIX)) };
      return reply(call.type, 'lease_info', lease ? { lease } : {});
    }
    case 'CURRENT_REVISION':
      return reply(call.type, 'current_revision', { revision: await store.currentRevision() });
    case 'COMPACT':
      await store.compact(call.compact.revision);
      accepted(ctx);
      return undefined;
  }
}

/**
 * Opens the stream only once the watch exists, so a bad prefix or revision is
 * a plain 4xx reply; what goes wrong later is an ERROR record.
 */
async function openWatch(
  ctx: RequestContext,
  store: Store,
  args: Extract<StoreCall, { type: 'WATCH' }>['watch'],
  principal: string | undefined,
  opened: () => void,
  closed: () => void,
): Promise<void> {
  const prefix = check.checkPrefix(args.prefix);
  const from = args.from_revision === undefined ? 0 : check.checkRevision(args.from_revision, 'from_revision');
  // "From now" is pinned to a revision here and told to the client, which resumes from it after a reconnect.
  const start = from > 0 ? from : (await store.currentRevision()) + 1;
  // The client may have gone while we waited; its 'close' has then been emitted already.
  if (ctx.req.socket.destroyed) return;
  // Counted against the server's stream caps per principal (per address without authentication): over them, 429/503 before any watch exists.
  ctx.admit('watch', principal);
  let stream: EventStream | undefined;
  const send = (record: WatchRecord): void => void stream?.send(record);
  const watch: Watch = store.watch({
    prefix,
    fromRevision: start,
    prevKv: args.prev_kv === true,
    // Store callbacks always run later than watch() returns, so `stream` is set by then.
    onEvents: (events, revision) => send(eventsToWire(revision, events)),
    onError: (err) => {
      const cerr = err instanceof CorralError ? err : new CorralError('UNAVAILABLE', err.message);
      stream?.end({ type: 'ERROR', error: cerr.toJSON() } satisfies WatchRecord);
    },
  });
  const heartbeat = setInterval(() => send({ type: 'HEARTBEAT' }), HEARTBEAT_MS);
  heartbeat.unref();
  opened();
  stream = new EventStream(ctx.res, {
    admitted: true,
    onClose: () => {
      clearInterval(heartbeat);
      watch.cancel();
      closed();
    },
  });
  send({ type: 'CREATED', created: { start_revision: start, heartbeat_interval_ms: HEARTBEAT_MS } });
}
