/**
 * The Store on the master's store API (POST /api/v1/store, served by
 * core-scheduler/src/master/http/store-api.ts): daemons on other hosts share
 * the master's Store without running etcd.
 *
 * Calls go over one keep-alive undici Pool; each watch holds its own RecordIO
 * stream on a second pool (a V1Connection per stream, see remote-watch.ts), so
 * a long-lived watch never queues calls behind it. Writes are sent once and
 * never retried (a retried CAS could apply twice); reads, keepAlive and
 * compact are retried once after a transport error, which is what a kept-alive
 * connection closed by a restarted master looks like.
 *
 * Arguments are checked here with the same checks as the other backends
 * (check.ts), so bad input fails the same way without a round trip; the
 * master checks everything again. HTTP and transport errors become the
 * contract's codes: STORE_CONFLICT, STORE_COMPACTED, LEASE_NOT_FOUND,
 * INVALID_ARGUMENT and FORBIDDEN pass through, UNAUTHENTICATED for bad
 * credentials, UNAVAILABLE for a master that cannot be reached or is shutting
 * down, STORE_CLOSED once this client is closed.
 *
 * `url` may name several masters (separated by commas): calls and watches go
 * to the leader among them, following a follower's 307 and skipping masters
 * that cannot be reached or have no leader (contracts/client/masters.ts). A
 * write moves on only when it surely was not applied (connection refused,
 * redirect, 503), never after a connection broke under it.
 */
import { Agent, Pool } from 'undici';
import { CorralError, errorMessage, type ErrorCode } from '../../contracts/errors.js';
import { logger, type Logger } from '../log.js';
import { formatIssues, parseInput, z } from '../validate.js';
import { V1Connection } from '../../contracts/client/connection.js';
import { basicAuthHeader } from '../../contracts/client/auth-header.js';
import { LeaderRedirect, LeaderTracker, MasterUnreachable, redirectTarget, transportFailure, viaLeader } from '../../contracts/client/masters.js';
import { tlsConnect, tlsFailure, type ClientTls } from '../../contracts/client/tls.js';
import * as check from '../../contracts/store/check.js';
import { compareToWire, kvFromWire, opToWire, replySchemas, resultFromWire, STORE_API_PATH, type Reply, type ReplyType, type StoreCall } from '../../contracts/store/wire.js';
import { RemoteWatch } from './remote-watch.js';
import type { KeyValue, PutOptions, RangeOptions, Store, Txn, TxnResult, Value, Watch, WatchOptions } from '../../contracts/store/types.js';

/** The master's base URL, e.g. http://master:5050: http(s), nothing after the port; or several separated by commas. */
export const masterUrlSchema = z.string().superRefine((spec, ctx) => {
  const list = spec.includes(',') ? spec.split(',').map((u) => u.trim()) : [spec];
  for (const u of list) {
    const problem = baseUrlProblem(u);
    if (problem) ctx.addIssue({ code: 'custom', message: list.length > 1 ? `${JSON.stringify(u)} ${problem}` : problem });
  }
});

function baseUrlProblem(u: string): string | undefined {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return 'must be a URL such as http://master:5050';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (!['', '/'].includes(url.pathname) || url.search || url.hash) return "must be the master's base URL, without a path";
  return undefined;
}

const optionsSchema = z
  .object({
    url: masterUrlSchema,
    principal: z.string().min(1).optional(),
    secret: z.string().min(1).optional(),
    /** Prefix prepended to every key, as on the etcd backend. */
    namespace: z
      .string()
      .refine((s) => !s.includes('\0'), 'must not contain NUL')
      .default(''),
    /** Upper bound for each call's reply (and for connecting), in ms. */
    timeoutMs: z.number().int().positive().default(10_000),
    /** Connections for calls: a write has one to itself (writes are never pipelined), reads pipeline up to 8 deep. */
    connections: z.number().int().min(1).max(64).default(4),
  })
  .refine((o) => (o.principal === undefined) === (o.secret === undefined), { message: 'principal and secret go together', path: ['secret'] });

/** `tls`: CA and client certificate for an https master (PEM contents, checked by whoever read the files). */
type RemoteStoreOptions = z.input<typeof optionsSchema> & { tls?: ClientTls | undefined };

/** Codes the master sends that mean the same to the caller. */
const PASS_THROUGH = new Set<string>(['STORE_CONFLICT', 'STORE_COMPACTED', 'LEASE_NOT_FOUND', 'INVALID_ARGUMENT', 'FORBIDDEN', 'UNAUTHENTICATED', 'UNAVAILABLE']);
/** Rejections of the request itself rather than of its content. */
const BAD_REQUEST = new Set<string>(['MALFORMED_REQUEST', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'NOT_ACCEPTABLE', 'METHOD_NOT_ALLOWED']);

export class RemoteStore implements Store {
  readonly backend = 'remote';
  /** The masters' origins, and which of them leads as far as this client knows. */
  private readonly leader: LeaderTracker;
  private readonly ns: string;
  private readonly timeoutMs: number;
  /** Call pools by master origin (one while the leader stays put). */
  private readonly calls = new Map<string, Pool>();
  private readonly callPool: Pool.Options;
  /** Every watch's stream, on whichever master leads. */
  private readonly streams: Agent;
  private readonly headers: Record<string, string>;
  private readonly credentials: { principal?: string; secret?: string };
  private readonly log: Logger;
  private readonly watches = new Set<RemoteWatch>();
  /** Newest revision seen in any reply: where a watch without fromRevision starts. */
  private lastRevision = 0;
  private closed = false;

  /** Creates the store and checks that the master answers and admits us (UNAVAILABLE, UNAUTHENTICATED, FORBIDDEN otherwise). */
  static async open(opts: RemoteStoreOptions): Promise<RemoteStore> {
    const store = new RemoteStore(opts);
    try {
      await store.currentRevision();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  constructor(opts: RemoteStoreOptions) {
    const o = parseInput(optionsSchema, opts, 'remote store options');
    this.leader = new LeaderTracker(o.url.split(',').map((u) => new URL(u.trim()).origin));
    this.ns = o.namespace;
    this.timeoutMs = o.timeoutMs;
    this.credentials = o.principal !== undefined && o.secret !== undefined ? { principal: o.principal, secret: o.secret } : {};
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (o.principal !== undefined && o.secret !== undefined) this.headers.authorization = basicAuthHeader(o.principal, o.secret);
    this.log = logger('store').child({ backend: 'remote', master: this.leader.masters.join(','), namespace: this.ns });
    const pool = { keepAliveTimeout: 60_000, connectTimeout: o.timeoutMs, ...tlsConnect(opts.tls) };
    this.callPool = { ...pool, connections: o.connections, pipelining: 8 };
    this.callsAt(this.leader.url);
    // Unbounded: every watch holds one connection for its whole life.
    this.streams = new Agent({ ...pool, connections: null });
  }

  /** The master this client talks to now. */
  private get origin(): string {
    return this.leader.url;
  }

  private callsAt(origin: string): Pool {
    let pool = this.calls.get(origin);
    if (!pool) {
      if (this.closed) throw check.closedError();
      pool = new Pool(origin, this.callPool);
      this.calls.set(origin, pool);
    }
    return pool;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.ensureOpen();
    const r = await this.call('GET', { type: 'GET', get: { key: this.key(key) } }, true);
    return r.get.kv && kvFromWire(r.get.kv, this.ns);
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<{ kvs: KeyValue[]; revision: number; more: boolean }> {
    this.ensureOpen();
    const p = this.prefix(prefix);
    const limit = check.checkLimit(opts.limit);
    const args = { prefix: p, ...(limit > 0 && { limit }), ...(opts.keysOnly === true && { keys_only: true }) };
    const { range } = await this.call('RANGE', { type: 'RANGE', range: args }, true);
    this.seen(range.revision);
    return { kvs: range.kvs.map((kv) => kvFromWire(kv, this.ns)), revision: range.revision, more: range.more };
  }

  async put(key: string, value: Value, opts: PutOptions = {}): Promise<{ revision: number; prev?: KeyValue }> {
    this.ensureOpen();
    const args = {
      key: this.key(key),
      value: check.toValue(value).toString('base64'),
      ...(opts.lease !== undefined && { lease: check.checkLeaseId(opts.lease, true) }),
      ...(opts.ifModRevision !== undefined && { if_mod_revision: check.checkRevision(opts.ifModRevision, 'ifModRevision') }),
    };
    const { put } = await this.call('PUT', { type: 'PUT', put: args });
    this.seen(put.revision);
    return put.prev_kv ? { revision: put.revision, prev: kvFromWire(put.prev_kv, this.ns) } : { revision: put.revision };
  }

  async delete(key: string, opts: { ifModRevision?: number } = {}): Promise<{ revision: number; deleted: number }> {
    this.ensureOpen();
    const args = {
      key: this.key(key),
      ...(opts.ifModRevision !== undefined && { if_mod_revision: check.checkRevision(opts.ifModRevision, 'ifModRevision') }),
    };
    const r = await this.call('DELETE', { type: 'DELETE', delete: args });
    this.seen(r.delete.revision);
    return { revision: r.delete.revision, deleted: r.delete.deleted };
  }

  async deletePrefix(prefix: string): Promise<{ revision: number; deleted: number }> {
    this.ensureOpen();
    const r = await this.call('DELETE_PREFIX', { type: 'DELETE_PREFIX', delete_prefix: { prefix: this.prefix(prefix) } });
    this.seen(r.delete_prefix.revision);
    return { revision: r.delete_prefix.revision, deleted: r.delete_prefix.deleted };
  }

  async txn(txn: Txn): Promise<TxnResult> {
    this.ensureOpen();
    const t = check.checkTxn(txn);
    for (const c of t.compare) this.key(c.key, 'compare key');
    for (const op of [...t.success, ...t.failure]) {
      if (op.type === 'range' || op.type === 'deletePrefix') this.prefix(op.prefix);
      else this.key(op.key);
    }
    const args = {
      compare: t.compare.map((c) => compareToWire(c, this.ns)),
      success: t.success.map((op) => opToWire(op, this.ns)),
      ...(t.failure.length > 0 && { failure: t.failure.map((op) => opToWire(op, this.ns)) }),
    };
    const r = await this.call('TXN', { type: 'TXN', txn: args });
    this.seen(r.txn.revision);
    return { succeeded: r.txn.succeeded, revision: r.txn.revision, results: r.txn.results.map((res) => resultFromWire(res, this.ns)) };
  }

  watch(opts: WatchOptions): Watch {
    this.ensureOpen();
    const { prefix, from } = check.checkWatch(opts);
    this.prefix(prefix);
    // "From now" is anchored at the newest revision this client has seen, not at the moment the
    // master registers the stream: a write this client makes right after watch() is then never missed.
    const start = from > 0 ? from : this.lastRevision > 0 ? this.lastRevision + 1 : 0;
    const w = new RemoteWatch(
      {
        connection: () => new V1Connection({ master: this.leader, path: STORE_API_PATH, ...this.credentials, dispatcher: this.streams }),
        ns: this.ns,
        log: this.log,
        onDone: (done) => this.watches.delete(done),
      },
      opts,
      prefix,
      start,
    );
    this.watches.add(w);
    return w;
  }

  async grantLease(ttlSeconds: number): Promise<number> {
    this.ensureOpen();
    const ttl = check.checkTtl(ttlSeconds);
    return (await this.call('GRANT_LEASE', { type: 'GRANT_LEASE', grant_lease: { ttl } })).grant_lease.id;
  }

  async keepAlive(leaseId: number): Promise<number> {
    this.ensureOpen();
    const id = check.checkLeaseId(leaseId);
    return (await this.call('KEEP_ALIVE', { type: 'KEEP_ALIVE', keep_alive: { id } }, true)).keep_alive.ttl;
  }

  async revokeLease(leaseId: number): Promise<void> {
    this.ensureOpen();
    const id = check.checkLeaseId(leaseId);
    await this.send({ type: 'REVOKE_LEASE', revoke_lease: { id } }, false);
  }

  async leaseInfo(leaseId: number): Promise<{ ttl: number; grantedTtl: number; keys: string[] } | undefined> {
    this.ensureOpen();
    const id = check.checkLeaseId(leaseId);
    const { lease } = (await this.call('LEASE_INFO', { type: 'LEASE_INFO', lease_info: { id } }, true)).lease_info;
    if (!lease) return undefined;
    const keys = lease.keys.filter((k) => k.startsWith(this.ns)).map((k) => k.slice(this.ns.length));
    return { ttl: lease.ttl, grantedTtl: lease.granted_ttl, keys };
  }

  async currentRevision(): Promise<number> {
    this.ensureOpen();
    const { revision } = (await this.call('CURRENT_REVISION', { type: 'CURRENT_REVISION' }, true)).current_revision;
    this.seen(revision);
    return revision;
  }

  async compact(revision: number): Promise<void> {
    this.ensureOpen();
    const rev = check.checkRevision(revision);
    await this.send({ type: 'COMPACT', compact: { revision: rev } }, true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches]) w.fail(check.closedError());
    await new Promise<void>((resolve) => setImmediate(resolve));
    await Promise.allSettled([...[...this.calls.values()].map((p) => p.close()), this.streams.destroy()]);
  }

  // ---- transport ----

  private ensureOpen(): void {
    if (this.closed) throw check.closedError();
  }

  /** The key as the master stores it: the namespace counts against the master's key limit. */
  private key(key: string, what = 'key'): string {
    return this.fit(this.ns + check.checkKey(key, what), what);
  }

  private prefix(prefix: string): string {
    return this.fit(this.ns + check.checkPrefix(prefix), 'prefix');
  }

  private fit(full: string, what: string): string {
    if (this.ns !== '' && Buffer.byteLength(full, 'utf8') > check.MAX_KEY_BYTES) {
      const room = check.MAX_KEY_BYTES - Buffer.byteLength(this.ns, 'utf8');
      throw new CorralError('INVALID_ARGUMENT', `${what} is longer than ${room} bytes (${check.MAX_KEY_BYTES} less the namespace ${JSON.stringify(this.ns)})`);
    }
    return full;
  }

  private seen(revision: number): void {
    if (revision > this.lastRevision) this.lastRevision = revision;
  }

  /** One call and its reply, checked against the wire schema (the master is an external input too). */
  private async call<T extends ReplyType>(type: T, call: StoreCall & { type: T }, idempotent = false): Promise<Reply<T>> {
    const body = await this.send(call, idempotent);
    const parsed = replySchemas[type].safeParse(body);
    if (!parsed.success) throw new CorralError('UNAVAILABLE', `malformed ${type} reply from the master at ${this.origin}: ${formatIssues(parsed.error)}`);
    return parsed.data as Reply<T>;
  }

  /** POSTs one call to the leader; resolves with the JSON reply (undefined for 202), throws the contract's error otherwise. */
  private send(call: StoreCall, idempotent: boolean): Promise<unknown> {
    const body = JSON.stringify(call);
    return viaLeader(this.leader, (origin) => this.sendTo(origin, body, idempotent), { retryBroken: idempotent, what: 'to the store API' });
  }

  private async sendTo(origin: string, body: string, idempotent: boolean): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      let status: number;
      let text: string;
      let location: string | string[] | undefined;
      try {
        const res = await this.callsAt(origin).request({
          path: STORE_API_PATH,
          method: 'POST',
          headers: this.headers,
          body,
          idempotent,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        });
        status = res.statusCode;
        location = res.headers.location;
        text = await res.body.text();
      } catch (err) {
        if (this.closed) throw check.closedError();
        if (err instanceof CorralError) throw err;
        const tls = tlsFailure(err, origin);
        if (tls) throw tls;
        if (idempotent && attempt === 0) continue;
        const message = `cannot reach the store API of the master at ${origin}: ${errorMessage(err)}`;
        throw new MasterUnreachable(message, transportFailure(err) !== 'refused', err);
      }
      const leader = redirectTarget(status, location, origin);
      if (leader !== undefined) throw new LeaderRedirect(status, leader, String(location));
      if (status >= 300) throw this.httpError(status, text, origin);
      if (text === '') return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new CorralError('UNAVAILABLE', `the master at ${origin} sent a reply that is not JSON (status ${status})`);
      }
    }
  }

  private httpError(status: number, text: string, origin: string): CorralError {
    let code: string | undefined;
    let message = text.slice(0, 2000) || `HTTP ${status}`;
    let details: Record<string, unknown> | undefined;
    try {
      const j = JSON.parse(text) as { code?: unknown; message?: unknown; details?: unknown };
      if (typeof j.code === 'string') code = j.code;
      if (typeof j.message === 'string') message = j.message;
      if (typeof j.details === 'object' && j.details !== null) details = j.details as Record<string, unknown>;
    } catch {
      // not JSON (a proxy's error page): the status decides
    }
    let mapped: ErrorCode;
    if (code !== undefined && PASS_THROUGH.has(code)) mapped = code as ErrorCode;
    else if (code !== undefined && BAD_REQUEST.has(code)) mapped = 'INVALID_ARGUMENT';
    else if (code === 'STORE_CLOSED') {
      mapped = 'UNAVAILABLE';
      message = `the master's store is closed (the master is stopping): ${message}`;
    } else if (status === 404) {
      mapped = 'UNAVAILABLE';
      message = `the master at ${origin} does not serve the store API (${STORE_API_PATH}): ${message}`;
    } else if (status === 401) mapped = 'UNAUTHENTICATED';
    else if (status === 403) mapped = 'FORBIDDEN';
    else if (status >= 400 && status < 500) mapped = 'INVALID_ARGUMENT';
    else mapped = 'UNAVAILABLE';
    return new CorralError(mapped, message, { ...details, status });
  }
}
