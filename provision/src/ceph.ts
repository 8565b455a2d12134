/**
 * A small Ceph cluster for labs and tests: one mon and one memstore OSD bound
 * to one address, cephx on, every file (keys, run dir, logs, admin sockets)
 * under one directory. No systemd and no mgr (rados and rbd need none).
 * Starts in ~1–2 s. Shared by the test harness (test/harness/ceph.ts, which
 * spawns the daemons as its children) and node provisioning (provision/,
 * which spawns them detached inside the control node's network namespace):
 * the caller decides how a daemon process is started, this module decides
 * what runs and in which order.
 *
 * Settings that matter on this kind of machine (see the brief, section 4):
 * pool size 1, `osd crush chooseleaf type = 0`, explicit public/cluster
 * address (else OSD heartbeats bind 0.0.0.0), `paxos propose interval = 0.05`,
 * every path under the one directory, lowered `mon data avail` thresholds,
 * and a timeout on every ceph call.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { exec } from '../../common/sys/exec.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const CEPH_PACKAGES = ['ceph-mon', 'ceph-osd', 'ceph-common'];

/** The least-privilege client a host's volume driver uses: one per host, so each can be revoked alone. */
const VOLUME_CLIENT_PREFIX = 'client.corral-volumes-';
export const volumeClientName = (host: string): string => `${VOLUME_CLIENT_PREFIX}${host}`;

interface CephBootstrapOptions {
  /** Every file of the cluster lives here. */
  dir: string;
  /** The address the mon and the OSD bind (127.0.0.1, or an underlay address in a lab). */
  address: string;
  /** The mon's port; the OSD binds in the `portCount - 1` ports after it. */
  basePort: number;
  portCount?: number;
  /** Pools to create (application rbd). */
  pools?: string[];
  /** Bytes of RAM the memstore OSD may use (default 1 GiB; data costs ~2× in RAM). */
  memstoreBytes?: number;
  /** Extra [global] settings. */
  extraConfig?: Record<string, string>;
  /** How long the cluster may take to serve a rados round trip (default 30 s). */
  readyTimeoutMs?: number;
}

/** A started daemon, as the caller's spawner reports it. */
interface CephDaemonHandle {
  pid: number | undefined;
  /** Why it is gone (exit code, signal, output), or undefined while it runs. */
  exited(): string | undefined;
}

/** Starts `/usr/bin/ceph-<kind>` with these arguments (kind "mon" or "osd"); `name` is "mon.a" or "osd.0". */
type CephSpawner = (name: string, program: string, args: string[]) => CephDaemonHandle;

interface CephBootstrapped {
  dir: string;
  fsid: string;
  /** The cluster's full ceph.conf (daemons and clients on this machine). */
  confFile: string;
  /** A ceph.conf with only what a client needs (mon address, auth): copy it to other machines. */
  clientConfFile: string;
  /** client.admin's keyring. */
  keyring: string;
  clientName: string;
  /** "ADDRESS:PORT" of the mon. */
  monAddr: string;
  /** Arguments every ceph CLI call needs: -c, --keyring, --connect-timeout. */
  cliArgs: string[];
  daemons: Array<{ name: string; handle: CephDaemonHandle }>;
}

function cephConfText(o: { dir: string; fsid: string; address: string; basePort: number; portCount: number; memstoreBytes?: number; extraConfig?: Record<string, string> }): string {
  const { dir } = o;
  const extra = Object.entries(o.extraConfig ?? {}).map(([k, v]) => `${k} = ${v}`);
  return [
    '[global]',
    `fsid = ${o.fsid}`,
    `mon host = v2:${o.address}:${o.basePort}`,
    `public addr = ${o.address}`,
    `cluster addr = ${o.address}`,
    'ms bind msgr1 = false',
    `ms bind port min = ${o.basePort + 1}`,
    `ms bind port max = ${o.basePort + o.portCount - 1}`,
    'auth cluster required = cephx',
    'auth service required = cephx',
    'auth client required = cephx',
    `keyring = ${dir}/keyring`,
    `run dir = ${dir}/run`,
    `log file = ${dir}/log/$name.log`,
    `mon cluster log file = ${dir}/log/cluster.log`,
    'osd pool default size = 1',
    'osd pool default min size = 1',
    'osd pool default pg num = 8',
    'osd pool default pgp num = 8',
    'mon allow pool size one = true',
    'mon allow pool delete = true',
    'mon warn on pool no redundancy = false',
    'osd crush chooseleaf type = 0',
    'mon data avail warn = 2',
    'mon data avail crit = 1',
    'paxos propose interval = 0.05',
    ...extra,
    '[mon]',
    `mon data = ${dir}/mon`,
    'mon initial members = a',
    `admin socket = ${dir}/run/$name.asok`,
    '[osd]',
    `osd data = ${dir}/osd`,
    'osd objectstore = memstore',
    `memstore device bytes = ${o.memstoreBytes ?? 1024 * 1024 * 1024}`,
    `keyring = ${dir}/osd/keyring`,
    `admin socket = ${dir}/run/$name.asok`,
    '',
  ].join('\n');
}

/** What a client on another machine needs: where the mon is and that cephx is on (the keyring is passed separately). */
function cephClientConfText(o: { fsid: string; address: string; basePort: number }): string {
  return [
    '[global]',
    `fsid = ${o.fsid}`,
    `mon host = v2:${o.address}:${o.basePort}`,
    'auth cluster required = cephx',
    'auth service required = cephx',
    'auth client required = cephx',
    // Clients keep no logs or admin sockets of their own in a lab.
    'log file = /dev/null',
    'admin socket =',
    '',
  ].join('\n');
}

/** The ceph CLI as client.admin of a cluster bootstrapped in `dir` (only the node that made it holds these files). */
export const cephAdminArgs = (dir: string): string[] => ['-c', join(dir, 'ceph.conf'), '--keyring', join(dir, 'keyring'), '--connect-timeout', '10'];

const runCeph = (cliArgs: string[], args: string[], timeoutMs = 20_000): Promise<string> =>
  exec('/usr/bin/timeout', [String(Math.ceil(timeoutMs / 1000)), 'ceph', ...cliArgs, ...args], { timeoutMs: timeoutMs + 2000 });

/**
 * The caps Ceph documents for an RBD client (docs.ceph.com, "Block Device" /
 * "Create a Ceph user"): `profile rbd` on the mon (read the maps, and
 * blocklist a dead client, which corral's fencing needs) and rbd's object
 * classes and read-write on these pools only, on the OSDs and the mgr. No
 * auth, config or pool-management rights.
 */
export function rbdClientCaps(pools: string[]): string[] {
  if (pools.length === 0) throw new Error('an rbd client needs at least one pool');
  const onPools = pools.map((p) => `profile rbd pool=${p}`).join(', ');
  return ['mon', 'profile rbd', 'osd', onPools, 'mgr', onPools];
}

/**
 * Makes (or finds) an rbd client limited to `pools` and returns its keyring
 * text, with client.admin's CLI arguments. Idempotent: the same key comes
 * back every time; a client whose caps differ (the pools changed) gets the
 * new caps and keeps its key.
 */
export async function ensureRbdClient(adminArgs: string[], name: string, pools: string[]): Promise<string> {
  if (!/^client\.[a-zA-Z0-9_.-]+$/.test(name)) throw new Error(`not a Ceph client name: ${name}`);
  const caps = rbdClientCaps(pools);
  try {
    return await runCeph(adminArgs, ['auth', 'get-or-create', name, ...caps]);
  } catch (err) {
    // "key for client.x exists but cap osd does not match": set the caps, keep the key.
    if (!/does not match/.test((err as Error).message)) throw err;
    await runCeph(adminArgs, ['auth', 'caps', name, ...caps]);
    return runCeph(adminArgs, ['auth', 'get', name]);
  }
}

/** Revokes a client: its key is gone, so it cannot authenticate again (a live session is fenced by blocklisting it). */
export async function removeRbdClient(adminArgs: string[], name: string): Promise<void> {
  await runCeph(adminArgs, ['auth', 'rm', name]);
}

/** Every corral volume client the cluster knows (to revoke hosts no longer listed). */
export async function listVolumeClients(adminArgs: string[]): Promise<string[]> {
  const out = JSON.parse(await runCeph(adminArgs, ['auth', 'ls', '--format', 'json'])) as { auth_dump?: Array<{ entity: string }> };
  return (out.auth_dump ?? []).map((e) => e.entity).filter((e) => e.startsWith(VOLUME_CLIENT_PREFIX));
}

/** Writes a keyring readable by its owner only (0600 from the start, never briefly wider). */
export function writeKeyring(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text.endsWith('\n') ? text : `${text}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/** Creates the cluster's keys and maps, starts the mon and the OSD through `spawn`, creates the pools, and returns once a rados round trip works. */
export async function bootstrapCeph(o: CephBootstrapOptions, spawn: CephSpawner): Promise<CephBootstrapped> {
  const { dir, address, basePort } = o;
  const portCount = o.portCount ?? 12;
  for (const sub of ['run', 'log', 'mon', 'osd']) mkdirSync(join(dir, sub), { recursive: true });
  const fsid = randomUUID();
  const confFile = join(dir, 'ceph.conf');
  const clientConfFile = join(dir, 'ceph.client.conf');
  const keyring = join(dir, 'keyring');
  writeFileSync(
    confFile,
    cephConfText({ dir, fsid, address, basePort, portCount, ...(o.memstoreBytes ? { memstoreBytes: o.memstoreBytes } : {}), ...(o.extraConfig ? { extraConfig: o.extraConfig } : {}) }),
  );
  writeFileSync(clientConfFile, cephClientConfText({ fsid, address, basePort }));
  const cliArgs = ['-c', confFile, '--keyring', keyring, '--connect-timeout', '10'];
  const run = (cmd: string, args: string[], timeoutMs = 20_000) => exec('/usr/bin/timeout', [String(Math.ceil(timeoutMs / 1000)), cmd, ...args], { timeoutMs: timeoutMs + 2000 });
  const ceph = (args: string[], timeoutMs = 20_000) => run('ceph', [...cliArgs, ...args], timeoutMs);
  const daemons: CephBootstrapped['daemons'] = [];
  const start = (name: string, args: string[]) => daemons.push({ name, handle: spawn(name, `/usr/bin/ceph-${name.split('.')[0]}`, args) });

  const osdKeyring = join(dir, 'osd', 'keyring');
  await run('ceph-authtool', ['--create-keyring', keyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
  await run('ceph-authtool', [keyring, '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *']);
  await run('ceph-authtool', ['--create-keyring', osdKeyring, '--gen-key', '-n', 'osd.0', '--cap', 'mon', 'allow profile osd', '--cap', 'osd', 'allow *']);
  await run('ceph-authtool', [keyring, '--import-keyring', osdKeyring]);
  await run('monmaptool', ['--create', '--addv', 'a', `[v2:${address}:${basePort}]`, '--fsid', fsid, join(dir, 'monmap')]);
  await run('ceph-mon', ['-c', confFile, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', keyring]);
  start('mon.a', ['-c', confFile, '-i', 'a', '-f']);

  const osdUuid = randomUUID();
  await ceph(['osd', 'new', osdUuid, '0']);
  await run('ceph-osd', ['-c', confFile, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
  start('osd.0', ['-c', confFile, '-i', '0', '-f']);

  await ceph(['osd', 'pool', 'create', 'corral-probe', '8']);
  await waitReady(confFile, keyring, daemons, o.readyTimeoutMs ?? 30_000, ceph);
  await ceph(['osd', 'pool', 'rm', 'corral-probe', 'corral-probe', '--yes-i-really-really-mean-it']);
  for (const p of o.pools ?? []) await createRbdPool(ceph, p);
  return { dir, fsid, confFile, clientConfFile, keyring, clientName: 'client.admin', monAddr: `${address}:${basePort}`, cliArgs, daemons };
}

export async function createRbdPool(ceph: (args: string[]) => Promise<string>, name: string): Promise<void> {
  await ceph(['osd', 'pool', 'create', name, '8']);
  await ceph(['osd', 'pool', 'application', 'enable', name, 'rbd']);
}

/** Ready when a rados put/stat round trip works (the OSD is up and its PGs active). */
async function waitReady(confFile: string, keyring: string, daemons: CephBootstrapped['daemons'], timeoutMs: number, ceph: (a: string[], t?: number) => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const rados = ['-c', confFile, '--keyring', keyring, '-p', 'corral-probe'];
  let last = '';
  while (Date.now() < deadline) {
    for (const d of daemons) {
      const why = d.handle.exited();
      if (why !== undefined) throw new Error(`${d.name} exited: ${why}`);
    }
    try {
      await exec('/usr/bin/timeout', ['3', 'rados', ...rados, 'put', 'probe', confFile], { timeoutMs: 5000 });
      await exec('/usr/bin/timeout', ['3', 'rados', ...rados, 'stat', 'probe'], { timeoutMs: 5000 });
      return;
    } catch (err) {
      last = (err as Error).message;
      await sleep(100);
    }
  }
  const status = await ceph(['-s'], 5000).catch((e: Error) => e.message);
  throw new Error(`cluster not ready after ${timeoutMs / 1000} s: ${last}\n${status}`);
}
