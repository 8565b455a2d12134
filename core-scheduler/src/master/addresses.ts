/**
 * Network addresses in the shapes Mesos puts in its messages: an offer's
 * `url` (the agent's endpoint, which some frameworks read to learn the
 * agent's IP) and MasterInfo's packed `ip`.
 */
import { isIPv4 } from 'node:net';

/** An offer's `url`, as Mesos's master sets it on every offer (mesos.proto URL). */
export interface V1Url {
  scheme: string;
  address: { hostname: string; ip: string; port: number };
  path: string;
}

/** Mesos agents listen on 5051 unless told otherwise. */
const DEFAULT_AGENT_PORT = 5051;

/** "::ffff:10.0.0.1" (an IPv4 peer on a dual-stack socket) → "10.0.0.1". */
const plainIp = (ip: string): string => (ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip);

/**
 * The agent's URL as Mesos builds it: http, the agent's hostname, its IP and
 * port, and the path of the agent process ("/slave(1)", the only agent
 * process Mesos runs). The IP is the one in the agent's own URL when that is
 * an address, else the address its registration came from.
 */
export function agentUrl(info: { hostname: string; url?: string | undefined; port?: number | undefined }, peerIp: string | undefined): V1Url {
  let ip = peerIp ? plainIp(peerIp) : undefined;
  let port = info.port;
  if (info.url) {
    try {
      const u = new URL(info.url);
      const host = u.hostname.replace(/^\[|\]$/g, '');
      if (isIPv4(host) || host.includes(':')) ip = host;
      if (port === undefined && u.port) port = Number(u.port);
    } catch {
      // Not a URL: the agent's other fields still say enough.
    }
  }
  if (ip === undefined && isIPv4(info.hostname)) ip = info.hostname;
  return { scheme: 'http', address: { hostname: info.hostname, ip: ip ?? info.hostname, port: port ?? DEFAULT_AGENT_PORT }, path: '/slave(1)' };
}

/**
 * MasterInfo.ip: the IPv4 address as Mesos packs it, the in_addr's bytes
 * read as a host-order (little-endian here) uint32 — 127.0.0.1 is 16777343.
 * 0 when the master is known by a name or an IPv6 address.
 */
export function packedIpv4(ip: string): number {
  if (!isIPv4(ip)) return 0;
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  return ((d << 24) >>> 0) + (c << 16) + (b << 8) + a;
}
