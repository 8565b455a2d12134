/**
 * Start-up (and periodic) recovery of this host's mount records:
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
import type { KeyedMutex } from '../../../common/mutex.js';
import { currentBootId, type MountRecord, type MountState } from './state.js';
import { isMountpoint } from './system.js';
import type { BackendName } from './types.js';

export interface RecoveryDeps {
  mounts: MountState;
  backend(name: BackendName): Backend;
  mutex: KeyedMutex;
  log: Logger;
}

/** A mount that needs a kernel mount to exist (a sized local volume or any rbd volume). */
const needsKernelMount = (m: MountRecord): boolean => m.volume.backend === 'rbd' || m.volume.sizeBytes !== undefined;

export function isStale(m: MountRecord, bootId = currentBootId()): boolean {
  if (m.phase !== 'mounted') return true;
  if (m.bootId !== bootId) return true;
  return needsKernelMount(m) && !isMountpoint(m.mountpoint);
}

export async function recoverMounts(deps: RecoveryDeps): Promise<void> {
  const bootId = currentBootId();
  for (const first of await deps.mounts.all()) {
    await deps.mutex.run(first.name, async () => {
      const m = await deps.mounts.get(first.name);
      if (!m) return;
      if (!isStale(m, bootId) && !(await lostToAnotherHost(deps, m))) return;
      try {
        await deps.backend(m.backend).detach(m.volume, m.attachment);
        await deps.mounts.delete(m.name);
        deps.log.info({ volume: m.name, phase: m.phase }, 'released a stale or unfinished attachment');
      } catch (err) {
        deps.log.warn({ err, volume: m.name, phase: m.phase }, 'could not release an unfinished attachment yet; will retry');
      }
    });
  }
}

/** True only when the backend positively says another host holds the volume now; unreachable means "don't know". */
async function lostToAnotherHost(deps: RecoveryDeps, m: MountRecord): Promise<boolean> {
  try {
    const backend = deps.backend(m.backend);
    if (!backend.stillHolds || (await backend.stillHolds(m.volume, m.attachment))) return false;
  } catch {
    return false;
  }
  deps.log.error({ volume: m.name, refs: m.refs }, 'another host took this volume over (this host was fenced): tearing down the stale mount');
  return true;
}
