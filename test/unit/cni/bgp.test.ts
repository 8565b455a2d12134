import { describe, it, expect } from 'vitest';
import { Rib } from '../../../plugins/cni-calico-like/src/bgp/rib.js';
import { parseExabgpLine, renderExabgpConfig, announceCommand } from '../../../plugins/cni-calico-like/src/bgp/exabgp.js';
import { desiredNeighbors } from '../../../plugins/cni-calico-like/src/bgp/peers.js';
import { bgpSchema } from '../../../plugins/cni-calico-like/src/daemon/config.js';
import { parseCidr } from '../../../common/netkit/ipv4.js';

const rib = (own: string[] = []) => new Rib({ pools: [parseCidr('100.96.0.0/16')], own: () => new Set(own), localAddress: '198.18.0.10' });

describe('RIB', () => {
  it('installs announced pool prefixes and drops them with the peer', () => {
    const r = rib();
    expect([...r.announce('198.18.0.11', '100.96.1.0/26', '198.18.0.11')]).toEqual([['100.96.1.0/26', '198.18.0.11']]);
    expect([...r.announce('198.18.0.12', '100.96.2.0/26', '198.18.0.12')]).toEqual([['100.96.2.0/26', '198.18.0.12']]);
    expect([...r.peerDown('198.18.0.11')]).toEqual([['100.96.1.0/26', undefined]]);
    expect(r.routes()).toEqual(new Map([['100.96.2.0/26', '198.18.0.12']]));
  });

  it('filters imports: outside the pools, our own prefixes, next hop ourselves', () => {
    const r = rib(['100.96.9.0/26']);
    expect(r.announce('198.18.0.11', '198.18.0.0/24', '198.18.0.11').size).toBe(0);
    expect(r.announce('198.18.0.11', '0.0.0.0/0', '198.18.0.11').size).toBe(0);
    expect(r.announce('198.18.0.11', '100.96.0.0/15', '198.18.0.11').size).toBe(0);
    expect(r.announce('198.18.0.11', '100.96.9.0/26', '198.18.0.11').size).toBe(0);
    expect(r.announce('198.18.0.11', '100.96.3.0/26', '198.18.0.10').size).toBe(0);
    expect(r.rejected).toBe(5);
    expect(r.announce('198.18.0.11', '100.96.3.7/32', '198.18.0.11').size).toBe(1);
  });

  it('prefers the originator over a reflected copy, and falls back when it goes', () => {
    const r = rib();
    r.announce('198.18.0.250', '100.96.1.0/26', '198.18.0.13');
    r.announce('198.18.0.11', '100.96.1.0/26', '198.18.0.11');
    expect(r.routes().get('100.96.1.0/26')).toBe('198.18.0.11');
    expect([...r.withdraw('198.18.0.11', '100.96.1.0/26')]).toEqual([['100.96.1.0/26', '198.18.0.13']]);
  });

  it('keeps a restarted peer routes until its new session confirms or omits them', () => {
    const r = rib();
    r.announce('198.18.0.11', '100.96.1.0/26', '198.18.0.11');
    r.announce('198.18.0.11', '100.96.2.0/26', '198.18.0.11');
    r.markStale('198.18.0.11');
    r.announce('198.18.0.11', '100.96.1.0/26', '198.18.0.11');
    expect([...r.sweepStale('198.18.0.11')]).toEqual([['100.96.2.0/26', undefined]]);
    expect([...r.routes().keys()]).toEqual(['100.96.1.0/26']);
  });
});

describe('exabgp', () => {
  it('parses state, update and end-of-RIB lines; ignores noise', () => {
    const base = '"exabgp": "4.0.1", "time": 1, "host": "vm", "pid": 1, "ppid": 1, "counter": 1';
    const nb = '"address": { "local": "198.18.0.10", "peer": "198.18.0.11" }, "asn": { "local": 64512, "peer": 64512 }';
    expect(parseExabgpLine(`{ ${base}, "type": "state", "neighbor": { ${nb}, "state": "down", "reason": "x" } }`)).toEqual({ kind: 'state', peer: '198.18.0.11', state: 'down', reason: 'x' });
    const upd = `{ ${base}, "type": "update", "neighbor": { ${nb}, "direction": "receive", "message": { "update": { "attribute": { "origin": "igp" }, "announce": { "ipv4 unicast": { "198.18.0.11": [ { "nlri": "100.96.1.0/26" }, { "nlri": "100.96.2.5/32" } ] } }, "withdraw": { "ipv4 unicast": [ { "nlri": "100.96.3.0/26" } ] } } } } }`;
    expect(parseExabgpLine(upd)).toEqual({
      kind: 'update',
      peer: '198.18.0.11',
      announce: [
        { prefix: '100.96.1.0/26', nexthop: '198.18.0.11' },
        { prefix: '100.96.2.5/32', nexthop: '198.18.0.11' },
      ],
      withdraw: ['100.96.3.0/26'],
    });
    expect(parseExabgpLine(`{ ${base}, "type": "update", "neighbor": { ${nb}, "direction": "receive", "message": { "eor": { "afi": "ipv4", "safi": "unicast" } } } }`)).toEqual({
      kind: 'eor',
      peer: '198.18.0.11',
    });
    expect(parseExabgpLine('done')).toBeUndefined();
    expect(parseExabgpLine('{ broken')).toBeUndefined();
  });

  it('renders one neighbor block per peer with the API wired', () => {
    const text = renderExabgpConfig({
      localAddress: '198.18.0.10',
      routerId: '198.18.0.10',
      localAs: 64512,
      holdTime: 9,
      neighbors: [
        { address: '198.18.0.12', peerAs: 64512 },
        { address: '198.18.0.11', peerAs: 65000 },
      ],
      processCommand: ['/usr/bin/python3', '/x/bridge.py', '/x/api.sock'],
    });
    expect(text).toContain('run /usr/bin/python3 /x/bridge.py /x/api.sock;');
    expect(text.indexOf('neighbor 198.18.0.11')).toBeLessThan(text.indexOf('neighbor 198.18.0.12'));
    expect(text).toContain('peer-as 65000;');
    expect(text).not.toContain('passive');
    const passive = renderExabgpConfig({
      localAddress: '198.18.0.12',
      routerId: '198.18.0.12',
      localAs: 64512,
      holdTime: 9,
      neighbors: [{ address: '198.18.0.11', peerAs: 64512, passive: true }],
      processCommand: ['x'],
    });
    expect(passive).toContain('passive true;');
    expect(text.match(/receive \{ parsed; update; \}/g)).toHaveLength(2);
    expect(announceCommand('100.96.0.0/26')).toBe('announce route 100.96.0.0/26 next-hop self');
  });

  it('builds the peer set: mesh from agents, or reflectors only, plus external peers', () => {
    const c = bgpSchema.parse({ enabled: true, localAddress: '198.18.0.10', peers: ['198.18.0.20'], externalPeers: [{ address: '198.18.0.1', asn: 65000 }] });
    const mesh = desiredNeighbors(c, ['198.18.0.10', '198.18.0.11', '198.18.0.9']);
    expect(mesh.map((n) => `${n.address}/${n.peerAs}`)).toEqual(['198.18.0.1/65000', '198.18.0.11/64512', '198.18.0.20/64512', '198.18.0.9/64512']);
    // Only the lower address dials within the mesh; external peers are always dialled.
    expect(mesh.filter((n) => n.passive).map((n) => n.address)).toEqual(['198.18.0.9']);
    const rr = bgpSchema.parse({ enabled: true, localAddress: '198.18.0.10', routeReflectors: ['198.18.0.250'] });
    expect(desiredNeighbors(rr, ['198.18.0.11']).map((n) => n.address)).toEqual(['198.18.0.250']);
    expect(bgpSchema.safeParse({ enabled: true }).success).toBe(false);
  });
});
