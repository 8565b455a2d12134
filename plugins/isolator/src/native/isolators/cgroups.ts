/**
 * cgroups isolator: cpu shares and (optionally) a CFS quota, a memory limit
 * whose OOM kills the supervisor reads back from the cgroup, and a pids
 * limit. v1 or v2 is the driver's business (cgroups/detect.ts); the driver
 * says which directories and files make the cgroups, the supervisor makes
 * them.
 */
import { cgroupLimits } from '../../cgroups/limits.js';
import type { CgroupDriver } from '../../cgroups/types.js';
import type { ContainerRecord } from '../checkpoint.js';
import type { Isolator, IsolatorContext } from './types.js';

export class CgroupsIsolator implements Isolator {
  readonly name = 'cgroups';

  constructor(
    private readonly driver: CgroupDriver,
    private readonly cfsQuota: boolean,
  ) {}

  record(ctx: IsolatorContext): void {
    ctx.record.cgroups = true;
  }

  async prepare(ctx: IsolatorContext): Promise<void> {
    const { resources, limits } = ctx.config;
    // Created by the task's supervisor, not here: cgroupfs mkdirs and writes are slow kernel work that
    // would serialise every launch on the agent's thread.
    const setup = this.driver.setup(ctx.config.containerId, cgroupLimits({ cpus: resources.cpus, memMb: resources.memMb, pids: limits.pids, cfsQuota: this.cfsQuota }));
    ctx.plan.cgroupMkdirs = setup.mkdirs;
    ctx.plan.cgroupWrites = setup.writes;
    ctx.plan.cgroupDirs = setup.placement.dirs;
    if (setup.placement.oomFile) ctx.plan.oomFile = setup.placement.oomFile;
  }

  async cleanup(record: ContainerRecord): Promise<void> {
    // record.cgroups is cleared when the supervisor reported them removed (native/task-shim/supervisor.c).
    if (record.cgroups) await this.driver.remove(record.containerId);
  }
}
