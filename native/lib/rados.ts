/**
 * The typed face of corral_rados.node (librados + librbd). The addon is loaded
 * lazily, on the first call to `loadRados()`, so corral runs without it; when
 * it cannot load, the error says exactly why (headers missing, addon not
 * built, library missing) and how to fix it.
 *
 * Every method that may block runs on the libuv thread pool and returns a
 * promise. Failures are `RadosError`s: a CorralError whose code follows the
 * errno (ENOENT → NOT_FOUND, EBUSY → CONFLICT…) and which keeps `errno`,
 * `errnoName` and the failing librados/librbd function in `op`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { findAddon } from './addon-path.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CorralError, type ErrorCode } from '../../contracts/errors.js';

interface ClusterOptions {
  /** Ceph client name, e.g. "client.admin". */
  clientName?: string;
  /** ceph.conf path; default: Ceph's own search path. */
  confFile?: string;
  /** Extra configuration, e.g. { keyring: '/etc/ceph/x.keyring', rados_osd_op_timeout: '10' }. */
  options?: Record<string, string>;
}

interface Locker {
  /** Entity holding the lock, e.g. "client.4123". */
  client: string;
  cookie: string;
  /** Network address of that client instance, e.g. "127.0.0.1:0/123456" (what a blocklist entry names). */
  addr: string;
}

export interface LockInfo {
  exclusive: boolean;
  tag: string;
  lockers: Locker[];
}

export interface LockOptions {
  description?: string;
  tag?: string;
  /** 0 (default) = until unlocked or broken. */
  durationMs?: number;
  /** Renew the lock if this client already holds it with this cookie. */
  mayRenew?: boolean;
}

export interface OmapEntry {
  key: string;
  value: Buffer;
}

export type WriteStep =
  | { op: 'create'; exclusive?: boolean }
  | { op: 'assertExists' }
  | { op: 'omapSet'; entries: Record<string, string | Buffer> }
  | { op: 'omapRm'; keys: string[] }
  | { op: 'omapClear' }
  /** A missing key compares as the empty value. */
  | { op: 'omapCmp'; key: string; value: string | Buffer; cmp?: Comparison }
  | { op: 'setXattr'; name: string; value: string | Buffer }
  | { op: 'rmXattr'; name: string }
  | { op: 'cmpXattr'; name: string; value: string | Buffer; cmp?: Comparison }
  | { op: 'writeFull'; data: string | Buffer }
  | { op: 'remove' };

type Comparison = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte';

export interface NotifyResult {
  acks: { notifierId: string; cookie: string; payload: Buffer }[];
  /** Watchers that did not acknowledge in time (dead or stuck). */
  timeouts: { notifierId: string; cookie: string }[];
  timedOut: boolean;
}

export interface ImageInfo {
  size: number;
  objSize: number;
  numObjs: number;
  order: number;
  blockNamePrefix: string;
  features: number;
}

export interface SnapInfo {
  id: number;
  name: string;
  size: number;
}

export interface Image {
  info(): Promise<ImageInfo>;
  resize(size: number): Promise<void>;
  snapCreate(name: string): Promise<void>;
  snapList(): Promise<SnapInfo[]>;
  snapRollback(name: string): Promise<void>;
  snapRemove(name: string): Promise<void>;
  /** The header lock; the exclusive-lock feature's holder shows up here with cookie "auto …". */
  listLockers(): Promise<LockInfo>;
  /** Clients with the image open (each librbd opener watches the header). */
  watchers(): Promise<{ addr: string; id: number; cookie: string }[]>;
  lockExclusive(cookie: string): Promise<void>;
  unlock(cookie: string): Promise<void>;
  /** Blocklists the holder first (rbd_blocklist_on_break_lock), then breaks. */
  breakLock(client: string, cookie: string): Promise<void>;
  lockGetOwners(): Promise<{ mode: 'exclusive' | 'shared'; owners: string[] }>;
  lockBreak(mode: 'exclusive' | 'shared', owner: string): Promise<void>;
  readAt(offset: number, length: number): Promise<Buffer>;
  writeAt(offset: number, data: Buffer): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface IoCtx {
  read(oid: string, length: number, offset?: number): Promise<Buffer>;
  write(oid: string, data: Buffer | string, offset?: number): Promise<void>;
  writeFull(oid: string, data: Buffer | string): Promise<void>;
  remove(oid: string): Promise<void>;
  stat(oid: string): Promise<{ size: number; mtime: number }>;
  getXattr(oid: string, name: string): Promise<Buffer>;
  setXattr(oid: string, name: string, value: Buffer | string): Promise<void>;
  rmXattr(oid: string, name: string): Promise<void>;
  listXattrs(oid: string): Promise<Record<string, Buffer>>;
  /** Watch an object; notifies are acknowledged natively with `ackPayload`. Returns the watch handle. */
  watch(oid: string, ackPayload?: Buffer | string, timeoutSeconds?: number): Promise<string>;
  /** Milliseconds since the watch was last confirmed; throws once the watch is broken. */
  watchCheck(handle: string): number;
  unwatch(handle: string): Promise<void>;
  notify(oid: string, payload?: Buffer | string, timeoutMs?: number): Promise<NotifyResult>;
  omapGet(oid: string, opts?: { startAfter?: string; prefix?: string; max?: number }): Promise<{ entries: OmapEntry[]; more: boolean }>;
  omapGetKeys(oid: string, keys: string[]): Promise<OmapEntry[]>;
  /** All steps atomically; a failed comparison rejects with ECANCELED (CONFLICT). */
  writeOp(oid: string, steps: WriteStep[]): Promise<void>;
  lockExclusive(oid: string, name: string, cookie: string, opts?: LockOptions): Promise<void>;
  lockShared(oid: string, name: string, cookie: string, opts?: LockOptions): Promise<void>;
  unlock(oid: string, name: string, cookie: string): Promise<void>;
  /** Breaks only the lock: fence the holder (Cluster.blocklistAdd) before calling it. */
  breakLock(oid: string, name: string, client: string, cookie: string): Promise<void>;
  listLockers(oid: string, name: string): Promise<LockInfo>;
  rbdList(): Promise<string[]>;
  rbdCreate(name: string, size: number, opts?: { features?: number; order?: number }): Promise<void>;
  rbdRemove(name: string): Promise<void>;
  rbdOpen(name: string, snapName?: string): Promise<Image>;
}

export interface Cluster {
  connect(): Promise<void>;
  /** This client's global id (the N of "client.N"). */
  instanceId(): number;
  /** This client's address as the cluster sees it, e.g. "127.0.0.1:0/123456". */
  addrs(): string;
  fsid(): string;
  poolList(): Promise<string[]>;
  poolCreate(name: string): Promise<void>;
  poolLookup(name: string): Promise<number>;
  monCommand(command: string, input?: Buffer): Promise<{ outbuf: Buffer; outs: string }>;
  /** Fence a client instance; resolves once the osdmap carrying the entry is current. */
  blocklistAdd(addr: string, expireSeconds: number): Promise<void>;
  waitForLatestOsdmap(): Promise<void>;
  openIoCtx(pool: string): Promise<IoCtx>;
  shutdown(): Promise<void>;
}

interface RadosModule {
  Cluster: new (opts?: ClusterOptions) => Cluster;
  versions(): { rados: string; rbd: string };
}

export const RBD_FEATURES = {
  layering: 1 << 0,
  striping: 1 << 1,
  'exclusive-lock': 1 << 2,
  'object-map': 1 << 3,
  'fast-diff': 1 << 4,
  'deep-flatten': 1 << 5,
  journaling: 1 << 6,
} as const;
export type RbdFeature = keyof typeof RBD_FEATURES;

const errnoToCode: Record<string, ErrorCode> = {
  ENOENT: 'NOT_FOUND',
  EEXIST: 'CONFLICT',
  EBUSY: 'CONFLICT',
  ECANCELED: 'CONFLICT',
  ENOTEMPTY: 'CONFLICT',
  EINVAL: 'INVALID_ARGUMENT',
  ERANGE: 'INVALID_ARGUMENT',
  ENAMETOOLONG: 'INVALID_ARGUMENT',
  EACCES: 'FORBIDDEN',
  EPERM: 'FORBIDDEN',
  ETIMEDOUT: 'TIMEOUT',
  ENOSPC: 'RESOURCE_EXHAUSTED',
  EDQUOT: 'RESOURCE_EXHAUSTED',
};

export class RadosError extends CorralError {
  /** Positive errno. */
  readonly errno: number;
  /** Symbolic errno, e.g. "ENOENT". */
  readonly errnoName: string;
  /** The librados/librbd function that failed. */
  readonly op: string;

  constructor(message: string, op: string, errno: number, errnoName: string) {
    super(errnoToCode[errnoName] ?? 'UNAVAILABLE', message, { errno, errnoName, op });
    this.name = 'RadosError';
    this.errno = errno;
    this.errnoName = errnoName;
    this.op = op;
  }
}

export function isRadosError(err: unknown, errnoName?: string): err is RadosError {
  return err instanceof RadosError && (errnoName === undefined || err.errnoName === errnoName);
}

const ADDON_REL = join('native', 'build', 'Release', 'corral_rados.node');

/** Where the addon is expected: CORRAL_RADOS_ADDON, else native/build under the checkout (source or dist). */
function addonPath(): string {
  return process.env.CORRAL_RADOS_ADDON || (findAddon(ADDON_REL) ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'Release', 'corral_rados.node'));
}

let loaded: RadosModule | undefined;
let failure: CorralError | undefined;

function whyMissing(path: string): string {
  const headers = existsSync('/usr/include/rados/librados.h') && existsSync('/usr/include/rbd/librbd.h');
  if (!headers) {
    return `the librados/librbd development headers are not installed (apt-get install librados-dev librbd-dev), so the addon ${path} was not built`;
  }
  return `the addon ${path} is not built: run \`npx node-gyp rebuild --directory native\``;
}

/** The addon, loaded once. Throws UNAVAILABLE with the reason when it cannot be loaded. */
function loadRados(): RadosModule {
  if (loaded) return loaded;
  if (failure) throw failure;
  const path = addonPath();
  try {
    if (!existsSync(path)) throw new Error(whyMissing(path));
    const mod = createRequire(import.meta.url)(path) as RadosModule & { setErrorFactory(f: (m: string, op: string, errno: number, name: string) => Error): void };
    mod.setErrorFactory((message, op, errno, name) => new RadosError(message, op, errno, name));
    loaded = mod;
    return mod;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    failure = new CorralError('UNAVAILABLE', `Ceph RADOS/RBD support is unavailable: ${msg}`);
    throw failure;
  }
}

/** Why rbd support is unavailable, or undefined when the addon loads. */
export function radosUnavailableReason(): string | undefined {
  try {
    loadRados();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Timeouts so that no librados call can block forever when the cluster is down. */
function defaultTimeouts(seconds: number): Record<string, string> {
  const s = String(seconds);
  return { rados_osd_op_timeout: s, rados_mon_op_timeout: s, client_mount_timeout: s };
}

/** Connect a cluster handle with timeouts applied; the handle is shut down if connecting fails. */
export async function connectCluster(opts: ClusterOptions & { timeoutSeconds?: number }): Promise<Cluster> {
  const { Cluster } = loadRados();
  const cluster = new Cluster({
    ...(opts.clientName ? { clientName: opts.clientName } : {}),
    ...(opts.confFile ? { confFile: opts.confFile } : {}),
    options: { ...defaultTimeouts(opts.timeoutSeconds ?? 10), ...opts.options },
  });
  try {
    await cluster.connect();
  } catch (err) {
    await cluster.shutdown().catch(() => undefined);
    throw err;
  }
  return cluster;
}
