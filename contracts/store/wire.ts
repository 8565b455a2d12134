/**
 * Wire format of the master's store API (POST /api/v1/store), shared by the
 * server (core-scheduler/src/master/http/store-api.ts) and the client
 * (remote.ts) so the two cannot drift apart.
 *
 * Calls are shaped like the master's other v1 APIs, `{ type, <type in
 * snake_case>: {...} }`, and so are txn ops and results. Keys travel as JSON
 * strings (the contract only admits well-formed UTF-8 keys); values travel as
 * base64, so any byte sequence survives. Objects are strict: a misspelt field
 * such as `if_mod_revisoin` is refused instead of silently dropping a
 * condition. Number ranges are left to the store's own checks (check.ts), so
 * a bad lease id or limit is worded the same on every backend.
 */
import { z } from 'zod';
import type { CheckedCompare, CheckedOp } from './check.js';
import type { Compare, KeyValue, Op, OpResult, WatchEvent } from './types.js';

export const STORE_API_PATH = '/api/v1/store';

const num = z.number();
const text = z.string();
const b64 = z.base64();

const getArgs = z.strictObject({ key: text });
const prefixArgs = z.strictObject({ prefix: text });
const txnPutArgs = z.strictObject({ key: text, value: b64, lease: num.optional() });
const txnRangeArgs = z.strictObject({ prefix: text, limit: num.optional() });

const compareSchema = z.discriminatedUnion('target', [
  z.strictObject({ key: text, target: z.enum(['mod_revision', 'create_revision', 'version']), op: z.enum(['=', '!=', '<', '>']), value: num }),
  z.strictObject({ key: text, target: z.literal('value'), op: z.enum(['=', '!=']), value: b64 }),
]);

const opSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('PUT'), put: txnPutArgs }),
  z.strictObject({ type: z.literal('DELETE'), delete: getArgs }),
  z.strictObject({ type: z.literal('DELETE_PREFIX'), delete_prefix: prefixArgs }),
  z.strictObject({ type: z.literal('GET'), get: getArgs }),
  z.strictObject({ type: z.literal('RANGE'), range: txnRangeArgs }),
]);

const leaseArgs = z.strictObject({ id: num });

export const storeCallSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('GET'), get: getArgs }),
  z.strictObject({ type: z.literal('RANGE'), range: z.strictObject({ prefix: text, limit: num.optional(), keys_only: z.boolean().optional() }) }),
  z.strictObject({ type: z.literal('PUT'), put: z.strictObject({ key: text, value: b64, lease: num.optional(), if_mod_revision: num.optional() }) }),
  z.strictObject({ type: z.literal('DELETE'), delete: z.strictObject({ key: text, if_mod_revision: num.optional() }) }),
  z.strictObject({ type: z.literal('DELETE_PREFIX'), delete_prefix: prefixArgs }),
  z.strictObject({
    type: z.literal('TXN'),
    txn: z.strictObject({ compare: z.array(compareSchema), success: z.array(opSchema), failure: z.array(opSchema).optional() }),
  }),
  z.strictObject({ type: z.literal('WATCH'), watch: z.strictObject({ prefix: text, from_revision: num.optional(), prev_kv: z.boolean().optional() }) }),
  z.strictObject({ type: z.literal('GRANT_LEASE'), grant_lease: z.strictObject({ ttl: num }) }),
  z.strictObject({ type: z.literal('KEEP_ALIVE'), keep_alive: leaseArgs }),
  z.strictObject({ type: z.literal('REVOKE_LEASE'), revoke_lease: leaseArgs }),
  z.strictObject({ type: z.literal('LEASE_INFO'), lease_info: leaseArgs }),
  z.strictObject({ type: z.literal('CURRENT_REVISION') }),
  z.strictObject({ type: z.literal('COMPACT'), compact: z.strictObject({ revision: num }) }),
]);

export type StoreCall = z.output<typeof storeCallSchema>;
export type WireOp = z.output<typeof opSchema>;
type WireCompare = z.output<typeof compareSchema>;
export const STORE_CALL_TYPES = storeCallSchema.options.map((o) => o.shape.type.value);

// ---- replies (the client accepts extra fields, so a newer master can add some) ----

const kvSchema = z.object({ key: text, value: b64, create_revision: num, mod_revision: num, version: num, lease: num });
type WireKv = z.output<typeof kvSchema>;

const opResultSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('PUT'), put: z.object({ prev_kv: kvSchema.optional() }) }),
  z.object({ type: z.literal('DELETE'), delete: z.object({ deleted: num }) }),
  z.object({ type: z.literal('DELETE_PREFIX'), delete_prefix: z.object({ deleted: num }) }),
  z.object({ type: z.literal('GET'), get: z.object({ kv: kvSchema.optional() }) }),
  z.object({ type: z.literal('RANGE'), range: z.object({ kvs: z.array(kvSchema), more: z.boolean() }) }),
]);
type WireOpResult = z.output<typeof opResultSchema>;

const written = z.object({ revision: num, deleted: num });

/** Reply schema per call type; REVOKE_LEASE and COMPACT answer 202 with no body, WATCH with a stream. */
export const replySchemas = {
  GET: z.object({ get: z.object({ kv: kvSchema.optional() }) }),
  RANGE: z.object({ range: z.object({ kvs: z.array(kvSchema), revision: num, more: z.boolean() }) }),
  PUT: z.object({ put: z.object({ revision: num, prev_kv: kvSchema.optional() }) }),
  DELETE: z.object({ delete: written }),
  DELETE_PREFIX: z.object({ delete_prefix: written }),
  TXN: z.object({ txn: z.object({ succeeded: z.boolean(), revision: num, results: z.array(opResultSchema) }) }),
  GRANT_LEASE: z.object({ grant_lease: z.object({ id: num }) }),
  KEEP_ALIVE: z.object({ keep_alive: z.object({ ttl: num }) }),
  LEASE_INFO: z.object({ lease_info: z.object({ lease: z.object({ ttl: num, granted_ttl: num, keys: z.array(text) }).optional() }) }),
  CURRENT_REVISION: z.object({ current_revision: z.object({ revision: num }) }),
} as const;
export type ReplyType = keyof typeof replySchemas;
export type Reply<T extends ReplyType> = z.output<(typeof replySchemas)[T]>;

const eventSchema = z.object({ type: z.enum(['PUT', 'DELETE']), kv: kvSchema, prev_kv: kvSchema.optional() });

/** Records of a WATCH stream, in order: CREATED, then EVENTS and HEARTBEATs, at most one ERROR last. */
export const watchRecordSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('CREATED'), created: z.object({ start_revision: num, heartbeat_interval_ms: num }) }),
  z.object({ type: z.literal('EVENTS'), events: z.object({ revision: num, events: z.array(eventSchema) }) }),
  z.object({ type: z.literal('HEARTBEAT') }),
  z.object({ type: z.literal('ERROR'), error: z.object({ code: text, message: text, details: z.record(z.string(), z.unknown()).optional() }) }),
]);
export type WatchRecord = z.output<typeof watchRecordSchema>;

// ---- contract objects <-> wire (client side: `ns` is prepended going out and stripped coming back) ----

const CMP_TARGET_OUT = { modRevision: 'mod_revision', createRevision: 'create_revision', version: 'version' } as const;
const CMP_TARGET_IN = { mod_revision: 'modRevision', create_revision: 'createRevision', version: 'version' } as const;

export function kvToWire(kv: KeyValue): WireKv {
  return {
    key: kv.key,
    value: kv.value.toString('base64'),
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

export function kvFromWire(w: WireKv, ns = ''): KeyValue {
  return {
    key: w.key.slice(ns.length),
    value: Buffer.from(w.value, 'base64'),
    createRevision: w.create_revision,
    modRevision: w.mod_revision,
    version: w.version,
    lease: w.lease,
  };
}

export function compareToWire(c: CheckedCompare, ns: string): WireCompare {
  const key = ns + c.key;
  return c.target === 'value' ? { key, target: 'value', op: c.op, value: c.value.toString('base64') } : { key, target: CMP_TARGET_OUT[c.target], op: c.op, value: c.value };
}

export function compareFromWire(w: WireCompare): Compare {
  return w.target === 'value' ? { key: w.key, target: 'value', op: w.op, value: Buffer.from(w.value, 'base64') } : { key: w.key, target: CMP_TARGET_IN[w.target], op: w.op, value: w.value };
}

export function opToWire(op: CheckedOp, ns: string): WireOp {
  switch (op.type) {
    case 'put':
      return { type: 'PUT', put: { key: ns + op.key, value: op.value.toString('base64'), ...(op.lease !== 0 && { lease: op.lease }) } };
    case 'delete':
      return { type: 'DELETE', delete: { key: ns + op.key } };
    case 'deletePrefix':
      return { type: 'DELETE_PREFIX', delete_prefix: { prefix: ns + op.prefix } };
    case 'get':
      return { type: 'GET', get: { key: ns + op.key } };
    case 'range':
      return { type: 'RANGE', range: { prefix: ns + op.prefix, ...(op.limit !== 0 && { limit: op.limit }) } };
  }
}

export function opFromWire(w: WireOp): Op {
  switch (w.type) {
    case 'PUT':
      return { type: 'put', key: w.put.key, value: Buffer.from(w.put.value, 'base64'), ...(w.put.lease !== undefined && { lease: w.put.lease }) };
    case 'DELETE':
      return { type: 'delete', key: w.delete.key };
    case 'DELETE_PREFIX':
      return { type: 'deletePrefix', prefix: w.delete_prefix.prefix };
    case 'GET':
      return { type: 'get', key: w.get.key };
    case 'RANGE':
      return { type: 'range', prefix: w.range.prefix, ...(w.range.limit !== undefined && { limit: w.range.limit }) };
  }
}

export function resultToWire(r: OpResult): WireOpResult {
  switch (r.type) {
    case 'put':
      return { type: 'PUT', put: r.prev ? { prev_kv: kvToWire(r.prev) } : {} };
    case 'delete':
      return { type: 'DELETE', delete: { deleted: r.deleted } };
    case 'deletePrefix':
      return { type: 'DELETE_PREFIX', delete_prefix: { deleted: r.deleted } };
    case 'get':
      return { type: 'GET', get: r.kv ? { kv: kvToWire(r.kv) } : {} };
    case 'range':
      return { type: 'RANGE', range: { kvs: r.kvs.map(kvToWire), more: r.more } };
  }
}

export function resultFromWire(w: WireOpResult, ns: string): OpResult {
  switch (w.type) {
    case 'PUT':
      return w.put.prev_kv ? { type: 'put', prev: kvFromWire(w.put.prev_kv, ns) } : { type: 'put' };
    case 'DELETE':
      return { type: 'delete', deleted: w.delete.deleted };
    case 'DELETE_PREFIX':
      return { type: 'deletePrefix', deleted: w.delete_prefix.deleted };
    case 'GET':
      return w.get.kv ? { type: 'get', kv: kvFromWire(w.get.kv, ns) } : { type: 'get' };
    case 'RANGE':
      return { type: 'range', kvs: w.range.kvs.map((kv) => kvFromWire(kv, ns)), more: w.range.more };
  }
}

export function eventsToWire(revision: number, events: WatchEvent[]): WatchRecord {
  return {
    type: 'EVENTS',
    events: {
      revision,
      events: events.map((e) => ({ type: e.type === 'put' ? 'PUT' : 'DELETE', kv: kvToWire(e.kv), ...(e.prevKv && { prev_kv: kvToWire(e.prevKv) }) })),
    },
  };
}

export function eventsFromWire(events: Extract<WatchRecord, { type: 'EVENTS' }>['events']['events'], ns: string): WatchEvent[] {
  return events.map((e) => {
    const ev: WatchEvent = { type: e.type === 'PUT' ? 'put' : 'delete', kv: kvFromWire(e.kv, ns) };
    if (e.prev_kv) ev.prevKv = kvFromWire(e.prev_kv, ns);
    return ev;
  });
}
