/**
 * Typed JSON access and the backend factory: most callers store JSON documents
 * and pick the backend from configuration, so they never import a backend
 * class directly.
 */
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { parseInput, z } from '../validate.js';
import { EmbeddedStore } from './embedded.js';
import { EtcdStore } from './etcd.js';
import { masterUrlSchema, RemoteStore } from './remote.js';
import type { KeyValue, PutOptions, Store } from '../../contracts/store/types.js';

export const storeConfigSchema = z
  .object({
    backend: z.enum(['embedded', 'etcd', 'remote']).default('embedded'),
    /** SQLite file of the embedded backend. */
    path: z.string().min(1).optional(),
    sync: z.enum(['full', 'normal']).default('full'),
    historyRevisions: z.number().int().min(0).optional(),
    etcdEndpoints: z.array(z.string().min(1)).optional(),
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
    if ((c.principal === undefined) !== (c.secret === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: 'principal and secret go together' });
    }
  });

export type StoreConfigInput = z.input<typeof storeConfigSchema>;

/** Opens the configured backend; INVALID_ARGUMENT for a bad config, UNAVAILABLE if it cannot be reached or locked. */
export async function openStore(config: StoreConfigInput): Promise<Store> {
  const c = parseInput(storeConfigSchema, config, 'store config');
  if (c.backend === 'remote') {
    return RemoteStore.open({
      url: c.url!,
      ...(c.principal !== undefined && { principal: c.principal }),
      ...(c.secret !== undefined && { secret: c.secret }),
      ...(c.namespace !== undefined && { namespace: c.namespace }),
      ...(c.dialTimeoutMs !== undefined && { timeoutMs: c.dialTimeoutMs }),
    });
  }
  if (c.backend === 'etcd') {
    return EtcdStore.open({
      endpoints: c.etcdEndpoints!,
      ...(c.namespace !== undefined && { namespace: c.namespace }),
      ...(c.dialTimeoutMs !== undefined && { dialTimeoutMs: c.dialTimeoutMs }),
    });
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
