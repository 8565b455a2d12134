/**
 * Least privilege on etcd: the users and roles corral's daemons connect as,
 * and etcd's authentication switched on. Each corral user gets a role of its
 * own name that may touch only its key prefixes (the master's role: read and
 * write under the cluster's namespace, nothing else). etcd refuses to enable
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

/** The role corral's masters (and the daemons sharing their namespace) hold: read and write under that namespace only. */
export function corralMasterUser(namespace: string, password?: string): EtcdUserSpec {
  if (namespace === '') throw new CorralError('INVALID_ARGUMENT', 'a corral etcd user needs a non-empty namespace: an empty prefix would grant the whole keyspace');
  return { name: 'corral-master', ...(password !== undefined && { password }), grants: [{ prefix: namespace, permission: 'readwrite' }] };
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
