/**
 * The kernel routes the daemon owns, marked with its own protocol number so
 * they can be told from everybody else's (and found again after a restart):
 *  - a blackhole for every block this host owns (addresses of the block not
 *    in use here are dropped instead of bouncing back to the network);
 *  - one route per prefix learned over BGP, via the announcing peer.
 * Routes of other protocols are never touched.
 */
import type { Logger } from '../../../../common/log.js';
import { errorMessage } from '../../../../contracts/errors.js';
import { formatCidr, formatIp, parseCidr, parseIp } from '../../../../common/netkit/ipv4.js';
import { RTN, type Rtnl } from '../../../../common/netkit/index.js';

export class RouteProgrammer {
  private readonly blackholes = new Set<string>();
  private readonly learned = new Map<string, string>();

  constructor(
    private readonly rtnl: Rtnl,
    private readonly protocol: number,
    private readonly log: Logger,
  ) {}

  /** Routes of our protocol already in the kernel (left by a previous run). */
  async existing(): Promise<{ blackholes: string[]; learned: Map<string, string> }> {
    const routes = await this.rtnl.routes((r) => r.protocol === this.protocol && r.table === 254);
    const learned = new Map<string, string>();
    const blackholes: string[] = [];
    for (const r of routes) {
      const prefix = formatCidr({ base: r.dst, prefix: r.dstLen });
      if (r.type === RTN.BLACKHOLE) blackholes.push(prefix);
      else if (r.gateway !== undefined) learned.set(prefix, formatIp(r.gateway));
    }
    return { blackholes, learned };
  }

  /** Makes the blackholes exactly `blocks`. */
  async syncBlackholes(blocks: Iterable<string>): Promise<void> {
    const want = new Set(blocks);
    const { blackholes: present } = await this.existing();
    for (const b of want) {
      const c = parseCidr(b);
      await this.rtnl.blackhole(c.base, c.prefix, this.protocol);
      this.blackholes.add(b);
    }
    for (const b of present) {
      if (want.has(b)) continue;
      const c = parseCidr(b);
      await this.rtnl.deleteRoute({ dst: c.base, dstLen: c.prefix, type: RTN.BLACKHOLE, protocol: this.protocol });
      this.blackholes.delete(b);
    }
  }

  /** Routes `prefix` via `nexthop`, or removes our route to it when nexthop is undefined. */
  async setLearned(prefix: string, nexthop: string | undefined): Promise<void> {
    const c = parseCidr(prefix);
    try {
      if (nexthop === undefined) {
        this.learned.delete(prefix);
        await this.rtnl.deleteRoute({ dst: c.base, dstLen: c.prefix, type: RTN.UNICAST, protocol: this.protocol });
        return;
      }
      if (this.learned.get(prefix) === nexthop) return;
      await this.rtnl.replaceRoute({ dst: c.base, dstLen: c.prefix, gateway: parseIp(nexthop), protocol: this.protocol });
      this.learned.set(prefix, nexthop);
    } catch (err) {
      // A next hop that is not (yet) reachable is reported and retried on the next update.
      this.learned.delete(prefix);
      this.log.warn({ prefix, nexthop, err: errorMessage(err) }, 'could not program a learned route');
    }
  }

  /** Removes learned routes of our protocol that are not in `keep` (stale ones from a previous run). */
  async sweepLearned(keep: ReadonlySet<string>): Promise<string[]> {
    const { learned } = await this.existing();
    const removed: string[] = [];
    for (const prefix of learned.keys()) {
      if (keep.has(prefix)) continue;
      await this.setLearned(prefix, undefined);
      removed.push(prefix);
    }
    return removed;
  }

  learnedRoutes(): Map<string, string> {
    return new Map(this.learned);
  }
}
