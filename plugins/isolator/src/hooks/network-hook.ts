/**
 * NetworkHook as a CNI runtime: the network a task names is a CNI network
 * configuration (a conflist, e.g. the one `corral cni install` writes, whose
 * first plugin is the corral shim that forwards to the node daemon). ADD runs
 * the chain in order, each plugin getting the previous result; DEL runs it in
 * reverse and works without the namespace (the daemon still frees the IP).
 * Plugins are exec'd exactly as any runtime execs them (the lab's
 * `execPlugin`), so the daemon sees the same calls from the isolator as from
 * any other runtime. ADD results are cached on disk so a DEL after an agent
 * restart still hands chained plugins their prevResult.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, errorMessage, type ErrorCode } from '../../../../contracts/errors.js';
import { parseInput, z } from '../../../../common/validate.js';
import type { NetworkHook, NetworkSpec } from '../../../../contracts/containerizer.js';
import { execPlugin, type PluginRun } from '../../../../common/cni-runtime/exec.js';
import { NATIVE_BUILD_DIR } from '../../../../common/sys/paths.js';

type CniSpec = Extract<NetworkSpec, { mode: 'cni' }>;

const pluginConf = z.looseObject({ type: z.string().regex(/^[A-Za-z0-9_.-]+$/), capabilities: z.record(z.string(), z.boolean()).optional() });
const conflistSchema = z.object({ cniVersion: z.string(), name: z.string().min(1), plugins: z.array(pluginConf).min(1) });
const singleConfSchema = z.looseObject({ cniVersion: z.string(), name: z.string().min(1), type: z.string() });

export type NetworkConfList = z.output<typeof conflistSchema>;

export interface CniHookOptions {
  /** Network configurations by name (conflist or single-plugin conf objects). */
  networks?: Record<string, unknown>;
  /** Or a directory of *.conflist / *.conf files (default /etc/cni/net.d when `networks` is absent). */
  confDir?: string;
  /** Plugin directories, searched in order (default: corral's native build dir, /opt/cni/bin, /usr/lib/cni). */
  binDirs?: string[];
  /** Where ADD results are kept for DEL (default /var/lib/corral/cni-results). */
  cacheDir?: string;
  ifname?: string;
  timeoutMs?: number;
}

/** A conflist or a single conf, normalised to a conflist. */
export function toConfList(raw: unknown, what: string): NetworkConfList {
  if (typeof raw === 'object' && raw !== null && 'plugins' in raw) return parseInput(conflistSchema, raw, what);
  const single = parseInput(singleConfSchema, raw, what);
  const { cniVersion, name, ...plugin } = single;
  return { cniVersion, name, plugins: [plugin as z.output<typeof pluginConf>] };
}

export function loadConfDir(dir: string): Record<string, NetworkConfList> {
  const out: Record<string, NetworkConfList> = {};
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.conflist') || f.endsWith('.conf') || f.endsWith('.json')).sort();
  } catch {
    return out;
  }
  for (const f of files) {
    try {
      const list = toConfList(JSON.parse(readFileSync(join(dir, f), 'utf8')), `CNI configuration ${join(dir, f)}`);
      out[list.name] ??= list;
    } catch {
      // A broken file must not hide the others; asking for its network reports "unknown network".
    }
  }
  return out;
}

/** The config one plugin of the chain receives. */
export function pluginInput(list: NetworkConfList, index: number, spec: CniSpec, prevResult: unknown): Record<string, unknown> {
  const plugin = list.plugins[index]!;
  const conf: Record<string, unknown> = { cniVersion: list.cniVersion, name: list.name, ...plugin };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  if (plugin.capabilities?.portMappings && spec.portMappings?.length) conf.runtimeConfig = { portMappings: spec.portMappings };
  return conf;
}

const CNI_CODE_TO_ERROR: Record<number, ErrorCode> = { 4: 'INVALID_ARGUMENT', 7: 'INVALID_ARGUMENT', 11: 'UNAVAILABLE', 100: 'RESOURCE_EXHAUSTED' };

function pluginError(command: string, list: NetworkConfList, type: string, run: PluginRun): CorralError {
  const e = (run.json ?? {}) as { code?: number; msg?: string; details?: string };
  const text = e.msg ? `${e.msg}${e.details ? `: ${e.details}` : ''} (CNI code ${e.code})` : (run.stderr || run.stdout || `exit ${run.code}`).trim().slice(0, 500);
  return new CorralError((e.code !== undefined && CNI_CODE_TO_ERROR[e.code]) || 'INTERNAL', `CNI ${command} on network ${list.name} failed in plugin ${type}: ${text}`);
}

export class CniNetworkHook implements NetworkHook {
  private readonly binDirs: string[];
  private readonly cacheDir: string;
  private readonly ifname: string;
  private readonly timeoutMs: number;
  private readonly networks: Record<string, NetworkConfList> | undefined;

  constructor(private readonly opts: CniHookOptions = {}) {
    this.binDirs = opts.binDirs ?? [NATIVE_BUILD_DIR(), '/opt/cni/bin', '/usr/lib/cni'];
    this.cacheDir = opts.cacheDir ?? '/var/lib/corral/cni-results';
    this.ifname = opts.ifname ?? 'eth0';
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.networks = opts.networks ? Object.fromEntries(Object.entries(opts.networks).map(([k, v]) => [k, toConfList(v, `CNI network ${k}`)])) : undefined;
  }

  private network(name: string): NetworkConfList {
    // The directory is read each time: `corral cni install` may add a network while the agent runs.
    const all = this.networks ?? loadConfDir(this.opts.confDir ?? '/etc/cni/net.d');
    const list = all[name];
    if (!list) throw new CorralError('INVALID_ARGUMENT', `unknown CNI network "${name}" (known: ${Object.keys(all).join(', ') || 'none'})`);
    return list;
  }

  private binary(type: string): string {
    for (const d of this.binDirs) if (existsSync(join(d, type))) return join(d, type);
    throw new CorralError('FAILED_PRECONDITION', `CNI plugin "${type}" not found in ${this.binDirs.join(', ')}`);
  }

  private cacheFile(network: string, containerId: string): string {
    return join(this.cacheDir, `${network}-${containerId}-${this.ifname}.json`);
  }

  private exec(command: 'ADD' | 'DEL', list: NetworkConfList, index: number, containerId: string, netns: string | undefined, spec: CniSpec, prev: unknown): Promise<PluginRun> {
    const type = list.plugins[index]!.type;
    return execPlugin(
      this.binary(type),
      { command, containerId, ifname: this.ifname, path: this.binDirs.join(':'), ...(netns ? { netns } : {}) },
      pluginInput(list, index, spec, prev),
      { timeoutMs: this.timeoutMs },
    );
  }

  async attach(containerId: string, netnsPath: string, spec: CniSpec): Promise<{ ipAddresses: string[] }> {
    const list = this.network(spec.network);
    let prev: unknown;
    for (let i = 0; i < list.plugins.length; i++) {
      const run = await this.exec('ADD', list, i, containerId, netnsPath, spec, prev);
      if (run.code !== 0) {
        const err = pluginError('ADD', list, list.plugins[i]!.type, run);
        // Undo what the chain did so far; a failed launch must not keep an address.
        await this.detach(containerId, netnsPath, spec).catch(() => undefined);
        throw err;
      }
      prev = run.json;
    }
    mkdirSync(this.cacheDir, { recursive: true });
    writeFileSync(this.cacheFile(list.name, containerId), JSON.stringify(prev));
    const ips = ((prev as { ips?: Array<{ address?: string }> } | undefined)?.ips ?? []).map((x) => String(x.address ?? '').split('/')[0]!).filter(Boolean);
    return { ipAddresses: ips };
  }

  async detach(containerId: string, netnsPath: string | undefined, spec: CniSpec): Promise<void> {
    const list = this.network(spec.network);
    const file = this.cacheFile(list.name, containerId);
    let prev: unknown;
    try {
      prev = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      prev = undefined;
    }
    const netns = netnsPath && existsSync(netnsPath) ? netnsPath : undefined;
    let firstError: CorralError | undefined;
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      // Chained reference plugins refuse DEL without a prevResult; corral's own DEL never needs one.
      if (i > 0 && prev === undefined) continue;
      try {
        const run = await this.exec('DEL', list, i, containerId, netns, spec, prev);
        if (run.code !== 0) firstError ??= pluginError('DEL', list, list.plugins[i]!.type, run);
      } catch (err) {
        firstError ??= new CorralError('INTERNAL', `CNI DEL on network ${list.name}: ${errorMessage(err)}`);
      }
    }
    if (firstError) throw firstError;
    rmSync(file, { force: true });
  }
}
