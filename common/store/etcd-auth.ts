/**
 * Least privilege on etcd: the users and roles corral's daemons connect as,
 * and etcd's authentication switched on. Each corral user gets a role of its
 * own name that may touch only its key prefixes: each kind of daemon (master,
 * service framework, discovery, CNI daemon) has a user of its own, confined to
 * the keys it keeps (corralEtcdUsers). etcd refuses to enable
 * authentication without a `root` user holding the `root` role; root's
 * password is generated here, kept in a file only its owner may read, and
 * used for nothing but this set-up.
 *
 * A user without a password authenticates with a client certificate whose CN
 * is its name (etcd's --client-cert-auth): no password to hand out. The flip
 * side: any certificate the CA issues with a CN equal to an etcd user's name
 * acts as that user, so a daemon's certificate must never be named `root`.
 *
 * Idempotent: run again (another provisioning pass, a restarted test), it
 * adds what is missing, sets the passwords and grants from its arguments, and
 * leaves authentication on.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Etcd3, EtcdRoleExistsError, EtcdUserExistsError, type IPermission } from 'etcd3';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { bytesPrefixEnd } from '../../contracts/store/check.js';
import { etcdClientOptions, etcdCredentialError, type EtcdConnectionOptions } from './etcd-connection.js';

type EtcdPermission = 'read' | 'write' | 'readwrite';

interface EtcdUserSpec {
  /** etcd user name, also its role's name (a certificate with this CN acts as it). */
  name: string;
  /** Its password; omitted, the user authenticates by client certificate only. */
  password?: string;
  /** Key prefixes it may use (an empty list: none). */
  grants: Array<{ prefix: string; permission: EtcdPermission }>;
}

/** The role corral's masters hold: read and write under the cluster's namespace only. */
export function corralMasterUser(namespace: string, password?: string): EtcdUserSpec {
  if (namespace === '') throw new CorralError('INVALID_ARGUMENT', 'a corral etcd user needs a non-empty namespace: an empty prefix would grant the whole keyspace');
  return { name: ETCD_USERS.master, ...(password !== undefined && { password }), grants: [{ prefix: namespace, permission: 'readwrite' }] };
}

/** The etcd user of each kind of corral daemon (its client certificate's CN). */
export const ETCD_USERS = { master: 'corral-master', services: 'corral-services', discovery: 'corral-discovery', cni: 'corral-cni' } as const;
export type EtcdDaemonKind = keyof typeof ETCD_USERS;

/**
 * Where each daemon keeps its state, as Store keys (the components own these
 * constants; test/etcd/daemon-users.test.ts holds them to the components'):
 *  - the master's registry: core-scheduler/src/master/registry.ts;
 *  - the service framework's state (`corral/services/<framework>`):
 *    core-scheduler/src/services/daemon.ts;
 *  - discovery's catalog, KV, sessions, locks and ACLs:
 *    discovery/src/catalog/registrations.ts, discovery/src/consul/kv.ts;
 *  - the CNI daemon's IPAM (its `storePrefix` default):
 *    plugins/cni-calico-like/src/daemon/config.ts.
 * Elections live under `election/<name>/` of the Store's namespace
 * (etcd-election.ts); the service framework's default name is
 * `services-<framework>`.
 */
export const ETCD_KEY_LAYOUT = {
  registry: 'corral/registry/',
  servicesState: 'corral/services/',
  servicesElection: 'election/services-',
  discovery: 'corral/discovery/',
  ipam: 'corral/ipam/',
} as const;

/**
 * The key every Store reads at open (and for its current revision) in its
 * namespace: never written, read-only for everyone, so a daemon confined to
 * its own prefixes can still open a Store on the shared namespace (etcd.ts).
 */
const storeProbeKey = (namespace: string): string => `${namespace}\u0000`;

/**
 * Every corral daemon's etcd user and its grants, for daemons whose Store
 * namespace is `namespace` (provisioning: `corral/`) and CNI daemons whose
 * IPAM store has the namespace `cniNamespace` (a node file's default: none).
 *
 * - corral-master: read and write under the whole namespace. Not only its
 *   registry and election: the master serves the Store to daemons that reach
 *   it over its store API (agents, CNI daemons and discovery with a `remote`
 *   store keep their keys there under any prefix but the registry). It is
 *   also what daemons of a cluster set up before per-daemon users connect as,
 *   so they keep working until their node is brought up again.
 * - corral-services: its state and its elections only.
 * - corral-discovery: its own state only (it follows the master over HTTP,
 *   never through etcd).
 * - corral-cni: the IPAM blocks and loans only.
 * No daemon but the master needs another's keys, so none is granted any.
 * Each also reads its namespace's probe key (storeProbeKey).
 */
export function corralEtcdUsers(namespace: string, opts: { cniNamespace?: string; passwords?: Partial<Record<EtcdDaemonKind, string>> } = {}): EtcdUserSpec[] {
  const ns = namespace;
  const cniNs = opts.cniNamespace ?? '';
  const pw = (k: EtcdDaemonKind) => (opts.passwords?.[k] !== undefined ? { password: opts.passwords[k] } : {});
  const probe = (n: string) => ({ prefix: storeProbeKey(n), permission: 'read' as const });
  return [
    corralMasterUser(ns, opts.passwords?.master),
    {
      name: ETCD_USERS.services,
      ...pw('services'),
      grants: [{ prefix: `${ns}${ETCD_KEY_LAYOUT.servicesState}`, permission: 'readwrite' }, { prefix: `${ns}${ETCD_KEY_LAYOUT.servicesElection}`, permission: 'readwrite' }, probe(ns)],
    },
    { name: ETCD_USERS.discovery, ...pw('discovery'), grants: [{ prefix: `${ns}${ETCD_KEY_LAYOUT.discovery}`, permission: 'readwrite' }, probe(ns)] },
    { name: ETCD_USERS.cni, ...pw('cni'), grants: [{ prefix: `${cniNs}${ETCD_KEY_LAYOUT.ipam}`, permission: 'readwrite' }, probe(cniNs)] },
  ];
}

/**
 * The root password in `file`: read if the file exists, else generated and
 * written 0600 (created exclusively: two set-ups never pick different ones).
 */
export function ensureRootPassword(file: string): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  // A file made by hand may be readable by others: this one is root's.
  chmodSync(file, 0o600);
  const line = readFileSync(file, 'utf8').split(/\r?\n/, 1)[0] ?? '';
  if (line === '') throw new CorralError('INVALID_ARGUMENT', `etcd root password file ${file} is empty`);
  return line;
}

const PERM = { read: 'Read', write: 'Write', readwrite: 'Readwrite' } as const;

/** Whether etcd at `conn` answers an unauthenticated admin call: auth is still off. */
async function authDisabled(conn: EtcdConnectionOptions): Promise<boolean> {
  // Without a user, a client certificate's CN is taken for one: ask as nobody.
  const client = new Etcd3(etcdClientOptions({ ...conn, auth: undefined }));
  try {
    await client.auth.userList({});
    return true;
  } catch (err) {
    const typed = etcdCredentialError(err, conn.endpoints);
    if (typed && (typed.details?.cause === 'no-credentials' || typed.details?.cause === 'permission' || typed.details?.cause === 'password')) return false;
    throw typed ?? new CorralError('UNAVAILABLE', `etcd at ${conn.endpoints.join(', ')}: ${errorMessage(err)}`, { endpoints: conn.endpoints }, { cause: err });
  } finally {
    client.close();
  }
}

async function ignoreExists(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof EtcdUserExistsError || err instanceof EtcdRoleExistsError || /already exists/.test(errorMessage(err))) return;
    throw err;
  }
}

/**
 * Create the root user and `users` (each with its own role and grants) on the
 * etcd at `conn` (its TLS options; no auth: root's is used once enabled), and
 * enable authentication. Returns whether it was off before.
 */
export async function setupEtcdAuth(conn: EtcdConnectionOptions, opts: { rootPassword: string; users: EtcdUserSpec[] }): Promise<{ enabled: boolean }> {
  for (const u of opts.users) {
    if (!u.name || u.name === 'root') throw new CorralError('INVALID_ARGUMENT', `etcd user ${JSON.stringify(u.name)}: a corral user needs a name other than root`);
    for (const g of u.grants) {
      if (g.prefix === '') throw new CorralError('INVALID_ARGUMENT', `etcd user ${u.name}: an empty prefix would grant the whole keyspace`);
    }
  }
  const wasOff = await authDisabled(conn);
  const client = new Etcd3(etcdClientOptions({ ...conn, ...(wasOff ? { auth: undefined } : { auth: { username: 'root', password: opts.rootPassword } }) }));
  try {
    const auth = client.auth;
    await ignoreExists(auth.userAdd({ name: 'root', password: opts.rootPassword }));
    await auth.userChangePassword({ name: 'root', password: opts.rootPassword });
    await ignoreExists(auth.userGrantRole({ user: 'root', role: 'root' }));
    for (const u of opts.users) {
      await ignoreExists(auth.roleAdd({ name: u.name }));
      // The role holds exactly the grants asked for: others it held before are revoked.
      const role = await auth.roleGet({ role: u.name });
      const wanted = new Set(u.grants.map((g) => `${PERM[g.permission]} ${g.prefix}`));
      for (const p of role.perm) {
        const prefix = p.key.toString('utf8');
        const isPrefix = p.range_end.equals(bytesPrefixEnd(p.key));
        if (!isPrefix || !wanted.has(`${p.permType} ${prefix}`)) await auth.roleRevokePermission({ role: u.name, key: p.key, range_end: p.range_end });
      }
      for (const g of u.grants) {
        const key = Buffer.from(g.prefix, 'utf8');
        const perm: IPermission = { permType: PERM[g.permission], key, range_end: bytesPrefixEnd(key) };
        await auth.roleGrantPermission({ name: u.name, perm });
      }
      if (u.password !== undefined) {
        await ignoreExists(auth.userAdd({ name: u.name, password: u.password }));
        await auth.userChangePassword({ name: u.name, password: u.password });
      } else {
        await ignoreExists(auth.userAdd({ name: u.name, options: { no_password: true } }));
      }
      await ignoreExists(auth.userGrantRole({ user: u.name, role: u.name }));
    }
    if (wasOff) await auth.authEnable({});
    return { enabled: wasOff };
  } catch (err) {
    // Never let a password reach a log through an error's details: etcd's messages hold none, ours name the user only.
    throw (
      etcdCredentialError(err, conn.endpoints, 'root') ??
      new CorralError('UNAVAILABLE', `etcd at ${conn.endpoints.join(', ')}: setting up users failed: ${errorMessage(err)}`, undefined, { cause: err })
    );
  } finally {
    client.close();
  }
}
