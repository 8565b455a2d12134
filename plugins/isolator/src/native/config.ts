/**
 * Settings of the native (MESOS) containerizer, as a zod schema the agent
 * embeds in its own configuration. Hooks and the logger are passed as
 * dependencies, not configuration.
 */
import { join } from 'node:path';
import { z } from '../../../../common/validate.js';
import { repoRoot } from '../../../../common/sys/paths.js';

const absPath = z
  .string()
  .startsWith('/', 'must be an absolute path')
  .refine((p) => !/[\0\t\n]/.test(p) && p !== '/', 'must be a path other than "/" without NUL, tab or newline');

export const mesosContainerizerConfigSchema = z.object({
  /** Checkpoints and exit notices; must outlive the agent process, not the boot (tmpfs is right). */
  runDir: absPath.default('/run/corral/containerizer'),
  /**
   * Network namespace files: `<netnsDir>/<netnsPrefix><containerId>`. /run/netns is a shared mount
   * (iproute2's convention), so the files are visible in every mount namespace — a CNI daemon
   * started with `ip netns exec` included — and `ip netns exec` works on them.
   */
  netnsDir: absPath.default('/run/netns'),
  netnsPrefix: z
    .string()
    .regex(/^[A-Za-z0-9_.-]*$/)
    .max(40)
    .default('corral-'),
  /** Extracted images and overlay upper directories (disk). */
  workDir: absPath.default('/var/lib/corral/containerizer'),
  /** Parent of every container cgroup, in each hierarchy. */
  cgroupRoot: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/)
    .default('corral'),
  cgroupVersion: z.enum(['auto', 'v1', 'v2']).default('auto'),
  /** Hard-cap CPU with a CFS quota of `cpus` (besides the relative shares). */
  cfsQuota: z.boolean().default(true),
  namespaces: z.array(z.enum(['mnt', 'pid', 'uts', 'ipc'])).default(['mnt', 'pid', 'uts', 'ipc']),
  /**
   * Host paths a task without an image must neither see nor pin: covered by an empty read-only
   * directory (or /dev/null for a file) in its view, every mount under them detached. Added to
   * BUILTIN_MASKED_PATHS, the run and work directories and every external volume in use. Put the
   * agent's work directory, credential files and TLS keys here when they are elsewhere.
   */
  maskedPaths: z.array(absPath).max(200).default(['/var/lib/corral/volumes']),
  /**
   * Hand an external volume's mount point (the directory only, not what is in it) to the task's
   * user when no other container of this containerizer uses the volume, as Mesos's
   * --docker_volume_chown does. Off by default, as there: a volume that tasks of different users
   * share would change hands with each launch.
   */
  externalVolumeChown: z.boolean().default(false),
  /** Who a task runs as when its launch names no user (the agent always names one). */
  defaultUser: z
    .string()
    .regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+)?$/, 'a user name or uid[:gid]')
    .max(64)
    .default('nobody'),
  /** Where the sandbox appears inside a root filesystem image. */
  sandboxMountPoint: absPath.default('/mnt/mesos/sandbox'),
  /** The corral-task-shim binary (default: native/task-shim/build/corral-task-shim, or $CORRAL_TASK_SHIM). */
  shimPath: absPath.optional(),
  /** How long destroy/kill wait for a SIGKILLed container to be reported gone. */
  killTimeoutMs: z.number().int().positive().default(10_000),
});

/**
 * Always masked: corral's own state and configuration (credentials, keys), and the container
 * runtimes' sockets and state, any of which would hand a task the node.
 */
export const BUILTIN_MASKED_PATHS = ['/etc/corral', '/var/lib/corral', '/run/corral', '/run/netns', '/run/docker.sock', '/run/docker', '/run/containerd', '/var/lib/docker', '/var/lib/containerd'];

export type MesosContainerizerConfig = z.output<typeof mesosContainerizerConfigSchema>;
export type MesosContainerizerConfigInput = z.input<typeof mesosContainerizerConfigSchema>;

export function defaultShimPath(): string {
  return process.env.CORRAL_TASK_SHIM ?? join(repoRoot(), 'native', 'task-shim', 'build', 'corral-task-shim');
}
