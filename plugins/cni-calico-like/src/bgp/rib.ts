/**
 * What the peers announce, per peer, and the one next hop the kernel should
 * use for each prefix. Pure data: the speaker feeds it parsed exabgp events
 * and applies the changes it returns.
 *
 * Imports are filtered: only prefixes inside a configured pool (a peer that
 * exports its connected underlay must not overwrite the host's own routes),
 * never this host's own blocks or addresses, never a next hop that is us.
 * When a peer's session goes down all its routes go with it — exabgp does
 * not withdraw them on our behalf.
 */
import { covers, formatCidr, isIp, parseCidr, type Cidr } from '../../../../common/netkit/ipv4.js';

export type RouteChanges = Map<string, string | undefined>;

interface RibFilter {
  pools: Cidr[];
  /** Prefixes this host originates (own blocks, borrowed /32s). */
  own(): ReadonlySet<string>;
  localAddress: string;
}

export class Rib {
  /** peer -> prefix -> next hop */
  private readonly byPeer = new Map<string, Map<string, string>>();
  /** Routes of a peer whose session restarted, not yet confirmed by the new session. */
  private readonly stale = new Map<string, Set<string>>();
  private readonly installed = new Map<string, string>();
  rejected = 0;

  constructor(private readonly filter: RibFilter) {}

  accepts(prefix: string, nexthop: string): boolean {
    let c: Cidr;
    try {
      c = parseCidr(prefix);
    } catch {
      return false;
    }
    if (!isIp(nexthop) || nexthop === this.filter.localAddress) return false;
    if (!this.filter.pools.some((p) => covers(p, c))) return false;
    return !this.filter.own().has(formatCidr(c));
  }

  announce(peer: string, prefix: string, nexthop: string): RouteChanges {
    if (!this.accepts(prefix, nexthop)) {
      this.rejected++;
      return new Map();
    }
    let routes = this.byPeer.get(peer);
    if (!routes) this.byPeer.set(peer, (routes = new Map()));
    routes.set(prefix, nexthop);
    this.stale.get(peer)?.delete(prefix);
    return this.recompute([prefix]);
  }

  /**
   * A peer's session (re)started: keep its routes, but drop the ones the new
   * session does not announce again by the time `sweepStale` runs (after its
   * End-of-RIB or a grace period). Avoids a flap on every restart.
   */
  markStale(peer: string): void {
    const routes = this.byPeer.get(peer);
    if (routes?.size) this.stale.set(peer, new Set(routes.keys()));
  }

  sweepStale(peer: string): RouteChanges {
    const gone = this.stale.get(peer);
    this.stale.delete(peer);
    const routes = this.byPeer.get(peer);
    if (!gone?.size || !routes) return new Map();
    for (const p of gone) routes.delete(p);
    return this.recompute([...gone]);
  }

  withdraw(peer: string, prefix: string): RouteChanges {
    if (!this.byPeer.get(peer)?.delete(prefix)) return new Map();
    return this.recompute([prefix]);
  }

  peerDown(peer: string): RouteChanges {
    const routes = this.byPeer.get(peer);
    this.stale.delete(peer);
    if (!routes) return new Map();
    this.byPeer.delete(peer);
    return this.recompute([...routes.keys()]);
  }

  /** Re-evaluates everything (after this host's own prefixes changed). */
  refilter(): RouteChanges {
    const all = new Set<string>();
    for (const [, routes] of this.byPeer) {
      for (const [prefix, nh] of routes) {
        if (!this.accepts(prefix, nh)) routes.delete(prefix);
        all.add(prefix);
      }
    }
    for (const p of this.installed.keys()) all.add(p);
    return this.recompute([...all]);
  }

  /** Best next hop: a route straight from its originator beats a reflected copy; then the lowest address. */
  private best(prefix: string): string | undefined {
    let bestHop: string | undefined;
    let bestDirect = false;
    for (const [peer, routes] of this.byPeer) {
      const nh = routes.get(prefix);
      if (!nh) continue;
      const direct = nh === peer;
      if (bestHop === undefined || (direct && !bestDirect) || (direct === bestDirect && nh < bestHop)) {
        bestHop = nh;
        bestDirect = direct;
      }
    }
    return bestHop;
  }

  private recompute(prefixes: string[]): RouteChanges {
    const changes: RouteChanges = new Map();
    for (const prefix of prefixes) {
      const want = this.best(prefix);
      if (this.installed.get(prefix) === want) continue;
      if (want === undefined) this.installed.delete(prefix);
      else this.installed.set(prefix, want);
      changes.set(prefix, want);
    }
    return changes;
  }

  routes(): Map<string, string> {
    return new Map(this.installed);
  }

  peers(): string[] {
    return [...this.byPeer.keys()];
  }
}
