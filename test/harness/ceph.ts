/**
 * A real single-node Ceph cluster for integration tests: one mon and one
 * memstore OSD on 127.0.0.1, cephx on, every file (keys, run dir, logs, admin
 * sockets) under one test dir, free ports so clusters of concurrent runs never
 * meet. Starts in ~1–2 s with no systemd and no mgr (rados and rbd need none).
 *
 * Teardown order matters on this machine: whatever uses the cluster (mounts,
 * loop devices, rbd-fuse) must be gone before `stop()`, or umount/losetup hang
 * in D state. `stop()` ends the OSD, then the mon, by the PIDs we started,
 * waiting on /proc state (killed daemons linger as zombies here), and removes
 * the dir. `pause()`/`resume()` (SIGSTOP/SIGCONT) make the cluster unreachable
 * without losing memstore data, for "Ceph is down" tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { forgetPid, recordPid, run, testDir } from './resources.js';

export const CEPH_PACKAGES = ['ceph-mon', 'ceph-osd', 'ceph-common'];

export interface CephOptions {
  /** Pools to create (application rbd). */
  pools?: string[];
  /** Bytes of RAM the memstore OSD may use (default 1 GiB; data costs ~2× in RAM). */
  memstoreBytes?: number;
  /** Extra [global] settings. */
  extraConfig?: Record<string, string>;
}

export interface CephCluster {
  readonly dir: string;
  readonly confFile: string;
  /** client.admin's keyring. */
  readonly keyring: string;
  readonly clientName: string;
  /** "127.0.0.1:PORT" of the mon. */
  readonly monAddr: string;
  /** Arguments every ceph CLI call needs: -c, --keyring, --connect-timeout. */
  readonly cliArgs: string[];
  /** Environment for tools without flags for these (rbd-fuse): CEPH_ARGS. */
  readonly env: Record<string, string>;
  /** Run `ceph …` with a timeout. */
  ceph(args: string[], timeoutMs?: number): Promise<string>;
  /** Run `rbd …` with a timeout. */
  rbd(args: string[], timeoutMs?: number): Promise<string>;
  createPool(name: string): Promise<void>;
  /** Stop answering (SIGSTOP both daemons); data stays. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stop the daemons (OSD first) and remove everything; safe to call twice. */
  stop(): Promise<void>;
}

export function requireCephBinaries(): void {
  for (const bin of ['/usr/bin/ceph-mon', '/usr/bin/ceph-osd', '/usr/bin/ceph', '/usr/bin/ceph-authtool', '/usr/bin/monmaptool']) {
    if (!existsSync(bin)) {
      throw new Error(`${bin} not found: install Ceph with \`apt-get install --no-install-recommends ${CEPH_PACKAGES.join(' ')}\``);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Process state letter from /proc (Z = zombie, gone for our purposes), undefined when reaped. */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

export const isAlive = (pid: number): boolean => {
  const s = procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
};

/** SIGTERM, wait, SIGKILL: by PID only, judging death by /proc state. */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  if (!isAlive(pid)) return;
  signal('SIGCONT');
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(25);
  if (isAlive(pid)) {
    signal('SIGKILL');
    const hard = Date.now() + 5000;
    while (isAlive(pid) && Date.now() < hard) await sleep(25);
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A run of `count` consecutive free ports (the mon takes the first, the OSD binds in the rest). */
async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free port range for the Ceph cluster');
}

function confText(dir: string, fsid: string, basePort: number, portCount: number, opts: CephOptions): string {
  const extra = Object.entries(opts.extraConfig ?? {}).map(([k, v]) => `${k} = ${v}`);
  return [
    '[global]',
    `fsid = ${fsid}`,
    `mon host = v2:127.0.0.1:${basePort}`,
    'public addr = 127.0.0.1',
    'cluster addr = 127.0.0.1',
    'ms bind msgr1 = false',
    `ms bind port min = ${basePort + 1}`,
    `ms bind port max = ${basePort + portCount - 1}`,
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
    `memstore device bytes = ${opts.memstoreBytes ?? 1024 * 1024 * 1024}`,
    `keyring = ${dir}/osd/keyring`,
    `admin socket = ${dir}/run/$name.asok`,
    '',
  ].join('\n');
}

interface Daemon {
  name: string;
  child: ChildProcess;
  stderr: () => string;
}

function spawnDaemon(name: string, args: string[], logDir: string): Daemon {
  const child = spawn(`/usr/bin/ceph-${name.split('.')[0]}`, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => {
    err = (err + c).slice(-10_000);
  });
  child.on('error', (e) => {
    err += `\nspawn failed: ${e.message}`;
  });
  if (child.pid) recordPid(`ceph-${name}`, child.pid);
  writeFileSync(join(logDir, `${name}.pid`), String(child.pid ?? ''));
  return { name, child, stderr: () => err };
}

export async function startCeph(opts: CephOptions = {}): Promise<CephCluster> {
  requireCephBinaries();
  const dir = testDir('ceph');
  const daemons: Daemon[] = [];
  const stopAll = async () => {
    // OSD before mon, as in production: the OSD reports its shutdown to the mon.
    for (const d of [...daemons].reverse()) {
      if (d.child.pid) {
        await stopPid(d.child.pid);
        forgetPid(`ceph-${d.name}`, d.child.pid);
      }
    }
  };
  try {
    return await bootstrap(dir, daemons, stopAll, opts);
  } catch (err) {
    const logs = daemons.map((d) => `${d.name}: ${d.stderr().slice(-1500)}`).join('\n');
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`Ceph did not start: ${(err as Error).message}\n${logs}`);
  }
}

async function bootstrap(dir: string, daemons: Daemon[], stopAll: () => Promise<void>, opts: CephOptions): Promise<CephCluster> {
  for (const sub of ['run', 'log', 'mon', 'osd']) mkdirSync(join(dir, sub), { recursive: true });
  const fsid = randomUUID();
  const portCount = 12;
  const basePort = await freePortRange(portCount);
  const confFile = join(dir, 'ceph.conf');
  const keyring = join(dir, 'keyring');
  writeFileSync(confFile, confText(dir, fsid, basePort, portCount, opts));
  const cliArgs = ['-c', confFile, '--keyring', keyring, '--connect-timeout', '10'];
  const ceph = (args: string[], timeoutMs = 20_000) => run('/usr/bin/timeout', [String(Math.ceil(timeoutMs / 1000)), 'ceph', ...cliArgs, ...args], { timeoutMs: timeoutMs + 2000 });
  const rbd = (args: string[], timeoutMs = 20_000) => run('/usr/bin/timeout', [String(Math.ceil(timeoutMs / 1000)), 'rbd', '-c', confFile, '--keyring', keyring, ...args], { timeoutMs: timeoutMs + 2000 });

  const osdKeyring = join(dir, 'osd', 'keyring');
  await run('ceph-authtool', ['--create-keyring', keyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
  await run('ceph-authtool', [keyring, '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *']);
  await run('ceph-authtool', ['--create-keyring', osdKeyring, '--gen-key', '-n', 'osd.0', '--cap', 'mon', 'allow profile osd', '--cap', 'osd', 'allow *']);
  await run('ceph-authtool', [keyring, '--import-keyring', osdKeyring]);
  await run('monmaptool', ['--create', '--addv', 'a', `[v2:127.0.0.1:${basePort}]`, '--fsid', fsid, join(dir, 'monmap')]);
  await run('ceph-mon', ['-c', confFile, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap'), '--keyring', keyring]);
  daemons.push(spawnDaemon('mon.a', ['-c', confFile, '-i', 'a', '-f'], join(dir, 'run')));

  const osdUuid = randomUUID();
  await ceph(['osd', 'new', osdUuid, '0']);
  await run('/usr/bin/timeout', ['20', 'ceph-osd', '-c', confFile, '-i', '0', '--mkfs', '--osd-uuid', osdUuid], { timeoutMs: 22_000 });
  daemons.push(spawnDaemon('osd.0', ['-c', confFile, '-i', '0', '-f'], join(dir, 'run')));

  const pools = opts.pools ?? [];
  const createPool = async (name: string) => {
    await ceph(['osd', 'pool', 'create', name, '8']);
    await ceph(['osd', 'pool', 'application', 'enable', name, 'rbd']);
  };
  await ceph(['osd', 'pool', 'create', 'corral-probe', '8']);
  await waitReady(ceph, confFile, keyring, daemons);
  await ceph(['osd', 'pool', 'rm', 'corral-probe', 'corral-probe', '--yes-i-really-really-mean-it']);
  for (const p of pools) await createPool(p);

  let stopped: Promise<void> | undefined;
  const signalAll = (sig: NodeJS.Signals) => {
    for (const d of daemons) {
      if (d.child.pid && isAlive(d.child.pid)) process.kill(d.child.pid, sig);
    }
  };
  return {
    dir,
    confFile,
    keyring,
    clientName: 'client.admin',
    monAddr: `127.0.0.1:${basePort}`,
    cliArgs,
    env: { CEPH_ARGS: `--keyring ${keyring}` },
    ceph,
    rbd,
    createPool,
    pause: async () => signalAll('SIGSTOP'),
    resume: async () => signalAll('SIGCONT'),
    stop: () =>
      (stopped ??= (async () => {
        await stopAll();
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
}

/** Ready when a rados put/get round trip works (the OSD is up and its PGs active). */
async function waitReady(ceph: (a: string[], t?: number) => Promise<string>, confFile: string, keyring: string, daemons: Daemon[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  const rados = ['-c', confFile, '--keyring', keyring, '-p', 'corral-probe'];
  let last = '';
  while (Date.now() < deadline) {
    for (const d of daemons) {
      if (d.child.exitCode !== null || d.child.signalCode !== null) throw new Error(`${d.name} exited: ${d.stderr().slice(-1500)}`);
    }
    try {
      await run('/usr/bin/timeout', ['3', 'rados', ...rados, 'put', 'probe', confFile], { timeoutMs: 5000 });
      await run('/usr/bin/timeout', ['3', 'rados', ...rados, 'stat', 'probe'], { timeoutMs: 5000 });
      return;
    } catch (err) {
      last = (err as Error).message;
      await sleep(100);
    }
  }
  const status = await ceph(['-s'], 5000).catch((e: Error) => e.message);
  throw new Error(`cluster not ready after 30 s: ${last}\n${status}`);
}
