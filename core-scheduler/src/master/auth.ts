/**
 * Authentication (HTTP Basic, principal + secret) and authorization (which
 * principal may use which role, run tasks as which user, do which operator
 * action, or run an agent). The security file holds both, like Mesos's
 * --credentials and --acls (docs/security.md, "Credentials and ACLs"):
 *
 *   credentials:
 *     - { principal: marathon, secret_hash: "scrypt$16384$8$1$<salt>$<hash>" }
 *     - { principal: agent-node1, secret: "..." }   # plain text: still accepted
 *   acls:
 *     register_frameworks:
 *       - { principals: [marathon], roles: ["*", web] }
 *     run_tasks:                                    # default: the agent's default user only
 *       - { principals: [marathon], users: [www-data, nobody] }
 *       - { principals: [infra], users: [root], capabilities: [NET_BIND_SERVICE] }
 *       - { principals: [ci], users: [builder], seccomp_unconfined: true }
 *     operators: [admin]                            # every operator action
 *     view: [monitoring]                            # one action (see OPERATOR_ACTIONS)
 *     agents: [agent-node1, agent-node2]
 *     store: [ipam, discovery]   # store API users; default: operators and agents
 *
 * A daemon that is a client takes its own credential (a plain `secret`) from
 * the file it is given; verifying others needs only their `secret_hash`.
 */
import { timingSafeEqual, createHash, randomBytes, scrypt as scryptCb, scryptSync } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { CorralError } from '../../../contracts/errors.js';
import { readConfigFile } from '../../../common/config.js';
import { parseInput, z } from '../../../common/validate.js';

const principals = z.union([z.literal('ANY'), z.array(z.string().min(1))]);

// ---- hashed secrets --------------------------------------------------------

/** scrypt cost parameters written by hashSecret: ~16 MiB and some 50 ms per verification, once per principal and secret. */
const SCRYPT_DEFAULT = { N: 16_384, r: 8, p: 1 };
const HASH_BYTES = 32;

interface SecretHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** `scrypt$N$r$p$salt$hash` (salt and hash in base64url); undefined if malformed or out of sane bounds. */
function parseSecretHash(text: string): SecretHash | undefined {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map((x) => (/^\d{1,8}$/.test(x!) ? Number(x) : NaN)) as [number, number, number];
  // Bounds keep a hostile or mistyped file from making each verification take seconds or gigabytes.
  if (!(N >= 2 && N <= 1 << 20 && (N & (N - 1)) === 0 && r >= 1 && r <= 32 && p >= 1 && p <= 16)) return undefined;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const hash = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined;
  return { N, r, p, salt, hash };
}

const scryptOptions = (h: { N: number; r: number; p: number }) => ({ N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + (1 << 20) });

/** The security file's form of a secret: scrypt with a random salt (`corral up`, `corral security hash-secret`). */
export function hashSecret(secret: string, cost: { N: number; r: number; p: number } = SCRYPT_DEFAULT): string {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, HASH_BYTES, scryptOptions(cost));
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

const scryptAsync = (secret: Buffer, h: SecretHash): Promise<Buffer> =>
  new Promise((resolve, reject) => scryptCb(secret, h.salt, h.hash.length, scryptOptions(h), (err, key) => (err ? reject(err) : resolve(key))));

// ---- the security file -----------------------------------------------------

const credentialSchema = z
  .object({
    principal: z.string().min(1).max(256),
    /** Plain text: what a client sends. Kept for compatibility; files made by corral hold it only for the host's own principal. */
    secret: z.string().min(1).max(1024).optional(),
    /** What the server needs to verify the secret: `scrypt$N$r$p$salt$hash` (hashSecret). */
    secret_hash: z.string().max(512).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.secret === undefined) === (c.secret_hash === undefined)) ctx.addIssue({ code: 'custom', message: `credential of "${c.principal}": give exactly one of secret and secret_hash` });
    if (c.secret_hash !== undefined && !parseSecretHash(c.secret_hash)) {
      ctx.addIssue({
        code: 'custom',
        path: ['secret_hash'],
        message: 'expected scrypt$N$r$p$salt$hash (N a power of two up to 2^20, r ≤ 32, p ≤ 16, salt and hash in base64url), as `corral up` writes it',
      });
    }
  });

/**
 * Operator actions, each an ACL of its own (a list of principals, or "ANY");
 * a principal in `operators` may do all of them. Names follow Mesos's ACLs.
 */
export const OPERATOR_ACTIONS = {
  view: 'read the cluster state (GET_STATE, GET_AGENTS, GET_TASKS, …) and subscribe to operator events',
  reserve_resources: 'reserve resources (RESERVE_RESOURCES)',
  unreserve_resources: 'unreserve resources (UNRESERVE_RESOURCES)',
  create_volumes: 'create persistent volumes (CREATE_VOLUMES)',
  destroy_volumes: 'destroy persistent volumes (DESTROY_VOLUMES)',
  update_quota: 'set quota (UPDATE_QUOTA)',
  update_weights: 'set role weights (UPDATE_WEIGHTS)',
  teardown_frameworks: 'tear down frameworks (TEARDOWN)',
  maintenance: 'drain agents, set maintenance schedules, take machines down and up',
  mark_agents_gone: 'mark agents gone (MARK_AGENT_GONE)',
} as const;
export type OperatorAction = keyof typeof OPERATOR_ACTIONS;

/**
 * The action each operator API call needs. GET_HEALTH and GET_VERSION need
 * none; a call not listed here needs `operators` (every action).
 */
const CALL_ACTIONS: Readonly<Record<string, OperatorAction | null>> = {
  GET_HEALTH: null,
  GET_VERSION: null,
  GET_MASTER: 'view',
  GET_FLAGS: 'view',
  GET_METRICS: 'view',
  GET_LOGGING_LEVEL: 'view',
  GET_EXECUTORS: 'view',
  GET_OPERATIONS: 'view',
  GET_STATE: 'view',
  GET_AGENTS: 'view',
  GET_FRAMEWORKS: 'view',
  GET_TASKS: 'view',
  GET_ROLES: 'view',
  GET_WEIGHTS: 'view',
  GET_QUOTA: 'view',
  GET_MAINTENANCE_STATUS: 'view',
  GET_MAINTENANCE_SCHEDULE: 'view',
  SUBSCRIBE: 'view',
  RESERVE_RESOURCES: 'reserve_resources',
  UNRESERVE_RESOURCES: 'unreserve_resources',
  CREATE_VOLUMES: 'create_volumes',
  DESTROY_VOLUMES: 'destroy_volumes',
  GROW_VOLUME: 'create_volumes',
  SHRINK_VOLUME: 'destroy_volumes',
  UPDATE_QUOTA: 'update_quota',
  UPDATE_WEIGHTS: 'update_weights',
  TEARDOWN: 'teardown_frameworks',
  UPDATE_MAINTENANCE_SCHEDULE: 'maintenance',
  START_MAINTENANCE: 'maintenance',
  STOP_MAINTENANCE: 'maintenance',
  DRAIN_AGENT: 'maintenance',
  DEACTIVATE_AGENT: 'maintenance',
  REACTIVATE_AGENT: 'maintenance',
  MARK_AGENT_GONE: 'mark_agents_gone',
};

/** The action an operator API call needs: null for none, undefined for "every action" (an operator). */
export const operatorActionOf = (callType: string): OperatorAction | null | undefined => (Object.hasOwn(CALL_ACTIONS, callType) ? CALL_ACTIONS[callType] : undefined);

/** Linux capability names as Mesos's CapabilityInfo spells them (NET_ADMIN); "CAP_NET_ADMIN" and lower case are accepted too. */
const capabilityName = z
  .string()
  .min(1)
  .max(64)
  .transform((s) => normalizeCapability(s));
const normalizeCapability = (s: string): string => s.toUpperCase().replace(/^CAP_/, '');

const runTasksRule = z.object({
  principals,
  /** UNIX users; "ANY" is any user but root, which must be listed by name. */
  users: z.union([z.literal('ANY'), z.array(z.string().min(1).max(256))]),
  /** Linux capabilities the principal's tasks of these users may ask for (ContainerInfo.linux_info); default none. */
  capabilities: z.union([z.literal('ANY'), z.array(capabilityName).max(64)]).optional(),
  /** Whether these tasks may run without a seccomp filter (LinuxInfo.seccomp.unconfined); default no. */
  seccomp_unconfined: z.boolean().optional(),
});

const operatorActionAcls = Object.fromEntries(Object.keys(OPERATOR_ACTIONS).map((a) => [a, principals.optional()])) as Record<OperatorAction, z.ZodOptional<typeof principals>>;

export const securitySchema = z.object({
  credentials: z.array(credentialSchema).default([]),
  acls: z
    .object({
      register_frameworks: z.array(z.object({ principals, roles: z.union([z.literal('ANY'), z.array(z.string().min(1))]) })).default([]),
      /** Who may run tasks as which user; unset or empty: every principal may run tasks as the agent's default user only. */
      run_tasks: z.array(runTasksRule).optional(),
      /** Every operator action. */
      operators: principals.default([]),
      ...operatorActionAcls,
      agents: principals.default([]),
      /** Who may use the store API (POST /api/v1/store); unset = operators and agents. */
      store: principals.optional(),
    })
    .default({ register_frameworks: [], operators: [], agents: [] }),
});
export type SecurityConfig = z.output<typeof securitySchema>;
export type SecurityConfigInput = z.input<typeof securitySchema>;

export function loadSecurity(file: string): SecurityConfig {
  return parseInput(securitySchema, readConfigFile(file), `security file ${file}`);
}

/** The plain-text credential of `principal` in a security file, if the file holds one (a daemon's own). */
export function ownCredential(sec: SecurityConfig, pick: (principal: string) => boolean): { principal: string; secret: string } | undefined {
  const c = sec.credentials.find((x) => x.secret !== undefined && pick(x.principal));
  return c && { principal: c.principal, secret: c.secret! };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const allows = (list: 'ANY' | string[], who: string): boolean => list === 'ANY' || list.includes(who);

/** One credential as the master checks it: a digest of the plain secret, or the scrypt hash and the digest once verified. */
interface Verifier {
  plain?: Buffer;
  hash?: SecretHash;
  /** SHA-256 of the secret that matched `hash`: later requests cost a digest, not an scrypt. */
  verified?: Buffer;
}

/** What a task asks for that run_tasks governs. */
export interface TaskIdentity {
  /** command.user, else framework_info.user; "" = the agent's default (unprivileged) user. */
  user: string;
  /** Capabilities asked for in ContainerInfo.linux_info (effective and bounding). */
  capabilities: string[];
  /** Asks to run without a seccomp filter (LinuxInfo.seccomp.unconfined). */
  seccompUnconfined?: boolean;
}

/**
 * scrypt verifications at once (each ~16 MiB on libuv's pool of 4) and waiting: beyond, 503 (the
 * client retries). A fleet whose agents each have a principal of their own checks them all once
 * after a master restart: 1,024 waiting at ~50 ms each over 4 threads is some 13 s of checks.
 */
const MAX_HASHING = 4;
const MAX_HASH_QUEUE = 1024;
/** Wrong secrets remembered per principal, so a client retrying a stale secret costs a digest, not an scrypt. */
const MAX_FAILED = 16;
/** run_tasks decisions remembered per principal. */
const MAX_CACHED_USERS = 256;

export class Authority {
  private readonly verifiers = new Map<string, Verifier[]>();
  private readonly failed = new Map<string, Set<string>>();
  private hashing = 0;
  private readonly hashQueue: Array<() => void> = [];
  /** Checks under way, by principal and secret digest. */
  private readonly pending = new Map<string, Promise<boolean>>();
  /** run_tasks decisions without capabilities, per principal and user ("" = allowed). */
  private readonly runDecisions = new Map<string, Map<string, string>>();

  /** `undefined` config = authentication off (only by explicit flag, for local use). */
  constructor(private readonly config: SecurityConfig | undefined) {
    for (const c of config?.credentials ?? []) {
      const list = this.verifiers.get(c.principal) ?? [];
      // A principal may be listed more than once (old and new secret while a rotation is under way).
      list.push(c.secret !== undefined ? { plain: digest(c.secret) } : { hash: parseSecretHash(c.secret_hash!)! });
      this.verifiers.set(c.principal, list);
    }
  }

  get enabled(): boolean {
    return this.config !== undefined;
  }

  /**
   * The authenticated principal, or undefined when authentication is off and
   * none was given. A secret checked against a hash once is remembered as a
   * digest, so only a principal's first request (and a new wrong secret)
   * costs an scrypt.
   */
  async authenticate(req: IncomingMessage): Promise<string | undefined> {
    const header = req.headers.authorization;
    if (!this.config) return header ? basicPrincipal(header) : undefined;
    if (!header) throw new CorralError('UNAUTHENTICATED', 'authentication required: send HTTP Basic credentials (principal and secret)');
    const [scheme, token] = header.split(' ', 2);
    if (scheme?.toLowerCase() !== 'basic' || !token) throw new CorralError('UNAUTHENTICATED', 'only HTTP Basic authentication is supported');
    const decoded = Buffer.from(token, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new CorralError('UNAUTHENTICATED', 'malformed Basic credentials');
    const principal = decoded.slice(0, colon);
    const secret = decoded.slice(colon + 1);
    const list = this.verifiers.get(principal);
    const invalid = (): CorralError => new CorralError('UNAUTHENTICATED', `invalid credentials for principal "${principal}"`);
    if (!list) throw invalid();
    // Digests are compared, so the comparison takes the same time whatever the secret's length.
    const d = digest(secret);
    for (const v of list) if ((v.plain && timingSafeEqual(v.plain, d)) || (v.verified && timingSafeEqual(v.verified, d))) return principal;
    // A hash verified once matches only that secret: only hashes not yet verified are worth an scrypt.
    const open = list.filter((v) => v.hash && !v.verified);
    const key = d.toString('base64');
    if (open.length === 0 || this.failed.get(principal)?.has(key)) throw invalid();
    // Requests that arrive together with the same credential (a fleet of agents sharing a principal,
    // reconnecting after a master restart) wait for one check instead of each running its own.
    const pendingKey = `${principal}\0${key}`;
    let check = this.pending.get(pendingKey);
    if (!check) {
      check = this.verify(open, secret, d).finally(() => this.pending.delete(pendingKey));
      this.pending.set(pendingKey, check);
    }
    if (await check) return principal;
    const failed = this.failed.get(principal) ?? new Set<string>();
    if (failed.size >= MAX_FAILED) failed.delete(failed.values().next().value!);
    failed.add(key);
    this.failed.set(principal, failed);
    throw invalid();
  }

  /** Whether `secret` matches one of the hashes; the one it matches remembers its digest. */
  private async verify(open: Verifier[], secret: string, d: Buffer): Promise<boolean> {
    for (const v of open) {
      const got = await this.throttled(() => scryptAsync(Buffer.from(secret, 'utf8'), v.hash!));
      if (timingSafeEqual(got, v.hash!.hash)) {
        v.verified = d;
        return true;
      }
    }
    return false;
  }

  /** Runs an scrypt when one of the few slots is free; a long queue is refused (a flood of first logins or guesses). */
  private async throttled<T>(work: () => Promise<T>): Promise<T> {
    if (this.hashing >= MAX_HASHING) {
      if (this.hashQueue.length >= MAX_HASH_QUEUE) throw new CorralError('UNAVAILABLE', 'too many credential checks in progress; retry in a moment');
      await new Promise<void>((resolve) => this.hashQueue.push(resolve));
    } else this.hashing++;
    try {
      return await work();
    } finally {
      const next = this.hashQueue.shift();
      if (next) next();
      else this.hashing--;
    }
  }

  authorizeRoles(principal: string | undefined, roles: string[]): void {
    if (!this.config) return;
    const rules = this.config.acls.register_frameworks.filter((r) => allows(r.principals, principal ?? ''));
    for (const role of roles) {
      if (!rules.some((r) => r.roles === 'ANY' || r.roles.includes(role))) {
        throw new CorralError('FORBIDDEN', `principal "${principal}" is not allowed to use role "${role}"`);
      }
    }
  }

  /** Every operator action (`acls.operators`), or one action: its own ACL or `operators`. */
  authorizeOperator(principal: string | undefined, action?: OperatorAction): void {
    if (!this.config) return;
    const acls = this.config.acls;
    const who = principal ?? '';
    if (allows(acls.operators, who)) return;
    if (action === undefined) throw new CorralError('FORBIDDEN', `principal "${principal}" is not an operator (acls.operators)`);
    const list = acls[action];
    if (list && allows(list, who)) return;
    throw new CorralError('FORBIDDEN', `principal "${principal}" may not ${OPERATOR_ACTIONS[action]}: the action "${action}" needs acls.${action} or acls.operators`, { action });
  }

  /** An operator API call by its type: the action it needs (see CALL_ACTIONS). */
  authorizeOperatorCall(principal: string | undefined, callType: string): void {
    const action = operatorActionOf(callType);
    if (action === null) return;
    this.authorizeOperator(principal, action);
  }

  authorizeStore(principal: string | undefined): void {
    if (!this.config) return;
    const { store, operators, agents } = this.config.acls;
    const who = principal ?? '';
    const allowed = store ? allows(store, who) : allows(operators, who) || allows(agents, who);
    if (!allowed) throw new CorralError('FORBIDDEN', `principal "${principal}" may not use the store API (acls.store${store ? '' : ', by default operators and agents'})`);
  }

  authorizeAgent(principal: string | undefined): void {
    if (!this.config) return;
    if (!allows(this.config.acls.agents, principal ?? '')) throw new CorralError('FORBIDDEN', `principal "${principal}" may not register agents`);
  }

  /**
   * Why `principal` may not launch a task of this identity (run_tasks), or
   * undefined if it may. The agent's default user ("") is always allowed;
   * any other user needs a rule, "ANY" never covers root, capabilities
   * need a rule of the principal for that user that lists them, and running
   * without seccomp a rule that says `seccomp_unconfined: true`.
   */
  taskRefusal(principal: string | undefined, task: TaskIdentity): string | undefined {
    if (!this.config) return undefined;
    const who = principal ?? '';
    if (task.seccompUnconfined) {
      const refusal = task.user === '' ? undefined : this.userRefusal(who, task.user);
      if (refusal) return refusal;
      if (!this.rulesFor(who, task.user).some((r) => r.seccomp_unconfined === true))
        return `principal "${who}" is not allowed to run tasks as ${userText(task.user)} without seccomp (acls.run_tasks: a rule for this principal and user must say seccomp_unconfined: true)`;
    }
    if (task.capabilities.length === 0) {
      if (task.user === '') return undefined;
      let mine = this.runDecisions.get(who);
      if (!mine) this.runDecisions.set(who, (mine = new Map()));
      let decision = mine.get(task.user);
      if (decision === undefined) {
        decision = this.userRefusal(who, task.user) ?? '';
        // Users are the framework's to name: only so many are remembered, the rest are decided each time.
        if (mine.size < MAX_CACHED_USERS) mine.set(task.user, decision);
      }
      return decision || undefined;
    }
    const refusal = task.user === '' ? undefined : this.userRefusal(who, task.user);
    if (refusal) return refusal;
    const granted = new Set<string>();
    for (const r of this.rulesFor(who, task.user)) {
      if (r.capabilities === 'ANY') return undefined;
      for (const c of r.capabilities ?? []) granted.add(c);
    }
    const missing = task.capabilities.filter((c) => !granted.has(c));
    if (missing.length === 0) return undefined;
    return `principal "${who}" is not allowed to give tasks running as ${userText(task.user)} the capabilities ${missing.join(', ')} (acls.run_tasks: a rule for this principal and user must list them)`;
  }

  /** Rules of run_tasks for this principal whose users admit `user` ("" = the default user, admitted by every rule). */
  private rulesFor(who: string, user: string): Array<z.output<typeof runTasksRule>> {
    return (this.config?.acls.run_tasks ?? []).filter((r) => allows(r.principals, who) && (user === '' || (r.users === 'ANY' ? user !== 'root' : r.users.includes(user))));
  }

  private userRefusal(who: string, user: string): string | undefined {
    if (this.rulesFor(who, user).length > 0) return undefined;
    const rootNote = user === 'root' ? '; root must be listed by name, "ANY" does not include it' : '';
    return `principal "${who}" is not allowed to run tasks as user "${user}" (acls.run_tasks${rootNote}); leave command.user and framework_info.user empty to run as the agent's default user`;
  }
}

const userText = (user: string): string => (user === '' ? "the agent's default user" : `user "${user}"`);

/**
 * What run_tasks checks of a task: its user (command.user, else the
 * framework's) and the capabilities its ContainerInfo.linux_info asks for
 * (Mesos's LinuxInfo: effective_capabilities, bounding_capabilities, and the
 * deprecated capability_info), and whether it asks to run without seccomp.
 */
export function taskIdentity(frameworkUser: string | undefined, task: { command?: { user?: string | undefined } | undefined; container?: { linux_info?: unknown } | undefined }): TaskIdentity {
  const user = task.command?.user ?? frameworkUser ?? '';
  const linux = task.container?.linux_info as Record<string, { capabilities?: unknown; unconfined?: unknown } | undefined> | undefined;
  if (!linux) return { user, capabilities: [] };
  const caps = new Set<string>();
  for (const field of ['effective_capabilities', 'bounding_capabilities', 'capability_info']) {
    const list = linux[field]?.capabilities;
    if (Array.isArray(list)) for (const c of list) if (typeof c === 'string') caps.add(normalizeCapability(c));
  }
  return { user, capabilities: [...caps], ...(linux.seccomp?.unconfined === true && { seccompUnconfined: true }) };
}

function basicPrincipal(header: string): string | undefined {
  const [scheme, token] = header.split(' ', 2);
  if (scheme?.toLowerCase() !== 'basic' || !token) return undefined;
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? decoded.slice(0, colon) : undefined;
}
