/**
 * Test helpers for the volume driver: run `corral volume-driver` as a real
 * process (so a test can kill it hard and restart it), talk to it through
 * VolumeClient and the Docker protocol, and tear a host's volumes down in the
 * safe order (filesystems, loop devices, rbd-fuse) even after a failure.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VolumeClient } from '../../plugins/volume-driver/src/client.js';
import { mounts } from '../../common/sys/mounts.js';
import { loopDevicesUnder, sweepScope } from '../../provision/src/scope.js';
import type { CephCluster } from '../harness/ceph.js';
import { isAlive, stopPid } from '../harness/ceph.js';
import { forgetPid, recordPid } from '../harness/resources.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface DriverOptions {
  hostId: string;
  /** Directory holding this "host": data dir, config, logs. */
  dir: string;
  socket?: string;
  ceph?: CephCluster;
  defaultBackend?: 'local' | 'rbd';
  rbd?: Record<string, unknown>;
  /** The driver's `reconcile` settings (detach retries, the agent's live containers). */
  reconcile?: Record<string, unknown>;
}

export interface DriverProcess {
  readonly hostId: string;
  readonly socket: string;
  readonly dataDir: string;
  readonly client: VolumeClient;
  pid: number;
  /** Kill with a signal and wait until it is gone (SIGKILL = dies hard). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start again with the same configuration and state. */
  restart(): Promise<void>;
  /** Docker protocol call: POST /VolumeDriver.<method>. */
  docker(method: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  logs(): string;
}

export function driverConfig(o: DriverOptions): Record<string, unknown> {
  return {
    hostId: o.hostId,
    socket: o.socket ?? join(o.dir, 'plugin.sock'),
    dataDir: join(o.dir, 'data'),
    defaultBackend: o.defaultBackend ?? 'local',
    log: { level: 'info', file: join(o.dir, 'driver.log') },
    ...(o.reconcile ? { reconcile: o.reconcile } : {}),
    rbd: o.ceph
      ? { enabled: true, confFile: o.ceph.confFile, keyring: o.ceph.keyring, clientName: o.ceph.clientName, pool: 'corral', timeoutSeconds: 3, dataPathTimeoutSeconds: 10, ...o.rbd }
      : { enabled: false },
  };
}

export async function startDriver(o: DriverOptions): Promise<DriverProcess> {
  mkdirSync(o.dir, { recursive: true });
  const config = driverConfig(o);
  const configFile = join(o.dir, 'driver.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const socket = config.socket as string;
  const client = new VolumeClient(socket, 60_000);
  const spawnOnce = async (): Promise<number> => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'cli/corral.ts'), 'volume-driver', '--config', configFile], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: withoutExtraCerts(process.env),
    });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-5000)));
    const pid = child.pid!;
    recordPid('volume-driver', pid);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (!isAlive(pid)) throw new Error(`volume driver ${o.hostId} exited: ${err}\n${tail(join(o.dir, 'driver.log'))}`);
      if (
        existsSync(socket) &&
        (await client.status().then(
          () => true,
          () => false,
        ))
      )
        return pid;
      if (Date.now() > deadline) throw new Error(`volume driver ${o.hostId} not ready: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const handle: DriverProcess = {
    hostId: o.hostId,
    socket,
    dataDir: config.dataDir as string,
    client,
    pid: await spawnOnce(),
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      const pid = handle.pid;
      if (isAlive(pid)) {
        if (signal === 'SIGTERM') await stopPid(pid, 15_000);
        else {
          process.kill(pid, signal);
          while (isAlive(pid)) await new Promise((r) => setTimeout(r, 10));
        }
      }
      forgetPid('volume-driver', pid);
    },
    async restart() {
      await handle.kill();
      handle.pid = await spawnOnce();
    },
    docker: (method, body) => dockerCall(socket, method, body),
    logs: () => tail(join(o.dir, 'driver.log'), 60),
  };
  return handle;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export function dockerCall(socket: string, method: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = http.request(
      { socketPath: socket, method: 'POST', path: `/${method.includes('.') ? method : `VolumeDriver.${method}`}`, headers: { 'Content-Length': Buffer.byteLength(payload) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolvePromise({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
          } catch (err) {
            reject(new Error(`non-JSON answer ${res.statusCode}: ${text} (${(err as Error).message})`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Everything of a test host under `dir` (filesystems, loop devices, rbd-fuse mounts and processes), purged as a node's scope is. */
export async function teardownHost(dir: string): Promise<void> {
  await sweepScope({ dirs: [dir], volumesDir: dir });
}

/** Loop devices whose backing file lies under `dir`. */
export const loopsUnder = (dir: string): string[] => loopDevicesUnder([dir]);

/** Kernel rbd mappings of pool/image (none where the kernel has no rbd). */
export function krbdMappings(pool: string, image: string): string[] {
  const base = '/sys/bus/rbd/devices';
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((id) => {
      try {
        return readFileSync(join(base, id, 'pool'), 'utf8').trim() === pool && readFileSync(join(base, id, 'name'), 'utf8').trim() === image;
      } catch {
        return false;
      }
    })
    .map((id) => `krbd /dev/rbd${id}`);
}

/** What of a volume's data path is still on this host: mounts, loop devices and helper processes under `dir`. */
export function dataPathUnder(dir: string): string[] {
  const under = (p: string) => p === dir || p.startsWith(dir + '/');
  return [
    ...mounts()
      .filter((m) => under(m.target))
      .map((m) => `mount ${m.target}`),
    ...loopsUnder(dir).map((d) => `loop ${d}`),
    ...helperPids(dir).map((pid) => `pid ${pid}`),
  ];
}

/** rbd-fuse (or any helper) processes whose command line names a path under `dir`. */
export function helperPids(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a === dir || a.startsWith(dir + '/')) && !cmd.includes('volume-driver') && isAlive(Number(p))) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export const isMounted = (path: string): boolean => mounts().some((m) => m.target === path);

/** The filesystem type mounted at `path` (the last mount there), or undefined. */
export const mountedFsType = (path: string): string | undefined =>
  mounts()
    .filter((m) => m.target === path)
    .pop()?.fstype;

/** NODE_EXTRA_CA_CERTS costs ~35 ms per Node start here and the driver needs no extra CAs. */
function withoutExtraCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _drop, ...rest } = env;
  return rest;
}

/** Writes a file and fsyncs it: what a task's data must survive (a detach, a driver's hard restart, a host's death). */
export function writeAndFsync(path: string, data: string): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
