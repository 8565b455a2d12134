/**
 * A private dockerd for integration tests, isolated from the host's Docker:
 * its own --data-root, --exec-root, --pidfile, unix socket and --config-file
 * (so /etc/docker/daemon.json stays out), no bridge and no iptables changes
 * (containers run with `--network none` unless a test wires its own). There is
 * no image registry here: `importBusybox()` builds an image with `docker
 * import` from a rootfs made of busybox-static.
 *
 * Docker's plugin directory (/run/docker/plugins) is host-wide: tests that
 * serve a plugin should use a driver name unique to the run (see
 * `uniqueName`). `stop()` removes containers, stops dockerd (which stops its
 * containerd) by PID, unmounts what it left under its dirs and deletes them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { forgetPid, recordPid, run, testDir } from './resources.js';
import { isAlive, stopPid } from './ceph.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const DOCKER_PACKAGES = ['docker.io', 'busybox-static'];
export const DOCKERD_BIN = process.env.CORRAL_DOCKERD_BIN ?? '/usr/sbin/dockerd';
/** Debian's CLI matches the daemon's API; fall back to whatever is in PATH. */
export const DOCKER_CLI = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

export interface DockerdOptions {
  /** Extra daemon.json keys. */
  daemonConfig?: Record<string, unknown>;
  /** Extra dockerd flags. */
  args?: string[];
}

export interface Dockerd {
  readonly dir: string;
  readonly socket: string;
  /** DOCKER_HOST value: unix://… */
  readonly host: string;
  readonly pid: number;
  /** Environment for running the docker CLI against this daemon. */
  readonly env: Record<string, string>;
  /** Run the docker CLI against this daemon. */
  docker(args: string[], opts?: { timeoutMs?: number; input?: string }): Promise<string>;
  /** Build (once) and return an image tag with busybox applets; `dirs` are created empty in the image. */
  importBusybox(tag?: string, opts?: { dirs?: string[] }): Promise<string>;
  stop(): Promise<void>;
}

/** A name unique to this run, e.g. for a plugin driver: `${prefix}-t<hex>`. */
export const uniqueName = (prefix: string): string => `${prefix}-t${randomBytes(4).toString('hex')}`;

export function requireDocker(): void {
  if (!existsSync(DOCKERD_BIN)) throw new Error(`${DOCKERD_BIN} not found: install it with \`apt-get install docker.io\``);
  if (!existsSync('/usr/bin/busybox') && !existsSync('/bin/busybox')) throw new Error('busybox not found: install it with `apt-get install busybox-static`');
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .map((m) => m.replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

async function unmountUnder(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m], { timeoutMs: 10_000 }).catch(() => undefined);
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  requireDocker();
  // Short paths: the socket path must fit in sun_path (108 bytes) and containerd adds to exec-root.
  const dir = testDir('dockerd');
  const socket = join(dir, 'docker.sock');
  const dataRoot = join(dir, 'data');
  const execRoot = join(dir, 'exec');
  const configFile = join(dir, 'daemon.json');
  const cliConfig = join(dir, 'cli');
  for (const d of [dataRoot, execRoot, cliConfig]) mkdirSync(d, { recursive: true });
  writeFileSync(configFile, JSON.stringify({ 'log-level': 'warn', ...opts.daemonConfig }));
  const args = [
    '--data-root',
    dataRoot,
    '--exec-root',
    execRoot,
    '--pidfile',
    join(dir, 'docker.pid'),
    '-H',
    `unix://${socket}`,
    '--config-file',
    configFile,
    '--bridge=none',
    '--iptables=false',
    '--ip-masq=false',
    ...(opts.args ?? []),
  ];
  const child: ChildProcess = spawn(DOCKERD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => {
    stderr = (stderr + c).slice(-20_000);
  });
  child.on('error', (e) => {
    stderr += `\nspawn failed: ${e.message}`;
  });
  const pid = child.pid ?? -1;
  if (pid > 0) recordPid('dockerd', pid);
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: cliConfig };
  const docker = (a: string[], o: { timeoutMs?: number; input?: string } = {}) => runDocker(env, a, o);

  const containerdPids: number[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (pid > 0 && isAlive(pid)) {
        const ids = (await docker(['ps', '-aq'], { timeoutMs: 15_000 }).catch(() => '')).split('\n').filter(Boolean);
        if (ids.length) await docker(['rm', '-f', ...ids], { timeoutMs: 60_000 }).catch(() => undefined);
        await stopPid(pid, 20_000);
      }
      for (const p of containerdPids) await stopPid(p);
      if (pid > 0) forgetPid('dockerd', pid);
      for (const p of containerdPids) forgetPid('containerd', p);
      await unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    })());

  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!isAlive(pid)) throw new Error(`dockerd exited: ${stderr.slice(-3000)}`);
      if (
        existsSync(socket) &&
        (await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5000 }).then(
          () => true,
          () => false,
        ))
      )
        break;
      if (Date.now() > deadline) throw new Error(`dockerd not ready after 60 s: ${stderr.slice(-3000)}`);
      await sleep(100);
    }
    const cpidFile = join(execRoot, 'containerd', 'containerd.pid');
    if (existsSync(cpidFile)) {
      const cpid = Number(readFileSync(cpidFile, 'utf8').trim());
      if (cpid > 0) {
        containerdPids.push(cpid);
        recordPid('containerd', cpid);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const images = new Map<string, Promise<string>>();
  return {
    dir,
    socket,
    host: env.DOCKER_HOST,
    pid,
    env,
    docker,
    importBusybox: (tag = 'corral-busybox:latest', o = {}) => {
      const key = `${tag} ${(o.dirs ?? []).join(',')}`;
      if (!images.has(key)) images.set(key, buildBusyboxImage(dir, docker, tag, o.dirs ?? []));
      return images.get(key)!;
    },
    stop,
  };
}

function runDocker(env: Record<string, string>, args: string[], opts: { timeoutMs?: number; input?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(DOCKER_CLI, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(Object.assign(new Error(`docker ${args.join(' ')} failed (${signal ?? code}): ${err.trim() || out.trim()}`), { stderr: err, exitCode: code }));
    });
    // A command that reads no input may exit before taking it: the EPIPE that follows is not a failure.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** A busybox-static root filesystem tree under `dir` (applets as symlinks, root in /etc/passwd); `dirs` are created empty. */
export async function buildBusyboxRootfs(dir: string, dirs: string[] = []): Promise<string> {
  const rootfs = join(dir, `rootfs-${randomBytes(3).toString('hex')}`);
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  const busybox = existsSync('/usr/bin/busybox') ? '/usr/bin/busybox' : '/bin/busybox';
  copyFileSync(busybox, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = (await run(busybox, ['--list'])).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(rootfs, 'bin', a));
  for (const d of ['tmp', 'proc', 'sys', 'dev', 'etc', 'root', ...dirs]) mkdirSync(join(rootfs, d), { recursive: true });
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  return rootfs;
}

async function buildBusyboxImage(dir: string, docker: Dockerd['docker'], tag: string, dirs: string[]): Promise<string> {
  const rootfs = await buildBusyboxRootfs(dir, dirs);
  const tar = join(dir, `${randomBytes(3).toString('hex')}.tar`);
  await run('tar', ['-C', rootfs, '-cf', tar, '.']);
  await docker(['import', '--change', 'CMD ["sh"]', '--change', 'ENV PATH=/bin', tar, tag], { timeoutMs: 60_000 });
  rmSync(tar, { force: true });
  rmSync(rootfs, { recursive: true, force: true });
  return tag;
}

/** Names in Docker's plugin directory (for tests that check they left nothing behind). */
export function pluginSockets(dir = '/run/docker/plugins'): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
