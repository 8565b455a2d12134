/**
 * ACL tokens and policies, kept in the cluster Store so every discovery
 * replica on it agrees. Each replica holds them in memory, followed by a
 * Store watch; a secret it has not heard of yet is looked up in the Store
 * directly, so a token made through one replica works on the next request
 * to another.
 *
 * Secrets are stored only as SHA-256 hashes (a random UUID has 122 bits of
 * entropy, so a plain hash is enough to make a stolen Store useless for
 * impersonation): the SecretID is shown once, when the token is created.
 *
 * Keys (under corral/discovery/acl/):
 *   policies/<ID>        policy document
 *   policy-names/<Name>  → ID (names are unique)
 *   tokens/<AccessorID>  token document (with SecretHash)
 *   secrets/<hash>       → AccessorID
 *   bootstrap            set once /v1/acl/bootstrap (or a configured bootstrap token) made the first management token
 */
import { createHash, randomUUID } from 'node:crypto';
import { CorralError, errorMessage, isCorralError } from '../../../contracts/errors.js';
import type { KeyValue, Op, Store, Watch, WatchEvent } from '../../../contracts/store/types.js';
import type { Logger } from '../../../common/log.js';
import { Authorizer } from './authorizer.js';
import { parseRules, type ParsedRules } from './rules.js';

export const ACL_PREFIX = 'corral/discovery/acl/';
export const GLOBAL_MANAGEMENT_ID = '00000000-0000-0000-0000-000000000001';
export const GLOBAL_MANAGEMENT_NAME = 'global-management';
export const ANONYMOUS_ACCESSOR = '00000000-0000-0000-0000-000000000002';
/** The anonymous token's SecretID in Consul. */
export const ANONYMOUS_SECRET = 'anonymous';

export interface PolicyDoc {
  ID: string;
  Name: string;
  Description: string;
  Rules: string;
  Datacenters: string[];
  CreateIndex: number;
  ModifyIndex: number;
}

export interface TokenDoc {
  AccessorID: string;
  SecretHash: string;
  Description: string;
  /** Policy IDs. */
  Policies: string[];
  Local: boolean;
  CreateTime: string;
  CreateIndex: number;
  ModifyIndex: number;
}

export const hashSecret = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID.test(s);

export interface AclOptions {
  defaultPolicy: 'allow' | 'deny';
  /** Rules every anonymous request gets besides the anonymous token's policies. */
  anonymousRules: ParsedRules;
}

function parseDoc<T>(kv: KeyValue): T | undefined {
  try {
    return JSON.parse(kv.value.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

export class AclState {
  private readonly policies = new Map<string, PolicyDoc>();
  private readonly tokens = new Map<string, TokenDoc>();
  private readonly bySecretHash = new Map<string, string>();
  private readonly parsed = new Map<string, ParsedRules>();
  private readonly authorizers = new Map<string, Authorizer>();
  private readonly listeners = new Set<() => void>();
  private watch: Watch | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly opts: AclOptions,
    private readonly log: Logger,
  ) {}

  /** Load everything, make sure the anonymous token exists, and follow later changes. */
  async start(): Promise<void> {
    const revision = await this.reload();
    this.follow(revision);
    await this.ensureAnonymous();
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
  }

  /** Called after any token or policy change (from this replica or another). */
  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  private async reload(): Promise<number> {
    const { kvs, revision } = await this.store.range(ACL_PREFIX);
    this.policies.clear();
    this.tokens.clear();
    this.bySecretHash.clear();
    for (const kv of kvs) this.applyPut(kv);
    this.changed();
    return revision;
  }

  private follow(from: number): void {
    if (this.stopped) return;
    this.watch = this.store.watch({
      prefix: ACL_PREFIX,
      fromRevision: from + 1,
      onEvents: (events) => {
        for (const e of events) this.applyEvent(e);
        this.changed();
      },
      onError: (err) => {
        if (this.stopped || isCorralError(err, 'STORE_CLOSED')) return;
        this.log.warn({ err: errorMessage(err) }, 'ACL watch ended; reading tokens and policies again');
        setTimeout(
          () =>
            void this.reload().then(
              (r) => this.follow(r),
              () => this.follow(from),
            ),
          500,
        ).unref();
      },
    });
  }

  private changed(): void {
    this.parsed.clear();
    this.authorizers.clear();
    for (const l of this.listeners) l();
  }

  private applyEvent(e: WatchEvent): void {
    if (e.type === 'put') return this.applyPut(e.kv);
    const rest = e.kv.key.slice(ACL_PREFIX.length);
    const [kind, id] = [rest.slice(0, rest.indexOf('/')), rest.slice(rest.indexOf('/') + 1)];
    if (kind === 'policies') this.policies.delete(id);
    else if (kind === 'tokens') this.tokens.delete(id);
    else if (kind === 'secrets') this.bySecretHash.delete(id);
  }

  private applyPut(kv: KeyValue): void {
    const rest = kv.key.slice(ACL_PREFIX.length);
    const slash = rest.indexOf('/');
    const kind = slash < 0 ? rest : rest.slice(0, slash);
    const id = rest.slice(slash + 1);
    if (kind === 'policies') {
      const p = parseDoc<PolicyDoc>(kv);
      if (p) this.policies.set(id, { ...p, CreateIndex: kv.createRevision, ModifyIndex: kv.modRevision });
    } else if (kind === 'tokens') {
      const t = parseDoc<TokenDoc>(kv);
      if (t) this.tokens.set(id, { ...t, CreateIndex: kv.createRevision, ModifyIndex: kv.modRevision });
    } else if (kind === 'secrets') {
      this.bySecretHash.set(id, kv.value.toString('utf8'));
    }
  }

  // ---- resolution -----------------------------------------------------------

  private rulesOf(policyId: string): ParsedRules | undefined {
    let r = this.parsed.get(policyId);
    if (r) return r;
    const p = this.policies.get(policyId);
    if (!p) return undefined;
    try {
      r = parseRules(p.Rules);
    } catch {
      // Stored rules were valid when written; a policy that no longer parses grants nothing.
      r = { rules: [], globals: {} };
    }
    this.parsed.set(policyId, r);
    return r;
  }

  private authorizerOf(t: TokenDoc): Authorizer {
    let a = this.authorizers.get(t.AccessorID);
    if (a) return a;
    const management = t.Policies.includes(GLOBAL_MANAGEMENT_ID);
    const rules = t.Policies.map((id) => this.rulesOf(id)).filter((r): r is ParsedRules => r !== undefined);
    if (t.AccessorID === ANONYMOUS_ACCESSOR) rules.push(this.opts.anonymousRules);
    a = Authorizer.of(rules, this.opts.defaultPolicy, t.AccessorID, management);
    this.authorizers.set(t.AccessorID, a);
    return a;
  }

  /** What requests without a token (and DNS) may do. */
  anonymous(): Authorizer {
    const t = this.tokens.get(ANONYMOUS_ACCESSOR) ?? { AccessorID: ANONYMOUS_ACCESSOR, SecretHash: '', Description: '', Policies: [], Local: false, CreateTime: '', CreateIndex: 0, ModifyIndex: 0 };
    return this.authorizerOf(t);
  }

  /** The token with this secret (read through to the Store when this replica has not seen it yet). */
  async tokenBySecret(secret: string): Promise<TokenDoc | undefined> {
    if (secret === ANONYMOUS_SECRET) return this.tokens.get(ANONYMOUS_ACCESSOR);
    const h = hashSecret(secret);
    const acc = this.bySecretHash.get(h);
    const cached = acc ? this.tokens.get(acc) : undefined;
    if (cached) return cached;
    const idx = await this.store.get(`${ACL_PREFIX}secrets/${h}`);
    if (!idx) return undefined;
    const kv = await this.store.get(`${ACL_PREFIX}tokens/${idx.value.toString('utf8')}`);
    if (!kv) return undefined;
    this.applyPut(idx);
    this.applyPut(kv);
    const t = this.tokens.get(idx.value.toString('utf8'));
    // Its policies may be just as new.
    for (const p of t?.Policies ?? [])
      if (!this.policies.has(p) && p !== GLOBAL_MANAGEMENT_ID) {
        const pk = await this.store.get(`${ACL_PREFIX}policies/${p}`);
        if (pk) this.applyPut(pk);
      }
    this.authorizers.delete(idx.value.toString('utf8'));
    return t;
  }

  /** The authorizer for a request's secret (undefined = anonymous); FORBIDDEN "ACL not found" for an unknown one, as Consul answers. */
  async resolve(secret: string | undefined): Promise<Authorizer> {
    if (!secret) return this.anonymous();
    const t = await this.tokenBySecret(secret);
    if (!t) throw new CorralError('FORBIDDEN', 'ACL not found');
    return this.authorizerOf(t);
  }

  // ---- policies -------------------------------------------------------------

  policy(id: string): PolicyDoc | undefined {
    if (id === GLOBAL_MANAGEMENT_ID) return globalManagement();
    return this.policies.get(id);
  }

  policyByName(name: string): PolicyDoc | undefined {
    if (name === GLOBAL_MANAGEMENT_NAME) return globalManagement();
    for (const p of this.policies.values()) if (p.Name === name) return p;
    return undefined;
  }

  policyList(): PolicyDoc[] {
    return [globalManagement(), ...[...this.policies.values()].sort((a, b) => a.Name.localeCompare(b.Name))];
  }

  /** Create (no ID) or update a policy; names are unique across the cluster (guarded in the Store). */
  async putPolicy(input: { ID?: string; Name: string; Description: string; Rules: string; Datacenters: string[] }): Promise<PolicyDoc> {
    parseRules(input.Rules);
    if (!/^[A-Za-z0-9\-_]{1,128}$/.test(input.Name)) throw new CorralError('INVALID_ARGUMENT', "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed");
    if (input.ID === GLOBAL_MANAGEMENT_ID || input.Name === GLOBAL_MANAGEMENT_NAME) throw new CorralError('INVALID_ARGUMENT', 'Changing the global-management policy is not permitted');
    const prev = input.ID ? await this.storedPolicy(input.ID) : undefined;
    if (input.ID && !prev) throw new CorralError('NOT_FOUND', `Cannot find policy ${input.ID}`);
    const id = input.ID ?? randomUUID();
    const doc = { ID: id, Name: input.Name, Description: input.Description, Rules: input.Rules, Datacenters: input.Datacenters };
    const nameKey = `${ACL_PREFIX}policy-names/${input.Name}`;
    const ops: Op[] = [
      { type: 'put', key: `${ACL_PREFIX}policies/${id}`, value: JSON.stringify(doc) },
      { type: 'put', key: nameKey, value: id },
    ];
    const compare = [];
    if (prev?.value.Name !== input.Name) {
      compare.push({ key: nameKey, target: 'createRevision' as const, op: '=' as const, value: 0 });
      if (prev) ops.push({ type: 'delete', key: `${ACL_PREFIX}policy-names/${prev.value.Name}` });
    }
    const r = await this.store.txn({ compare, success: ops });
    if (!r.succeeded) throw new CorralError('INVALID_ARGUMENT', `Invalid Policy: A Policy with Name "${input.Name}" already exists`);
    const kv = await this.store.get(`${ACL_PREFIX}policies/${id}`);
    if (kv) this.applyPut(kv);
    this.changed();
    return this.policies.get(id)!;
  }

  private async storedPolicy(id: string): Promise<{ value: PolicyDoc } | undefined> {
    const kv = await this.store.get(`${ACL_PREFIX}policies/${id}`);
    const value = kv && parseDoc<PolicyDoc>(kv);
    return value ? { value } : undefined;
  }

  async deletePolicy(id: string): Promise<void> {
    if (id === GLOBAL_MANAGEMENT_ID) throw new CorralError('INVALID_ARGUMENT', 'Delete operation not permitted on the builtin global-management policy');
    const prev = await this.storedPolicy(id);
    if (!prev) return;
    // Tokens that name it keep the ID; it grants nothing once gone (Consul resolves links lazily too).
    await this.store.txn({
      compare: [],
      success: [
        { type: 'delete', key: `${ACL_PREFIX}policies/${id}` },
        { type: 'delete', key: `${ACL_PREFIX}policy-names/${prev.value.Name}` },
      ],
    });
    this.policies.delete(id);
    this.changed();
  }

  // ---- tokens ---------------------------------------------------------------

  token(accessorId: string): TokenDoc | undefined {
    return this.tokens.get(accessorId);
  }

  tokenList(): TokenDoc[] {
    return [...this.tokens.values()].sort((a, b) => a.CreateIndex - b.CreateIndex);
  }

  /** Policy links (by ID or Name) → IDs; INVALID_ARGUMENT for one that does not exist. */
  policyIds(links: Array<{ ID?: string | undefined; Name?: string | undefined }>): string[] {
    const ids = new Set<string>();
    for (const l of links) {
      const p = l.ID ? this.policy(l.ID) : l.Name ? this.policyByName(l.Name) : undefined;
      if (!p) throw new CorralError('INVALID_ARGUMENT', `No such ACL policy with ${l.ID ? `ID "${l.ID}"` : `name "${l.Name ?? ''}"`}`);
      ids.add(p.ID);
    }
    return [...ids];
  }

  /**
   * Create a token; the secret (given or generated) is returned here and
   * never again. `guardBootstrap` makes it the one bootstrap token.
   */
  async createToken(
    input: { AccessorID?: string; SecretID?: string; Description: string; Policies: string[]; Local: boolean },
    guardBootstrap = false,
  ): Promise<{ doc: TokenDoc; secret: string } | undefined> {
    const accessor = input.AccessorID ?? randomUUID();
    const secret = input.SecretID ?? randomUUID();
    if (secret === ANONYMOUS_SECRET || accessor === ANONYMOUS_ACCESSOR) throw new CorralError('INVALID_ARGUMENT', 'that ID is reserved for the anonymous token');
    const hash = hashSecret(secret);
    const doc = { AccessorID: accessor, SecretHash: hash, Description: input.Description, Policies: input.Policies, Local: input.Local, CreateTime: new Date().toISOString() };
    const absent = (key: string) => ({ key, target: 'createRevision' as const, op: '=' as const, value: 0 });
    const compare = [absent(`${ACL_PREFIX}tokens/${accessor}`), absent(`${ACL_PREFIX}secrets/${hash}`)];
    const success: Op[] = [
      { type: 'put', key: `${ACL_PREFIX}tokens/${accessor}`, value: JSON.stringify(doc) },
      { type: 'put', key: `${ACL_PREFIX}secrets/${hash}`, value: accessor },
    ];
    if (guardBootstrap) {
      compare.push(absent(`${ACL_PREFIX}bootstrap`));
      success.push({ type: 'put', key: `${ACL_PREFIX}bootstrap`, value: JSON.stringify({ at: doc.CreateTime, accessor }) });
    }
    const r = await this.store.txn({ compare, success });
    if (!r.succeeded) {
      if (guardBootstrap) return undefined;
      throw new CorralError('INVALID_ARGUMENT', 'Invalid Token: AccessorID or SecretID already in use');
    }
    const kv = await this.store.get(`${ACL_PREFIX}tokens/${accessor}`);
    if (kv) this.applyPut(kv);
    this.bySecretHash.set(hash, accessor);
    this.changed();
    return { doc: this.tokens.get(accessor)!, secret };
  }

  /** Change a token's description and policies (its secret never changes). */
  async updateToken(accessor: string, input: { Description: string; Policies: string[] }): Promise<TokenDoc> {
    const kv = await this.store.get(`${ACL_PREFIX}tokens/${accessor}`);
    const prev = kv && parseDoc<TokenDoc>(kv);
    if (!kv || !prev) throw new CorralError('NOT_FOUND', `Cannot find token ${accessor}`);
    const next = { ...prev, Description: input.Description, Policies: input.Policies };
    await this.store.put(kv.key, JSON.stringify(next), { ifModRevision: kv.modRevision }).catch((err: unknown) => {
      if (isCorralError(err, 'STORE_CONFLICT')) throw new CorralError('CONFLICT', 'the token changed meanwhile; try again');
      throw err;
    });
    const now = await this.store.get(kv.key);
    if (now) this.applyPut(now);
    this.changed();
    return this.tokens.get(accessor)!;
  }

  async deleteToken(accessor: string): Promise<void> {
    if (accessor === ANONYMOUS_ACCESSOR) throw new CorralError('INVALID_ARGUMENT', 'Delete operation not permitted on the anonymous token');
    const kv = await this.store.get(`${ACL_PREFIX}tokens/${accessor}`);
    const prev = kv && parseDoc<TokenDoc>(kv);
    if (!prev) return;
    await this.store.txn({
      compare: [],
      success: [
        { type: 'delete', key: `${ACL_PREFIX}tokens/${accessor}` },
        { type: 'delete', key: `${ACL_PREFIX}secrets/${prev.SecretHash}` },
      ],
    });
    this.tokens.delete(accessor);
    this.bySecretHash.delete(prev.SecretHash);
    this.changed();
  }

  /** /v1/acl/bootstrap: the first management token, once per cluster; undefined when it was made already. */
  async bootstrap(secret?: string): Promise<{ doc: TokenDoc; secret: string } | undefined> {
    return this.createToken({ Description: 'Bootstrap Token (Global Management)', ...(secret ? { SecretID: secret } : {}), Policies: [GLOBAL_MANAGEMENT_ID], Local: false }, true);
  }

  async bootstrapIndex(): Promise<number> {
    return (await this.store.get(`${ACL_PREFIX}bootstrap`))?.modRevision ?? 0;
  }

  /**
   * A bootstrap token from the configuration (Consul's initial_management):
   * a management token with that secret exists once any replica started with
   * it, and /v1/acl/bootstrap is then closed.
   */
  async ensureConfiguredToken(secret: string): Promise<void> {
    if (secret.length < 16) throw new CorralError('INVALID_ARGUMENT', 'acl bootstrap token must be at least 16 characters');
    const hash = hashSecret(secret);
    if (!(await this.store.get(`${ACL_PREFIX}secrets/${hash}`))) {
      await this.createToken({ Description: 'Initial Management Token', SecretID: secret, Policies: [GLOBAL_MANAGEMENT_ID], Local: false }).catch((err: unknown) => {
        // Another replica made it at the same moment.
        if (!isCorralError(err, 'INVALID_ARGUMENT')) throw err;
      });
    }
    await this.store.txn({
      compare: [{ key: `${ACL_PREFIX}bootstrap`, target: 'createRevision', op: '=', value: 0 }],
      success: [{ type: 'put', key: `${ACL_PREFIX}bootstrap`, value: JSON.stringify({ at: new Date().toISOString(), configured: true }) }],
    });
  }

  private async ensureAnonymous(): Promise<void> {
    const key = `${ACL_PREFIX}tokens/${ANONYMOUS_ACCESSOR}`;
    const doc = { AccessorID: ANONYMOUS_ACCESSOR, SecretHash: '', Description: 'Anonymous Token', Policies: [], Local: false, CreateTime: new Date().toISOString() };
    await this.store.txn({ compare: [{ key, target: 'createRevision', op: '=', value: 0 }], success: [{ type: 'put', key, value: JSON.stringify(doc) }] });
    const kv = await this.store.get(key);
    if (kv) this.applyPut(kv);
    this.changed();
  }
}

function globalManagement(): PolicyDoc {
  return {
    ID: GLOBAL_MANAGEMENT_ID,
    Name: GLOBAL_MANAGEMENT_NAME,
    Description: 'Builtin Policy that grants unlimited access',
    // Consul shows these rules; the policy is recognised by its ID and grants everything.
    Rules: 'acl = "write"\noperator = "write"\nkey_prefix "" { policy = "write" }\nnode_prefix "" { policy = "write" }\nservice_prefix "" { policy = "write" }\nsession_prefix "" { policy = "write" }',
    Datacenters: [],
    CreateIndex: 1,
    ModifyIndex: 1,
  };
}
