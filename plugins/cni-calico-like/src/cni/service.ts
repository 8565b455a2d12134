/**
 * The CNI operations as the node daemon performs them, one method per spec
 * command. Operations on one handle (container id + interface) are
 * serialised; different containers proceed in parallel.
 *
 * ADD takes the address (the same one again on a repeated ADD), wires the
 * container and answers. DEL removes the host veth and frees exactly that
 * handle's address, whether or not the namespace still exists. GC frees what
 * the runtime no longer lists. CHECK compares the kernel with prevResult.
 */
import { existsSync } from 'node:fs';
import type { Logger } from '../../../../common/log.js';
import type { Dataplane } from '../dataplane/wiring.js';
import type { Ipam } from '../ipam/allocator.js';
import { handleOf } from '../ipam/types.js';
import { hostIfnameFor } from '../../../../common/netkit/veth.js';
import { netnsInode } from '../../../../common/netkit/netns.js';
import { KeyedMutex } from '../../../../common/mutex.js';
import { validAttachments, type CniEnv, type NetConf } from './request.js';
import { buildResult, prevResultIps, type CniResult } from './result.js';
import { CniCode, CniError } from './spec.js';

interface CniServiceOptions {
  ipam: Ipam;
  dataplane: Dataplane;
  defaultPools: string[];
  defaultMtu: number;
  hostIfacePrefix: string;
  log: Logger;
  /** Fault injection (crash tests): pause between taking the address and wiring. */
  delayAfterAssignMs?: number;
  /** Whether the node can serve ADD right now, and whether routes are being exchanged. */
  health(): { ready: boolean; reason?: string; connectivity: boolean; connectivityReason?: string };
}

export class CniService {
  private readonly locks = new KeyedMutex();

  constructor(private readonly o: CniServiceOptions) {}

  /** Whether an operation on this handle is running (the reconciler keeps its hands off). */
  busy(containerId: string, ifname: string): boolean {
    return this.locks.busy(handleOf(containerId, ifname));
  }

  hostIfname(containerId: string, ifname: string): string {
    return hostIfnameFor(this.o.hostIfacePrefix, containerId, ifname);
  }

  async add(env: CniEnv, conf: NetConf): Promise<CniResult> {
    const containerId = env.containerId!;
    const ifname = env.ifname!;
    const netns = env.netns!;
    return this.locks.run(handleOf(containerId, ifname), async () => {
      if (!existsSync(netns)) throw new CniError(CniCode.INVALID_ENV, 'invalid environment variables', `CNI_NETNS ${netns} does not exist`);
      const hostIfname = this.hostIfname(containerId, ifname);
      const had = this.o.ipam.get(containerId, ifname);
      const a =
        had ??
        (await this.o.ipam.assign({
          containerId,
          ifname,
          network: conf.name,
          netns,
          netnsInode: netnsInode(netns) ?? 0,
          pools: conf.pools ?? this.o.defaultPools,
          hostIfname,
        }));
      if (!had && this.o.delayAfterAssignMs) await new Promise((r) => setTimeout(r, this.o.delayAfterAssignMs));
      try {
        const wired = await this.o.dataplane.wire({ netns, containerIfname: ifname, hostIfname, ip: a.ip, mtu: conf.mtu ?? this.o.defaultMtu });
        return buildResult(conf.cniVersion, wired, a.ip, netns);
      } catch (err) {
        // A failed first ADD must not keep the address: the runtime may never call DEL.
        if (!had) {
          await this.o.dataplane.unwire(hostIfname, { netns, ifname }).catch(() => false);
          await this.o.ipam.release(containerId, ifname).catch((e: unknown) => this.o.log.error({ err: e }, 'could not free the address of a failed ADD'));
        }
        throw err;
      }
    });
  }

  async del(env: CniEnv): Promise<void> {
    const containerId = env.containerId!;
    const ifname = env.ifname!;
    await this.locks.run(handleOf(containerId, ifname), async () => {
      const a = this.o.ipam.get(containerId, ifname);
      await this.o.dataplane.unwire(a?.hostIfname ?? this.hostIfname(containerId, ifname), { netns: env.netns, ifname });
      await this.o.ipam.release(containerId, ifname);
    });
  }

  async check(env: CniEnv, conf: NetConf): Promise<void> {
    const containerId = env.containerId!;
    const ifname = env.ifname!;
    if (!conf.prevResult) throw new CniError(CniCode.INVALID_CONFIG, 'invalid network configuration', 'CHECK needs prevResult');
    await this.locks.run(handleOf(containerId, ifname), async () => {
      const a = this.o.ipam.get(containerId, ifname);
      if (!a) throw new CniError(CniCode.CHECK_FAILED, 'container network does not match', `no address is assigned to ${containerId}/${ifname}`);
      const prev = prevResultIps(conf.prevResult);
      if (!prev.includes(`${a.ip}/32`)) {
        throw new CniError(CniCode.CHECK_FAILED, 'container network does not match', `prevResult lists ${prev.join(', ') || 'no address'}, IPAM holds ${a.ip}/32`);
      }
      const problems = await this.o.dataplane.check({ netns: env.netns!, containerIfname: ifname, hostIfname: a.hostIfname, ip: a.ip, mtu: conf.mtu ?? this.o.defaultMtu });
      if (problems.length) throw new CniError(CniCode.CHECK_FAILED, 'container network does not match', problems.join('; '));
    });
  }

  /** Frees every attachment of this network that the runtime does not list as valid. */
  async gc(conf: NetConf): Promise<{ freed: string[] }> {
    const valid = new Set(validAttachments(conf).map((v) => handleOf(v.containerID, v.ifname)));
    const freed: string[] = [];
    for (const a of this.o.ipam.allocations()) {
      if (a.network !== conf.name || valid.has(a.handle)) continue;
      await this.locks.run(a.handle, async () => {
        if (!this.o.ipam.get(a.containerId, a.ifname)) return;
        await this.o.dataplane.unwire(a.hostIfname, { netns: a.netns, ifname: a.ifname });
        await this.o.ipam.release(a.containerId, a.ifname);
        freed.push(a.handle);
      });
    }
    if (freed.length) this.o.log.info({ network: conf.name, freed }, 'CNI GC freed stale attachments');
    return { freed };
  }

  health(): ReturnType<CniServiceOptions['health']> {
    return this.o.health();
  }

  status(): void {
    const h = this.o.health();
    if (!h.ready) throw new CniError(CniCode.NOT_AVAILABLE, 'the plugin is not available', h.reason);
    if (!h.connectivity) throw new CniError(CniCode.LIMITED_CONNECTIVITY, 'existing containers may have limited connectivity', h.connectivityReason);
  }

  /** Tears down and frees one handle (the leak reconciler's way out). */
  async reclaim(containerId: string, ifname: string, stillDead: () => boolean): Promise<boolean> {
    return this.locks.run(handleOf(containerId, ifname), async () => {
      const a = this.o.ipam.get(containerId, ifname);
      if (!a || !stillDead()) return false;
      await this.o.dataplane.unwire(a.hostIfname, { netns: a.netns, ifname: a.ifname });
      await this.o.ipam.release(containerId, ifname);
      return true;
    });
  }
}
