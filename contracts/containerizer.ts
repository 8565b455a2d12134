/**
 * The contract between the agent and the things that run tasks. The agent
 * owns task state, status updates and checkpointing; a containerizer owns a
 * container's life on the host: isolate, start, wait, kill, clean up, and —
 * after the agent process itself was killed and restarted — find its
 * containers again. Two implementations: MESOS (native: plugins/isolator)
 * and DOCKER (dockerode). Volumes and network come through hooks shared by both.
 */

export type ContainerizerType = 'MESOS' | 'DOCKER';

export interface CommandSpec {
  /** true: run `value` with /bin/sh -c; false: exec `value` (or arguments[0]) with `arguments`. */
  shell: boolean;
  value?: string;
  arguments?: string[];
  environment: Record<string, string>;
  /**
   * Run as this user: a name or uid[:gid], resolved on the host (or in the image's /etc/passwd).
   * The agent fills it for MESOS tasks (TaskInfo.command.user, else FrameworkInfo.user, else its
   * `taskUser`); without it the native containerizer uses its `defaultUser` (nobody) and Docker
   * the image's USER.
   */
  user?: string;
}

/** Linux capabilities by Mesos CapabilityInfo name ("NET_BIND_SERVICE", "SYS_ADMIN"…). */
export interface SecuritySpec {
  /**
   * The capabilities the task runs with (whatever its uid). Absent: none for a non-root user, the
   * containerizer's reduced default set for root.
   */
  effectiveCapabilities?: string[];
  /** The most the task (and anything it execs) can ever hold. Absent: the effective set. */
  boundingCapabilities?: string[];
  /** Refuse to start the task as uid 0 (the agent's `allowRootTasks: false`). */
  denyRoot?: boolean;
  /**
   * `unconfined`: no seccomp filter (Mesos's SeccompInfo.unconfined; the master allows it only by
   * acls.run_tasks). Absent: the containerizer's default profile. no_new_privs stays either way.
   */
  seccomp?: 'unconfined';
}

export type VolumeSource =
  /** `owned`: a persistent volume, handed to the task's user when no other container uses it (as Mesos does). */
  | { type: 'host'; path: string; owned?: boolean }
  | { type: 'sandbox'; path: string }
  /** An external volume by driver and name (the volume plugin's library or Docker's driver). */
  | { type: 'external'; driver: string; name: string; options: Record<string, string> };

export interface VolumeMount {
  /** Absolute: a path in the container's filesystem; relative: inside the sandbox (as in Mesos). */
  containerPath: string;
  mode: 'RW' | 'RO';
  source: VolumeSource;
}

export type NetworkSpec =
  /** Share the host's network namespace. */
  | { mode: 'host' }
  /** A private network namespace with loopback only. */
  | { mode: 'isolated' }
  /** A private network namespace wired by CNI (the corral CNI daemon), e.g. network "corral". */
  | { mode: 'cni'; network: string; portMappings?: Array<{ hostPort: number; containerPort: number; protocol: 'tcp' | 'udp' }> };

export interface ContainerConfig {
  /** Unique on the host; safe as a file and cgroup name ([A-Za-z0-9_.-]). */
  containerId: string;
  frameworkId: string;
  taskId: string;
  /** Host directory for this task: working directory, logs, sandbox volumes. Created by the agent. */
  sandbox: string;
  command?: CommandSpec;
  /** Docker image (DOCKER) or a root filesystem tarball on the host (MESOS). */
  image?: { kind: 'docker'; name: string; forcePull: boolean } | { kind: 'tarball'; path: string };
  resources: { cpus: number; memMb: number; diskMb: number; gpus: number; ports: Array<[number, number]> };
  limits: { pids?: number };
  volumes: VolumeMount[];
  network: NetworkSpec;
  /** User identity and privileges beyond `command.user` (capabilities, root policy). */
  security?: SecuritySpec;
  hostname?: string;
  /** stdout/stderr files in the sandbox, rotated by size. */
  logs: { stdout: string; stderr: string; maxBytes: number; maxFiles: number };
  labels: Record<string, string>;
}

export interface Termination {
  exitCode: number | null;
  signal: string | null;
  /** Killed by the kernel for exceeding its memory limit. */
  oomKilled: boolean;
  /** A Mesos TaskStatus reason when one applies (e.g. REASON_CONTAINER_LIMITATION_MEMORY). */
  reason?: string;
  message: string;
}

export interface Launched {
  /** Main process of the task, as seen from the host (for health checks that enter its namespaces). */
  pid?: number;
  /** The container's own addresses (CNI), empty for host networking. */
  ipAddresses: string[];
  /** Network namespace path when the container has its own (health checks enter it). */
  netns?: string;
}

export interface RecoveredContainer {
  containerId: string;
  running: boolean;
  launched?: Launched;
  /** Set when it ended while the agent was away. */
  termination?: Termination;
}

export interface ResourceUsage {
  cpuSeconds: number;
  memBytes: number;
  memLimitBytes?: number;
  cpuThrottledSeconds?: number;
  pids?: number;
}

/** What a command run inside a container (a COMMAND health check) came to. */
export interface ExecResult {
  /** Exit code (128 + signal when killed); null when it was killed at its deadline. */
  exitCode: number | null;
  /** The first few KiB of its stdout and stderr. */
  output: string;
}

export interface Containerizer {
  readonly type: ContainerizerType;
  /**
   * Prepare and start the container; resolves once the task's process runs.
   * Rejects with a CorralError whose message explains a bad task (unknown
   * image, missing volume, bad command): the agent reports TASK_FAILED/ERROR.
   */
  launch(config: ContainerConfig): Promise<Launched>;
  /** Resolves when the container's task ends (callable again after recover). */
  wait(containerId: string): Promise<Termination>;
  /** SIGTERM, then SIGKILL after the grace period; resolves when it has ended. */
  kill(containerId: string, gracePeriodMs: number): Promise<void>;
  /** Release everything the container holds (cgroups, mounts, namespaces, IPs, volume references). Idempotent. */
  destroy(containerId: string): Promise<void>;
  /**
   * After an agent restart: the containers the agent had checkpointed, with
   * their current state. Containers of this containerizer the agent does not
   * know are orphans: destroy them.
   */
  recover(known: ContainerConfig[]): Promise<RecoveredContainer[]>;
  usage(containerId: string): Promise<ResourceUsage | undefined>;
  /**
   * Run `argv` inside the running container as its task runs: its namespaces, user, capabilities,
   * no_new_privs and seccomp profile (COMMAND health checks, as Mesos runs them). Killed after
   * `timeoutMs`.
   */
  exec?(containerId: string, argv: string[], timeoutMs: number): Promise<ExecResult>;
}

/** Attaching external volumes; implemented over the volume plugin's library/daemon. */
export interface VolumeHook {
  /** Returns the host path to bind into the container; `referenceId` counts the mount. */
  mount(source: Extract<VolumeSource, { type: 'external' }>, referenceId: string): Promise<string>;
  unmount(source: Extract<VolumeSource, { type: 'external' }>, referenceId: string): Promise<void>;
}

/** Wiring a network namespace; implemented over the CNI daemon. */
export interface NetworkHook {
  attach(containerId: string, netnsPath: string, spec: Extract<NetworkSpec, { mode: 'cni' }>): Promise<{ ipAddresses: string[] }>;
  /** Free the container's addresses (also when the namespace is already gone). */
  detach(containerId: string, netnsPath: string | undefined, spec: Extract<NetworkSpec, { mode: 'cni' }>): Promise<void>;
}
