/**
 * Checking a ContainerConfig before anything is created on the host, shared
 * by both containerizers. A bad task — a malformed field, more resources
 * than this agent advertises, no command to run, a volume path that escapes
 * its sandbox — is refused here with an INVALID_ARGUMENT whose message says
 * what is wrong; the agent turns it into TASK_ERROR/FAILED and the host is
 * left untouched.
 *
 * Resources are checked against what the agent advertises (its `--resources`
 * or the detected figures), not against the hardware: as in Mesos, an
 * operator's override is trusted (overcommit, headroom, tests), and a task
 * that fits an offer must run. The agent warns at start when it advertises
 * more than the host has.
 */
import { cpus as hostCpus, totalmem } from 'node:os';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { statSync } from 'node:fs';
import { invalid } from '../../../contracts/errors.js';
import { parseInput, z } from '../../../common/validate.js';
import type { CommandSpec, ContainerConfig, ContainerizerType } from '../../../contracts/containerizer.js';

/** What tasks on this agent may ask for in all: the agent's advertised resources. */
export interface HostCapacity {
  cpus: number;
  memMb: number;
  gpus: number;
}

/** A containerizer used without an agent: the host's own CPUs and memory, no GPUs. */
export function hostCapacity(): HostCapacity {
  return { cpus: hostCpus().length, memMb: Math.floor(totalmem() / (1024 * 1024)), gpus: 0 };
}

/** Paths cross to the task shim as text fields: no NUL, tab or newline. */
const safePath = z
  .string()
  .min(1)
  .max(4000)
  .refine((p) => !/[\0\t\n\r]/.test(p), 'must not contain NUL, tab or newline characters');
const absPath = safePath.refine((p) => isAbsolute(p), 'must be an absolute path');
const noNul = z.string().refine((s) => !s.includes('\0'), 'must not contain NUL characters');

const commandSchema = z.object({
  shell: z.boolean(),
  value: noNul.optional(),
  arguments: z.array(noNul).max(1000).optional(),
  environment: z.record(z.string().regex(/^[^=\0]+$/, 'environment names must not contain "=" or NUL'), noNul),
  user: z
    .string()
    .regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+)?$/, 'a user name or uid[:gid]')
    .max(64)
    .optional(),
});

const volumeSchema = z.object({
  containerPath: safePath,
  mode: z.enum(['RW', 'RO']),
  source: z.discriminatedUnion('type', [
    z.object({ type: z.literal('host'), path: absPath, owned: z.boolean().optional() }),
    z.object({ type: z.literal('sandbox'), path: safePath }),
    z.object({
      type: z.literal('external'),
      driver: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)
        .max(64),
      name: z.string().min(1).max(96),
      options: z.record(z.string(), z.string()),
    }),
  ]),
});

const capabilityList = z.array(z.string().max(64)).max(64);

const securitySchema = z.object({
  effectiveCapabilities: capabilityList.optional(),
  boundingCapabilities: capabilityList.optional(),
  denyRoot: z.boolean().optional(),
  seccomp: z.literal('unconfined').optional(),
});

const configSchema = z.object({
  // As CNI container ids: a letter or digit first (also a valid Docker name after the "corral-" prefix).
  containerId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, "_", "." and "-", starting with a letter or digit')
    .max(200),
  frameworkId: z.string(),
  taskId: z.string(),
  sandbox: absPath,
  command: commandSchema.optional(),
  image: z
    .discriminatedUnion('kind', [z.object({ kind: z.literal('docker'), name: z.string().min(1).max(512), forcePull: z.boolean() }), z.object({ kind: z.literal('tarball'), path: absPath })])
    .optional(),
  resources: z.object({
    cpus: z.number().nonnegative(),
    memMb: z.number().nonnegative(),
    diskMb: z.number().nonnegative(),
    gpus: z.number().int().nonnegative(),
    ports: z.array(z.tuple([z.number().int(), z.number().int()])),
  }),
  limits: z.object({ pids: z.number().int().min(1).max(4_194_304).optional() }),
  volumes: z.array(volumeSchema).max(100),
  network: z.discriminatedUnion('mode', [
    z.object({ mode: z.literal('host') }),
    z.object({ mode: z.literal('isolated') }),
    z.object({
      mode: z.literal('cni'),
      network: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)
        .max(64),
      portMappings: z.array(z.object({ hostPort: z.number().int().min(1).max(65535), containerPort: z.number().int().min(1).max(65535), protocol: z.enum(['tcp', 'udp']) })).optional(),
    }),
  ]),
  hostname: z
    .string()
    .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'a DNS host name')
    .max(64)
    .optional(),
  logs: z.object({ stdout: safePath, stderr: safePath, maxBytes: z.number().int().min(1024), maxFiles: z.number().int().min(1).max(1000) }),
  labels: z.record(z.string(), z.string()),
  security: securitySchema.optional(),
});

/** A container path must stay inside its root: no ".." that climbs out. */
function escapes(path: string): boolean {
  const n = normalize(path);
  return n === '..' || n.startsWith('../') || n.includes('/../') || n.endsWith('/..');
}

/** Validates `config` for `type` on an agent advertising `capacity`; returns it (typed) or throws INVALID_ARGUMENT. */
export function checkTask(config: ContainerConfig, type: ContainerizerType, capacity: HostCapacity): ContainerConfig {
  const c = parseInput(configSchema, config, 'task definition') as ContainerConfig;
  const r = c.resources;
  // No single task can use more than the whole agent; within that, fitting the free share is the master's business (offers).
  if (r.cpus > capacity.cpus) throw invalid(`the task asks for ${r.cpus} CPUs; this agent advertises ${capacity.cpus}`);
  if (r.memMb > capacity.memMb) throw invalid(`the task asks for ${r.memMb} MB of memory; this agent advertises ${capacity.memMb} MB`);
  if (r.gpus > capacity.gpus) throw invalid(`the task asks for ${r.gpus} GPU(s); this agent advertises ${capacity.gpus}`);
  if (r.memMb > 0 && r.memMb < 4) throw invalid(`a memory limit of ${r.memMb} MB is too small to start a process (minimum 4 MB)`);
  if (type === 'MESOS' && c.image?.kind === 'docker') throw invalid(`the MESOS containerizer runs root filesystem tarballs; use the DOCKER containerizer for the Docker image ${c.image.name}`);
  if (type === 'DOCKER' && c.image?.kind !== 'docker') throw invalid('the DOCKER containerizer needs a Docker image (image.kind "docker")');
  if (type === 'MESOS' && !c.command) throw invalid('the task has no command to run');
  if (c.command) commandArgv(c.command);
  if (!isDirectory(c.sandbox)) throw invalid(`the sandbox ${c.sandbox} is not a directory`);
  for (const v of c.volumes) {
    if (escapes(v.containerPath)) throw invalid(`volume containerPath ${v.containerPath} climbs out of its root with ".."`);
    if (v.source.type === 'sandbox' && (isAbsolute(v.source.path) || escapes(v.source.path))) throw invalid(`sandbox volume path ${v.source.path} must be relative to the sandbox and stay inside it`);
  }
  const targets = c.volumes.map((v) => normalize(v.containerPath).replace(/(.)\/+$/, '$1'));
  const dup = targets.find((t, i) => targets.indexOf(t) !== i);
  if (dup) throw invalid(`two volumes are mounted at ${dup}`);
  for (const file of [c.logs.stdout, c.logs.stderr]) {
    const rel = relative(c.sandbox, logPath(c.sandbox, file));
    if (rel.startsWith('..') || isAbsolute(rel)) throw invalid(`log file ${file} is outside the sandbox ${c.sandbox}`);
  }
  return c;
}

export function logPath(sandbox: string, file: string): string {
  return isAbsolute(file) ? normalize(file) : join(sandbox, file);
}

/** What to exec: shell commands run under /bin/sh -c; otherwise `value` (or arguments[0]) with `arguments`. */
export function commandArgv(cmd: CommandSpec): { file: string; argv: string[] } {
  if (cmd.shell) {
    if (!cmd.value) throw invalid('a shell command needs a value');
    return { file: '/bin/sh', argv: ['/bin/sh', '-c', cmd.value] };
  }
  const file = cmd.value ?? cmd.arguments?.[0];
  if (!file) throw invalid('the command has neither a value nor arguments');
  const argv = cmd.arguments?.length ? cmd.arguments : [file];
  return { file, argv };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
