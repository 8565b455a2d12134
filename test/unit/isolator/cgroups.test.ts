/**
 * cgroup detection and the file logic of both hierarchies, run against
 * plain directories standing in for cgroupfs (this machine is v1, so the v2
 * path is exercised here): limits mapping, controller delegation, control
 * files written, usage read back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseVersion, parseCgroupMounts } from '../../../plugins/isolator/src/cgroups/detect.js';
import { MAX_CFS_QUOTA_US, MAX_MEMORY_BYTES, MAX_SHARES, MIB, cgroupLimits, sharesToWeight } from '../../../plugins/isolator/src/cgroups/limits.js';
import { CgroupV1Driver } from '../../../plugins/isolator/src/cgroups/v1.js';
import { CgroupV2Driver } from '../../../plugins/isolator/src/cgroups/v2.js';

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;
const COMOUNTED = `32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory`;
const PURE_V2 = `25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`;

let dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'corral-cg-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe('detection', () => {
  it('maps v1 controllers to their hierarchies, co-mounted ones to one', () => {
    const h = parseCgroupMounts(HYBRID);
    expect(Object.fromEntries(h.v1)).toEqual({ cpu: '/sys/fs/cgroup/cpu', cpuacct: '/sys/fs/cgroup/cpuacct', memory: '/sys/fs/cgroup/memory', pids: '/sys/fs/cgroup/pids' });
    expect(h.v2).toBe('/sys/fs/cgroup/unified');
    const c = parseCgroupMounts(COMOUNTED);
    expect(c.v1.get('cpu')).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(c.v1.get('cpuacct')).toBe('/sys/fs/cgroup/cpu,cpuacct');
  });

  it('prefers v1 on a hybrid host (its unified mount has no controllers) and v2 on a pure one', () => {
    expect(chooseVersion(parseCgroupMounts(HYBRID), 'auto', () => [])).toBe(1);
    expect(chooseVersion(parseCgroupMounts(PURE_V2), 'auto', () => ['cpuset', 'cpu', 'io', 'memory', 'pids'])).toBe(2);
    expect(() => chooseVersion(parseCgroupMounts(PURE_V2), 'v1', () => ['cpu', 'memory'])).toThrow(/cgroup v1 was asked for/);
    expect(() => chooseVersion(parseCgroupMounts(HYBRID), 'v2', () => [])).toThrow(/cgroup v2 was asked for/);
    expect(() => chooseVersion({ v1: new Map() }, 'auto')).toThrow(/no usable cgroup hierarchy/);
  });
});

describe('limits', () => {
  it('maps cpus and memory as Mesos does', () => {
    expect(cgroupLimits({ cpus: 0.5, memMb: 64, pids: 10, cfsQuota: true })).toEqual({ cpuShares: 512, cpuQuota: { quotaUs: 50_000, periodUs: 100_000 }, memoryBytes: 64 * 1024 * 1024, pids: 10 });
    expect(cgroupLimits({ cpus: 0, memMb: 0, cfsQuota: true })).toEqual({ cpuShares: 2 });
    expect(cgroupLimits({ cpus: 0.001, memMb: 0, cfsQuota: true }).cpuQuota).toEqual({ quotaUs: 1000, periodUs: 100_000 });
    expect(cgroupLimits({ cpus: 2, memMb: 0, cfsQuota: false }).cpuQuota).toBeUndefined();
  });

  it('sizes limits from the request, not the host: more CPUs than this host has is still a valid quota', () => {
    const beyond = cpus().length + 1;
    expect(cgroupLimits({ cpus: beyond, memMb: 48 * 1024, cfsQuota: true })).toEqual({
      cpuShares: beyond * 1024,
      cpuQuota: { quotaUs: beyond * 100_000, periodUs: 100_000 },
      memoryBytes: 48 * 1024 * MIB,
    });
  });

  it("applies only the kernel's own bounds, writing integers it accepts", () => {
    const huge = cgroupLimits({ cpus: 1e12, memMb: 1e15, cfsQuota: true });
    expect(huge.cpuShares).toBe(MAX_SHARES); // v1 would clamp silently; v2 weight tops out at the same point
    expect(huge.cpuQuota!.quotaUs).toBe(MAX_CFS_QUOTA_US);
    expect(huge.memoryBytes).toBe(MAX_MEMORY_BYTES);
    for (const v of [huge.cpuShares, huge.cpuQuota!.quotaUs, huge.memoryBytes!]) expect(String(v)).toMatch(/^\d+$/);
    expect(sharesToWeight(huge.cpuShares)).toBe(10_000);
  });

  it('converts shares to v2 weights like runc', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262_144)).toBe(10_000);
  });
});

describe('cgroup v2 file logic', () => {
  function fakeV2(): string {
    const mount = tmp();
    writeFileSync(join(mount, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    writeFileSync(join(mount, 'cgroup.subtree_control'), '');
    return mount;
  }

  it('delegates controllers down to the root, then writes the limits', () => {
    const mount = fakeV2();
    const d = new CgroupV2Driver(mount, 'corral/agent1');
    const dir = join(mount, 'corral', 'agent1', 'c1');
    // A non-root cgroup (the root's own directory) tells which files the children will have.
    mkdirSync(join(mount, 'corral', 'agent1'), { recursive: true });
    writeFileSync(join(mount, 'corral', 'agent1', 'memory.swap.max'), 'max');
    writeFileSync(join(mount, 'corral', 'agent1', 'memory.oom.group'), '0');
    const setup = d.setup('c1', cgroupLimits({ cpus: 1.5, memMb: 128, pids: 50, cfsQuota: true }));
    expect(setup.mkdirs).toEqual([dir]);
    expect(setup.writes.map(([f]) => f.slice(dir.length + 1))).toEqual(['cpu.weight', 'cpu.max', 'memory.max', 'memory.swap.max', 'memory.oom.group', 'pids.max']);
    const p = d.create('c1', cgroupLimits({ cpus: 1.5, memMb: 128, pids: 50, cfsQuota: true }));
    expect(p).toEqual({ dirs: [dir], oomFile: join(dir, 'memory.events') });
    expect(readFileSync(join(mount, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory +pids');
    expect(readFileSync(join(mount, 'corral', 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory +pids');
    expect(readFileSync(join(mount, 'corral', 'agent1', 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory +pids');
    const file = (f: string) => readFileSync(join(dir, f), 'utf8');
    expect(file('cpu.weight')).toBe(String(sharesToWeight(1536)));
    expect(file('cpu.max')).toBe('150000 100000');
    expect(file('memory.max')).toBe(String(128 * 1024 * 1024));
    expect(file('memory.swap.max')).toBe('0');
    expect(file('memory.oom.group')).toBe('1');
    expect(file('pids.max')).toBe('50');
    expect(d.exists('c1')).toBe(true);
    expect(d.list()).toEqual(['c1']);
  });

  it('reads usage and limits back', () => {
    const mount = fakeV2();
    const d = new CgroupV2Driver(mount, 'corral');
    d.create('c2', cgroupLimits({ cpus: 1, memMb: 64, cfsQuota: false }));
    const dir = join(mount, 'corral', 'c2');
    writeFileSync(join(dir, 'cpu.stat'), 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 3\nthrottled_usec 750000\n');
    writeFileSync(join(dir, 'memory.current'), '1048576\n');
    writeFileSync(join(dir, 'pids.current'), '3\n');
    writeFileSync(join(dir, 'cgroup.procs'), '101\n102\n');
    expect(d.usage('c2')).toEqual({ cpuSeconds: 2.5, memBytes: 1048576, memLimitBytes: 64 * 1024 * 1024, cpuThrottledSeconds: 0.75, pids: 3 });
    expect(d.procs('c2')).toEqual([101, 102]);
    writeFileSync(join(dir, 'memory.max'), 'max\n');
    expect(d.usage('c2')!.memLimitBytes).toBeUndefined();
    expect(d.usage('missing')).toBeUndefined();
  });

  it('does not re-enable controllers the parent already delegates', () => {
    const mount = fakeV2();
    writeFileSync(join(mount, 'cgroup.subtree_control'), 'cpu memory pids\n');
    new CgroupV2Driver(mount, 'corral').create('c3', { cpuShares: 1024 });
    expect(readFileSync(join(mount, 'cgroup.subtree_control'), 'utf8')).toBe('cpu memory pids\n');
  });
});

describe('cgroup v1 file logic', () => {
  it('writes each controller into its own hierarchy and reads usage back', () => {
    const base = tmp();
    const mounts = new Map(['cpu', 'cpuacct', 'memory', 'pids'].map((c) => [c, join(base, c)]));
    const d = new CgroupV1Driver(mounts, 'corral');
    const dir = (c: string) => join(base, c, 'corral', 'c1');
    mkdirSync(join(base, 'memory'), { recursive: true });
    writeFileSync(join(base, 'memory', 'memory.memsw.limit_in_bytes'), ''); // swap accounting is on
    const p = d.create('c1', cgroupLimits({ cpus: 0.25, memMb: 32, pids: 7, cfsQuota: true }));
    expect(p).toEqual({ dirs: ['cpu', 'cpuacct', 'memory', 'pids'].map(dir), oomFile: join(dir('memory'), 'memory.oom_control') });
    expect(readFileSync(join(dir('cpu'), 'cpu.shares'), 'utf8')).toBe('256');
    expect(readFileSync(join(dir('cpu'), 'cpu.cfs_quota_us'), 'utf8')).toBe('25000');
    expect(readFileSync(join(dir('memory'), 'memory.memsw.limit_in_bytes'), 'utf8')).toBe(String(32 * 1024 * 1024));
    expect(readFileSync(join(dir('pids'), 'pids.max'), 'utf8')).toBe('7');
    writeFileSync(join(dir('cpuacct'), 'cpuacct.usage'), '1500000000');
    writeFileSync(join(dir('memory'), 'memory.usage_in_bytes'), '4096');
    writeFileSync(join(dir('cpu'), 'cpu.stat'), 'nr_periods 5\nnr_throttled 2\nthrottled_time 300000000\n');
    expect(d.usage('c1')).toMatchObject({ cpuSeconds: 1.5, memBytes: 4096, memLimitBytes: 32 * 1024 * 1024, cpuThrottledSeconds: 0.3 });
  });

  it('leaves cpu.cfs_period_us at the kernel default unless another period is asked for', () => {
    const d = new CgroupV1Driver(
      new Map([
        ['cpu', '/cg/cpu'],
        ['memory', '/cg/memory'],
      ]),
      'corral',
    );
    const files = (periodUs: number): string[] => d.setup('c1', { cpuShares: 512, cpuQuota: { quotaUs: 50_000, periodUs } }).writes.map(([f, v]) => `${f.split('/').at(-1)}=${v}`);
    expect(files(100_000)).toEqual(['cpu.shares=512', 'cpu.cfs_quota_us=50000']);
    // Period before quota: the kernel checks the quota against the period in place.
    expect(files(250_000)).toEqual(['cpu.shares=512', 'cpu.cfs_period_us=250000', 'cpu.cfs_quota_us=50000']);
  });

  it('refuses a pids limit without a pids hierarchy', () => {
    const base = tmp();
    const d = new CgroupV1Driver(
      new Map([
        ['cpu', join(base, 'cpu')],
        ['memory', join(base, 'memory')],
      ]),
      'corral',
    );
    expect(() => d.create('c1', { cpuShares: 2, pids: 5 })).toThrow(/no pids cgroup hierarchy/);
  });
});
