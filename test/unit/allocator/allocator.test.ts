import { describe, it, expect } from 'vitest';
import { Allocator } from '../../../core-scheduler/src/allocator/allocator.js';
import { Resources } from '../../../core-scheduler/src/resources/resources.js';
import { R, assertBalanced, byFramework } from './helpers.js';

describe('allocator: weighted DRF', () => {
  it('reproduces the DRF paper example: A gets 3 tasks, B gets 2', () => {
    // 9 CPUs, 18 GB; A's tasks <1 CPU, 4 GB>, B's <3 CPU, 1 GB>. Each framework
    // launches one task per offer and returns the rest without a filter.
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus:9;mem:18432'));
    alloc.addFramework('A', { roles: ['*'] });
    alloc.addFramework('B', { roles: ['*'] });
    const task = { A: R('cpus:1;mem:4096'), B: R('cpus:3;mem:1024') };
    const launched = { A: 0, B: 0 };
    for (let round = 0; round < 20; round++) {
      const ds = alloc.allocate(round);
      if (ds.length === 0) break;
      for (const d of ds) {
        const t = task[d.frameworkId as 'A' | 'B'];
        if (d.resources.contains(t)) {
          launched[d.frameworkId as 'A' | 'B']++;
          alloc.recover(d.frameworkId, d.agentId, d.role, d.resources.minus(t));
        } else {
          alloc.recover(d.frameworkId, d.agentId, d.role, d.resources, round + 1000);
        }
      }
      assertBalanced(alloc);
    }
    expect(launched).toEqual({ A: 3, B: 2 });
    expect(alloc.frameworkShare('A', '*')).toBeCloseTo(2 / 3, 5);
    expect(alloc.frameworkShare('B', '*')).toBeCloseTo(2 / 3, 5);
  });

  it('offers to the role with the lowest weighted share, so a weight-3 role ends with three times the share', () => {
    const alloc = new Allocator();
    for (let i = 0; i < 40; i++) alloc.addAgent(`a${i}`, R('cpus:1;mem:1024'));
    alloc.setWeight('gold', 3);
    alloc.addFramework('g', { roles: ['gold'] });
    alloc.addFramework('s', { roles: ['silver'] });
    const ds = alloc.allocate(0);
    expect(ds).toHaveLength(40);
    const counts = byFramework(ds);
    expect(counts.g).toBe(30);
    expect(counts.s).toBe(10);
    expect(alloc.roleShare('gold')).toBeCloseTo(alloc.roleShare('silver'), 5);
  });

  it('shares within a role by DRF across frameworks', () => {
    const alloc = new Allocator();
    for (let i = 0; i < 10; i++) alloc.addAgent(`a${i}`, R('cpus:2;mem:2048'));
    alloc.addFramework('f1', { roles: ['web'] });
    alloc.addFramework('f2', { roles: ['web'] });
    const counts = byFramework(alloc.allocate(0));
    expect(counts).toEqual({ f1: 5, f2: 5 });
  });
});

describe('allocator: reservations', () => {
  it('offers resources reserved to a role only to that role', () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus(ads):4;mem(ads):4096;cpus:2;mem:2048'));
    alloc.addFramework('other', { roles: ['web'] });
    const ds = alloc.allocate(0);
    expect(ds).toHaveLength(1);
    expect(ds[0]!.resources.equals(R('cpus:2;mem:2048'))).toBe(true);
    alloc.addFramework('ads-fw', { roles: ['ads'] });
    const ds2 = alloc.allocate(1);
    expect(ds2).toHaveLength(1);
    expect(ds2[0]!.frameworkId).toBe('ads-fw');
    expect(ds2[0]!.resources.equals(R('cpus(ads):4;mem(ads):4096'))).toBe(true);
    assertBalanced(alloc);
  });

  it("counts a role's reservations toward its share whether used or not", () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus(ads):5;mem(ads):5120'));
    alloc.addAgent('a2', R('cpus:5;mem:5120'));
    alloc.addFramework('ads-fw', { roles: ['ads'] });
    expect(alloc.roleShare('ads')).toBeCloseTo(0.5, 5);
  });

  it('applies dynamic reservation and persistent volume operations to held resources, exactly', () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus:4;mem:4096;disk:1000'));
    alloc.addFramework('db', { roles: ['db'] });
    const [offer] = alloc.allocate(0);
    const unreserved = R('cpus:1;mem:512;disk:100');
    const reserved = unreserved.map(() => ({ reservations: [{ type: 'DYNAMIC' as const, role: 'db', principal: 'p' }] }));
    alloc.convertAllocated('db', 'a1', 'db', unreserved, reserved);
    const disk = reserved.filter((e) => e.name === 'disk');
    const volume = disk.map(() => ({ disk: { persistence: { id: 'vol-1' }, volume: { container_path: 'data', mode: 'RW' as const } } }));
    alloc.convertAllocated('db', 'a1', 'db', disk, volume);
    assertBalanced(alloc);
    const view = alloc.agentView('a1')!;
    expect(view.total.persistentVolumes().equals(volume)).toBe(true);
    // Everything goes back; the volume is offered to the role again.
    const held = view.allocated.get('db')!.get('db')!;
    alloc.recover('db', 'a1', 'db', held);
    const [again] = alloc.allocate(1);
    expect(again!.resources.persistentVolumes().equals(volume)).toBe(true);
    expect(offer).toBeDefined();
    assertBalanced(alloc);
  });
});

describe('allocator: quota', () => {
  it('satisfies a guarantee before fair sharing and keeps headroom for it', () => {
    const alloc = new Allocator();
    for (let i = 0; i < 4; i++) alloc.addAgent(`a${i}`, R('cpus:4;mem:4096'));
    alloc.setQuota('prod', { guarantee: { cpus: 8, mem: 8192 } });
    alloc.addFramework('batch', { roles: ['batch'] });
    // Without a framework in prod nothing is offered to it, but headroom is kept.
    const ds = alloc.allocate(0);
    const cpus = ds.reduce((s, d) => s + d.resources.scalar('cpus'), 0);
    expect(cpus).toBe(8);
    alloc.addFramework('prod-fw', { roles: ['prod'] });
    const ds2 = alloc.allocate(1);
    expect(ds2.every((d) => d.frameworkId === 'prod-fw')).toBe(true);
    expect(ds2.reduce((s, d) => s + d.resources.scalar('cpus'), 0)).toBe(8);
    assertBalanced(alloc);
  });

  it('never offers a role more than its limit', () => {
    const alloc = new Allocator();
    for (let i = 0; i < 4; i++) alloc.addAgent(`a${i}`, R('cpus:4;mem:4096'));
    alloc.setQuota('capped', { limit: { cpus: 6 } });
    alloc.addFramework('c', { roles: ['capped'] });
    const ds = alloc.allocate(0);
    expect(ds.reduce((s, d) => s + d.resources.scalar('cpus'), 0)).toBe(6);
  });
});

describe('allocator: filters, suppress, revive', () => {
  it('honours refuse_seconds and offers again once the filter expires', () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus:1;mem:1024'));
    alloc.addFramework('f', { roles: ['*'] });
    const [d] = alloc.allocate(0);
    alloc.recover('f', 'a1', '*', d!.resources, 5000);
    expect(alloc.allocate(1000)).toHaveLength(0);
    expect(alloc.allocate(4999)).toHaveLength(0);
    expect(alloc.allocate(5000)).toHaveLength(1);
  });

  it('offers resources larger than the filtered ones despite a filter', () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus:2;mem:2048'));
    alloc.addFramework('f', { roles: ['*'] });
    const [d] = alloc.allocate(0);
    const task = R('cpus:1;mem:1024');
    alloc.recover('f', 'a1', '*', d!.resources.minus(task), 60_000);
    expect(alloc.allocate(1)).toHaveLength(0);
    alloc.recover('f', 'a1', '*', task); // task ends: more is free than was refused
    expect(alloc.allocate(2)).toHaveLength(1);
  });

  it('passes a declined agent to the next framework, and suppress/revive stop and restart offers', () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus:1;mem:1024'));
    alloc.addFramework('f1', { roles: ['*'] });
    alloc.addFramework('f2', { roles: ['*'] });
    const [d] = alloc.allocate(0);
    alloc.recover(d!.frameworkId, 'a1', '*', d!.resources, 60_000);
    const [d2] = alloc.allocate(1);
    expect(d2!.frameworkId).not.toBe(d!.frameworkId);
    alloc.recover(d2!.frameworkId, 'a1', '*', d2!.resources, 60_000);
    expect(alloc.allocate(2)).toHaveLength(0);
    alloc.suppress(d!.frameworkId);
    alloc.revive(d2!.frameworkId);
    const [d3] = alloc.allocate(3);
    expect(d3!.frameworkId).toBe(d2!.frameworkId);
    alloc.recover(d3!.frameworkId, 'a1', '*', d3!.resources);
    alloc.suppress(d3!.frameworkId);
    expect(alloc.allocate(4)).toHaveLength(0);
    alloc.revive(d!.frameworkId);
    expect(alloc.allocate(5)[0]!.frameworkId).toBe(d!.frameworkId);
  });

  it('does not offer inactive frameworks or agents', () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus:1;mem:1024'));
    alloc.addFramework('f', { roles: ['*'], active: false });
    expect(alloc.allocate(0)).toHaveLength(0);
    alloc.setFrameworkActive('f', true);
    alloc.setAgentActive('a1', false);
    expect(alloc.allocate(1)).toHaveLength(0);
    alloc.setAgentActive('a1', true);
    expect(alloc.allocate(2)).toHaveLength(1);
  });
});

describe('allocator: revocable resources', () => {
  it('offers revocable resources only to frameworks that opted in', () => {
    const alloc = new Allocator();
    const rev = new Resources([Resources.scalarEntry('cpus', 2, { revocable: true }), Resources.scalarEntry('mem', 1024, { revocable: true })]);
    alloc.addAgent('a1', R('cpus:1;mem:1024'), { revocable: rev });
    alloc.addFramework('plain', { roles: ['*'] });
    const [d] = alloc.allocate(0);
    expect(d!.resources.revocable().isEmpty()).toBe(true);
    alloc.addFramework('opt-in', { roles: ['*'], revocable: true });
    const [d2] = alloc.allocate(1);
    expect(d2!.frameworkId).toBe('opt-in');
    expect(d2!.resources.equals(rev)).toBe(true);
    assertBalanced(alloc);
    // Revocable resources do not count toward fair shares.
    expect(alloc.frameworkShare('opt-in', '*')).toBe(0);
  });
});

describe('allocator: removal', () => {
  it('frees what a removed framework held and forgets a removed agent', () => {
    const alloc = new Allocator();
    alloc.addAgent('a1', R('cpus:1;mem:1024'));
    alloc.addAgent('a2', R('cpus:1;mem:1024'));
    alloc.addFramework('f', { roles: ['*'] });
    expect(alloc.allocate(0)).toHaveLength(2);
    alloc.removeFramework('f');
    assertBalanced(alloc);
    expect(alloc.agentView('a1')!.available.equals(R('cpus:1;mem:1024'))).toBe(true);
    alloc.addFramework('g', { roles: ['*'] });
    alloc.removeAgent('a2');
    expect(alloc.allocate(1).map((d) => d.agentId)).toEqual(['a1']);
    expect(alloc.frameworkShare('g', '*')).toBeCloseTo(1, 5);
  });
});
