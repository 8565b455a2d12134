/**
 * How every etcd client of corral connects (the Store, the election): the
 * endpoints, TLS (a CA to verify etcd with, and a client certificate when
 * etcd asks for one) and etcd's password authentication. One function builds
 * the etcd3 client options from it, so the Store and the election can never
 * disagree on how they reach etcd; another turns what grpc and etcd answer
 * about TLS and authentication into typed errors that name the endpoint and
 * the cause.
 *
 * Secrets are read from files (or, for the password, the environment), never
 * taken from a command line, and never logged: errors name the file, not its
 * contents.
 */
import { readFileSync } from 'node:fs';
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, EtcdInvalidAuthTokenError, type Etcd3, type IOptions, type IWatchResponse } from 'etcd3';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { loadTls } from '../tls/index.js';

/** PEM files of a TLS connection to etcd. */
interface EtcdTlsFiles {
  /** CA that signed etcd's server certificates (required: corral never falls back to the system's CAs for etcd). */
  ca: string;
  /** Client certificate and key, when etcd asks for one (`--client-cert-auth`). Both or neither. */
  cert?: string;
  key?: string;
}

/** etcd user authentication. The password comes from `passwordFile`, else from `password` (set by code, e.g. from the environment). */
interface EtcdAuthOptions {
  username: string;
  passwordFile?: string;
  password?: string;
}

export interface EtcdConnectionOptions {
  endpoints: string[];
  /** Upper bound for each unary request, connection set-up included (default 5000). */
  dialTimeoutMs?: number;
  /** TLS to etcd: then every endpoint must be https://. */
  tls?: EtcdTlsFiles;
  /** etcd user and password (etcd's `auth enable`). Without it, etcd takes the user from the client certificate's CN, if any. */
  auth?: EtcdAuthOptions;
}

/** The environment variable a daemon's etcd password may come from when its config names no password file. */
export const ETCD_PASSWORD_ENV = 'CORRAL_ETCD_PASSWORD';

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

// The client's default policies retry failed calls (a CAS txn could then apply twice) and trip a
// circuit breaker that keeps failing for seconds after etcd is back; callers get UNAVAILABLE instead.
const passthrough = {
  execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T) => Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as Policy;

/**
 * grpc's answer for a call it never sent: it has no connection to the host it picked (refused,
 * unreachable, TLS not up yet). Nothing reached etcd, so the call may go to another host.
 */
const neverSent = (err: unknown): boolean => errorMessage(err).includes('No connection established');

/**
 * A unary call whose host is down goes to the next of the others (each attempt of the client
 * takes the next host of its shuffled order), so one member down — or not up yet, while the
 * others have a quorum — fails no call. Only calls that were never sent are tried again: one
 * that reached etcd, even if it failed, never applies twice.
 */
function otherHostsPolicy(hosts: number): Policy {
  return {
    ...passthrough,
    execute: async <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal: new AbortController().signal });
        } catch (err) {
          if (attempt >= hosts || !neverSent(err)) throw err;
        }
      }
    },
  } as unknown as Policy;
}

/**
 * The PEM files of `tls`, checked as every corral TLS client checks them (each
 * file readable and PEM, the key the certificate's, both valid now). The CA
 * and the client certificate are loaded apart: etcd may trust another CA for
 * its clients than the one that signed its own certificate.
 */
function loadEtcdTls(tls: EtcdTlsFiles): NonNullable<IOptions['credentials']> {
  const ca = loadTls({ ca: tls.ca }, 'etcd TLS').ca!;
  const pair = tls.cert !== undefined ? loadTls({ cert: tls.cert, key: tls.key }, 'etcd TLS') : undefined;
  return { rootCertificate: Buffer.from(ca), ...(pair && { certChain: Buffer.from(pair.cert!), privateKey: Buffer.from(pair.key!) }) };
}

/** The password of `auth`: its file's first line, else `password`; never echoed in an error. */
function etcdPassword(auth: EtcdAuthOptions): string {
  if (auth.passwordFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(auth.passwordFile, 'utf8');
    } catch (err) {
      throw new CorralError('INVALID_ARGUMENT', `etcd password file ${auth.passwordFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, {
        file: auth.passwordFile,
      });
    }
    const line = text.split(/\r?\n/, 1)[0] ?? '';
    if (line === '') throw new CorralError('INVALID_ARGUMENT', `etcd password file ${auth.passwordFile} is empty; it must hold the password on its first line`, { file: auth.passwordFile });
    return line;
  }
  if (auth.password !== undefined && auth.password !== '') return auth.password;
  throw new CorralError('INVALID_ARGUMENT', `etcd user ${auth.username}: no password (set a password file, or ${ETCD_PASSWORD_ENV})`);
}

/** Checks the connection options and reads their files: INVALID_ARGUMENT for anything wrong, before any connection is tried. */
export function etcdClientOptions(conn: EtcdConnectionOptions): IOptions {
  const { endpoints, dialTimeoutMs = 5000, tls, auth } = conn ?? ({} as EtcdConnectionOptions);
  if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((e) => typeof e === 'string' && e !== '')) {
    throw new CorralError('INVALID_ARGUMENT', 'etcd store needs at least one endpoint');
  }
  if (!Number.isFinite(dialTimeoutMs) || dialTimeoutMs <= 0) throw new CorralError('INVALID_ARGUMENT', 'dialTimeoutMs must be positive');
  const secure = endpoints.filter((e) => e.startsWith('https://'));
  if (tls && secure.length !== endpoints.length) {
    throw new CorralError('INVALID_ARGUMENT', `etcd TLS is configured, so every endpoint must be https:// (got ${endpoints.filter((e) => !e.startsWith('https://')).join(', ')})`);
  }
  if (!tls && secure.length > 0) throw new CorralError('INVALID_ARGUMENT', `etcd endpoint ${secure[0]} is https://: configure the etcd TLS CA (tls.ca) to verify it with`);
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) throw new CorralError('INVALID_ARGUMENT', 'etcd TLS: the client certificate and its key go together (cert and key)');
  if (auth && (typeof auth.username !== 'string' || auth.username === '')) throw new CorralError('INVALID_ARGUMENT', 'etcd auth needs a user name');
  return {
    hosts: endpoints,
    ...(tls && { credentials: loadEtcdTls(tls) }),
    ...(auth && {
      auth: {
        username: auth.username,
        password: etcdPassword(auth),
        // The token exchange is bounded like any other unary call.
        callOptions: () => ({ deadline: Date.now() + dialTimeoutMs }),
      },
    }),
    // Streams (watch, keepalive) live long; only unary calls get a deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + dialTimeoutMs }),
    faultHandling: { global: otherHostsPolicy(endpoints.length), host: () => passthrough },
    // grpc-js caps received messages at 4 MiB; a range over many large values is legitimate.
    grpcOptions: { 'grpc.max_receive_message_length': -1 },
  };
}

/** Reasons an etcd call failed for its credentials or TLS, and what to check. */
const TLS_CAUSES: Array<[RegExp, string]> = [
  [
    /self[- ]signed certificate|unable to (get|verify) (local )?issuer|certificate verify failed|unable to verify the first certificate|CERT_UNTRUSTED|UNABLE_TO_VERIFY/i,
    "etcd's server certificate is not signed by the configured CA (tls.ca)",
  ],
  [/certificate has expired|CERT_HAS_EXPIRED/i, "etcd's server certificate has expired"],
  [/Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID|altnames/i, "etcd's server certificate does not name this endpoint's host"],
  [
    /certificate required|alert number 116|handshake failure|alert number 40|bad certificate|alert number 42|unknown ca|alert number 48/i,
    'etcd refused the TLS handshake: it requires a client certificate signed by its trusted CA (tls.cert, tls.key)',
  ],
  [/wrong version number|packet length too long/i, 'etcd does not speak TLS on this endpoint (an https:// endpoint on a plain etcd)'],
];

/**
 * The typed error for an etcd failure caused by TLS or authentication, or
 * undefined when `err` is something else (unreachable, timeouts, etcd-side
 * errors: the caller maps those as before).
 */
export function etcdCredentialError(err: unknown, endpoints: string[], username?: string): CorralError | undefined {
  const msg = errorMessage(err);
  const at = `etcd at ${endpoints.join(', ')}`;
  const who = username !== undefined ? `user "${username}"` : "the client certificate's user";
  if (err instanceof EtcdAuthenticationFailedError || msg.includes('authentication failed')) {
    return new CorralError('UNAUTHENTICATED', `${at}: authentication failed for user "${username ?? ''}" (wrong user name or password)`, { endpoints, cause: 'password' }, { cause: err });
  }
  if (err instanceof EtcdPermissionDeniedError || msg.includes('permission denied')) {
    return new CorralError('FORBIDDEN', `${at}: permission denied for ${who} (its etcd role does not grant this key range)`, { endpoints, cause: 'permission' }, { cause: err });
  }
  if (msg.includes('user name is empty') || msg.includes('user name not found')) {
    return new CorralError(
      'UNAUTHENTICATED',
      `${at}: authentication is enabled there; configure an etcd user (auth) or a client certificate whose CN is one`,
      { endpoints, cause: 'no-credentials' },
      { cause: err },
    );
  }
  // A stale token is renewed and the call made again: not the caller's problem.
  if (err instanceof EtcdInvalidAuthTokenError || msg.includes('invalid auth token')) return undefined;
  // Only a TLS connection can fail for TLS (and https:// endpoints are TLS, as etcdClientOptions insists).
  if (!endpoints.every((e) => e.startsWith('https://'))) return undefined;
  for (const [re, cause] of TLS_CAUSES) {
    if (re.test(msg)) return new CorralError('UNAUTHENTICATED', `${at}: TLS failed: ${cause} (${msg})`, { endpoints, cause: 'tls' }, { cause: err });
  }
  return undefined;
}

interface PoolLike {
  authenticator?: AuthenticatorLike;
  withConnection?: (service: string, fn: (...args: never[]) => unknown, ...rest: unknown[]) => Promise<unknown>;
}

/** The client's connection pool (internal to etcd3; shared by all its namespaces). */
const poolOf = (client: Etcd3): PoolLike | undefined => (client as unknown as { pool?: PoolLike }).pool;

/** The client's authenticator (internal to etcd3; undefined if another version has none). */
function authenticatorOf(client: Etcd3): AuthenticatorLike | undefined {
  const a = poolOf(client)?.authenticator;
  return a && typeof a.getMetadata === 'function' && typeof a.invalidateMetadata === 'function' ? a : undefined;
}

/** Make the client fetch a new auth token before its next call or stream (etcd no longer knows the current one). */
export function dropEtcdToken(client: Etcd3): void {
  authenticatorOf(client)?.invalidateMetadata();
}

interface AuthenticatorLike {
  getMetadata(): Promise<unknown>;
  invalidateMetadata(): void;
}

/** grpc's status code for a call its own side cancelled. */
const GRPC_CANCELLED = 1;

/**
 * Keep etcd auth tokens fresh for streams. etcd forgets a token when it
 * restarts, and drops one unused for a while (--auth-token-ttl, 5 minutes);
 * the etcd3 client fetches a new one only when a unary call is refused, never
 * for a watch, whose creation etcd then cancels with "invalid auth token" on
 * every attempt (and the client's election recipe then waits forever). So:
 * a watch stream that breaks (etcd may have restarted) or is refused for its
 * token drops the token, and a token older than `maxAgeMs` is fetched again
 * before the next call or stream (one authentication a minute at most, none
 * while idle). Applies to every namespace of `client`: they share its pool.
 */
export function keepEtcdTokensFresh(client: Etcd3, maxAgeMs = 60_000): void {
  // The pool and authenticator are internal; without them (another client version) tokens are left as they are.
  const authenticator = authenticatorOf(client);
  const pool = poolOf(client);
  if (!authenticator || !pool || typeof pool.withConnection !== 'function') return;
  const get = authenticator.getMetadata.bind(authenticator);
  let fetchedAt = 0;
  const drop = (): void => {
    authenticator.invalidateMetadata();
    fetchedAt = 0;
  };
  authenticator.getMetadata = () => {
    const now = Date.now();
    if (fetchedAt !== 0 && now - fetchedAt > maxAgeMs) drop();
    if (fetchedAt === 0) fetchedAt = now;
    return get();
  };
  const withConnection = pool.withConnection.bind(pool);
  pool.withConnection = async (service, fn, ...rest) => {
    const made = await withConnection(service, fn, ...rest);
    const stream = made as { on?: (event: string, listener: (arg: never) => void) => void } | undefined;
    if (service === 'Watch' && typeof stream?.on === 'function') {
      // Registered before the caller's listeners: the token is gone by the time it reconnects.
      stream.on('data', (res: IWatchResponse) => {
        if (res.canceled && res.cancel_reason?.includes('invalid auth token')) drop();
      });
      // Every end of a grpc call reports its status; only our own cancel says nothing about etcd.
      stream.on('status', (status: { code?: number }) => {
        if (status?.code !== GRPC_CANCELLED) drop();
      });
    }
    return made;
  };
}
