/**
 * The host operations volumes need — loop devices, mkfs, mount, freeze,
 * online grow — each an execFile with an argument array and a timeout, so a
 * wedged device surfaces as an error instead of a hung request.
 */
import { readFileSync } from 'node:fs';
import { CorralError } from '../../../contracts/errors.js';
import type { FsType } from './types.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { exec } from '../../../common/sys/exec.js';
import { isMountpoint } from '../../../common/sys/mounts.js';

export async function loopAttach(file: string): Promise<string> {
  const out = await exec('losetup', ['--find', '--show', file], { timeoutMs: 15_000 });
  const dev = out.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new CorralError('INTERNAL', `losetup returned an unexpected device "${dev}"`);
  return dev;
}

/** Detach a loop device; gone already is fine. */
export async function loopDetach(dev: string, backingFile?: string): Promise<void> {
  if (backingFile && loopBackingFile(dev) !== backingFile) return;
  await exec('losetup', ['-d', dev], { timeoutMs: 15_000 }).catch((err: Error) => {
    if (!/No such device|No such device or address|not found/i.test(err.message)) throw err;
  });
}

/** The file behind a loop device, or undefined when it is not set up. */
function loopBackingFile(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${dev.replace('/dev/', '')}/loop/backing_file`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Make the kernel see a grown backing file. */
export const loopRefreshCapacity = (dev: string) => exec('losetup', ['-c', dev], { timeoutMs: 15_000 });

export async function mkfs(target: string, fsType: FsType): Promise<void> {
  if (fsType === 'xfs') {
    await exec('mkfs.xfs', ['-q', '-f', target], { timeoutMs: 120_000 });
    return;
  }
  // -m 0: the whole size is the user's (no root reserve); lazy init keeps first attach fast.
  await exec('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', target], { timeoutMs: 120_000 });
}

export async function mount(dev: string, target: string, fsType: FsType): Promise<void> {
  await exec('mount', ['-t', fsType, dev, target], { timeoutMs: 60_000 });
}

/** Unmount; a target that is not mounted is fine. */
export async function umount(target: string): Promise<void> {
  if (!isMountpoint(target)) return;
  await exec('umount', [target], { timeoutMs: 60_000 });
}

/**
 * Unmount a filesystem nothing can be saved from any more (its data path was
 * fenced and cut): processes killed while writing to it need a moment to
 * leave; whatever still holds it after `graceMs` (a container still running
 * on a fenced host) keeps a dead filesystem, and the mount leaves the tree
 * lazily so the host is clean.
 */
export async function umountDead(target: string, graceMs = 5000): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (isMountpoint(target)) {
    try {
      await exec('umount', [target], { timeoutMs: 10_000 });
      return;
    } catch (err) {
      if (!/busy/i.test((err as Error).message) || Date.now() > deadline) break;
      await sleep(100);
    }
  }
  if (isMountpoint(target)) await exec('umount', ['--lazy', target], { timeoutMs: 10_000 });
}

/** Grow a mounted filesystem to its device. */
export async function growFs(dev: string, mountpoint: string, fsType: FsType): Promise<void> {
  if (fsType === 'xfs') await exec('xfs_growfs', [mountpoint], { timeoutMs: 120_000 });
  else await exec('resize2fs', [dev], { timeoutMs: 120_000 });
}

/**
 * Try to grow a mounted filesystem; false when the kernel refuses (online
 * ext4 resize needs CAP_SYS_RESOURCE, which sandboxed hosts lack): the caller
 * then grows it offline at the next attach.
 */
export async function tryGrowOnline(dev: string, mountpoint: string, fsType: FsType): Promise<boolean> {
  try {
    await growFs(dev, mountpoint, fsType);
    return true;
  } catch (err) {
    if (/Permission denied|Operation not permitted/i.test((err as Error).message)) return false;
    throw err;
  }
}

/** Grow a filesystem before mounting it (ext4 offline; xfs can only grow mounted). */
export async function growBeforeMount(dev: string, fsType: FsType): Promise<boolean> {
  if (fsType !== 'ext4') return false;
  await growOfflineExt4(dev);
  return true;
}

/** Grow an unmounted ext4 image file (e2fsck first, as resize2fs demands). */
export async function growOfflineExt4(file: string): Promise<void> {
  await exec('e2fsck', ['-f', '-p', file], { timeoutMs: 120_000 }).catch((err: Error) => {
    // Exit code 1 means "errors corrected"; anything the message calls fatal is not.
    if (/exit code (4|8|16|32)/.test(err.message) || /e2fsck:.*(cannot|Bad magic)/i.test(err.message)) throw err;
  });
  await exec('resize2fs', [file], { timeoutMs: 120_000 });
}

const freeze = (mountpoint: string) => exec('fsfreeze', ['-f', mountpoint], { timeoutMs: 30_000 });
const thaw = (mountpoint: string) => exec('fsfreeze', ['-u', mountpoint], { timeoutMs: 30_000 });

/** Run `fn` with the filesystem frozen (consistent snapshot); always thaws. */
export async function withFrozen<T>(mountpoint: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (!mountpoint || !isMountpoint(mountpoint)) return fn();
  await freeze(mountpoint);
  try {
    return await fn();
  } finally {
    await thaw(mountpoint);
  }
}
