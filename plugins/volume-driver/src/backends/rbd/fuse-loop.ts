/**
 * Attach through rbd-fuse + loop, for kernels without rbd (like this one):
 * one rbd-fuse process per volume (-r: only that image, so fencing its client
 * fences exactly one volume), started in its own session so it outlives a
 * plugin restart, then a loop device over the image file.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../../../contracts/errors.js';
import type { Attachment } from '../../backend.js';
import { loopAttach, loopDetach, umountDead } from '../../system.js';
import { isMountpoint, umountFuse } from '../../../../../common/sys/mounts.js';
import { pollUntil, processAlive, processCmdline, waitGone } from '../../../../../common/sys/process.js';
import { cephArgs, type AttachedDevice, type AttachMethod, type CephClientSettings } from './method.js';

const RBD_FUSE = process.env.CORRAL_RBD_FUSE_BIN ?? 'rbd-fuse';

export class FuseLoopAttach implements AttachMethod {
  readonly name = 'rbd-fuse' as const;

  constructor(private readonly ceph: CephClientSettings) {}

  async attach(pool: string, image: string, workDir: string, save: (state: Attachment) => Promise<void>): Promise<AttachedDevice> {
    const fuseDir = join(workDir, 'fuse');
    const file = join(fuseDir, image);
    mkdirSync(fuseDir, { recursive: true });
    const state: Attachment = { method: this.name, fuseDir, file };
    if (isMountpoint(fuseDir)) await this.detach(state);
    const logFile = join(workDir, 'rbd-fuse.log');
    const log = openSync(logFile, 'a');
    let pid: number | undefined;
    try {
      const child = spawn(RBD_FUSE, ['-f', '-c', this.ceph.confFile, '-p', pool, '-r', image, fuseDir], {
        detached: true,
        stdio: ['ignore', log, log],
        env: { ...process.env, CEPH_ARGS: cephArgs(this.ceph) },
      });
      child.on('error', () => undefined);
      child.unref();
      pid = child.pid;
    } finally {
      closeSync(log);
    }
    if (!pid) throw new CorralError('UNAVAILABLE', `cannot start ${RBD_FUSE}: is the rbd-fuse package installed?`);
    state.fusePid = pid;
    await save({ ...state });
    const up = await pollUntil(() => !processAlive(pid) || (isMountpoint(fuseDir) && existsSync(file)), this.ceph.dataPathTimeoutSeconds * 1000);
    if (!up || !processAlive(pid)) {
      await this.detach(state).catch(() => undefined);
      throw new CorralError('UNAVAILABLE', `rbd-fuse could not open ${pool}/${image}: ${tail(logFile)}`);
    }
    const loop = await loopAttach(file).catch(async (err) => {
      await this.detach(state).catch(() => undefined);
      throw err;
    });
    state.loop = loop;
    await save({ ...state });
    return { device: loop, state };
  }

  async detach(state: Attachment): Promise<void> {
    const fuseDir = typeof state.fuseDir === 'string' ? state.fuseDir : undefined;
    const file = typeof state.file === 'string' ? state.file : undefined;
    if (typeof state.loop === 'string') await loopDetach(state.loop, file);
    const pid = ourFusePid(state);
    const kill = async () => {
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    };
    if (fuseDir && state.cut === true) {
      // The connection is aborted; a lazily unmounted filesystem may still hold the loop file open.
      await umountDead(fuseDir, 1000);
    } else if (fuseDir) {
      // The loop device flushed everything on detach; an rbd-fuse that cannot finish the unmount
      // (fenced, or Ceph gone) has nothing left to lose and is killed so the unmount completes.
      await umountFuse(fuseDir, 5000, kill);
    }
    if (pid !== undefined) await waitGone(pid, 10_000);
  }

  /** Killing rbd-fuse aborts its FUSE connection: every pending request (and the loop I/O above it) fails at once. */
  async cut(state: Attachment): Promise<void> {
    const pid = ourFusePid(state);
    if (pid !== undefined) {
      process.kill(pid, 'SIGKILL');
      await waitGone(pid, 10_000);
    }
  }
}

/** Our rbd-fuse, if it still runs: after a reboot the recorded pid may belong to someone else. */
function ourFusePid(state: Attachment): number | undefined {
  const pid = typeof state.fusePid === 'number' ? state.fusePid : undefined;
  const fuseDir = typeof state.fuseDir === 'string' ? state.fuseDir : undefined;
  return pid !== undefined && fuseDir !== undefined && processAlive(pid) && processCmdline(pid).includes(fuseDir) ? pid : undefined;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join('; ') || 'no output';
  } catch {
    return 'no output';
  }
}
