/**
 * The isolator lifecycle of the native containerizer, one module per
 * concern (filesystem, cgroups, namespaces, volumes, network):
 *  1. `record` names, in the container's checkpoint, every resource the
 *     isolator is about to take — before anything is taken, so a crash at
 *     any point leaves a record that cleanup can work from;
 *  2. `prepare` takes the resources and adds to the launch plan the task
 *     shim executes (cgroup dirs to join, namespaces, binds, the netns file);
 *  3. `cleanup` gives everything back from the record alone (it also runs
 *     after an agent restart, and for orphans); it is idempotent.
 * Mesos's separate "isolate(pid)" step does not exist here: the shim puts
 * the task into its cgroups and namespaces itself, before exec, so the task
 * never runs unconfined even for a moment.
 */
import type { ContainerConfig } from '../../../../../contracts/containerizer.js';
import type { ContainerRecord } from '../checkpoint.js';

export type Namespace = 'mnt' | 'pid' | 'uts' | 'ipc';

export interface BindMount {
  readonly: boolean;
  /** Host path. */
  source: string;
  /** Path in the task's view: absolute inside a root filesystem, else an absolute host path. */
  target: string;
}

export interface LaunchPlan {
  /** Cgroups the supervisor creates (directories, then control-file writes) and the task joins. */
  cgroupMkdirs: string[];
  cgroupWrites: Array<[file: string, value: string]>;
  cgroupDirs: string[];
  oomFile?: string;
  namespaces: Namespace[];
  hostname?: string;
  netns?: string;
  /** Read-only image root (overlay lower dir) and the container's overlay state directory. */
  rootfs?: string;
  rootfsState?: string;
  /** Where the sandbox appears inside a root filesystem. */
  sandboxTarget: string;
  binds: BindMount[];
  /** Without an image: host paths the task must neither see nor pin (canonical paths). */
  masks: string[];
  cwd: string;
  env: Record<string, string>;
  user?: { uid: number; gid: number; groups: number[] };
  /** Capability sets as the launcher's hex masks. */
  capabilities?: { effective: string; bounding: string };
  /** No seccomp filter (the task asked and the master allowed it); absent: the launcher's default profile. */
  seccomp?: 'unconfined';
  ipAddresses: string[];
}

export interface IsolatorContext {
  readonly config: ContainerConfig;
  readonly record: ContainerRecord;
  readonly plan: LaunchPlan;
}

export interface Isolator {
  readonly name: string;
  record(ctx: IsolatorContext): void;
  prepare(ctx: IsolatorContext): Promise<void>;
  cleanup(record: ContainerRecord): Promise<void>;
}
