/**
 * A ContainerConfig as Docker's create options (pure): resources through the
 * same mapping as the native cgroups (cpu shares, CFS quota, memory without
 * swap, pids), the sandbox bound at the sandbox mount point as the working
 * directory, volumes as Docker mounts — external ones by driver name
 * (VolumeOptions.DriverConfig, so dockerd asks that volume plugin) — and
 * labels by which a restarted agent finds its containers.
 *
 * Privileges: the task's user when its command names one (else the image's
 * USER), `no-new-privileges`, Docker's default seccomp profile (left in
 * place unless the task runs unconfined, which the master's run_tasks ACL
 * must allow), and every capability dropped but the task's set — by default the
 * same reduced root set as native tasks (common/capabilities.ts), which is
 * Docker's default without NET_RAW, MKNOD, SYS_CHROOT and SETFCAP. Docker
 * has a single set: the effective set when the launch names one, else its
 * bounding set.
 */
import { isAbsolute, join } from 'node:path';
import type Dockerode from 'dockerode';
import type { ContainerConfig } from '../../../../contracts/containerizer.js';
import { cgroupLimits } from '../cgroups/limits.js';
import { commandArgv } from '../task-config.js';
import { taskCapabilities } from '../common/capabilities.js';

export const LABEL_INSTANCE = 'corral.containerizer';
export const LABEL_CONTAINER = 'corral.container-id';
const LABEL_FRAMEWORK = 'corral.framework-id';
const LABEL_TASK = 'corral.task-id';

export interface DockerSpecOptions {
  /** Value of the corral.containerizer label: scopes recovery to this agent's containers. */
  instance: string;
  sandboxMountPoint: string;
  cfsQuota: boolean;
  cgroupParent?: string | undefined;
}

const dockerName = (containerId: string): string => `corral-${containerId}`;

function containerTarget(containerPath: string, sandboxMountPoint: string): string {
  return isAbsolute(containerPath) ? containerPath : join(sandboxMountPoint, containerPath);
}

/** Docker's capability list for the task: as a root task's effective set (a non-root user gets no effective capability from Docker). */
function dockerCapabilities(c: ContainerConfig): string[] {
  const sets = taskCapabilities(0, c.security);
  const list = c.security?.effectiveCapabilities ? sets.effective : sets.bounding;
  return list.map((n) => `CAP_${n}`);
}

/** Whether a Docker user spec ("root", "0", "0:0", "root:wheel") is uid 0 by itself. */
export const isRootUserSpec = (user: string | undefined): boolean => user === undefined || user === '' || /^(root|0)(:.*)?$/.test(user);

export function createOptions(c: ContainerConfig, o: DockerSpecOptions): Dockerode.ContainerCreateOptions {
  const limits = cgroupLimits({ cpus: c.resources.cpus, memMb: c.resources.memMb, pids: c.limits.pids, cfsQuota: o.cfsQuota });
  const mounts: Dockerode.MountSettings[] = [{ Type: 'bind', Source: c.sandbox, Target: o.sandboxMountPoint, ReadOnly: false }];
  for (const v of c.volumes) {
    const Target = containerTarget(v.containerPath, o.sandboxMountPoint);
    const ReadOnly = v.mode === 'RO';
    const s = v.source;
    if (s.type === 'host') mounts.push({ Type: 'bind', Source: s.path, Target, ReadOnly });
    else if (s.type === 'sandbox') mounts.push({ Type: 'bind', Source: join(c.sandbox, s.path), Target, ReadOnly });
    else mounts.push({ Type: 'volume', Source: s.name, Target, ReadOnly, VolumeOptions: { NoCopy: false, Labels: {}, DriverConfig: { Name: s.driver, Options: s.options } } });
  }
  const host: Dockerode.HostConfig = {
    Mounts: mounts,
    NetworkMode: c.network.mode === 'host' ? 'host' : 'none',
    CpuShares: limits.cpuShares,
    ...(limits.cpuQuota ? { CpuPeriod: limits.cpuQuota.periodUs, CpuQuota: limits.cpuQuota.quotaUs } : {}),
    ...(limits.memoryBytes !== undefined ? { Memory: limits.memoryBytes, MemorySwap: limits.memoryBytes } : {}),
    ...(limits.pids !== undefined ? { PidsLimit: limits.pids } : {}),
    ...(o.cgroupParent ? { CgroupParent: o.cgroupParent } : {}),
    // Docker's default seccomp profile unless the task runs unconfined (allowed by the master's run_tasks ACL).
    SecurityOpt: c.security?.seccomp === 'unconfined' ? ['no-new-privileges', 'seccomp=unconfined'] : ['no-new-privileges'],
    CapDrop: ['ALL'],
    CapAdd: dockerCapabilities(c),
  };
  const env = { ...(c.command?.environment ?? {}), MESOS_SANDBOX: o.sandboxMountPoint, CORRAL_SANDBOX: o.sandboxMountPoint };
  const opts: Dockerode.ContainerCreateOptions = {
    name: dockerName(c.containerId),
    Image: c.image?.kind === 'docker' ? c.image.name : '',
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: o.sandboxMountPoint,
    Labels: { ...c.labels, [LABEL_INSTANCE]: o.instance, [LABEL_CONTAINER]: c.containerId, [LABEL_FRAMEWORK]: c.frameworkId, [LABEL_TASK]: c.taskId },
    HostConfig: host,
    ...(c.hostname && c.network.mode !== 'host' ? { Hostname: c.hostname } : {}),
  };
  if (c.command) {
    const { file, argv } = commandArgv(c.command);
    opts.Entrypoint = [file];
    opts.Cmd = argv.slice(1);
    if (c.command.user) opts.User = c.command.user;
  }
  return opts;
}
