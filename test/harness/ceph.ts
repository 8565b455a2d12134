/**
 * A real single-node Ceph cluster for integration tests: one mon and one
 * memstore OSD on 127.0.0.1 (or `address`), cephx on, every file (keys, run dir, logs, admin
 * sockets) under one test dir, free ports so clusters of concurrent runs never
 * meet. Starts in ~1–2 s with no systemd and no mgr (rados and rbd need none).
 *
 * Teardown order matters on this machine: whatever uses the cluster (mounts,
 * loop devices, rbd-fuse) must be gone before `stop()`, or umount/losetup hang
 * in D state. `stop()` ends the OSD, then the mon, by the PIDs we started,
 * waiting on /proc state (killed daemons linger as zombies here), and removes
 * the dir. `pause()`/`resume()` (SIGSTOP/SIGCONT) make the cluster unreachable
 * without losing memstore data, for "Ceph is down" tests.
 *
 * The cluster itself (configuration, keys, start order, readiness) comes from
 * provision/src/ceph.ts, which node provisioning uses for a lab's control node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { forgetPid, recordPid, run, testDir } from './resources.js';
import { until } from './wait.js';
import { bootstrapCeph, createRbdPool, ensureRbdClient, volumeClientName, writeKeyring, CEPH_PACKAGES } from '../../provision/src/ceph.js';
import { procState, processAlive as isAlive } from '../../common/sys/process.js';
import { setTimeout as sleep } from 'node:timers/promises';

export { procState, isAlive };

export { CEPH_PACKAGES };

export interface CephOptions {
  /** Pools to create (application rbd). */
  pools?: string[];
  /** Bytes of RAM the memstore OSD may use (default 1 GiB; data costs ~2× in RAM). */
  memstoreBytes?: number;
  /** Extra [global] settings. */
  extraConfig?: Record<string, string>;
  /** Address the mon and the OSD bind (default 127.0.0.1); clients reach the mon there. */
  address?: string;
}

export interface CephCluster {
  readonly dir: string;
  readonly confFile: string;
  /** client.admin's keyring. */
  readonly keyring: string;
  readonly clientName: string;
  /** "ADDRESS:PORT" of the mon. */
  readonly monAddr: string;
  /** Arguments every ceph CLI call needs: -c, --keyring, --connect-timeout. */
  readonly cliArgs: string[];
  /** Environment for tools without flags for these (rbd-fuse): CEPH_ARGS. */
  readonly env: Record<string, string>;
  /** Run `ceph …` with a timeout. */
  ceph(args: string[], timeoutMs?: number): Promise<string>;
  /** Run `rbd …` with a timeout. */
  rbd(args: string[], timeoutMs?: number): Promise<string>;
  /** Run `rados …` as a new client whose Ceph round trips time out after 3 s (a paused cluster fails it, not hangs it). */
  rados(args: string[], timeoutMs?: number): Promise<string>;
  createPool(name: string): Promise<void>;
  /**
   * A host's own least-privilege client (client.corral-volumes-<host>, `profile rbd` on `pools`), made as node
   * provisioning makes it; its keyring is written (0600) into a directory of its own.
   */
  volumeClient(host: string, pools: string[]): Promise<{ clientName: string; keyring: string }>;
  /** Stop answering (SIGSTOP both daemons); data stays. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /**
   * Have the mon mark the OSD down, as an operator does with an OSD that is up but serves nothing: the OSD
   * (still running, its memstore data kept) sees itself wrongly marked down, rebinds and boots again.
   */
  nudgeOsd(): Promise<void>;
  /** The last lines of a daemon's log ("osd.0", "mon.a"), for failure messages. */
  logTail(name: string, lines?: number): string;
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

function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, address, () => s.close(() => resolve(true)));
  });
}

/** A run of `count` consecutive free ports (the mon takes the first, the OSD binds in the rest). */
async function freePortRange(address: string, count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portFree(address, p);
    if (ok) return base;
  }
  throw new Error('no free port range for the Ceph cluster');
}

interface Daemon {
  name: string;
  child: ChildProcess;
  stderr: () => string;
}

/** Our children, stderr kept for error messages, PIDs recorded for the cleanup script. */
function spawnDaemon(name: string, program: string, args: string[], runDir: string): Daemon {
  const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => {
    err = (err + c).slice(-10_000);
  });
  child.on('error', (e) => {
    err += `\nspawn failed: ${e.message}`;
  });
  if (child.pid) recordPid(`ceph-${name}`, child.pid);
  writeFileSync(join(runDir, `${name}.pid`), String(child.pid ?? ''));
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
    throw new Error(`Ceph did not start: ${(err as Error).message}\n${logs}`, { cause: err });
  }
}

async function bootstrap(dir: string, daemons: Daemon[], stopAll: () => Promise<void>, opts: CephOptions): Promise<CephCluster> {
  const address = opts.address ?? '127.0.0.1';
  const portCount = 12;
  const basePort = await freePortRange(address, portCount);
  mkdirSync(join(dir, 'run'), { recursive: true });
  const cluster = await bootstrapCeph(
    {
      dir,
      address,
      basePort,
      portCount,
      pools: opts.pools ?? [],
      ...(opts.memstoreBytes ? { memstoreBytes: opts.memstoreBytes } : {}),
      ...(opts.extraConfig ? { extraConfig: opts.extraConfig } : {}),
    },
    (name, program, args) => {
      const d = spawnDaemon(name, program, args, join(dir, 'run'));
      daemons.push(d);
      return {
        pid: d.child.pid,
        exited: () => (d.child.exitCode !== null || d.child.signalCode !== null ? `exit ${d.child.exitCode ?? d.child.signalCode}: ${d.stderr().slice(-1500)}` : undefined),
      };
    },
  );
  const { confFile, keyring, cliArgs } = cluster;
  const ceph = (args: string[], timeoutMs = 20_000) => run('/usr/bin/timeout', [String(Math.ceil(timeoutMs / 1000)), 'ceph', ...cliArgs, ...args], { timeoutMs: timeoutMs + 2000 });
  const rbd = (args: string[], timeoutMs = 20_000) =>
    run('/usr/bin/timeout', [String(Math.ceil(timeoutMs / 1000)), 'rbd', '-c', confFile, '--keyring', keyring, ...args], { timeoutMs: timeoutMs + 2000 });
  // Each Ceph round trip gives up after 3 s, as the volume driver's do; the whole command (start-up included) after timeoutMs.
  const rados = (args: string[], timeoutMs = 20_000) =>
    run('/usr/bin/timeout', [String(Math.ceil(timeoutMs / 1000)), 'rados', '-c', confFile, '--keyring', keyring, '--client-mount-timeout', '3', '--rados-osd-op-timeout', '3', ...args], {
      timeoutMs: timeoutMs + 2000,
    });
  const createPool = (name: string) => createRbdPool(ceph, name);

  let stopped: Promise<void> | undefined;
  const allThreadsStopped = (pid: number): boolean => {
    try {
      return readdirSync(`/proc/${pid}/task`).every((tid) => 'tT'.includes(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(')').pop()!.trim()[0] ?? ''));
    } catch {
      return true; // gone
    }
  };
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
    monAddr: cluster.monAddr,
    cliArgs,
    env: { CEPH_ARGS: `--keyring ${keyring}` },
    ceph,
    rbd,
    rados,
    createPool,
    volumeClient: async (host, pools) => {
      const clientName = volumeClientName(host);
      const clientDir = join(dir, 'clients', host);
      mkdirSync(clientDir, { recursive: true, mode: 0o700 });
      const file = join(clientDir, 'keyring');
      writeKeyring(file, await ensureRbdClient(cliArgs, clientName, pools));
      return { clientName, keyring: file };
    },
    pause: async () => {
      signalAll('SIGSTOP');
      // SIGSTOP lands asynchronously: a busy daemon thread may still answer one more request. Paused means every thread stopped.
      const pids = daemons.map((d) => d.child.pid).filter((p): p is number => p !== undefined && isAlive(p));
      await until(() => pids.every(allThreadsStopped), 5000, 'Ceph daemons stopped', 5);
    },
    resume: async () => signalAll('SIGCONT'),
    nudgeOsd: async () => {
      await ceph(['osd', 'down', '0']);
    },
    logTail: (name, lines = 40) => {
      try {
        return readFileSync(join(dir, 'log', `${name}.log`), 'utf8')
          .trimEnd()
          .split('\n')
          .slice(-lines)
          .join('\n');
      } catch (err) {
        return `(no log: ${(err as Error).message})`;
      }
    },
    stop: () =>
      (stopped ??= (async () => {
        await stopAll();
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
}
