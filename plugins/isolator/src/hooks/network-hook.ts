/**
 * NetworkHook over the CNI runtime (common/cni-runtime): the network a task
 * names is a CNI network configuration (a conflist, e.g. the one `corral cni
 * install` writes, whose first plugin is the corral shim that forwards to the
 * node daemon). The runtime runs the chain as libcni does (ADD in order with
 * prevResult, DEL in reverse with the cached result) and caches ADD results on
 * disk, so a DEL after an agent restart still hands chained plugins their
 * prevResult; the daemon sees the same calls from the isolator as from any
 * other runtime. This hook adds what a task needs: its port mappings as the
 * `portMappings` capability, the addresses of the result, and undoing a
 * failed ADD so a failed launch keeps no address. DEL works without the
 * namespace (the daemon still frees the IP).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NetworkHook, NetworkSpec } from '../../../../contracts/containerizer.js';
import { CniRuntime, loadNetwork, toConfList, unknownNetwork, type Attachment, type NetworkConfList } from '../../../../common/cni-runtime/index.js';
import { NATIVE_BUILD_DIR } from '../../../../common/sys/paths.js';

type CniSpec = Extract<NetworkSpec, { mode: 'cni' }>;

interface CniHookOptions {
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

export class CniNetworkHook implements NetworkHook {
  private readonly runtime: CniRuntime;
  private readonly ifname: string;
  private readonly networks: Record<string, NetworkConfList> | undefined;

  constructor(private readonly opts: CniHookOptions = {}) {
    this.runtime = new CniRuntime({
      binDirs: opts.binDirs ?? [NATIVE_BUILD_DIR(), '/opt/cni/bin', '/usr/lib/cni'],
      cacheDir: opts.cacheDir ?? '/var/lib/corral/cni-results',
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
    this.ifname = opts.ifname ?? 'eth0';
    this.networks = opts.networks ? Object.fromEntries(Object.entries(opts.networks).map(([k, v]) => [k, toConfList(v, `CNI network ${k}`)])) : undefined;
  }

  private network(name: string): NetworkConfList {
    if (this.networks) {
      const list = this.networks[name];
      if (!list) throw unknownNetwork(name, Object.keys(this.networks));
      return list;
    }
    // The directory is read each time: `corral cni install` may add a network while the agent runs.
    return loadNetwork(this.opts.confDir ?? '/etc/cni/net.d', name);
  }

  private attachment(containerId: string, netns: string | undefined, spec: CniSpec): Attachment {
    return {
      containerId,
      ifname: this.ifname,
      ...(netns ? { netns } : {}),
      ...(spec.portMappings?.length ? { capabilityArgs: { portMappings: spec.portMappings } } : {}),
    };
  }

  async attach(containerId: string, netnsPath: string, spec: CniSpec): Promise<{ ipAddresses: string[] }> {
    const list = this.network(spec.network);
    let result: unknown;
    try {
      result = await this.runtime.add(list, this.attachment(containerId, netnsPath, spec));
    } catch (err) {
      // Undo what the chain did so far; a failed launch must not keep an address.
      await this.detach(containerId, netnsPath, spec).catch(() => undefined);
      throw err;
    }
    const ips = ((result as { ips?: Array<{ address?: string }> } | undefined)?.ips ?? []).map((x) => String(x.address ?? '').split('/')[0]!).filter(Boolean);
    return { ipAddresses: ips };
  }

  async detach(containerId: string, netnsPath: string | undefined, spec: CniSpec): Promise<void> {
    const list = this.network(spec.network);
    const netns = netnsPath && existsSync(netnsPath) ? netnsPath : undefined;
    const a = this.attachment(containerId, netns, spec);
    this.adoptOldCacheEntry(list, a);
    await this.runtime.del(list, a);
  }

  /**
   * Agents before the kit's runtime kept a bare result at
   * CACHE/NETWORK-CONTAINER-IFNAME.json; a task attached then still gets its
   * prevResult on DEL: the old file moves into the runtime's cache.
   */
  private adoptOldCacheEntry(list: NetworkConfList, a: Attachment): void {
    const old = join(this.runtime.cache.dir, `${list.name}-${a.containerId}-${a.ifname}.json`);
    if (!existsSync(old)) return;
    try {
      if (this.runtime.cachedResult(list, a) === undefined) {
        this.runtime.cache.put({ networkName: list.name, containerId: a.containerId, ifName: a.ifname, result: JSON.parse(readFileSync(old, 'utf8')) as unknown });
      }
      rmSync(old, { force: true });
    } catch {
      // an unreadable old entry: DEL goes on without it, as with no entry at all
    }
  }
}
