/**
 * Volumes isolator: host paths, sandbox paths and external volumes (through
 * the VolumeHook, one reference per container and volume), all bound into
 * the task's mount namespace by the shim — nothing is mounted on the host
 * for a task. Container paths are relative to the sandbox, or absolute:
 * inside a root filesystem anything goes; without one, an absolute path must
 * already exist on the host (the bind covers it in the task's view only, and
 * the containerizer never creates directories on the host's own tree).
 *
 * A persistent volume (`owned`) is handed to the task's user — its root
 * directory chowned — unless another container uses it at the same time, as
 * Mesos does: a shared volume keeps its owner, so one task cannot take it
 * from another. Plain host paths are never chowned. An external volume's
 * mount point is handed over the same way only when the containerizer is
 * configured so (`externalVolumeChown`, Mesos's --docker_volume_chown).
 */
import { chownSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { invalid, isCorralError } from '../../../../../contracts/errors.js';
import type { VolumeHook, VolumeMount } from '../../../../../contracts/containerizer.js';
import type { ContainerRecord } from '../checkpoint.js';
import type { Isolator, IsolatorContext, LaunchPlan } from './types.js';

export const volumeReference = (containerId: string, index: number): string => `corral-${containerId}-${index}`;

export class VolumesIsolator implements Isolator {
  readonly name = 'volumes';

  constructor(
    private readonly hook: VolumeHook | undefined,
    /** Whether another live container binds this path (a host volume or an external volume's mount point). */
    private readonly inUse: (path: string, containerId: string) => boolean = () => false,
    private readonly chownExternal = false,
  ) {}

  record(ctx: IsolatorContext): void {
    const hostPaths = ctx.config.volumes.flatMap((v) => (v.source.type === 'host' ? [v.source.path] : []));
    if (hostPaths.length) ctx.record.hostVolumes = hostPaths;
    ctx.config.volumes.forEach((v, i) => {
      if (v.source.type === 'external') ctx.record.volumes.push({ source: v.source, referenceId: volumeReference(ctx.config.containerId, i) });
    });
  }

  async prepare(ctx: IsolatorContext): Promise<void> {
    const { config, plan, record } = ctx;
    if (config.volumes.length && !plan.namespaces.includes('mnt')) throw invalid('volumes need the mount namespace, which this agent does not use');
    for (const [i, v] of config.volumes.entries()) {
      const source = await this.source(v, config.sandbox, plan.user, () => record.volumes.find((e) => e.referenceId === volumeReference(config.containerId, i))!);
      plan.binds.push({ readonly: v.mode === 'RO', source, target: this.target(v, ctx, source) });
      const handOver = (v.source.type === 'host' && v.source.owned) || (v.source.type === 'external' && this.chownExternal);
      if (handOver && plan.user && !this.inUse(source, config.containerId)) {
        const st = statSync(source);
        if (st.uid !== plan.user.uid || st.gid !== plan.user.gid) chownSync(source, plan.user.uid, plan.user.gid);
      }
    }
  }

  private async source(v: VolumeMount, sandbox: string, user: LaunchPlan['user'], slot: () => ContainerRecord['volumes'][number]): Promise<string> {
    const s = v.source;
    if (s.type === 'host') {
      if (!existsSync(s.path)) throw invalid(`volume host path ${s.path} does not exist`);
      return s.path;
    }
    if (s.type === 'sandbox') {
      const path = join(sandbox, s.path);
      // Created on demand inside the task's own sandbox: the task's, like the sandbox (as in Mesos).
      const first = mkdirSync(path, { recursive: true });
      if (first && user) for (let d = path; d.length >= first.length; d = dirname(d)) chownSync(d, user.uid, user.gid);
      return path;
    }
    if (!this.hook) throw invalid(`volume ${s.name} uses driver ${s.driver}, but this agent has no volume hook`);
    const entry = slot();
    entry.mountpoint = await this.hook.mount(s, entry.referenceId);
    return entry.mountpoint;
  }

  private target(v: VolumeMount, ctx: IsolatorContext, source: string): string {
    const { plan, config } = ctx;
    if (plan.rootfs) return isAbsolute(v.containerPath) ? v.containerPath : join(plan.sandboxTarget, v.containerPath);
    if (!isAbsolute(v.containerPath)) return join(config.sandbox, v.containerPath);
    if (!existsSync(v.containerPath))
      throw invalid(`volume containerPath ${v.containerPath} does not exist on this host; without an image, absolute container paths must exist (or use a path relative to the sandbox)`);
    if (statSync(v.containerPath).isDirectory() !== statSync(source).isDirectory()) throw invalid(`volume ${source} and its containerPath ${v.containerPath} are not both directories or both files`);
    return v.containerPath;
  }

  async cleanup(record: ContainerRecord): Promise<void> {
    if (!this.hook || record.volumes.length === 0) return;
    let first: unknown;
    for (const v of record.volumes) {
      // Every reference gets its unmount even if one fails; the first failure is reported so destroy can be retried.
      await this.hook.unmount(v.source, v.referenceId).catch((err: unknown) => {
        // A reference that was never mounted and that the hook refuses outright (an unknown driver) holds nothing.
        if (!(v.mountpoint === undefined && isCorralError(err, 'INVALID_ARGUMENT'))) first ??= err;
      });
    }
    if (first) throw first;
  }
}
