/**
 * The Store contract for cluster state. Modelled on etcd v3 (one global
 * revision, per-key create/mod revisions and version, leases, compare-and-swap
 * transactions, watches that resume from a revision) so the embedded default
 * and the etcd backend are interchangeable and callers see only this file.
 *
 * Errors are CorralErrors with codes STORE_CONFLICT (a CAS precondition
 * failed), STORE_COMPACTED (a watch asked for history that is gone),
 * LEASE_NOT_FOUND, STORE_CLOSED, UNAVAILABLE (backend unreachable),
 * INVALID_ARGUMENT (bad key, value or option); the remote backend adds
 * FORBIDDEN (the master refuses the principal or the key) and UNAUTHENTICATED.
 */

export interface KeyValue {
  key: string;
  value: Buffer;
  /** Revision of the put that created the key (since its last delete). */
  createRevision: number;
  /** Revision of the last change. */
  modRevision: number;
  /** Number of puts since creation; 1 after the first. */
  version: number;
  /** Lease the key is attached to; 0 for none. */
  lease: number;
}

export type Value = Buffer | string;

/**
 * A transaction guard. A missing key compares as createRevision = modRevision =
 * version = 0, so `{ target: 'createRevision', op: '=', value: 0 }` means "absent".
 */
export type Compare = { key: string; target: 'modRevision' | 'createRevision' | 'version'; op: '=' | '!=' | '<' | '>'; value: number } | { key: string; target: 'value'; op: '=' | '!='; value: Value };

export type Op =
  | { type: 'put'; key: string; value: Value; lease?: number }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string }
  | { type: 'get'; key: string }
  | { type: 'range'; prefix: string; limit?: number };

export type OpResult =
  | { type: 'put'; prev?: KeyValue }
  | { type: 'delete'; deleted: number }
  | { type: 'deletePrefix'; deleted: number }
  | { type: 'get'; kv?: KeyValue }
  | { type: 'range'; kvs: KeyValue[]; more: boolean };

export interface Txn {
  compare: Compare[];
  success: Op[];
  failure?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the transaction (unchanged when nothing was written). */
  revision: number;
  results: OpResult[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For deletes: key and modRevision (= the deleting revision) are set, value is empty. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface WatchOptions {
  /** Watch every key starting with `prefix` (use the full key for a single key). */
  prefix: string;
  /** First revision to deliver (inclusive); default: only changes after the watch starts. */
  fromRevision?: number;
  /** Also fill `prevKv` on events. */
  prevKv?: boolean;
  /** Called in revision order; all events of one revision come in one call. */
  onEvents(events: WatchEvent[], revision: number): void;
  /** Watch ended with an error (STORE_COMPACTED, UNAVAILABLE…); no more events follow. */
  onError?(err: Error): void;
}

export interface Watch {
  cancel(): void;
}

export interface RangeOptions {
  limit?: number;
  keysOnly?: boolean;
}

export interface PutOptions {
  lease?: number;
  /**
   * Compare-and-set on the key's modRevision: the put happens only if the key's
   * current modRevision equals this (0 = the key must not exist); otherwise
   * STORE_CONFLICT is thrown.
   */
  ifModRevision?: number;
}

export interface Store {
  /** Backend name: "embedded", "etcd" or "remote". */
  readonly backend: string;

  get(key: string): Promise<KeyValue | undefined>;
  range(prefix: string, opts?: RangeOptions): Promise<{ kvs: KeyValue[]; revision: number; more: boolean }>;
  put(key: string, value: Value, opts?: PutOptions): Promise<{ revision: number; prev?: KeyValue }>;
  delete(key: string, opts?: { ifModRevision?: number }): Promise<{ revision: number; deleted: number }>;
  deletePrefix(prefix: string): Promise<{ revision: number; deleted: number }>;
  txn(txn: Txn): Promise<TxnResult>;
  watch(opts: WatchOptions): Watch;

  /** Grant a lease; keys attached to it are deleted when it expires or is revoked. */
  grantLease(ttlSeconds: number): Promise<number>;
  /** Renew a lease to its full TTL; LEASE_NOT_FOUND if it has expired. Returns the TTL. */
  keepAlive(leaseId: number): Promise<number>;
  revokeLease(leaseId: number): Promise<void>;
  /** Remaining TTL in seconds and attached keys, or undefined if the lease is gone. */
  leaseInfo(leaseId: number): Promise<{ ttl: number; grantedTtl: number; keys: string[] } | undefined>;

  currentRevision(): Promise<number>;
  /** Discard history before `revision`; watches from earlier revisions then fail. */
  compact(revision: number): Promise<void>;
  close(): Promise<void>;
}
