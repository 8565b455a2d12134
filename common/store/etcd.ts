/**
 * The Store on a real etcd v3 cluster. Each contract call maps onto one etcd
 * primitive (Range, Put, DeleteRange, Txn with compares, Compact, the Lease
 * RPCs, Watch with start_revision and prev_kv) through the etcd3 client's raw
 * RPC clients; the high-level helpers are avoided because they keep leases
 * alive on their own and hide watch compaction.
 *
 * Keys live under an optional namespace prefix. Lease ids are chosen here
 * (random, below 2^48) because etcd's own ids are 64-bit and would lose
 * precision as JavaScript numbers.
 */
import { randomInt } from 'node:crypto';
import {
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCUnavailableError,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type IResponseHeader,
  type IResponseOp,
} from 'etcd3';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { logger, type Logger } from '../log.js';
import * as check from '../../contracts/store/check.js';
import type { CheckedCompare, CheckedOp } from '../../contracts/store/check.js';
import { dropEtcdToken, etcdClientOptions, etcdCredentialError, keepEtcdTokensFresh, type EtcdConnectionOptions } from './etcd-connection.js';
import { EtcdWatch } from './etcd-watch.js';
import type { KeyValue, OpResult, PutOptions, RangeOptions, Store, Txn, TxnResult, Value, Watch, WatchOptions } from '../../contracts/store/types.js';

export interface EtcdStoreOptions extends EtcdConnectionOptions {
  /** Prefix prepended to every key, so several clusters or tests can share one etcd. */
  namespace?: string;
}

const CMP_TARGET = { modRevision: 'Mod', createRevision: 'Create', version: 'Version', value: 'Value' } as const;
const CMP_RESULT = { '=': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

export class EtcdStore implements Store {
  readonly backend = 'etcd';
  private readonly client: Etcd3;
  private readonly ns: Buffer;
  private readonly timeoutMs: number;
  private readonly endpoints: string[];
  private readonly username: string | undefined;
  private readonly log: Logger;
  private readonly watches = new Set<EtcdWatch>();
  /** Newest revision seen in any response: where a watch without fromRevision starts. */
  private lastRevision = 0;
  private closed = false;

  /** Creates the store and checks that etcd answers (UNAVAILABLE otherwise). */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(opts);
    try {
      await store.currentRevision();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  constructor(opts: EtcdStoreOptions) {
    const { namespace = '' } = opts ?? ({} as EtcdStoreOptions);
    if (typeof namespace !== 'string' || namespace.includes('\0')) throw new CorralError('INVALID_ARGUMENT', 'namespace must be a string without NUL');
    // Checks endpoints, timeout, TLS and auth, and reads their files, before anything connects.
    const clientOptions = etcdClientOptions(opts);
    this.ns = Buffer.from(namespace, 'utf8');
    this.timeoutMs = opts.dialTimeoutMs ?? 5000;
    this.endpoints = [...opts.endpoints];
    this.username = opts.auth?.username;
    this.log = logger('store').child({ backend: 'etcd', namespace });
    this.client = new Etcd3(clientOptions);
    if (opts.auth) keepEtcdTokensFresh(this.client);
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const k = this.key(check.checkKey(key));
    const res = await this.call(() => this.client.kv.range({ key: k }));
    return res.kvs[0] && this.decode(res.kvs[0]);
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<{ kvs: KeyValue[]; revision: number; more: boolean }> {
    const r = this.prefixRange(check.checkPrefix(prefix));
    const limit = check.checkLimit(opts.limit);
    const res = await this.call(() => this.client.kv.range({ ...r, limit, keys_only: opts.keysOnly === true }));
    return { kvs: res.kvs.map((kv) => this.decode(kv)), revision: Number(res.header.revision), more: res.more };
  }

  async put(key: string, value: Value, opts: PutOptions = {}): Promise<{ revision: number; prev?: KeyValue }> {
    const k = check.checkKey(key);
    const op: CheckedOp = { type: 'put', key: k, value: check.toValue(value), lease: opts.lease === undefined ? 0 : check.checkLeaseId(opts.lease, true) };
    const res = await this.casTxn(k, opts.ifModRevision, op);
    const prev = (res.results[0] as Extract<OpResult, { type: 'put' }>).prev;
    return prev ? { revision: res.revision, prev } : { revision: res.revision };
  }

  async delete(key: string, opts: { ifModRevision?: number } = {}): Promise<{ revision: number; deleted: number }> {
    const k = check.checkKey(key);
    const res = await this.casTxn(k, opts.ifModRevision, { type: 'delete', key: k });
    return { revision: res.revision, deleted: (res.results[0] as { deleted: number }).deleted };
  }

  async deletePrefix(prefix: string): Promise<{ revision: number; deleted: number }> {
    const r = this.prefixRange(check.checkPrefix(prefix));
    const res = await this.call(() => this.client.kv.deleteRange(r));
    return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
  }

  async txn(txn: Txn): Promise<TxnResult> {
    const t = check.checkTxn(txn);
    const res = await this.call(() =>
      this.client.kv.txn({
        compare: t.compare.map((c) => this.compare(c)),
        success: t.success.map((op) => this.requestOp(op)),
        failure: t.failure.map((op) => this.requestOp(op)),
      }),
    );
    const ops = res.succeeded ? t.success : t.failure;
    return { succeeded: res.succeeded, revision: Number(res.header.revision), results: ops.map((op, i) => this.opResult(op, res.responses[i]!)) };
  }

  watch(opts: WatchOptions): Watch {
    this.ensureOpen();
    const { prefix, from } = check.checkWatch(opts);
    // "From now" is anchored at the newest revision this client has seen, not at the moment etcd
    // registers the watch: a write this client makes right after watch() is then never missed.
    const start = from > 0 ? from : this.lastRevision > 0 ? this.lastRevision + 1 : 0;
    const w = new EtcdWatch(
      {
        watchClient: this.client.watchClient,
        range: this.prefixRange(prefix),
        decode: (kv) => this.decode(kv),
        log: this.log,
        onDone: (done) => this.watches.delete(done),
        fatal: (err) => etcdCredentialError(err, this.endpoints, this.username),
        ...(this.username !== undefined && { reauthenticate: () => dropEtcdToken(this.client) }),
      },
      opts,
      start,
    );
    this.watches.add(w);
    return w;
  }

  async grantLease(ttlSeconds: number): Promise<number> {
    const ttl = check.checkTtl(ttlSeconds);
    for (let attempt = 0; ; attempt++) {
      const id = randomInt(1, 2 ** 48);
      try {
        const res = await this.call(() => this.client.leaseClient.leaseGrant({ TTL: ttl, ID: id }));
        if (res.error) throw new CorralError('UNAVAILABLE', `etcd lease grant failed: ${res.error}`);
        return Number(res.ID);
      } catch (err) {
        if (attempt < 3 && /lease already exists/.test(errorMessage(err))) continue;
        throw err;
      }
    }
  }

  async keepAlive(leaseId: number): Promise<number> {
    const id = check.checkLeaseId(leaseId);
    this.ensureOpen();
    let stream: Awaited<ReturnType<typeof this.client.leaseClient.leaseKeepAlive>>;
    try {
      stream = await this.client.leaseClient.leaseKeepAlive({ deadline: Date.now() + this.timeoutMs });
    } catch (err) {
      throw this.mapError(err);
    }
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      stream.on('data', (res) => {
        if (settled) return;
        settled = true;
        this.seen(res.header);
        stream.end();
        // etcd answers TTL 0 for a lease it no longer knows.
        if (Number(res.TTL) <= 0) reject(leaseNotFound(id));
        else resolve(Number(res.TTL));
      });
      stream.on('error', (err) => {
        if (settled) return;
        settled = true;
        reject(this.mapError(err));
      });
      stream.on('end', () => {
        if (settled) return;
        settled = true;
        reject(new CorralError('UNAVAILABLE', `etcd closed the keepalive stream for lease ${id} without answering`));
      });
      stream.write({ ID: id });
    });
  }

  async revokeLease(leaseId: number): Promise<void> {
    const id = check.checkLeaseId(leaseId);
    await this.call(() => this.client.leaseClient.leaseRevoke({ ID: id }));
  }

  async leaseInfo(leaseId: number): Promise<{ ttl: number; grantedTtl: number; keys: string[] } | undefined> {
    const id = check.checkLeaseId(leaseId);
    const res = await this.call(() => this.client.leaseClient.leaseTimeToLive({ ID: id, keys: true }));
    if (Number(res.TTL) < 0) return undefined;
    const keys = res.keys
      .filter((k) => k.subarray(0, this.ns.length).equals(this.ns))
      .map((k) => k.subarray(this.ns.length).toString('utf8'))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return { ttl: Number(res.TTL), grantedTtl: Number(res.grantedTTL), keys };
  }

  async currentRevision(): Promise<number> {
    const res = await this.call(() => this.client.kv.range({ key: this.key('\u0000'), count_only: true }));
    return Number(res.header.revision);
  }

  async compact(revision: number): Promise<void> {
    const rev = check.checkRevision(revision);
    try {
      // physical: wait until the history is really gone, so a watch started afterwards sees the compaction.
      await this.call(() => this.client.kv.compact({ revision: rev, physical: true }));
    } catch (err) {
      // Compacting at or below the current compaction point is a no-op, as on the embedded store.
      if (err instanceof CorralError && err.code === 'STORE_COMPACTED') return;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const watches = [...this.watches];
    for (const w of watches) w.fail(check.closedError());
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.client.close();
  }

  // ---- mapping ----

  private ensureOpen(): void {
    if (this.closed) throw check.closedError();
  }

  private async call<T extends { header: IResponseHeader }>(fn: () => Promise<T>): Promise<T> {
    this.ensureOpen();
    try {
      const res = await fn();
      this.seen(res.header);
      return res;
    } catch (err) {
      throw this.mapError(err);
    }
  }

  private seen(header: IResponseHeader | undefined): void {
    const rev = Number(header?.revision ?? 0);
    if (rev > this.lastRevision) this.lastRevision = rev;
  }

  private mapError(err: unknown): Error {
    if (err instanceof CorralError) return err;
    if (this.closed || err instanceof ClientClosedError) return check.closedError();
    // Wrong CA, no client certificate, a bad password, a key outside the user's role: retrying cannot help, and the message says which.
    const credential = etcdCredentialError(err, this.endpoints, this.username);
    if (credential) return credential;
    const msg = errorMessage(err);
    const wrap = (code: ConstructorParameters<typeof CorralError>[0]) => new CorralError(code, `etcd: ${msg}`, undefined, { cause: err });
    if (err instanceof EtcdLeaseInvalidError || msg.includes('requested lease not found')) return wrap('LEASE_NOT_FOUND');
    if (msg.includes('required revision has been compacted')) return wrap('STORE_COMPACTED');
    if (msg.includes('required revision is a future revision')) return wrap('INVALID_ARGUMENT');
    if (err instanceof GRPCInvalidArgumentError || /duplicate key|too many operations|request is too large|key is not provided/.test(msg)) {
      return wrap('INVALID_ARGUMENT');
    }
    if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError) return wrap('UNAVAILABLE');
    // Leader changes, timeouts, broken connections and anything else etcd-side: the caller may retry.
    return wrap('UNAVAILABLE');
  }

  private key(k: string): Buffer {
    return this.ns.length === 0 ? Buffer.from(k, 'utf8') : Buffer.concat([this.ns, Buffer.from(k, 'utf8')]);
  }

  private prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
    const start = this.key(prefix);
    // An empty key is not a valid range start in etcd; "\0".."\0" means the whole keyspace.
    return { key: start.length === 0 ? Buffer.from([0]) : start, range_end: check.bytesPrefixEnd(start) };
  }

  private decode(kv: IKeyValue): KeyValue {
    return {
      key: kv.key.subarray(this.ns.length).toString('utf8'),
      value: kv.value ?? Buffer.alloc(0),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
      lease: Number(kv.lease),
    };
  }

  private async casTxn(key: string, ifModRevision: number | undefined, op: CheckedOp): Promise<TxnResult> {
    const compare: CheckedCompare[] = ifModRevision === undefined ? [] : [{ key, target: 'modRevision', op: '=', value: check.checkRevision(ifModRevision, 'ifModRevision') }];
    const failure: IRequestOp[] = compare.length > 0 ? [{ request_range: { key: this.key(key), keys_only: true } }] : [];
    const res = await this.call(() => this.client.kv.txn({ compare: compare.map((c) => this.compare(c)), success: [this.requestOp(op)], failure }));
    if (!res.succeeded) {
      const actual = res.responses[0]?.response_range?.kvs[0];
      throw check.conflictError(key, ifModRevision!, actual ? Number(actual.mod_revision) : 0);
    }
    return { succeeded: true, revision: Number(res.header.revision), results: [this.opResult(op, res.responses[0]!)] };
  }

  private compare(c: CheckedCompare): ICompare {
    const base: ICompare = { key: this.key(c.key), target: CMP_TARGET[c.target], result: CMP_RESULT[c.op] };
    switch (c.target) {
      case 'modRevision':
        return { ...base, mod_revision: c.value };
      case 'createRevision':
        return { ...base, create_revision: c.value };
      case 'version':
        return { ...base, version: c.value };
      case 'value':
        return { ...base, value: c.value };
    }
  }

  private requestOp(op: CheckedOp): IRequestOp {
    switch (op.type) {
      case 'put':
        return { request_put: { key: this.key(op.key), value: op.value, lease: op.lease, prev_kv: true } };
      case 'delete':
        return { request_delete_range: { key: this.key(op.key) } };
      case 'deletePrefix':
        return { request_delete_range: this.prefixRange(op.prefix) };
      case 'get':
        return { request_range: { key: this.key(op.key) } };
      case 'range':
        return { request_range: { ...this.prefixRange(op.prefix), limit: op.limit } };
    }
  }

  private opResult(op: CheckedOp, res: IResponseOp): OpResult {
    switch (op.type) {
      case 'put': {
        const prev = res.response_put?.prev_kv;
        return prev ? { type: 'put', prev: this.decode(prev) } : { type: 'put' };
      }
      case 'delete':
      case 'deletePrefix':
        return { type: op.type, deleted: Number(res.response_delete_range?.deleted ?? 0) };
      case 'get': {
        const kv = res.response_range?.kvs[0];
        return kv ? { type: 'get', kv: this.decode(kv) } : { type: 'get' };
      }
      case 'range':
        return { type: 'range', kvs: (res.response_range?.kvs ?? []).map((kv) => this.decode(kv)), more: res.response_range?.more ?? false };
    }
  }
}

function leaseNotFound(id: number): CorralError {
  return new CorralError('LEASE_NOT_FOUND', `lease ${id} not found (expired or revoked)`, { lease: id });
}
