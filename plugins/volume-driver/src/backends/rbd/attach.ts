/**
 * How an rbd image becomes a block device on this host. Pluggable and chosen
 * at run time: kernel rbd (`rbd map`) where the kernel has it, otherwise
 * rbd-fuse (the image as a file) behind a loop device. Each method's detach
 * tears down in the only safe order — the caller has already unmounted the
 * filesystem; then the loop device, then rbd-fuse — because a loop device or
 * mount left on a dead rbd-fuse hangs in D state.
 */
import { existsSync } from 'node:fs';
import { CorralError } from '../../../../../contracts/errors.js';
import type { Attachment } from '../../backend.js';
import type { AttachMethod, CephClientSettings } from './method.js';
import { FuseLoopAttach } from './fuse-loop.js';
import { KernelRbdAttach } from './krbd.js';

export type { AttachMethod, CephClientSettings } from './method.js';

export type AttachPreference = 'auto' | 'krbd' | 'rbd-fuse';

export const kernelHasRbd = (): boolean => existsSync('/sys/bus/rbd');

export function chooseAttachMethod(pref: AttachPreference, ceph: CephClientSettings): AttachMethod {
  if (pref === 'krbd' || (pref === 'auto' && kernelHasRbd())) {
    if (!kernelHasRbd()) throw new CorralError('UNAVAILABLE', 'rbd.attach is krbd but this kernel has no rbd support (/sys/bus/rbd is missing); use auto or rbd-fuse');
    return new KernelRbdAttach(ceph);
  }
  return new FuseLoopAttach(ceph);
}

/** The method that made an attachment, for detaching it (after a restart the preference may differ). */
export function methodFor(state: Attachment, ceph: CephClientSettings, fallback: AttachMethod): AttachMethod {
  if (state.method === 'krbd') return fallback.name === 'krbd' ? fallback : new KernelRbdAttach(ceph);
  if (state.method === 'rbd-fuse') return fallback.name === 'rbd-fuse' ? fallback : new FuseLoopAttach(ceph);
  return fallback;
}
