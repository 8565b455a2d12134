/**
 * cgroup v1: one directory per controller hierarchy (cpu, cpuacct, memory,
 * pids; co-mounted controllers share one). OOM kills are counted in
 * memory.oom_control's `oom_kill` line; swap is capped with the memory limit
 * when swap accounting exists, so the limit is a real one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../../contracts/errors.js';
import type { CgroupDriver, CgroupLimits, CgroupPlacement, CgroupSetup, CgroupUsage } from './types.js';
import { applySetup, childDirs, killMembers, readKeyed, readNumber, readProcs, removeDir } from './fs.js';
import { CFS_PERIOD_US } from './limits.js';

export const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids'] as const;
type Controller = (typeof V1_CONTROLLERS)[number];

/** memory.limit_in_bytes reads back as (2^63 - 1) rounded down to a page when unlimited. */
const UNLIMITED = 2 ** 62;

export class CgroupV1Driver implements CgroupDriver {
  readonly version = 1 as const;
  private memsw: boolean | undefined;

  constructor(
    private readonly mounts: Map<string, string>,
    private readonly root: string,
  ) {}

  private dir(controller: Controller, name: string): string | undefined {
    const mount = this.mounts.get(controller);
    return mount === undefined ? undefined : join(mount, this.root, name);
  }

  /** One directory per distinct hierarchy, in a fixed order. */
  private dirs(name: string): string[] {
    const out: string[] = [];
    for (const c of V1_CONTROLLERS) {
      const d = this.dir(c, name);
      if (d !== undefined && !out.includes(d)) out.push(d);
    }
    return out;
  }

  setup(name: string, limits: CgroupLimits): CgroupSetup {
    if (limits.pids !== undefined && !this.mounts.has('pids')) {
      throw new CorralError('FAILED_PRECONDITION', 'a pids limit was asked for, but this host has no pids cgroup hierarchy');
    }
    const writes: CgroupSetup['writes'] = [];
    const cpu = this.dir('cpu', name)!;
    writes.push([join(cpu, 'cpu.shares'), String(limits.cpuShares)]);
    if (limits.cpuQuota) {
      // A new cgroup starts at the kernel's default period (100 ms): write it only when it differs,
      // since every cgroupfs write takes the kernel's global cgroup lock.
      if (limits.cpuQuota.periodUs !== CFS_PERIOD_US) writes.push([join(cpu, 'cpu.cfs_period_us'), String(limits.cpuQuota.periodUs)]);
      writes.push([join(cpu, 'cpu.cfs_quota_us'), String(limits.cpuQuota.quotaUs)]);
    }
    const mem = this.dir('memory', name)!;
    if (limits.memoryBytes !== undefined) {
      writes.push([join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes)]);
      // With swap accounting, cap memory+swap at the same figure (after the memory limit, which it may not undercut).
      if (this.swapAccounting()) writes.push([join(mem, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes)]);
    }
    if (limits.pids !== undefined) writes.push([join(this.dir('pids', name)!, 'pids.max'), String(limits.pids)]);
    return { mkdirs: this.dirs(name), writes, placement: this.placement(name) };
  }

  private swapAccounting(): boolean {
    this.memsw ??= existsSync(join(this.mounts.get('memory')!, 'memory.memsw.limit_in_bytes'));
    return this.memsw;
  }

  create(name: string, limits: CgroupLimits): CgroupPlacement {
    return applySetup(this.setup(name, limits));
  }

  placement(name: string): CgroupPlacement {
    return { dirs: this.dirs(name), oomFile: join(this.dir('memory', name)!, 'memory.oom_control') };
  }

  exists(name: string): boolean {
    return this.dirs(name).some((d) => existsSync(d));
  }

  usage(name: string): CgroupUsage | undefined {
    const mem = this.dir('memory', name)!;
    if (!existsSync(mem)) return undefined;
    const acct = this.dir('cpuacct', name);
    const cpu = this.dir('cpu', name)!;
    const pids = this.dir('pids', name);
    const limit = readNumber(mem, 'memory.limit_in_bytes');
    const throttledNs = readKeyed(cpu, 'cpu.stat', 'throttled_time');
    const usage: CgroupUsage = {
      cpuSeconds: (acct ? (readNumber(acct, 'cpuacct.usage') ?? 0) : 0) / 1e9,
      memBytes: readNumber(mem, 'memory.usage_in_bytes') ?? 0,
    };
    if (limit !== undefined && limit < UNLIMITED) usage.memLimitBytes = limit;
    if (throttledNs !== undefined) usage.cpuThrottledSeconds = throttledNs / 1e9;
    const current = pids ? readNumber(pids, 'pids.current') : undefined;
    if (current !== undefined) usage.pids = current;
    return usage;
  }

  procs(name: string): number[] {
    return readProcs(this.dir('memory', name)!);
  }

  async killAll(name: string, timeoutMs = 5000): Promise<void> {
    // Every member joined every hierarchy, so one listing covers them all.
    await killMembers(this.dir('memory', name)!, timeoutMs);
  }

  async remove(name: string): Promise<void> {
    await this.killAll(name);
    for (const d of this.dirs(name)) await removeDir(d);
  }

  list(): string[] {
    const names = new Set<string>();
    for (const mount of new Set(this.mounts.values())) for (const n of childDirs(join(mount, this.root))) names.add(n);
    return [...names];
  }
}
