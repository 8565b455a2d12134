/**
 * Which of this host's mount records nothing should hold any more (the
 * reconciler in reconcile.ts releases them, at start-up and after):
 *  - "attaching": the plugin died mid-attach; roll back whatever was done.
 *  - "detaching": a detach failed or was cut short (Ceph down…); finish it.
 *  - "mounted" but from an earlier boot, or its mount is gone: stale; release it.
 *  - "mounted", but another host has since taken the volume over (this host
 *    was fenced): the mount is dead weight; tear it down as soon as nothing
 *    holds it open (stale mounts after preemption are a classic driver bug).
 * Everything else — volumes still mounted for running containers — is left
 * exactly as it is: a plugin restart must not disturb them.
 */
import type { Logger } from '../../../common/log.js';
import type { Backend } from './backend.js';
import { currentBootId, type MountRecord } from './state.js';
import { isMountpoint } from '../../../common/sys/mounts.js';

/** A mount that needs a kernel mount to exist (a sized local volume or any rbd volume). */
const needsKernelMount = (m: MountRecord): boolean => m.volume.backend === 'rbd' || m.volume.sizeBytes !== undefined;

export function isStale(m: MountRecord, bootId = currentBootId()): boolean {
  if (m.phase !== 'mounted') return true;
  if (m.bootId !== bootId) return true;
  return needsKernelMount(m) && !isMountpoint(m.mountpoint);
}

/** True only when the backend positively says another host holds the volume now; unreachable means "don't know". */
export async function lostToAnotherHost(log: Logger, backend: Backend, m: MountRecord): Promise<boolean> {
  try {
    if (!backend.stillHolds || (await backend.stillHolds(m.volume, m.attachment))) return false;
  } catch {
    return false;
  }
  log.error({ volume: m.name, refs: m.refs }, 'another host took this volume over (this host was fenced): tearing down the stale mount');
  return true;
}
