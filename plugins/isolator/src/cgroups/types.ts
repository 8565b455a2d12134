/**
 * The cgroup contract both hierarchies implement (v1: one directory per
 * controller hierarchy; v2: one unified directory). Every container gets
 * `<mount>/<root>/<containerId>`; the task shim creates them and joins them
 * itself before exec, so no process ever runs unaccounted.
 */

export interface CgroupLimits {
  /** Relative CPU weight (v1 cpu.shares scale: 1024 = one CPU). */
  cpuShares: number;
  /** CFS bandwidth: `quotaUs` of CPU time per `periodUs`; undefined = no hard cap. */
  cpuQuota?: { quotaUs: number; periodUs: number };
  memoryBytes?: number;
  pids?: number;
}

export interface CgroupUsage {
  cpuSeconds: number;
  memBytes: number;
  memLimitBytes?: number;
  cpuThrottledSeconds?: number;
  pids?: number;
}

export interface CgroupPlacement {
  /** Directories whose cgroup.procs the task joins. */
  dirs: string[];
  /** File holding the "oom_kill N" counter (memory.oom_control or memory.events). */
  oomFile?: string;
}

/**
 * What creating a container's cgroups takes, as data: directories to make,
 * then control files to write, in order. The task shim applies it in the
 * supervisor (off the agent's thread, many in parallel); `create` applies it
 * here.
 */
export interface CgroupSetup {
  mkdirs: string[];
  writes: Array<[file: string, value: string]>;
  placement: CgroupPlacement;
}

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** The directories and control-file writes that make the container's cgroups with these limits. */
  setup(name: string, limits: CgroupLimits): CgroupSetup;
  /** setup() applied right here. */
  create(name: string, limits: CgroupLimits): CgroupPlacement;
  placement(name: string): CgroupPlacement;
  exists(name: string): boolean;
  usage(name: string): CgroupUsage | undefined;
  /** Processes in the container's cgroup. */
  procs(name: string): number[];
  /** SIGKILLs every process in the cgroup until it is empty (or the deadline passes). */
  killAll(name: string, timeoutMs?: number): Promise<void>;
  /** Removes the cgroup(s); missing ones are fine. Kills stragglers first. */
  remove(name: string): Promise<void>;
  /** Names of the containers that have a cgroup under the root (for the orphan sweep). */
  list(): string[];
}
