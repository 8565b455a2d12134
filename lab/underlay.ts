/**
 * Lab plumbing with `ip`: the underlay bridge in its own namespace and one
 * veth "cable" per lab node into it. Set-up work, done once per lab, so
 * plain `ip` commands (argument arrays, never a shell) are the clearest tool;
 * both cable ends are created directly in their namespaces, so the root
 * namespace never holds any of them.
 */
import { createNamedNetns } from '../common/netkit/netns.js';
import { ip } from '../common/sys/ip.js';

export async function createUnderlay(netns: string): Promise<void> {
  await createNamedNetns(netns);
  const links = await ip(['-n', netns, '-o', 'link', 'show']);
  if (!/ br0[:@]/.test(links)) await ip(['-n', netns, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', netns, 'link', 'set', 'br0', 'up']);
}

/**
 * Cables namespace `node` into the underlay: `ul0` inside the node with
 * `address/prefixLen`, its peer `port` enslaved to br0; optionally a default
 * route via `gateway` (the host must have one to answer proxy ARP).
 */
export async function cable(o: { underlay: string; node: string; port: string; address: string; prefixLen: number; gateway?: string }): Promise<void> {
  await createNamedNetns(o.node);
  const existing = await ip(['-n', o.node, '-o', 'link', 'show']);
  if (!/ ul0[:@]/.test(existing)) {
    await ip(['link', 'add', 'ul0', 'netns', o.node, 'type', 'veth', 'peer', 'name', o.port, 'netns', o.underlay]);
  }
  await ip(['-n', o.underlay, 'link', 'set', o.port, 'master', 'br0', 'up']);
  await ip(['-n', o.node, 'addr', 'replace', `${o.address}/${o.prefixLen}`, 'dev', 'ul0']);
  await ip(['-n', o.node, 'link', 'set', 'ul0', 'up']);
  if (o.gateway) await ip(['-n', o.node, 'route', 'replace', 'default', 'via', o.gateway]);
}

/** Kinds of the links that are up in a namespace (e.g. to show no tunnel device carries traffic). */
export async function upLinkKinds(netns: string): Promise<string[]> {
  const links = JSON.parse(await ip(['-n', netns, '-j', '-d', 'link', 'show', 'up'])) as Array<{ ifname: string; link_type?: string; linkinfo?: { info_kind?: string } }>;
  return [...new Set(links.filter((l) => l.ifname).map((l) => l.linkinfo?.info_kind ?? l.link_type ?? 'unknown'))].sort();
}
