/**
 * Veth pairs between the current ("host") namespace and a container's: the
 * peer is created directly inside the container namespace (no create-then-
 * move), and every call is idempotent so a repeated CNI ADD or an isolator
 * retry converges instead of failing on EEXIST.
 */
import { closeSync, openSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { CorralError } from '../../contracts/errors.js';
import { Rtnl, NetlinkError, type LinkInfo } from './rtnl.js';

interface VethEnds {
  host: LinkInfo;
  container: LinkInfo;
}

interface VethRequest {
  /** Host-side interface name (at most 15 bytes). */
  hostIfname: string;
  /** Interface name inside the container. */
  containerIfname: string;
  netnsPath: string;
  mtu: number;
}

/**
 * A stable host-side name for (container, ifname): same input, same name, so
 * a repeated ADD finds what the first one made and DEL needs no lookup.
 */
export function hostIfnameFor(prefix: string, containerId: string, ifname: string): string {
  const room = 15 - prefix.length;
  if (room < 6) throw new CorralError('INVALID_ARGUMENT', `host interface prefix "${prefix}" is too long (at most 9 characters)`);
  return prefix + createHash('sha1').update(`${containerId}/${ifname}`).digest('hex').slice(0, room);
}

function arePeers(a: LinkInfo, b: LinkInfo): boolean {
  return a.kind === 'veth' && b.kind === 'veth' && a.peerIndex === b.index && b.peerIndex === a.index;
}

/**
 * Ensures a veth pair hostIfname <-> netns:containerIfname exists with the
 * MTU asked for. `host` is a socket in the host namespace, `container` one
 * opened in req.netnsPath. A half-made or mismatched pair is replaced; a
 * non-veth interface already holding the container name is an error.
 */
export async function ensureVeth(host: Rtnl, container: Rtnl, req: VethRequest): Promise<VethEnds> {
  let h = await host.link(req.hostIfname);
  let c = await container.link(req.containerIfname);
  if (h && c && arePeers(h, c) && h.mtu === req.mtu && c.mtu === req.mtu) return { host: h, container: c };
  if (c && c.kind !== 'veth') {
    throw new CorralError('CONFLICT', `interface ${req.containerIfname} already exists in ${req.netnsPath} and is not a veth (${c.kind ?? 'unknown kind'})`);
  }
  if (h) await host.deleteLink(req.hostIfname);
  if (c) await container.deleteLink(req.containerIfname);
  const fd = openSync(req.netnsPath, 'r');
  try {
    await host.createVeth({ name: req.hostIfname, peerName: req.containerIfname, peerNetnsFd: fd, mtu: req.mtu });
  } catch (err) {
    if (err instanceof NetlinkError && err.errno === 'EEXIST') {
      throw new CorralError('CONFLICT', `interface name ${req.hostIfname} or ${req.containerIfname} is taken`, { errno: 'EEXIST' });
    }
    throw err;
  } finally {
    closeSync(fd);
  }
  h = await host.link(req.hostIfname);
  c = await container.link(req.containerIfname);
  if (!h || !c) throw new CorralError('INTERNAL', `veth ${req.hostIfname}/${req.containerIfname} vanished right after creation`);
  return { host: h, container: c };
}
