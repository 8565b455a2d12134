/**
 * rtnetlink message encoding and decoding for the few messages corral needs
 * (links, veth pairs, addresses, routes, per-device IPv4 settings, neighbour
 * parameters). Written against the kernel's uapi structs directly because the
 * `netlink` package's typed layer lacks what matters here: the veth peer's
 * namespace, route flags, and per-device devconf. Host byte order (x86: LE).
 */

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  SETNEIGHTBL: 67,
} as const;

export const NLM_F = { REQUEST: 1, MULTI: 2, ACK: 4, DUMP: 0x300, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, OPERSTATE: 16, LINKINFO: 18, AF_SPEC: 26, GROUP: 27, NET_NS_FD: 28, LINK_NETNSID: 37 } as const;
const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const IFLA_INET_CONF = 1;
export const IPV4_DEVCONF = { FORWARDING: 1, PROXY_ARP: 3, RP_FILTER: 8 } as const;
const IFA = { ADDRESS: 1, LOCAL: 2 } as const;
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, TABLE: 15 } as const;
const NDTA = { NAME: 1, PARMS: 6 } as const;
const NDTPA = { IFINDEX: 1, PROXY_DELAY: 13 } as const;

const AF_INET = 2;
export const IFF_UP = 1;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253, HOST: 254 } as const;
export const RTN = { UNICAST: 1, LOCAL: 2, BLACKHOLE: 6, UNREACHABLE: 7 } as const;
const RT_TABLE_MAIN = 254;
/** Matches any scope in a delete request. */
export const RT_SCOPE_NOWHERE = 255;

// ---- encoding ----

type Part = Buffer;

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One netlink attribute (header, payload, padding). */
function attr(type: number, payload: Buffer | Buffer[]): Part {
  const body = Array.isArray(payload) ? Buffer.concat(payload) : payload;
  const len = 4 + body.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  body.copy(out, 4);
  return out;
}

const NLA_F_NESTED = 0x8000;
const nested = (type: number, parts: Part[]): Part => attr(type | NLA_F_NESTED, parts);
const u32 = (type: number, v: number): Part => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
};
const u64 = (type: number, v: bigint): Part => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return attr(type, b);
};
const str = (type: number, v: string): Part => attr(type, Buffer.from(`${v}\0`, 'utf8'));

function ifinfomsg(o: { index?: number; flags?: number; change?: number; family?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? 0, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

function ifaddrmsg(o: { prefixLen: number; index: number; scope?: number }): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(o.prefixLen, 1);
  b.writeUInt8(0, 2);
  b.writeUInt8(o.scope ?? RT_SCOPE.UNIVERSE, 3);
  b.writeUInt32LE(o.index, 4);
  return b;
}

export interface RouteSpec {
  /** Destination network (number) and prefix length. */
  dst: number;
  dstLen: number;
  gateway?: number;
  oif?: number;
  table?: number;
  /** rtm_protocol: who owns the route (RTPROT_BOOT=3, STATIC=4, or a private number). */
  protocol?: number;
  scope?: number;
  type?: number;
  priority?: number;
}

function ip4(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

export function encodeRoute(r: RouteSpec): Buffer[] {
  const m = Buffer.alloc(12);
  const table = r.table ?? RT_TABLE_MAIN;
  m.writeUInt8(AF_INET, 0);
  m.writeUInt8(r.dstLen, 1);
  m.writeUInt8(table < 256 ? table : 252, 4);
  m.writeUInt8(r.protocol ?? 3, 5);
  m.writeUInt8(r.scope ?? RT_SCOPE.UNIVERSE, 6);
  m.writeUInt8(r.type ?? RTN.UNICAST, 7);
  const parts: Buffer[] = [m];
  if (r.dstLen > 0) parts.push(attr(RTA.DST, ip4(r.dst)));
  if (r.gateway !== undefined) parts.push(attr(RTA.GATEWAY, ip4(r.gateway)));
  if (r.oif !== undefined) parts.push(u32(RTA.OIF, r.oif));
  if (r.priority !== undefined) parts.push(u32(RTA.PRIORITY, r.priority));
  if (table >= 256) parts.push(u32(RTA.TABLE, table));
  return parts;
}

export function encodeAddress(index: number, ip: number, prefixLen: number): Buffer[] {
  return [ifaddrmsg({ prefixLen, index }), attr(IFA.LOCAL, ip4(ip)), attr(IFA.ADDRESS, ip4(ip))];
}

export interface VethSpec {
  name: string;
  peerName: string;
  /** fd of the namespace the peer is created in (else the socket's namespace). */
  peerNetnsFd?: number;
  mtu?: number;
}

export function encodeVeth(v: VethSpec): Buffer[] {
  const peer: Buffer[] = [ifinfomsg(), str(IFLA.IFNAME, v.peerName)];
  if (v.mtu) peer.push(u32(IFLA.MTU, v.mtu));
  if (v.peerNetnsFd !== undefined) peer.push(u32(IFLA.NET_NS_FD, v.peerNetnsFd));
  const parts: Buffer[] = [ifinfomsg(), str(IFLA.IFNAME, v.name)];
  if (v.mtu) parts.push(u32(IFLA.MTU, v.mtu));
  parts.push(nested(IFLA.LINKINFO, [str(IFLA_INFO.KIND, 'veth'), nested(IFLA_INFO.DATA, [nested(VETH_INFO_PEER, peer)])]));
  return parts;
}

/** RTM_SETLINK: bring up (or down), rename, set MTU, move to a namespace, set IPv4 devconf values. */
export function encodeSetLink(index: number, o: { up?: boolean; name?: string; group?: number; mtu?: number; netnsFd?: number; inetConf?: Record<number, number> }): Buffer[] {
  const parts: Buffer[] = [ifinfomsg({ index, flags: o.up ? IFF_UP : 0, change: o.up === undefined ? 0 : IFF_UP })];
  if (o.name) parts.push(str(IFLA.IFNAME, o.name));
  if (o.group !== undefined) parts.push(u32(IFLA.GROUP, o.group));
  if (o.mtu) parts.push(u32(IFLA.MTU, o.mtu));
  if (o.netnsFd !== undefined) parts.push(u32(IFLA.NET_NS_FD, o.netnsFd));
  if (o.inetConf) {
    const conf = Object.entries(o.inetConf).map(([k, v]) => u32(Number(k), v));
    parts.push(nested(IFLA.AF_SPEC, [nested(AF_INET, [nested(IFLA_INET_CONF, conf)])]));
  }
  return parts;
}

export function encodeLinkByName(name: string): Buffer[] {
  return [ifinfomsg(), str(IFLA.IFNAME, name)];
}

/** RTM_DELLINK of every link in a group: one batch, one RCU grace period for all of them. */
export function encodeLinkGroup(group: number): Buffer[] {
  return [ifinfomsg(), u32(IFLA.GROUP, group)];
}

export function encodeLinkByIndex(index: number): Buffer[] {
  return [ifinfomsg({ index })];
}

/** RTM_SETNEIGHTBL on arp_cache for one device: proxy_delay in milliseconds. */
export function encodeProxyDelay(index: number, ms: number): Buffer[] {
  const ndt = Buffer.alloc(4);
  ndt.writeUInt8(AF_INET, 0);
  return [ndt, str(NDTA.NAME, 'arp_cache'), nested(NDTA.PARMS, [u32(NDTPA.IFINDEX, index), u64(NDTPA.PROXY_DELAY, BigInt(ms))])];
}

const NUD_PERMANENT = 0x80;
const NDA = { DST: 1, LLADDR: 2 } as const;

/** RTM_NEWNEIGH: a permanent IPv4 neighbour entry (address -> MAC) on a device. */
export function encodeNeighbor(index: number, ip: number, mac: string): Buffer[] {
  const nd = Buffer.alloc(12);
  nd.writeUInt8(AF_INET, 0);
  nd.writeInt32LE(index, 4);
  nd.writeUInt16LE(NUD_PERMANENT, 8);
  const lladdr = Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
  return [nd, attr(NDA.DST, ip4(ip)), attr(NDA.LLADDR, lladdr)];
}

export function encodeDump(family = AF_INET, size = 16): Buffer[] {
  const b = Buffer.alloc(size);
  b.writeUInt8(family, 0);
  return [b];
}

// ---- decoding ----

function parseAttrs(buf: Buffer, offset: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let i = offset;
  while (i + 4 <= buf.length) {
    const len = buf.readUInt16LE(i);
    const type = buf.readUInt16LE(i + 2) & 0x3fff;
    if (len < 4 || i + len > buf.length) break;
    out.set(type, buf.subarray(i + 4, i + len));
    i += align4(len);
  }
  return out;
}

const cstr = (b: Buffer | undefined): string | undefined => {
  if (!b) return undefined;
  const z = b.indexOf(0);
  return b.subarray(0, z === -1 ? b.length : z).toString('utf8');
};

export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  mtu: number;
  /** "aa:bb:cc:dd:ee:ff" */
  mac: string;
  kind: string | undefined;
  /** For a veth: the peer's ifindex (in the peer's namespace). */
  peerIndex: number | undefined;
  /** For a veth whose peer is in another namespace: that namespace's id as seen from here. */
  peerNetnsId: number | undefined;
}

export function parseLink(data: Buffer): LinkInfo {
  const attrs = parseAttrs(data, 16);
  const info = attrs.get(IFLA.LINKINFO);
  const mac = attrs.get(IFLA.ADDRESS);
  return {
    index: data.readInt32LE(4),
    flags: data.readUInt32LE(8),
    name: cstr(attrs.get(IFLA.IFNAME)) ?? '',
    mtu: attrs.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    mac: mac ? [...mac].map((x) => x.toString(16).padStart(2, '0')).join(':') : '',
    kind: info ? cstr(parseAttrs(info, 0).get(IFLA_INFO.KIND)) : undefined,
    peerIndex: attrs.get(IFLA.LINK)?.readUInt32LE(0),
    peerNetnsId: attrs.get(IFLA.LINK_NETNSID)?.readInt32LE(0),
  };
}

export interface AddrInfo {
  index: number;
  prefixLen: number;
  address: number;
}

export function parseAddr(data: Buffer): AddrInfo | undefined {
  if (data.readUInt8(0) !== AF_INET) return undefined;
  const attrs = parseAttrs(data, 8);
  const a = attrs.get(IFA.LOCAL) ?? attrs.get(IFA.ADDRESS);
  if (!a) return undefined;
  return { index: data.readUInt32LE(4), prefixLen: data.readUInt8(1), address: a.readUInt32BE(0) };
}

export interface RouteInfo {
  dst: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  gateway: number | undefined;
  oif: number | undefined;
}

export function parseRoute(data: Buffer): RouteInfo | undefined {
  if (data.readUInt8(0) !== AF_INET) return undefined;
  const attrs = parseAttrs(data, 12);
  const table = attrs.get(RTA.TABLE)?.readUInt32LE(0) ?? data.readUInt8(4);
  return {
    dstLen: data.readUInt8(1),
    table,
    protocol: data.readUInt8(5),
    scope: data.readUInt8(6),
    type: data.readUInt8(7),
    dst: attrs.get(RTA.DST)?.readUInt32BE(0) ?? 0,
    gateway: attrs.get(RTA.GATEWAY)?.readUInt32BE(0),
    oif: attrs.get(RTA.OIF)?.readUInt32LE(0),
  };
}
