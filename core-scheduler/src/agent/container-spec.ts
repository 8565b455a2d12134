/**
 * From a v1 TaskInfo to the ContainerConfig a containerizer runs: which
 * containerizer, the command and environment, image, resources and limits,
 * volumes (host, sandbox, external by driver, persistent volumes from the
 * task's reserved disk), network and logs. A definition that cannot run
 * throws INVALID_ARGUMENT, which the agent reports as TASK_ERROR.
 *
 * Identity. A MESOS task runs as TaskInfo.command.user, else
 * FrameworkInfo.user, else the agent's `taskUser` (nobody): accounts of this
 * host. A DOCKER task runs as command.user when given, else as its image
 * says (a framework's host account means nothing inside an image).
 * Capabilities come from ContainerInfo.linux_info (effective_capabilities,
 * bounding_capabilities, or the deprecated capability_info as the effective
 * set), by Mesos CapabilityInfo name. LinuxInfo.seccomp.unconfined runs the
 * task without the containerizer's seccomp filter; a `profile_name` is
 * refused (this agent has one profile, the default). Whether the framework
 * may ask for that user, those capabilities or no seccomp is the master's
 * decision (run_tasks ACL); the agent refuses root only when its own
 * `allowRootTasks` is false.
 */
import { join, isAbsolute, normalize } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CorralError } from '../../../contracts/errors.js';
import { Resources } from '../resources/resources.js';
import type { V1TaskInfo } from '../../../contracts/v1/v1.js';
import type { ContainerConfig, ContainerizerType, NetworkSpec, VolumeMount } from '../../../contracts/containerizer.js';

export interface SpecContext {
  workDir: string;
  /** FrameworkInfo.user of the task's framework ('' or absent: none). */
  frameworkUser?: string | undefined;
  /** The agent's default task user. */
  taskUser: string;
  allowRootTasks: boolean;
  frameworkId: string;
  role: string;
  hostname: string;
  pidsLimit: number;
  logs: { maxBytes: number; maxFiles: number };
}

const bad = (taskId: string, why: string): CorralError => new CorralError('INVALID_ARGUMENT', `task ${taskId}: ${why}`);

/** Names safe for directories, cgroups and CNI container ids. */
const safeName = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100);

/** Unique per launch; starts with a letter or digit (cgroup and CNI container id rules). */
export function newContainerId(taskId: string): string {
  const name = safeName(taskId);
  return `${/^[A-Za-z0-9]/.test(name) ? '' : 't'}${name}.${randomBytes(4).toString('hex')}`;
}

function sandboxDir(workDir: string, frameworkId: string, containerId: string): string {
  return join(workDir, 'sandboxes', safeName(frameworkId), containerId);
}

/** Where a role's persistent volume lives on this host. */
function persistentVolumeDir(workDir: string, role: string, id: string): string {
  return join(workDir, 'volumes', 'roles', safeName(role), safeName(id));
}

type Param = { key: string; value: string };

/** LinuxInfo.*_capabilities as Mesos sends them: `{ capabilities: ["NET_RAW", …] }`. */
function capabilityNames(taskId: string, raw: unknown, field: string): string[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  const list = (raw as { capabilities?: unknown }).capabilities;
  if (list === undefined) return [];
  if (!Array.isArray(list) || !list.every((c) => typeof c === 'string')) throw bad(taskId, `container.linux_info.${field}.capabilities must be a list of capability names`);
  return list as string[];
}

/** LinuxInfo.seccomp as Mesos sends it: `{ unconfined: true }` or `{ profile_name: "…" }`. */
function seccompMode(taskId: string, raw: unknown): 'unconfined' | undefined {
  if (raw === undefined || raw === null) return undefined;
  const { profile_name: name, unconfined } = raw as { profile_name?: unknown; unconfined?: unknown };
  if (name !== undefined && name !== null) {
    if (unconfined === true) throw bad(taskId, 'container.linux_info.seccomp: give "profile_name" or "unconfined", not both');
    throw bad(
      taskId,
      `container.linux_info.seccomp.profile_name ${JSON.stringify(String(name).slice(0, 64))} is not available: this agent has only its default profile (leave seccomp unset) or none (unconfined: true, if acls.run_tasks allows it)`,
    );
  }
  return unconfined === true ? 'unconfined' : undefined;
}

function driverOptions(raw: unknown): Record<string, string> {
  // Mesos shape: { parameter: [{ key, value }] }; plain objects are accepted too.
  if (!raw || typeof raw !== 'object') return {};
  const list = (raw as { parameter?: Param[] }).parameter;
  if (Array.isArray(list)) return Object.fromEntries(list.filter((p) => typeof p?.key === 'string').map((p) => [p.key, String(p.value ?? '')]));
  return Object.fromEntries(Object.entries(raw as Record<string, unknown>).filter(([, v]) => typeof v === 'string') as Array<[string, string]>);
}

function checkContainerPath(taskId: string, path: string): string {
  const n = normalize(path);
  if (!isAbsolute(n) && (n === '..' || n.startsWith('../'))) throw bad(taskId, `volume path "${path}" leaves the sandbox`);
  return n;
}

export function containerConfigFor(task: V1TaskInfo, containerId: string, ctx: SpecContext): { type: ContainerizerType; config: ContainerConfig } {
  const taskId = task.task_id.value;
  const c = task.container;
  const type: ContainerizerType = c?.type === 'DOCKER' ? 'DOCKER' : 'MESOS';
  if (task.executor) throw bad(taskId, 'custom executors are not supported; give a command or a docker image');
  if (type === 'DOCKER' && !c?.docker?.image) throw bad(taskId, 'a DOCKER container needs docker.image');
  if (type === 'MESOS' && !task.command?.value && !task.command?.arguments?.length) throw bad(taskId, 'needs command.value (or arguments)');

  const res = Resources.fromV1(task.resources);
  const sandbox = sandboxDir(ctx.workDir, ctx.frameworkId, containerId);
  const ports = res.ranges('ports');
  const portList = ports.flatMap(([b, e]) => Array.from({ length: Math.min(e - b + 1, 100) }, (_, i) => b + i));

  const environment: Record<string, string> = {
    CORRAL_SANDBOX: sandbox,
    CORRAL_TASK_ID: taskId,
    CORRAL_FRAMEWORK_ID: ctx.frameworkId,
    HOST: ctx.hostname,
    ...Object.fromEntries(portList.map((p, i) => [`PORT${i}`, String(p)])),
    ...(portList.length ? { PORT: String(portList[0]), PORTS: portList.join(',') } : {}),
  };
  for (const v of task.command?.environment?.variables ?? []) environment[v.name] = v.value ?? '';

  const volumes: VolumeMount[] = [];
  for (const v of c?.volumes ?? []) {
    const mode = v.mode ?? 'RW';
    const containerPath = checkContainerPath(taskId, v.container_path);
    const src = v.source;
    if (src?.type === 'DOCKER_VOLUME' || src?.docker_volume) {
      const dv = src.docker_volume;
      if (!dv?.name) throw bad(taskId, `volume at ${v.container_path} needs docker_volume.name`);
      volumes.push({ containerPath, mode, source: { type: 'external', driver: dv.driver ?? 'corral', name: dv.name, options: driverOptions(dv.driver_options) } });
    } else if (src?.type === 'SANDBOX_PATH' || src?.sandbox_path) {
      const p = checkContainerPath(taskId, src.sandbox_path?.path ?? '');
      volumes.push({ containerPath, mode, source: { type: 'sandbox', path: p } });
    } else if (v.host_path) {
      if (!isAbsolute(v.host_path)) throw bad(taskId, `host_path "${v.host_path}" must be absolute`);
      volumes.push({ containerPath, mode, source: { type: 'host', path: v.host_path } });
    } else {
      throw bad(taskId, `volume at ${v.container_path} has no source (host_path, sandbox_path or docker_volume)`);
    }
  }
  // Persistent volumes come with the task's resources; their data stays on the host after the task.
  for (const e of res.persistentVolumes()) {
    const id = e.disk!.persistence!.id;
    const path = e.disk!.volume?.container_path ?? id;
    volumes.push({
      containerPath: checkContainerPath(taskId, path),
      mode: e.disk!.volume?.mode ?? 'RW',
      source: { type: 'host', path: persistentVolumeDir(ctx.workDir, Resources.reservationRole(e) ?? ctx.role, id), owned: true },
    });
  }

  const net = c?.network_infos?.[0];
  let network: NetworkSpec = { mode: 'host' };
  if (net?.name) {
    network = {
      mode: 'cni',
      network: net.name,
      portMappings: (net.port_mappings ?? []).map((m) => ({ hostPort: m.host_port, containerPort: m.container_port, protocol: m.protocol === 'udp' ? 'udp' : 'tcp' })),
    };
  } else if (net || (c?.docker as { network?: string } | undefined)?.network === 'NONE') {
    network = { mode: 'isolated' };
  }

  const mesosImage = (c?.mesos as { image?: { type?: string; tarball?: { path?: string } } } | undefined)?.image;
  let image: ContainerConfig['image'];
  if (type === 'DOCKER') image = { kind: 'docker', name: c!.docker!.image, forcePull: Boolean((c!.docker as { force_pull_image?: boolean }).force_pull_image) };
  else if (mesosImage) {
    // corral extension: a root filesystem tarball already on the host.
    if (mesosImage.type !== 'TARBALL' || !mesosImage.tarball?.path || !isAbsolute(mesosImage.tarball.path))
      throw bad(taskId, 'a MESOS image must be { type: "TARBALL", tarball: { path: "/abs/rootfs.tar" } }');
    image = { kind: 'tarball', path: mesosImage.tarball.path };
  }

  const labels: Record<string, string> = { 'corral.framework-id': ctx.frameworkId, 'corral.task-id': taskId };
  for (const l of task.labels?.labels ?? []) labels[l.key] = l.value ?? '';

  const user = task.command?.user || (type === 'MESOS' ? ctx.frameworkUser || ctx.taskUser : undefined);
  const command =
    task.command?.value || task.command?.arguments?.length
      ? {
          shell: task.command.shell ?? true,
          ...(task.command.value !== undefined ? { value: task.command.value } : {}),
          ...(task.command.arguments ? { arguments: task.command.arguments } : {}),
          environment,
          ...(user ? { user } : {}),
        }
      : { shell: false, environment, ...(user ? { user } : {}) };

  const linux = (c as { linux_info?: Record<string, unknown> } | undefined)?.linux_info;
  const effective = capabilityNames(taskId, linux?.effective_capabilities, 'effective_capabilities') ?? capabilityNames(taskId, linux?.capability_info, 'capability_info');
  const bounding = capabilityNames(taskId, linux?.bounding_capabilities, 'bounding_capabilities');
  const seccomp = seccompMode(taskId, linux?.seccomp);
  const security: NonNullable<ContainerConfig['security']> = {
    ...(effective ? { effectiveCapabilities: effective } : {}),
    ...(bounding ? { boundingCapabilities: bounding } : {}),
    ...(ctx.allowRootTasks ? {} : { denyRoot: true }),
    ...(seccomp ? { seccomp } : {}),
  };

  const config: ContainerConfig = {
    containerId,
    frameworkId: ctx.frameworkId,
    taskId,
    sandbox,
    command,
    ...(image ? { image } : {}),
    resources: { cpus: res.scalar('cpus'), memMb: res.scalar('mem'), diskMb: res.scalar('disk'), gpus: res.scalar('gpus'), ports },
    limits: { pids: ctx.pidsLimit },
    volumes,
    network,
    ...(c?.hostname ? { hostname: c.hostname } : {}),
    logs: { stdout: join(sandbox, 'stdout'), stderr: join(sandbox, 'stderr'), ...ctx.logs },
    labels,
    ...(Object.keys(security).length ? { security } : {}),
  };
  if (config.resources.memMb <= 0) throw bad(taskId, 'needs some memory (mem) so it can be limited');
  return { type, config };
}
