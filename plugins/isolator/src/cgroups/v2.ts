/**
 * cgroup v2: one unified directory per container. The root's ancestors must
 * delegate the controllers (cgroup.subtree_control), done once. The weight
 * comes from v1-style shares (the runc conversion), the quota is cpu.max,
 * OOM kills are memory.events' `oom_kill`, and memory.oom.group makes an OOM
 * take the container down as one (its namespace init is exempt and reports).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupDriver, CgroupLimits, CgroupPlacement, CgroupSetup, CgroupUsage } from './types.js';
import { applySetup, childDirs, ensureDir, killMembers, readControl, readKeyed, readNumber, readProcs, removeDir, writeControl } from './fs.js';
import { sharesToWeight } from './limits.js';
import { setTimeout as sleep } from 'node:timers/promises';

const WANTED = ['cpu', 'memory', 'pids'];

export class CgroupV2Driver implements CgroupDriver {
  readonly version = 2 as const;
  private delegated = false;

  constructor(
    private readonly mount: string,
    private readonly root: string,
  ) {}

  private dir(name: string): string {
    return join(this.mount, this.root, name);
  }

  /** Enables cpu, memory and pids for the root's children, level by level from the mount down. */
  private delegate(): void {
    if (this.delegated) return;
    const available = (readControl(this.mount, 'cgroup.controllers') ?? '').trim().split(/\s+/);
    const enable = WANTED.filter((c) => available.includes(c))
      .map((c) => `+${c}`)
      .join(' ');
    let level = this.mount;
    for (const part of ['', ...this.root.split('/').filter(Boolean)]) {
      level = part ? join(level, part) : level;
      ensureDir(level);
      const have = (readControl(level, 'cgroup.subtree_control') ?? '').trim().split(/\s+/);
      if (enable && !WANTED.every((c) => !available.includes(c) || have.includes(c))) writeControl(level, 'cgroup.subtree_control', enable);
    }
    this.delegated = true;
  }

  setup(name: string, limits: CgroupLimits): CgroupSetup {
    this.delegate();
    const d = this.dir(name);
    const rootDir = join(this.mount, this.root);
    const writes: CgroupSetup['writes'] = [[join(d, 'cpu.weight'), String(sharesToWeight(limits.cpuShares))]];
    if (limits.cpuQuota) writes.push([join(d, 'cpu.max'), `${limits.cpuQuota.quotaUs} ${limits.cpuQuota.periodUs}`]);
    if (limits.memoryBytes !== undefined) {
      writes.push([join(d, 'memory.max'), String(limits.memoryBytes)]);
      // Non-root cgroups all have the same files: the root's own tell what the children will have.
      if (existsSync(join(rootDir, 'memory.swap.max'))) writes.push([join(d, 'memory.swap.max'), '0']);
      if (existsSync(join(rootDir, 'memory.oom.group'))) writes.push([join(d, 'memory.oom.group'), '1']);
    }
    if (limits.pids !== undefined) writes.push([join(d, 'pids.max'), String(limits.pids)]);
    return { mkdirs: [d], writes, placement: this.placement(name) };
  }

  create(name: string, limits: CgroupLimits): CgroupPlacement {
    return applySetup(this.setup(name, limits));
  }

  placement(name: string): CgroupPlacement {
    return { dirs: [this.dir(name)], oomFile: join(this.dir(name), 'memory.events') };
  }

  exists(name: string): boolean {
    return existsSync(this.dir(name));
  }

  usage(name: string): CgroupUsage | undefined {
    const d = this.dir(name);
    if (!existsSync(d)) return undefined;
    const usage: CgroupUsage = {
      cpuSeconds: (readKeyed(d, 'cpu.stat', 'usage_usec') ?? 0) / 1e6,
      memBytes: readNumber(d, 'memory.current') ?? 0,
    };
    const limit = readNumber(d, 'memory.max');
    if (limit !== undefined) usage.memLimitBytes = limit;
    const throttled = readKeyed(d, 'cpu.stat', 'throttled_usec');
    if (throttled !== undefined) usage.cpuThrottledSeconds = throttled / 1e6;
    const pids = readNumber(d, 'pids.current');
    if (pids !== undefined) usage.pids = pids;
    return usage;
  }

  procs(name: string): number[] {
    return readProcs(this.dir(name));
  }

  async killAll(name: string, timeoutMs = 5000): Promise<void> {
    const d = this.dir(name);
    if (!existsSync(join(d, 'cgroup.kill'))) return killMembers(d, timeoutMs);
    // cgroup.kill (5.14+) kills the whole subtree atomically, forks included.
    if (readProcs(d).length === 0) return;
    writeControl(d, 'cgroup.kill', 1);
    const deadline = Date.now() + timeoutMs;
    while (readProcs(d).length > 0 && Date.now() < deadline) await sleep(5);
    await killMembers(d, Math.max(0, deadline - Date.now()));
  }

  async remove(name: string): Promise<void> {
    if (!this.exists(name)) return;
    await this.killAll(name);
    await removeDir(this.dir(name));
  }

  list(): string[] {
    return childDirs(join(this.mount, this.root));
  }
}
