import { describe, it, expect } from 'vitest';
import { parseIp, formatIp, parseCidr, formatCidr, covers, subBlock, cidrKey, parseCidrKey } from '../../../common/netkit/ipv4.js';
import { BlockMap } from '../../../plugins/cni-calico-like/src/ipam/block.js';
import { planLab, birdReflectorConfig, LAB_DEFAULTS } from '../../../lab/topology.js';
import { hostIfnameFor } from '../../../common/netkit/veth.js';

describe('IPv4 helpers', () => {
  it('round-trips addresses and CIDRs', () => {
    expect(formatIp(parseIp('100.96.1.255'))).toBe('100.96.1.255');
    expect(formatCidr(parseCidr('100.96.0.0/12'))).toBe('100.96.0.0/12');
    expect(() => parseCidr('100.96.0.1/24')).toThrow(/host bits/);
    expect(() => parseIp('256.1.1.1')).toThrow();
    expect(parseCidrKey(cidrKey(parseCidr('100.96.0.64/26')))).toEqual(parseCidr('100.96.0.64/26'));
  });

  it('knows containment and sub-blocks', () => {
    const pool = parseCidr('100.96.0.0/16');
    expect(covers(pool, parseCidr('100.96.3.0/26'))).toBe(true);
    expect(covers(pool, parseCidr('100.97.0.0/26'))).toBe(false);
    expect(covers(pool, parseCidr('100.96.0.0/15'))).toBe(false);
    expect(formatCidr(subBlock(pool, 26, 3))).toBe('100.96.0.192/26');
  });

  it('gives stable, short host interface names', () => {
    expect(hostIfnameFor('crl', 'c1', 'eth0')).toBe(hostIfnameFor('crl', 'c1', 'eth0'));
    expect(hostIfnameFor('crl', 'c1', 'eth0')).not.toBe(hostIfnameFor('crl', 'c1', 'eth1'));
    expect(hostIfnameFor('crl', 'c1', 'eth0')).toHaveLength(15);
  });
});

describe('BlockMap', () => {
  it('hands out next-fit and never the same ordinal twice', () => {
    const b = new BlockMap('p', parseCidr('100.96.0.0/30'));
    expect([b.take(), b.take()]).toEqual([0, 1]);
    b.release(0);
    expect(b.take()).toBe(2);
    expect(b.take()).toBe(3);
    expect(b.take()).toBe(0);
    expect(b.take()).toBeUndefined();
    expect(b.usedCount).toBe(4);
    expect(b.ipOf(3)).toBe('100.96.0.3');
  });
});

describe('lab plan', () => {
  it('places services, hosts and the reflector on the underlay', () => {
    const plan = planLab({ ...LAB_DEFAULTS, prefix: 'ct-x', hosts: 2, dir: '/tmp/l', routeReflector: true });
    expect(plan.services.ip).toBe('198.18.0.1');
    expect(plan.hosts.map((h) => [h.netns, h.ip])).toEqual([
      ['ct-x-h1', '198.18.0.10'],
      ['ct-x-h2', '198.18.0.11'],
    ]);
    const bird = birdReflectorConfig(plan);
    expect(bird).toContain('error wait time 1, 10;');
    expect(bird).toContain('if net ~ [ 100.96.0.0/16{16,32}, 100.97.0.0/16{16,32} ] then accept; reject;');
    expect(bird).toContain('protocol bgp h2 from corral_host { neighbor 198.18.0.11 as 64512; }');
  });
});
