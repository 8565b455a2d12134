/**
 * The contract of an attach method (kernel rbd, rbd-fuse + loop) and the
 * Ceph client settings its helper processes need.
 */
import type { Attachment } from '../../backend.js';

export interface CephClientSettings {
  confFile: string;
  keyring?: string | undefined;
  clientName: string;
  /** Operation timeout of the data path: I/O fails after this instead of hanging forever. */
  dataPathTimeoutSeconds: number;
}

export interface AttachedDevice {
  device: string;
  state: Attachment;
}

export interface AttachMethod {
  readonly name: 'krbd' | 'rbd-fuse';
  /** `workDir` belongs to this volume on this host; `save` records progress for crash rollback. */
  attach(pool: string, image: string, workDir: string, save: (state: Attachment) => Promise<void>): Promise<AttachedDevice>;
  /** Idempotent; works from whatever part of the state was saved. */
  detach(state: Attachment): Promise<void>;
  /**
   * The attachment was fenced (another host owns the image): make every I/O
   * still pending on it fail now instead of waiting on a cluster that will
   * never answer, so the processes blocked on it can exit and it can be
   * unmounted. The caller then marks the state `cut: true` and calls
   * `detach`, which finishes the job without waiting on the dead path.
   */
  cut(state: Attachment): Promise<void>;
}

/** CEPH_ARGS for Ceph tools that take no flags for these (rbd-fuse). */
export function cephArgs(ceph: CephClientSettings): string {
  const t = String(ceph.dataPathTimeoutSeconds);
  return ['--name', ceph.clientName, ...(ceph.keyring ? ['--keyring', ceph.keyring] : []), '--rados-osd-op-timeout', t, '--rados-mon-op-timeout', t, '--client-mount-timeout', t].join(' ');
}
