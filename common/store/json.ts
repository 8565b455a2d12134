/**
 * Typed JSON access and the backend factory: most callers store JSON documents
 * and pick the backend from configuration, so they never import a backend
 * class directly.
 */
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { parseInput, z } from '../validate.js';
import { EmbeddedStore } from './embedded.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd.js';
import { ETCD_PASSWORD_ENV } from './etcd-connection.js';
import { masterUrlSchema, RemoteStore } from './remote.js';
import type { ClientTls } from '../../contracts/client/tls.js';
import type { KeyValue, PutOptions, Store } from '../../contracts/store/types.js';

export const storeConfigSchema = z
  .object({
    backend: z.enum(['embedded', 'etcd', 'remote']).default('embedded'),
    /** SQLite file of the embedded backend. */
    path: z.string().min(1).optional(),
    sync: z.enum(['full', 'normal']).default('full'),
    historyRevisions: z.number().int().min(0).optional(),
    etcdEndpoints: z.array(z.string().min(1)).optional(),
    /** etcd over TLS: PEM files of the CA that signed etcd's certificates, and the client certificate and key etcd asks for. */
    etcdTls: z.strictObject({ ca: z.string().min(1), cert: z.string().min(1).optional(), key: z.string().min(1).optional() }).optional(),
    /** etcd user authentication: the password is read from passwordFile, else from CORRAL_ETCD_PASSWORD (never from the config or a flag). */
    etcdAuth: z.strictObject({ username: z.string().min(1), passwordFile: z.string().min(1).optional() }).optional(),
    /** Remote backend: the master's base URL (its store API), and the credentials to use there. */
    url: masterUrlSchema.optional(),
    principal: z.string().min(1).optional(),
    secret: z.string().min(1).optional(),
    /** etcd and remote: prefix prepended to every key. */
    namespace: z.string().optional(),
    dialTimeoutMs: z.number().int().positive().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.backend === 'embedded' && !c.path) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'required for the embedded backend' });
    }
    if (c.backend === 'etcd' && !c.etcdEndpoints?.length) {
      ctx.addIssue({ code: 'custom', path: ['etcdEndpoints'], message: 'required for the etcd backend' });
    }
    if (c.backend === 'remote' && !c.url) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: "required for the remote backend (the master's URL, e.g. http://master:5050)" });
    }
    if (c.etcdTls && (c.etcdTls.cert === undefined) !== (c.etcdTls.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['etcdTls'], message: 'cert and key go together' });
    }
    if (c.etcdTls && c.etcdEndpoints?.some((e) => !e.startsWith('https://'))) {
      ctx.addIssue({ code: 'custom', path: ['etcdEndpoints'], message: 'with etcdTls every endpoint is https://' });
    }
    if ((c.principal === undefined) !== (c.secret === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: 'principal and secret go together' });
    }
  });

export type StoreConfigInput = z.input<typeof storeConfigSchema>;

/**
 * How a daemon with this (parsed) store config reaches etcd: the Store and the
 * election of replicated daemons connect alike (endpoints, TLS, auth).
 */
export function etcdConnectionOf(c: z.output<typeof storeConfigSchema>, env: NodeJS.ProcessEnv = process.env): EtcdStoreOptions {
  const auth = c.etcdAuth;
  return {
    endpoints: c.etcdEndpoints ?? [],
    ...(c.namespace !== undefined && { namespace: c.namespace }),
    ...(c.dialTimeoutMs !== undefined && { dialTimeoutMs: c.dialTimeoutMs }),
    ...(c.etcdTls && { tls: { ca: c.etcdTls.ca, ...(c.etcdTls.cert !== undefined && { cert: c.etcdTls.cert, key: c.etcdTls.key! }) } }),
    ...(auth && {
      auth:
        auth.passwordFile !== undefined
          ? { username: auth.username, passwordFile: auth.passwordFile }
          : { username: auth.username, ...(env[ETCD_PASSWORD_ENV] !== undefined && { password: env[ETCD_PASSWORD_ENV] }) },
    }),
  };
}

/** Opens the configured backend; INVALID_ARGUMENT for a bad config, UNAVAILABLE if it cannot be reached or locked. */
export async function openStore(config: StoreConfigInput, opts: { remoteTls?: ClientTls | undefined } = {}): Promise<Store> {
  const c = parseInput(storeConfigSchema, config, 'store config');
  if (c.backend === 'remote') {
    // An https master: the daemon's own CA and certificate (its `tls` block), given by the caller.
    return RemoteStore.open({
      ...(opts.remoteTls && { tls: opts.remoteTls }),
      url: c.url!,
      ...(c.principal !== undefined && { principal: c.principal }),
      ...(c.secret !== undefined && { secret: c.secret }),
      ...(c.namespace !== undefined && { namespace: c.namespace }),
      ...(c.dialTimeoutMs !== undefined && { timeoutMs: c.dialTimeoutMs }),
    });
  }
  if (c.backend === 'etcd') {
    return EtcdStore.open(etcdConnectionOf(c));
  }
  return EmbeddedStore.open({
    path: c.path!,
    sync: c.sync,
    ...(c.historyRevisions !== undefined && { historyRevisions: c.historyRevisions }),
  });
}

interface JsonEntry<T> {
  key: string;
  value: T;
  /** Pass back as `ifModRevision` for a compare-and-set update. */
  modRevision: number;
  createRevision: number;
  version: number;
  lease: number;
}

/** Optional check of what was read; a stored document that fails it is reported, not returned. */
type JsonSchema<T> = z.ZodType<T>;

function decode<T>(kv: KeyValue, schema?: JsonSchema<T>): JsonEntry<T> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(kv.value.toString('utf8'));
  } catch (err) {
    throw new CorralError('INTERNAL', `stored value of ${kv.key} is not valid JSON: ${errorMessage(err)}`, { key: kv.key });
  }
  let value = parsed as T;
  if (schema) {
    const res = schema.safeParse(parsed);
    if (!res.success) throw new CorralError('INTERNAL', `stored value of ${kv.key} does not match its schema: ${res.error.issues[0]?.message ?? ''}`, { key: kv.key });
    value = res.data;
  }
  return { key: kv.key, value, modRevision: kv.modRevision, createRevision: kv.createRevision, version: kv.version, lease: kv.lease };
}

export async function getJson<T>(store: Store, key: string, schema?: JsonSchema<T>): Promise<JsonEntry<T> | undefined> {
  const kv = await store.get(key);
  return kv && decode(kv, schema);
}

export async function putJson(store: Store, key: string, value: unknown, opts?: PutOptions): Promise<{ revision: number }> {
  const text = JSON.stringify(value);
  if (text === undefined) throw new CorralError('INVALID_ARGUMENT', `value for ${key} is not JSON-serialisable`);
  const { revision } = await store.put(key, text, opts);
  return { revision };
}

export async function rangeJson<T>(store: Store, prefix: string, opts: { limit?: number; schema?: JsonSchema<T> } = {}): Promise<{ entries: JsonEntry<T>[]; revision: number; more: boolean }> {
  const res = await store.range(prefix, opts.limit === undefined ? {} : { limit: opts.limit });
  return { entries: res.kvs.map((kv) => decode(kv, opts.schema)), revision: res.revision, more: res.more };
}
