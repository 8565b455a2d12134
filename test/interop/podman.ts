/**
 * A private podman (Debian's 4.3 with its CNI backend, libcni inside) for
 * interop tests, isolated from the host's containers setup:
 *  - its own containers.conf (CONTAINERS_CONF): network_backend "cni", the
 *    test's CNI config and plugin dirs, cgroupfs, file locks and file events,
 *    tmp/static/volume dirs under the test dir, runc, and default ulimits
 *    capped (nofile 1024, nproc 4096) — runc cannot raise podman's defaults
 *    above this machine's hard limits;
 *  - its own storage.conf (CONTAINERS_STORAGE_CONF): graphroot and runroot
 *    under the test dir, driver vfs (no mounts besides each container's shm);
 *  - podman itself runs inside a ct- network namespace (`nsenter --net`, not
 *    `ip netns exec`, whose /sys remount hides the cgroup mounts from runc),
 *    so the CNI plugins it runs, portmap's iptables rules and the host ends of
 *    the veths all stay in that namespace, never in the root one;
 *  - containers get a cgroup parent named ct-podman-… (found by the leftover
 *    check, removed by `dispose`).
 * There is no registry: the image is a busybox-static rootfs, `podman import`ed.
 * Podman names each container's netns itself (/run/netns/netns-UUID), and its
 * libcni keeps each attachment's result in /var/lib/cni/results (not
 * configurable in podman 4.3; a failed DEL leaves its entry): the harness
 * remembers both and `dispose` removes what is left of them.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { forgetPid, recordPid, run } from '../harness/resources.js';
import { buildBusyboxRootfs } from '../harness/dockerd.js';
import { inNamespace } from '../../common/sys/process.js';
import { removeCgroupRoot } from '../../provision/src/scope.js';

export const PODMAN = '/usr/bin/podman';
/** libcni's default cache (libcni.CacheDir), which podman 4.3 uses. */
export const LIBCNI_CACHE = '/var/lib/cni';
export const REFERENCE_PLUGINS = '/usr/lib/cni';

export interface PodmanOptions {
  /** Test directory everything lives under. */
  dir: string;
  /** The ct- namespace podman (and so every CNI plugin it runs) works in. */
  netns: string;
  /** Directories searched for CNI plugin binaries, in order. */
  pluginDirs: string[];
  /** Directory of the network config lists. */
  confDir: string;
  defaultNetwork: string;
}

export interface PodmanContainer {
  id: string;
  name: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  sandbox: string;
  conmonPid: number;
  pid: number;
}

export interface Podman {
  env: Record<string, string>;
  cgroupParent: string;
  /** Runs podman with the private configuration inside the namespace (stdin from `input`); rejects with its stderr. */
  podman(args: string[], o?: { timeoutMs?: number; input?: string }): Promise<string>;
  /** Imports a busybox image (once) and returns its name. */
  image(): Promise<string>;
  /** `podman run -d` under the test's cgroup parent; extra args go before the image. */
  run(name: string, args: string[], command: string[]): Promise<PodmanContainer>;
  inspect(name: string): Promise<PodmanContainer>;
  /** `podman rm -f`; forgets the container's processes once podman has stopped them. */
  rm(name: string): Promise<string>;
  dispose(): Promise<void>;
}

export function requirePodman(): void {
  if (!existsSync(PODMAN)) throw new Error('podman not found: install it with `apt-get install podman`');
  if (!existsSync(join(REFERENCE_PLUGINS, 'portmap'))) throw new Error('portmap not found: install it with `apt-get install containernetworking-plugins`');
}

const toml = (v: string | string[]): string => JSON.stringify(v);

export function startPodman(o: PodmanOptions): Podman {
  requirePodman();
  const root = join(o.dir, 'podman');
  const paths = { storage: join(root, 'storage'), run: join(root, 'run'), tmp: join(root, 'tmp'), home: join(root, 'home') };
  for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });
  const containersConf = join(root, 'containers.conf');
  const storageConf = join(root, 'storage.conf');
  writeFileSync(
    containersConf,
    [
      '[containers]',
      `default_ulimits = ${toml(['nofile=1024:1024', 'nproc=4096:4096'])}`,
      'log_driver = "k8s-file"',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ${toml(o.pluginDirs)}`,
      `network_config_dir = ${toml(o.confDir)}`,
      `default_network = ${toml(o.defaultNetwork)}`,
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = ${toml(join(paths.tmp, 'events.log'))}`,
      'lock_type = "file"',
      `tmp_dir = ${toml(paths.tmp)}`,
      `static_dir = ${toml(join(paths.storage, 'libpod'))}`,
      `volume_path = ${toml(join(paths.storage, 'volumes'))}`,
      'runtime = "runc"',
      '',
    ].join('\n'),
  );
  writeFileSync(storageConf, ['[storage]', 'driver = "vfs"', `graphroot = ${toml(paths.storage)}`, `runroot = ${toml(paths.run)}`, ''].join('\n'));

  const env = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: paths.home,
    CONTAINERS_CONF: containersConf,
    CONTAINERS_STORAGE_CONF: storageConf,
  };
  const cgroupParent = `ct-podman-${randomBytes(3).toString('hex')}`;
  const sandboxes = new Set<string>();
  const containerIds = new Set<string>();
  const cacheExisted = existsSync(join(LIBCNI_CACHE, 'results'));
  const libcniExisted = existsSync(LIBCNI_CACHE);
  const pids = new Map<string, number[]>();
  let image: string | undefined;

  const podman = (args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> => {
    const argv = inNamespace(o.netns, [PODMAN, ...args]);
    return new Promise((resolve, reject) => {
      const child = execFile(argv[0]!, argv.slice(1), { env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`podman ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      });
      // A command that reads no input may exit before taking it: the EPIPE that follows is not a failure.
      child.stdin?.on('error', () => {});
      child.stdin?.end(opts.input ?? '');
    });
  };

  const inspect = async (name: string): Promise<PodmanContainer> => {
    const [c] = JSON.parse(await podman(['container', 'inspect', name])) as Array<{
      Id: string;
      Name: string;
      State: { Pid: number; ConmonPid: number };
      NetworkSettings: { SandboxKey: string; IPAddress: string; IPPrefixLen: number; Gateway: string };
    }>;
    if (!c) throw new Error(`podman knows no container ${name}`);
    const n = c.NetworkSettings;
    return { id: c.Id, name: c.Name, ip: n.IPAddress, prefixLen: n.IPPrefixLen, gateway: n.Gateway, sandbox: n.SandboxKey, conmonPid: c.State.ConmonPid, pid: c.State.Pid };
  };

  const self: Podman = {
    env,
    cgroupParent,
    podman,
    async image() {
      if (image) return image;
      const rootfs = await buildBusyboxRootfs(root);
      const tar = join(root, 'busybox.tar');
      await run('tar', ['-C', rootfs, '-cf', tar, '.']);
      await podman(['import', '--change', 'CMD ["sh"]', '--change', 'ENV PATH=/bin', tar, 'localhost/corral-busybox:latest']);
      rmSync(tar, { force: true });
      rmSync(rootfs, { recursive: true, force: true });
      image = 'localhost/corral-busybox:latest';
      return image;
    },
    async run(name, args, command) {
      const img = await self.image();
      await podman(['run', '-d', '--name', name, '--cgroup-parent', `/${cgroupParent}`, ...args, img, ...command]);
      const c = await inspect(name);
      containerIds.add(c.id);
      if (c.sandbox) sandboxes.add(c.sandbox);
      const started = [c.conmonPid, c.pid].filter((p) => p > 0);
      for (const p of started) recordPid(`podman-${name}`, p);
      pids.set(name, started);
      return c;
    },
    inspect,
    async rm(name) {
      const out = await podman(['rm', '-f', '-t', '0', name]);
      for (const p of pids.get(name) ?? []) forgetPid(`podman-${name}`, p);
      pids.delete(name);
      return out;
    },
    async dispose() {
      const problems: string[] = [];
      try {
        await podman(['rm', '-a', '-f', '-t', '0']);
        await podman(['rmi', '-a', '-f']);
      } catch (err) {
        problems.push((err as Error).message);
      }
      for (const [name, list] of pids) for (const p of list) forgetPid(`podman-${name}`, p);
      // Podman deletes a container's netns on rm; one left by a failed run is removed here.
      for (const s of sandboxes) {
        if (!existsSync(s)) continue;
        problems.push(`podman left its netns ${s}`);
        await run('ip', ['netns', 'delete', s.split('/').pop()!]).catch(() => undefined);
      }
      await removeCgroupRoot(cgroupParent);
      removeLibcniCache(containerIds, { results: !cacheExisted, root: !libcniExisted });
      const mounts = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(`${root}/`));
      for (const m of mounts.reverse()) await run('umount', ['-l', m]).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
      if (problems.length) throw new Error(problems.join('; '));
    },
  };
  return self;
}

/** Removes libcni's cached results of these containers, and the cache dirs when empty and made by this run. */
function removeLibcniCache(ids: Set<string>, made: { results: boolean; root: boolean }): void {
  const results = join(LIBCNI_CACHE, 'results');
  let files: string[] = [];
  try {
    files = readdirSync(results);
  } catch {
    return;
  }
  // Entries are NETWORK-CONTAINERID-IFNAME.
  for (const f of files) if ([...ids].some((id) => f.includes(`-${id}-`))) rmSync(join(results, f), { force: true });
  try {
    if (made.results) rmdirSync(results);
    if (made.root) rmdirSync(LIBCNI_CACHE);
  } catch {
    // not empty: someone else's entries, left alone
  }
}
