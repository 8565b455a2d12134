/**
 * The app definition users write (YAML or JSON): what to run, how much of it,
 * where, and how to keep it healthy. Every field is checked here with zod;
 * unknown fields are rejected (with a "did you mean" hint) so a typo such as
 * `instanses` is an error instead of a silently ignored setting. The README
 * next to this file documents the format.
 */
import { parse as parseYaml } from 'yaml';
import { CorralError } from '../../../contracts/errors.js';
import { formatIssues, z } from '../../../common/validate.js';
import { roleSchema } from '../../../contracts/v1/v1-schema.js';
import { constraintSchema } from './constraints.js';

/** App ids become DNS labels, task id prefixes and volume names: keep them short and plain. */
const APP_ID_PATTERN = /^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/;
export const appIdSchema = z.string().regex(APP_ID_PATTERN, 'app id must be 1-40 lower-case letters, digits and "-", starting with a letter and not ending with "-"');

/** Docker volume names: what dockerd and the corral volume plugin accept. */
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{1,200}$/;
const PLACEHOLDER = /\{(app|index)\}/g;

/** YAML writes `PORT: 8080` as a number; environment values and labels are strings either way. */
const textValue = z.union([z.string().max(65536), z.number(), z.boolean()]).transform(String);
const seconds = (max: number) => z.number().finite().nonnegative().max(max);

const portSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z]([a-z0-9-]{0,13}[a-z0-9])?$/, 'port name must be 1-15 lower-case letters, digits and "-" (an SRV service name)')
    .optional(),
  /** 0 = any free port of the offer. */
  hostPort: z.number().int().min(0).max(65535).default(0),
  /** Only with `network`: the port inside the container that hostPort maps to. */
  containerPort: z.number().int().min(1).max(65535).optional(),
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
});

const volumeSchema = z.strictObject({
  containerPath: z
    .string()
    .min(1)
    .max(4096)
    .refine((p) => !p.split('/').includes('..'), 'containerPath must not contain ".."'),
  /** Per-instance template with {app} and {index}; default "{app}-{index}" (and "-<k>" for the k-th volume after the first). */
  name: z.string().min(1).max(200).optional(),
  driver: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/, 'driver must be a plugin name')
    .default('corral'),
  options: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'option names are letters, digits, "_", "." and "-"'), textValue).default({}),
  mode: z.enum(['RW', 'RO']).default('RW'),
});

const healthCheckSchema = z.strictObject({
  type: z.enum(['HTTP', 'TCP', 'COMMAND']),
  /** HTTP/TCP: a port name of this app, or a fixed port number; default the app's first port. */
  port: z.union([z.number().int().min(1).max(65535), z.string().min(1)]).optional(),
  path: z.string().startsWith('/', 'path must start with "/"').max(4096).default('/'),
  scheme: z.enum(['http', 'https']).default('http'),
  command: z.string().min(1).max(65536).optional(),
  delaySeconds: seconds(3600).default(0),
  intervalSeconds: z.number().finite().positive().max(3600).default(10),
  timeoutSeconds: z.number().finite().positive().max(3600).default(20),
  /** Failures in a row after which the instance is killed and relaunched (0 = never). */
  consecutiveFailures: z.number().int().min(0).max(1000).default(3),
  gracePeriodSeconds: seconds(86400).default(10),
});

const backoffSchema = z.strictObject({
  initialSeconds: z.number().finite().positive().max(3600).default(1),
  factor: z.number().finite().min(1).max(10).default(2),
  maxSeconds: z.number().finite().positive().max(86400).default(300),
  /** A task that ran at least this long before it ended starts the count over. */
  resetAfterSeconds: z.number().finite().positive().max(86400).default(300),
});

const BACKOFF_DEFAULTS = backoffSchema.parse({});

export const appSpecSchema = z
  .strictObject({
    id: appIdSchema,
    cmd: z.string().min(1).max(65536).optional(),
    args: z.array(z.string().max(65536)).min(1).max(1000).optional(),
    image: z.string().min(1).max(1024).optional(),
    forcePullImage: z.boolean().default(false),
    user: z.string().min(1).max(256).optional(),
    cpus: z.number().finite().positive().max(10_000).default(0.1),
    mem: z
      .number()
      .finite()
      .positive()
      .max(16 * 1024 * 1024)
      .default(128),
    disk: z
      .number()
      .finite()
      .nonnegative()
      .max(1024 * 1024 * 1024)
      .default(0),
    instances: z.number().int().min(0).max(10_000).default(1),
    role: roleSchema.default('*'),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,255}$/, 'environment variable names are letters, digits and "_"'), textValue).default({}),
    labels: z.record(z.string().min(1).max(128), textValue).default({}),
    /** CNI network to join; omitted = host networking. */
    network: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'network must be a CNI network name')
      .optional(),
    ports: z.array(portSchema).max(100).default([]),
    volumes: z.array(volumeSchema).max(32).default([]),
    healthCheck: healthCheckSchema.optional(),
    constraints: z.array(constraintSchema).max(32).default([]),
    killGracePeriodSeconds: seconds(3600).optional(),
    backoff: backoffSchema.default(BACKOFF_DEFAULTS),
  })
  .superRefine((app, ctx) => {
    const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
    if (!app.cmd && !app.args && !app.image) issue([], 'give a command (cmd or args) or a Docker image');
    if (app.cmd && app.args) issue(['args'], 'give either cmd (run by a shell) or args (run directly), not both');
    if (app.forcePullImage && !app.image) issue(['forcePullImage'], 'only applies with an image');
    const names = new Set<string>();
    const fixed = new Set<string>();
    app.ports.forEach((p, i) => {
      if (p.name && names.has(p.name)) issue(['ports', i, 'name'], `port name "${p.name}" is used twice`);
      if (p.name) names.add(p.name);
      if (p.hostPort && fixed.has(`${p.protocol}/${p.hostPort}`)) issue(['ports', i, 'hostPort'], `host port ${p.hostPort} is used twice`);
      if (p.hostPort) fixed.add(`${p.protocol}/${p.hostPort}`);
      if (p.containerPort !== undefined && !app.network) issue(['ports', i, 'containerPort'], 'containerPort needs a network (with host networking the task listens on hostPort)');
    });
    checkVolumes(app.volumes, issue);
    if (app.healthCheck) checkHealthCheck(app.healthCheck, app.ports, issue);
  });

export type AppSpec = z.output<typeof appSpecSchema>;
export type PortSpec = AppSpec['ports'][number];
export type HealthCheckSpec = NonNullable<AppSpec['healthCheck']>;
export type BackoffSpec = AppSpec['backoff'];

type Issue = (path: (string | number)[], message: string) => void;

function checkVolumes(volumes: AppSpec['volumes'], issue: Issue): void {
  const templates = new Set<string>();
  const paths = new Set<string>();
  volumes.forEach((v, k) => {
    const template = volumeTemplate(v, k);
    if (v.name !== undefined) {
      if (!v.name.includes('{index}')) issue(['volumes', k, 'name'], 'a volume name template must contain {index}, so every instance gets a volume of its own');
      const sample = expandTemplate(v.name, 'app', 0);
      if (/[{}]/.test(sample)) issue(['volumes', k, 'name'], 'the only placeholders are {app} and {index}');
      else if (!VOLUME_NAME.test(sample)) issue(['volumes', k, 'name'], 'volume names are 2-201 letters, digits, "_", "." and "-", starting with a letter or digit');
    }
    if (templates.has(template)) issue(['volumes', k, 'name'], `volume name "${template}" is used twice`);
    templates.add(template);
    if (paths.has(v.containerPath)) issue(['volumes', k, 'containerPath'], `containerPath "${v.containerPath}" is used twice`);
    paths.add(v.containerPath);
  });
}

function checkHealthCheck(hc: HealthCheckSpec, ports: PortSpec[], issue: Issue): void {
  if (hc.type === 'COMMAND') {
    if (!hc.command) issue(['healthCheck', 'command'], 'a COMMAND health check needs a command');
    if (hc.port !== undefined) issue(['healthCheck', 'port'], 'a COMMAND health check takes no port');
    return;
  }
  if (hc.command) issue(['healthCheck', 'command'], `an ${hc.type} health check takes no command`);
  if (typeof hc.port === 'string' && !ports.some((p) => p.name === hc.port)) issue(['healthCheck', 'port'], `no port is named "${hc.port}"`);
  if (hc.port === undefined && ports.length === 0) issue(['healthCheck', 'port'], `an ${hc.type} health check needs a port: define ports or give healthCheck.port`);
}

/** The name template of the k-th volume. */
function volumeTemplate(v: { name?: string | undefined }, k: number): string {
  return v.name ?? (k === 0 ? '{app}-{index}' : `{app}-{index}-${k}`);
}

function expandTemplate(template: string, app: string, index: number): string {
  return template.replace(PLACEHOLDER, (_m, what: string) => (what === 'app' ? app : String(index)));
}

/** Volume names of one instance: the identity that follows it from host to host. */
export function instanceVolumeNames(app: AppSpec, index: number): string[] {
  return app.volumes.map((v, k) => expandTemplate(volumeTemplate(v, k), app.id, index));
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** Field names of each object in the format, by where it sits (for "did you mean" hints). */
const KNOWN_FIELDS: Record<string, () => string[]> = {
  '': () => Object.keys(appSpecSchema.shape),
  ports: () => Object.keys(portSchema.shape),
  volumes: () => Object.keys(volumeSchema.shape),
  healthCheck: () => Object.keys(healthCheckSchema.shape),
  backoff: () => Object.keys(backoffSchema.shape),
};

function withHints(error: z.ZodError): z.ZodError {
  for (const issue of error.issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const known = KNOWN_FIELDS[issue.path.length ? String(issue.path[0]) : '']?.() ?? [];
    const hints = issue.keys.map((k) => {
      const best = known.map((f) => ({ f, d: editDistance(k.toLowerCase(), f.toLowerCase()) })).sort((x, y) => x.d - y.d)[0];
      return best && best.d <= Math.max(2, Math.floor(k.length / 3)) ? `unknown field "${k}" (did you mean "${best.f}"?)` : `unknown field "${k}"`;
    });
    (issue as { message: string }).message = hints.join(', ');
  }
  return error;
}

/** Validate an app definition; INVALID_ARGUMENT names every offending field. */
export function parseAppSpec(input: unknown, what = 'app definition'): AppSpec {
  const result = appSpecSchema.safeParse(input);
  if (!result.success) throw new CorralError('INVALID_ARGUMENT', `invalid ${what}: ${formatIssues(withHints(result.error), 8)}`);
  return result.data;
}

export const MAX_APP_FILE_BYTES = 1024 * 1024;

/** An app file's text (YAML or JSON, which is YAML too) to a plain value, not yet validated. */
export function readAppText(text: string, what = 'app file'): unknown {
  if (Buffer.byteLength(text) > MAX_APP_FILE_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `${what} is larger than ${MAX_APP_FILE_BYTES} bytes`);
  let value: unknown;
  try {
    value = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `${what} is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CorralError('INVALID_ARGUMENT', `${what} must hold one app definition (a mapping with at least "id")`);
  return value;
}
