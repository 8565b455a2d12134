/**
 * One CNI invocation as the daemon receives it from the shim: the CNI_*
 * environment and the network configuration, validated into a typed request.
 * Every refusal is a CniError with the spec's code: 4 for the environment,
 * 6 for undecodable JSON, 1 for a version we do not speak, 7 for the rest of
 * the configuration.
 */
import { z, formatIssues } from '../../../../common/validate.js';
import { CniCode, CniError, COMMANDS, CURRENT_VERSION, isSupportedVersion, versionAtLeast, type CniCommand } from './spec.js';

export interface CniEnv {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args: Record<string, string>;
  path?: string;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Interface names as the spec allows them: 1–15 bytes, not "." or "..", no "/", ":" or whitespace. */
export function validIfname(name: string): boolean {
  return Buffer.byteLength(name) <= 15 && name.length > 0 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}

export function parseEnv(raw: Record<string, string | undefined>): CniEnv {
  const bad = (what: string): never => {
    throw new CniError(CniCode.INVALID_ENV, 'invalid environment variables', what);
  };
  const command = raw.CNI_COMMAND;
  if (!command) bad('CNI_COMMAND is not set');
  if (!(COMMANDS as readonly string[]).includes(command!)) bad(`CNI_COMMAND "${command}" is not one of ${COMMANDS.join(', ')}`);
  const cmd = command as CniCommand;
  const needsContainer = cmd === 'ADD' || cmd === 'DEL' || cmd === 'CHECK';
  const env: CniEnv = { command: cmd, args: {} };
  if (needsContainer) {
    const id = raw.CNI_CONTAINERID;
    if (!id) bad('CNI_CONTAINERID is not set');
    if (!CONTAINER_ID.test(id!) || id!.length > 1024) bad(`CNI_CONTAINERID "${id}" may hold only letters, digits, "_", "." and "-" and must start with a letter or digit`);
    env.containerId = id!;
    const ifname = raw.CNI_IFNAME;
    if (!ifname) bad('CNI_IFNAME is not set');
    if (!validIfname(ifname!)) bad(`CNI_IFNAME "${ifname}" is not a valid interface name`);
    env.ifname = ifname!;
    const netns = raw.CNI_NETNS;
    if (cmd !== 'DEL' && !netns) bad('CNI_NETNS is not set');
    if (netns) {
      if (!netns.startsWith('/') || netns.includes('\0') || netns.length > 4096) bad(`CNI_NETNS "${netns}" is not an absolute path`);
      env.netns = netns;
    }
  }
  if (raw.CNI_ARGS) {
    for (const pair of raw.CNI_ARGS.split(';')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) bad(`CNI_ARGS entry "${pair}" is not KEY=VALUE`);
      env.args[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  if (raw.CNI_PATH) env.path = raw.CNI_PATH;
  return env;
}

const attachment = z.object({ containerID: z.string().min(1), ifname: z.string().min(1) }).passthrough();
/** A Go runtime marshals an empty attachment list as `null`; it means "none are valid". */
const attachmentList = z.array(attachment).nullable().optional();

/**
 * Keys a runtime writes into the config at execution time (SPEC.md §1
 * "reserved keys" and §3): `cni.dev/*` is the runtime's namespace. Of those,
 * only the attachment lists mean something to corral; libcni sends the list
 * of still-valid attachments under both names on GC (the older name came
 * from a spec typo, containernetworking/cni#1101).
 */
const RUNTIME_PREFIX = 'cni.dev/';
const ATTACHMENT_KEYS = ['cni.dev/valid-attachments', 'cni.dev/attachments'] as const;

const netConfSchema = z
  .object({
    cniVersion: z.string(),
    name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'letters, digits, "_", "." and "-", starting with a letter or digit'),
    type: z.literal('corral'),
    /** Pools to take addresses from, in order (default: the node's default pools). */
    pools: z.array(z.string().min(1)).min(1).max(16).optional(),
    /** MTU of both veth ends (default: the node daemon's). */
    mtu: z.number().int().min(576).max(65535).optional(),
    /** Read by the shim only: the node daemon's socket. */
    daemonSocket: z.string().startsWith('/').max(107).optional(),
    // Keys the runtime injects into every plugin's config (libcni buildOneConfig / injectRuntimeConfig).
    args: z.record(z.string(), z.unknown()).optional(),
    runtimeConfig: z.record(z.string(), z.unknown()).optional(),
    capabilities: z.record(z.string(), z.boolean()).optional(),
    prevResult: z.record(z.string(), z.unknown()).optional(),
    // Well-known and list-level keys some runtimes copy into a plugin's config.
    dns: z.record(z.string(), z.unknown()).optional(),
    cniVersions: z.array(z.string()).optional(),
    disableCheck: z.boolean().optional(),
    disableGC: z.boolean().optional(),
    loadOnlyInlinedPlugins: z.boolean().optional(),
    'cni.dev/valid-attachments': attachmentList,
    'cni.dev/attachments': attachmentList,
  })
  // Everything else is refused: a typo in corral's own keys (`pool`) must not pass silently.
  .strict();

export type NetConf = z.output<typeof netConfSchema>;
type Attachment = z.output<typeof attachment>;

/** The config without the runtime's `cni.dev/*` keys that corral has no use for. */
function withoutForeignRuntimeKeys(raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith(RUNTIME_PREFIX) && !(ATTACHMENT_KEYS as readonly string[]).includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/** Parses the network configuration bytes (stdin of the plugin). */
export function parseNetConf(body: Buffer): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new CniError(CniCode.DECODE, 'failed to decode the network configuration', (err as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(CniCode.DECODE, 'failed to decode the network configuration', 'expected a JSON object');
  }
  const version = (raw as { cniVersion?: unknown }).cniVersion;
  if (typeof version !== 'string') throw new CniError(CniCode.INVALID_CONFIG, 'invalid network configuration', 'cniVersion is missing');
  if (!isSupportedVersion(version)) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, 'incompatible CNI version', `config version ${version}; corral supports 0.4.0, 1.0.0 and 1.1.0`);
  }
  const parsed = netConfSchema.safeParse(withoutForeignRuntimeKeys(raw as Record<string, unknown>));
  if (!parsed.success) throw new CniError(CniCode.INVALID_CONFIG, 'invalid network configuration', formatIssues(parsed.error, 4));
  return parsed.data;
}

/**
 * The attachments a GC call lists as still valid: the union of both keys (a
 * runtime sends the same list under each; should they ever differ, keeping
 * more is the safe side). Neither key means none is valid, as in libcni,
 * which then also DELs every cached attachment of the network.
 */
export function validAttachments(conf: NetConf): Attachment[] {
  return ATTACHMENT_KEYS.flatMap((k) => conf[k] ?? []);
}

export function requireVersionFor(command: CniCommand, conf: NetConf): void {
  if ((command === 'GC' || command === 'STATUS') && !versionAtLeast(conf.cniVersion, '1.1.0')) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, 'incompatible CNI version', `${command} needs cniVersion 1.1.0, the config says ${conf.cniVersion}`);
  }
  if (command === 'CHECK' && !versionAtLeast(conf.cniVersion, '0.4.0')) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, 'incompatible CNI version', `CHECK needs cniVersion 0.4.0 or newer`);
  }
}

export function versionReply(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_VERSION, supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] };
}
