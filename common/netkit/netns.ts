/**
 * Network namespaces from Node. A netlink socket belongs to the namespace of
 * the thread that created it, and Node has no setns(2), so corral ships a
 * tiny addon (native/cni-shim/corral_netns.node) with just that call. This
 * module switches the calling thread into a namespace for the duration of a
 * synchronous callback (long enough to create a socket there) and always
 * switches back: JavaScript is single-threaded, so nothing else runs on this
 * thread in between, and libuv's pool threads are not affected.
 *
 * Named namespaces (/run/netns/NAME) are made with `ip netns add`, which
 * also sets up the bind mount runtimes expect; that is a set-up step of labs
 * and tests, never on the CNI path.
 */
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { NATIVE_BUILD_DIR } from '../sys/paths.js';
import { ip } from '../sys/ip.js';

interface SetnsAddon {
  setns(fd: number, nstype: number): void;
  CLONE_NEWNET: number;
}

let addon: SetnsAddon | undefined;

function loadAddon(): SetnsAddon {
  if (addon) return addon;
  const file = join(NATIVE_BUILD_DIR(), 'corral_netns.node');
  if (!existsSync(file)) {
    throw new CorralError('UNAVAILABLE', `the setns addon ${file} is missing: build it with \`make -C native/cni-shim\``);
  }
  addon = createRequire(import.meta.url)(file) as SetnsAddon;
  return addon;
}

/**
 * Runs `fn` (synchronously) with this thread inside the network namespace at
 * `nsPath`, then returns to the namespace the thread was in. If `fn` throws,
 * the thread still returns first. If returning fails the process is no longer
 * where it believes it is, so it stops rather than wire the wrong namespace.
 */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  const ns = loadAddon();
  const home = openSync('/proc/thread-self/ns/net', 'r');
  let target: number;
  try {
    target = openSync(nsPath, 'r');
  } catch (err) {
    closeSync(home);
    throw new CorralError('NOT_FOUND', `network namespace ${nsPath} cannot be opened: ${errorMessage(err)}`);
  }
  try {
    ns.setns(target, ns.CLONE_NEWNET);
  } catch (err) {
    closeSync(home);
    closeSync(target);
    throw new CorralError('INVALID_ARGUMENT', `${nsPath} is not a network namespace: ${errorMessage(err)}`);
  }
  try {
    return fn();
  } finally {
    try {
      ns.setns(home, ns.CLONE_NEWNET);
    } catch (err) {
      process.stderr.write(`fatal: cannot return to the original network namespace: ${errorMessage(err)}\n`);
      process.abort();
    }
    closeSync(home);
    closeSync(target);
  }
}

/** Identity of a namespace file (the nsfs inode), to tell a namespace from a later one at the same path. */
export function netnsInode(nsPath: string): number | undefined {
  try {
    const st = statSync(nsPath);
    return st.ino;
  } catch {
    return undefined;
  }
}

/** Whether `nsPath` still names a live network namespace (optionally: the same one as before). */
export function netnsAlive(nsPath: string, inode?: number): boolean {
  const ino = netnsInode(nsPath);
  if (ino === undefined) return false;
  // A path under /run/netns that is no longer a bind mount is a plain empty file (ino of tmpfs, dev differs).
  if (!isNsfs(nsPath)) return false;
  return inode === undefined || inode === ino;
}

function isNsfs(nsPath: string): boolean {
  try {
    const own = statSync('/proc/self/ns/net');
    return statSync(nsPath).dev === own.dev;
  } catch {
    return false;
  }
}

export const namedNetnsPath = (name: string): string => `/run/netns/${name}`;

/** Creates the named namespace /run/netns/NAME (idempotent) with its loopback up. */
export async function createNamedNetns(name: string): Promise<string> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) throw new CorralError('INVALID_ARGUMENT', `bad namespace name "${name}"`);
  const path = namedNetnsPath(name);
  if (!netnsAlive(path)) {
    await ip(['netns', 'add', name]);
  }
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return path;
}

/** Deletes the named namespace if it exists (processes inside it are the caller's business). */
export async function deleteNamedNetns(name: string): Promise<void> {
  if (!existsSync(namedNetnsPath(name))) return;
  await ip(['netns', 'delete', name]).catch((err: unknown) => {
    if (existsSync(namedNetnsPath(name))) throw err;
  });
}

/** PIDs of processes living in a named namespace. */
export async function netnsPids(name: string): Promise<number[]> {
  const out = await ip(['netns', 'pids', name]).catch(() => '');
  return out
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}
