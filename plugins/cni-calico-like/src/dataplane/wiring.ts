/**
 * The Calico wiring of one container, over netlink:
 *  - a veth pair, the peer created directly in the container's namespace;
 *  - inside: the address as a /32, `169.254.1.1 dev eth0 scope link` and
 *    `default via 169.254.1.1` (no subnet, so no ARP for peers: every packet
 *    goes to the host);
 *  - outside: the host end up with proxy_arp=1 (it answers for 169.254.1.1)
 *    and neigh proxy_delay=0 (the default holds the first reply up to 800 ms),
 *    forwarding on, and a /32 route to the container through it;
 *  - a permanent neighbour entry for 169.254.1.1 in the container, so the
 *    first packet does not wait for ARP and the host needs no default route.
 * Every step is idempotent; `check` reports what no longer matches.
 */
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CorralError } from '../../../../contracts/errors.js';
import { Rtnl, ensureVeth, parseIp, RT_SCOPE, IFF_UP, type LinkReaper } from '../../../../common/netkit/index.js';

export const GATEWAY = '169.254.1.1';

interface WireRequest {
  netns: string;
  containerIfname: string;
  hostIfname: string;
  ip: string;
  mtu: number;
}

export interface Wired {
  hostIfname: string;
  hostMac: string;
  containerIfname: string;
  containerMac: string;
  mtu: number;
}

export class Dataplane {
  constructor(
    private readonly host: Rtnl,
    private readonly routeProtocol: number,
    private readonly reaper: LinkReaper,
  ) {}

  async wire(req: WireRequest): Promise<Wired> {
    const ip = parseIp(req.ip);
    const gw = parseIp(GATEWAY);
    const container = Rtnl.open(req.netns);
    try {
      const ends = await ensureVeth(this.host, container, { hostIfname: req.hostIfname, containerIfname: req.containerIfname, netnsPath: req.netns, mtu: req.mtu });
      const c = ends.container.index;
      await container.setLink(c, { up: true });
      await container.addAddress(c, ip, 32);
      await container.replaceRoute({ dst: gw, dstLen: 32, oif: c, scope: RT_SCOPE.LINK });
      await container.replaceRoute({ dst: 0, dstLen: 0, gateway: gw, oif: c });
      // The gateway's MAC up front: the first packet needs no ARP round trip (proxy ARP stays as the fallback).
      await container.setNeighbor(c, gw, ends.host.mac);
      const h = ends.host.index;
      await this.host.setLink(h, { up: true, proxyArp: true, forwarding: true });
      await this.host.setProxyDelay(h, 0);
      await this.host.replaceRoute({ dst: ip, dstLen: 32, oif: h, scope: RT_SCOPE.LINK, protocol: this.routeProtocol });
      return { hostIfname: ends.host.name, hostMac: ends.host.mac, containerIfname: ends.container.name, containerMac: ends.container.mac, mtu: req.mtu };
    } finally {
      container.close();
    }
  }

  /**
   * Takes the pair out of service at once and leaves its deletion to the
   * reaper: the container end (if its namespace still exists) is downed and
   * renamed so the interface name is free again when DEL returns, the host
   * end is retired (its /32 route goes with it). Safe when the namespace is
   * gone (the pair is then already gone too).
   */
  async unwire(hostIfname: string, container?: { netns?: string | undefined; ifname: string }): Promise<boolean> {
    const h = await this.host.link(hostIfname);
    if (!h) return false;
    if (container?.netns && existsSync(container.netns)) {
      try {
        const c = Rtnl.open(container.netns);
        try {
          const l = await c.link(container.ifname);
          if (l && l.kind === 'veth' && l.index === h.peerIndex) {
            await c.setLink(l.index, { up: false });
            await c.setLink(l.index, { name: `retired${randomBytes(4).toString('hex')}` });
          }
        } finally {
          c.close();
        }
      } catch {
        // The namespace is going away under us: its end goes with it.
      }
    }
    return this.reaper.retire(hostIfname);
  }

  /** What differs from the wiring of `req`; empty when everything is in place. */
  async check(req: WireRequest): Promise<string[]> {
    const problems: string[] = [];
    const ip = parseIp(req.ip);
    const gw = parseIp(GATEWAY);
    let container: Rtnl;
    try {
      container = Rtnl.open(req.netns);
    } catch (err) {
      if (err instanceof CorralError) return [`network namespace ${req.netns} is not usable: ${err.message}`];
      throw err;
    }
    try {
      const c = await container.link(req.containerIfname);
      if (!c) problems.push(`interface ${req.containerIfname} is missing in ${req.netns}`);
      else {
        if (c.kind !== 'veth') problems.push(`${req.containerIfname} is not a veth`);
        if (!(c.flags & IFF_UP)) problems.push(`${req.containerIfname} is down`);
        if (c.mtu !== req.mtu) problems.push(`${req.containerIfname} has MTU ${c.mtu}, expected ${req.mtu}`);
        const addrs = await container.addresses(c.index);
        if (!addrs.some((a) => a.address === ip && a.prefixLen === 32)) problems.push(`${req.containerIfname} lacks ${req.ip}/32`);
        const routes = await container.routes((r) => r.table === 254);
        if (!routes.some((r) => r.dstLen === 32 && r.dst === gw && r.oif === c.index)) problems.push(`route to ${GATEWAY} via ${req.containerIfname} is missing`);
        if (!routes.some((r) => r.dstLen === 0 && r.gateway === gw)) problems.push(`default route via ${GATEWAY} is missing`);
      }
    } finally {
      container.close();
    }
    const h = await this.host.link(req.hostIfname);
    if (!h) problems.push(`host interface ${req.hostIfname} is missing`);
    else {
      if (!(h.flags & IFF_UP)) problems.push(`host interface ${req.hostIfname} is down`);
      if (readSysctl(`net/ipv4/conf/${req.hostIfname}/proxy_arp`) !== '1') problems.push(`proxy_arp is off on ${req.hostIfname}`);
      const routes = await this.host.routes((r) => r.dstLen === 32 && r.dst === ip && r.table === 254);
      if (!routes.some((r) => r.oif === h.index)) problems.push(`host route to ${req.ip} via ${req.hostIfname} is missing`);
    }
    return problems;
  }
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${path}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
