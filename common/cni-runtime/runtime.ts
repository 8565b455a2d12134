/**
 * A CNI runtime (libcni's role, CNI spec 1.x): runs a network's plugin chain
 * and keeps the result cache.
 *
 *  - ADD runs the plugins in order; each gets the previous plugin's result
 *    as `prevResult`; the final result is cached and returned.
 *  - DEL runs them in reverse, each with the cached result as `prevResult`.
 *  - CHECK (config version ≥ 0.4.0, unless `disableCheck`) runs them in
 *    order with the cached result; the first failure is the answer.
 *  - GC (≥ 1.1.0, unless `disableGC`) first DELs every cached attachment of
 *    the network that is not among the valid ones, then sends GC with
 *    `cni.dev/valid-attachments` to every plugin.
 *  - STATUS (≥ 1.1.0) asks every plugin in order; the first failure is the answer.
 *
 * Each plugin gets the list's `name` and `cniVersion` injected, and a
 * `runtimeConfig` holding exactly the capability args it declares in its
 * `capabilities`. A plugin is found by its `type` in the plugin directories,
 * which are also its CNI_PATH.
 *
 * Where it differs from libcni, on purpose, for DEL: every plugin is asked
 * even after one fails (each releases what it holds; the first failure is
 * reported and the cache entry kept so a retried DEL still has prevResult);
 * and a chained plugin (not the first) is skipped when nothing is cached,
 * since reference plugins such as portmap refuse a DEL without prevResult.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, errorMessage, type ErrorCode } from '../../contracts/errors.js';
import { execPlugin, type PluginRun } from './exec.js';
import { ResultCache, type CachedAttachment } from './cache.js';
import type { NetworkConfList } from './conf.js';

interface RuntimeOptions {
  /** Plugin directories, searched in order; joined, they are CNI_PATH. */
  binDirs: string[];
  /** Where results are cached (libcni's default is /var/lib/cni). */
  cacheDir: string;
  /** Per plugin exec (default 60 s). */
  timeoutMs?: number;
  /** Run the plugins inside this named network namespace (the "host" of a lab or test). */
  hostNetns?: string;
  /** Extra environment for every plugin. */
  env?: Record<string, string | undefined>;
}

/** One attachment: what libcni calls the RuntimeConf. */
export interface Attachment {
  containerId: string;
  ifname: string;
  /** Path of the container's network namespace; DEL may go without it. */
  netns?: string;
  /** CNI_ARGS as key/value pairs. */
  args?: Array<[string, string]>;
  /** Capability args (portMappings, bandwidth, …); each plugin sees those it declares. */
  capabilityArgs?: Record<string, unknown>;
}

interface GcAttachment {
  containerID: string;
  ifname: string;
}

const CNI_CODE_TO_ERROR: Record<number, ErrorCode> = { 4: 'INVALID_ARGUMENT', 7: 'INVALID_ARGUMENT', 11: 'UNAVAILABLE', 100: 'RESOURCE_EXHAUSTED' };

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Numeric comparison of dotted versions ("0.4.0" < "1.0.0" < "1.1.0"). */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** The configuration plugin `index` of the chain receives on stdin. */
export function pluginConfig(list: NetworkConfList, index: number, o: { prevResult?: unknown; capabilityArgs?: Record<string, unknown> } = {}): Record<string, unknown> {
  const plugin = list.plugins[index]!;
  const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  if (o.prevResult !== undefined) conf.prevResult = o.prevResult;
  const rc: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
    if (on && o.capabilityArgs && cap in o.capabilityArgs) rc[cap] = o.capabilityArgs[cap];
  }
  if (Object.keys(rc).length) conf.runtimeConfig = rc;
  return conf;
}

/** A failed plugin as a CorralError: the plugin's own CNI error message and code when it gave one. */
function pluginError(command: string, network: string, type: string, run: PluginRun): CorralError {
  const e = (run.json ?? {}) as { code?: number; msg?: string; details?: string };
  const text = e.msg ? `${e.msg}${e.details ? `: ${e.details}` : ''} (CNI code ${e.code})` : (run.stderr || run.stdout || `exit ${run.code}`).trim().slice(0, 500);
  return new CorralError((e.code !== undefined && CNI_CODE_TO_ERROR[e.code]) || 'INTERNAL', `CNI ${command} on network ${network} failed in plugin ${type}: ${text}`);
}

export class CniRuntime {
  readonly cache: ResultCache;

  constructor(private readonly o: RuntimeOptions) {
    this.cache = new ResultCache(o.cacheDir);
  }

  /** The plugin binary for `type`: the first plugin directory that has it. */
  findPlugin(type: string): string {
    for (const d of this.o.binDirs) if (existsSync(join(d, type))) return join(d, type);
    throw new CorralError('FAILED_PRECONDITION', `CNI plugin "${type}" not found in ${this.o.binDirs.join(', ')}`);
  }

  private validate(list: NetworkConfList, a: Attachment): void {
    // The spec's rules for these names; they also key the cache file.
    if (!ID_RE.test(a.containerId)) throw new CorralError('INVALID_ARGUMENT', `bad CNI container id "${a.containerId}" (letters, digits, _ . -, not starting with a symbol)`);
    if (!ID_RE.test(list.name)) throw new CorralError('INVALID_ARGUMENT', `bad CNI network name "${list.name}"`);
    if (!a.ifname || a.ifname.length > 15 || /[/:\s]/.test(a.ifname) || a.ifname === '.' || a.ifname === '..') {
      throw new CorralError('INVALID_ARGUMENT', `bad interface name "${a.ifname}" (1-15 characters, no / : or spaces)`);
    }
  }

  private async exec(command: string, list: NetworkConfList, index: number, a: Attachment | undefined, conf: Record<string, unknown>): Promise<PluginRun> {
    const type = list.plugins[index]!.type;
    return execPlugin(
      this.findPlugin(type),
      {
        command,
        path: this.o.binDirs.join(':'),
        ...(a ? { containerId: a.containerId, ifname: a.ifname } : {}),
        ...(a?.netns ? { netns: a.netns } : {}),
        ...(a?.args?.length ? { args: a.args.map(([k, v]) => `${k}=${v}`).join(';') } : {}),
        ...(this.o.env ? { env: this.o.env } : {}),
      },
      conf,
      { timeoutMs: this.o.timeoutMs ?? 60_000, ...(this.o.hostNetns ? { hostNetns: this.o.hostNetns } : {}) },
    );
  }

  private key(list: NetworkConfList, a: Attachment) {
    return { network: list.name, containerId: a.containerId, ifname: a.ifname };
  }

  /** The result the last ADD of this attachment left in the cache. */
  cachedResult(list: NetworkConfList, a: Attachment): unknown {
    return this.cache.get(this.key(list, a))?.result;
  }

  /** ADD through the chain; resolves with the final result (also cached). The caller undoes a failed ADD with `del`. */
  async add(list: NetworkConfList, a: Attachment): Promise<unknown> {
    this.validate(list, a);
    let result: unknown;
    for (let i = 0; i < list.plugins.length; i++) {
      const type = list.plugins[i]!.type;
      const run = await this.exec('ADD', list, i, a, pluginConfig(list, i, { prevResult: result, ...(a.capabilityArgs ? { capabilityArgs: a.capabilityArgs } : {}) }));
      if (run.code !== 0) throw pluginError('ADD', list.name, type, run);
      if (typeof run.json !== 'object' || run.json === null) {
        throw new CorralError('INTERNAL', `CNI ADD on network ${list.name}: plugin ${type} succeeded without a JSON result: ${run.stdout.trim().slice(0, 200) || '(no output)'}`);
      }
      result = run.json;
    }
    this.cache.put({
      containerId: a.containerId,
      ifName: a.ifname,
      networkName: list.name,
      config: list,
      result,
      ...(a.netns ? { netns: a.netns } : {}),
      ...(a.args ? { cniArgs: a.args } : {}),
      ...(a.capabilityArgs ? { capabilityArgs: a.capabilityArgs } : {}),
    });
    return result;
  }

  /** DEL through the chain in reverse (see the module comment); the cache entry goes once every plugin succeeded. */
  async del(list: NetworkConfList, a: Attachment): Promise<void> {
    this.validate(list, a);
    let cached: CachedAttachment | undefined;
    if (versionAtLeast(list.cniVersion, '0.4.0')) {
      try {
        cached = this.cache.get(this.key(list, a));
      } catch {
        this.cache.remove(this.key(list, a)); // unreadable: as libcni, drop it and go on without
      }
    }
    const prevResult = cached?.result;
    // Capability args of the ADD, when the caller does not repeat them (libcni keeps them for DEL too).
    const capabilityArgs = a.capabilityArgs ?? cached?.capabilityArgs;
    let firstError: CorralError | undefined;
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      if (i > 0 && prevResult === undefined) continue;
      const type = list.plugins[i]!.type;
      try {
        const run = await this.exec('DEL', list, i, a, pluginConfig(list, i, { prevResult, ...(capabilityArgs ? { capabilityArgs } : {}) }));
        if (run.code !== 0) firstError ??= pluginError('DEL', list.name, type, run);
      } catch (err) {
        firstError ??= err instanceof CorralError ? err : new CorralError('INTERNAL', `CNI DEL on network ${list.name} in plugin ${type}: ${errorMessage(err)}`);
      }
    }
    if (firstError) throw firstError;
    this.cache.remove(this.key(list, a));
  }

  /** CHECK through the chain with the cached result; throws the first failure. */
  async check(list: NetworkConfList, a: Attachment): Promise<void> {
    this.validate(list, a);
    if (!versionAtLeast(list.cniVersion, '0.4.0'))
      throw new CorralError('FAILED_PRECONDITION', `CNI network ${list.name}: configuration version ${list.cniVersion} does not support the CHECK command`);
    if (list.disableCheck) return;
    const cached = this.cache.get(this.key(list, a));
    const capabilityArgs = a.capabilityArgs ?? cached?.capabilityArgs;
    for (let i = 0; i < list.plugins.length; i++) {
      const run = await this.exec('CHECK', list, i, a, pluginConfig(list, i, { prevResult: cached?.result, ...(capabilityArgs ? { capabilityArgs } : {}) }));
      if (run.code !== 0) throw pluginError('CHECK', list.name, list.plugins[i]!.type, run);
    }
  }

  /**
   * GC: DEL for every cached attachment of this network not in `valid`, then
   * (config ≥ 1.1.0) GC to every plugin with the valid attachments. Every
   * step is tried; the failures are reported together.
   */
  async gc(list: NetworkConfList, valid: GcAttachment[] = []): Promise<{ deleted: Array<{ containerId: string; ifname: string }> }> {
    const deleted: Array<{ containerId: string; ifname: string }> = [];
    const errors: string[] = [];
    if (list.disableGC) return { deleted };
    const keep = new Set(valid.map((v) => `${v.containerID}\0${v.ifname}`));
    for (const e of this.cache.list()) {
      if (e.networkName !== list.name || keep.has(`${e.containerId}\0${e.ifName}`)) continue;
      try {
        await this.del(list, {
          containerId: e.containerId,
          ifname: e.ifName,
          ...(e.netns && existsSync(e.netns) ? { netns: e.netns } : {}),
          ...(e.cniArgs ? { args: e.cniArgs } : {}),
          ...(e.capabilityArgs ? { capabilityArgs: e.capabilityArgs } : {}),
        });
        deleted.push({ containerId: e.containerId, ifname: e.ifName });
      } catch (err) {
        errors.push(`stale attachment ${e.containerId} ${e.ifName}: ${errorMessage(err)}`);
      }
    }
    if (versionAtLeast(list.cniVersion, '1.1.0')) {
      for (let i = 0; i < list.plugins.length; i++) {
        const type = list.plugins[i]!.type;
        try {
          const run = await this.exec('GC', list, i, undefined, { ...pluginConfig(list, i), 'cni.dev/valid-attachments': valid });
          if (run.code !== 0) errors.push(pluginError('GC', list.name, type, run).message);
        } catch (err) {
          errors.push(`GC of plugin ${type}: ${errorMessage(err)}`);
        }
      }
    }
    if (errors.length) throw new CorralError('INTERNAL', `CNI GC on network ${list.name}: ${errors.join('; ')}`);
    return { deleted };
  }

  /** STATUS (config ≥ 1.1.0; older versions have no STATUS and count as ready). Throws the first plugin's failure. */
  async status(list: NetworkConfList): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '1.1.0')) return;
    for (let i = 0; i < list.plugins.length; i++) {
      const run = await this.exec('STATUS', list, i, undefined, pluginConfig(list, i));
      if (run.code !== 0) throw pluginError('STATUS', list.name, list.plugins[i]!.type, run);
    }
  }
}
