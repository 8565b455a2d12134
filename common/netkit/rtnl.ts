/**
 * A typed rtnetlink client for one network namespace: links, veth pairs,
 * addresses, routes, per-device IPv4 settings and neighbour parameters, each
 * one netlink round trip (~0.05 ms) instead of an `ip` exec (~2 ms).
 *
 * Requests on one socket are serialised: the `netlink` package groups
 * multipart (dump) replies without sequence checks, so a dump must never
 * overlap another request on the same socket.
 */
import { createNetlink, Protocol, type NetlinkSocket } from 'netlink';
import { CorralError } from '../../contracts/errors.js';
import { inNetns } from './netns.js';
import {
  RTM,
  NLM_F,
  NLMSG_ERROR,
  NLMSG_DONE,
  IPV4_DEVCONF,
  RTN,
  RT_SCOPE_NOWHERE,
  encodeVeth,
  encodeSetLink,
  encodeNeighbor,
  encodeLinkGroup,
  encodeLinkByName,
  encodeLinkByIndex,
  encodeAddress,
  encodeRoute,
  encodeProxyDelay,
  encodeDump,
  parseLink,
  parseAddr,
  parseRoute,
  type LinkInfo,
  type AddrInfo,
  type RouteInfo,
  type RouteSpec,
  type VethSpec,
} from './rtnl-codec.js';

export type { LinkInfo };

/** A kernel refusal, with its errno name (EEXIST, ENODEV, ESRCH…) for callers to branch on. */
export class NetlinkError extends CorralError {
  constructor(
    readonly errno: string,
    what: string,
  ) {
    super(errno === 'EPERM' || errno === 'EACCES' ? 'FORBIDDEN' : 'INTERNAL', `${what}: ${errno}`, { errno });
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  13: 'EACCES',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  22: 'EINVAL',
  95: 'EOPNOTSUPP',
  101: 'ENETUNREACH',
  105: 'ENOBUFS',
};

const TIMEOUT_MS = 5_000;

export class Rtnl {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly sock: NetlinkSocket) {}

  /** A socket in this thread's namespace, or in `nsPath`'s when given. */
  static open(nsPath?: string): Rtnl {
    const make = (): NetlinkSocket => createNetlink(Protocol.ROUTE);
    return new Rtnl(nsPath ? inNetns(nsPath, make) : make());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }

  private request(type: number, parts: Buffer[], flags: number, what: string): Promise<Buffer[]> {
    const run = async (): Promise<Buffer[]> => {
      if (this.closed) throw new CorralError('UNAVAILABLE', `${what}: netlink socket closed`);
      const [msgs] = await this.sock.request(type, parts, { flags, timeout: TIMEOUT_MS, checkError: false });
      const out: Buffer[] = [];
      for (const m of msgs) {
        if (m.type === NLMSG_ERROR) {
          const errno = -m.data.readInt32LE(0);
          if (errno !== 0) throw new NetlinkError(ERRNO_NAMES[errno] ?? `errno ${errno}`, what);
        } else if (m.type !== NLMSG_DONE) {
          out.push(m.data);
        }
      }
      return out;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  // ---- links ----

  async links(): Promise<LinkInfo[]> {
    return (await this.request(RTM.GETLINK, encodeDump(0), NLM_F.DUMP, 'list links')).map(parseLink);
  }

  /** The link named `name`, or undefined. */
  async link(name: string): Promise<LinkInfo | undefined> {
    try {
      const [m] = await this.request(RTM.GETLINK, encodeLinkByName(name), 0, `get link ${name}`);
      return m ? parseLink(m) : undefined;
    } catch (err) {
      if (err instanceof NetlinkError && (err.errno === 'ENODEV' || err.errno === 'ENOENT')) return undefined;
      throw err;
    }
  }

  async createVeth(spec: VethSpec): Promise<void> {
    await this.request(RTM.NEWLINK, encodeVeth(spec), NLM_F.CREATE | NLM_F.EXCL, `create veth ${spec.name}/${spec.peerName}`);
  }

  /** Deletes a link by name; false when it did not exist. */
  async deleteLink(name: string): Promise<boolean> {
    try {
      await this.request(RTM.DELLINK, encodeLinkByName(name), 0, `delete link ${name}`);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && (err.errno === 'ENODEV' || err.errno === 'ENOENT')) return false;
      throw err;
    }
  }

  /** Deletes every link in `group` at once; false when the group was empty. */
  async deleteLinkGroup(group: number): Promise<boolean> {
    try {
      await this.request(RTM.DELLINK, encodeLinkGroup(group), 0, `delete link group ${group}`);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && (err.errno === 'ENODEV' || err.errno === 'ENOENT')) return false;
      throw err;
    }
  }

  async setLink(index: number, o: { up?: boolean; name?: string; group?: number; mtu?: number; netnsFd?: number; proxyArp?: boolean; forwarding?: boolean; rpFilter?: number }): Promise<void> {
    const inetConf: Record<number, number> = {};
    if (o.proxyArp !== undefined) inetConf[IPV4_DEVCONF.PROXY_ARP] = o.proxyArp ? 1 : 0;
    if (o.forwarding !== undefined) inetConf[IPV4_DEVCONF.FORWARDING] = o.forwarding ? 1 : 0;
    if (o.rpFilter !== undefined) inetConf[IPV4_DEVCONF.RP_FILTER] = o.rpFilter;
    const conf = Object.keys(inetConf).length ? { inetConf } : {};
    await this.request(RTM.SETLINK, encodeSetLink(index, { ...o, ...conf }), 0, `set link ${index}`);
  }

  /** neigh/<dev>/proxy_delay: the kernel's default delays the first proxy ARP reply by up to 800 ms. */
  async setProxyDelay(index: number, ms: number): Promise<void> {
    await this.request(RTM.SETNEIGHTBL, encodeProxyDelay(index, ms), 0, `set proxy_delay on ${index}`);
  }

  async linkByIndex(index: number): Promise<LinkInfo | undefined> {
    try {
      const [m] = await this.request(RTM.GETLINK, encodeLinkByIndex(index), 0, `get link ${index}`);
      return m ? parseLink(m) : undefined;
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === 'ENODEV') return undefined;
      throw err;
    }
  }

  /** A permanent neighbour entry (replacing any existing one for the address). */
  async setNeighbor(index: number, ip: number, mac: string): Promise<void> {
    await this.request(RTM.NEWNEIGH, encodeNeighbor(index, ip, mac), NLM_F.CREATE | NLM_F.REPLACE, `set neighbour on ${index}`);
  }

  // ---- addresses ----

  async addresses(index?: number): Promise<AddrInfo[]> {
    const all = (await this.request(RTM.GETADDR, encodeDump(2, 8), NLM_F.DUMP, 'list addresses')).map(parseAddr);
    return all.filter((a): a is AddrInfo => a !== undefined && (index === undefined || a.index === index));
  }

  /** Adds an address; an identical one already there is fine. */
  async addAddress(index: number, ip: number, prefixLen: number): Promise<void> {
    try {
      await this.request(RTM.NEWADDR, encodeAddress(index, ip, prefixLen), NLM_F.CREATE | NLM_F.EXCL, `add address to ${index}`);
    } catch (err) {
      if (!(err instanceof NetlinkError && err.errno === 'EEXIST')) throw err;
    }
  }

  // ---- routes ----

  async routes(filter: (r: RouteInfo) => boolean = () => true): Promise<RouteInfo[]> {
    const all = (await this.request(RTM.GETROUTE, encodeDump(2, 12), NLM_F.DUMP, 'list routes')).map(parseRoute);
    return all.filter((r): r is RouteInfo => r !== undefined && filter(r));
  }

  /** Creates or replaces the route to r.dst/r.dstLen (idempotent). */
  async replaceRoute(r: RouteSpec): Promise<void> {
    await this.request(RTM.NEWROUTE, encodeRoute(r), NLM_F.CREATE | NLM_F.REPLACE, `replace route ${describe(r)}`);
  }

  /** Deletes a route (any scope; any type and protocol unless given); false when none matched. */
  async deleteRoute(r: RouteSpec): Promise<boolean> {
    try {
      const match = { ...r, scope: RT_SCOPE_NOWHERE, type: r.type ?? 0, protocol: r.protocol ?? 0 };
      await this.request(RTM.DELROUTE, encodeRoute(match), 0, `delete route ${describe(r)}`);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && (err.errno === 'ESRCH' || err.errno === 'ENOENT')) return false;
      throw err;
    }
  }

  async blackhole(dst: number, dstLen: number, protocol: number): Promise<void> {
    await this.replaceRoute({ dst, dstLen, type: RTN.BLACKHOLE, protocol });
  }
}

function describe(r: RouteSpec): string {
  const ip = [r.dst >>> 24, (r.dst >>> 16) & 255, (r.dst >>> 8) & 255, r.dst & 255].join('.');
  return `${ip}/${r.dstLen}`;
}
