/**
 * Every CNI operation through the real shim against a real node daemon and
 * real namespaces: ADD (repeated), DEL (twice, after the namespace is gone),
 * CHECK (healthy, after someone deletes a route), GC, STATUS, VERSION, and
 * the error codes a runtime must see.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { run } from '../harness/resources.js';
import { deleteNamedNetns } from '../../common/netkit/netns.js';
import { execPlugin } from '../../common/cni-runtime/exec.js';
import { SHIM, startTestHost, ipJson, ping, nsOf, type TestHost } from './helpers.js';

interface AddResult {
  cniVersion: string;
  interfaces: Array<{ name: string; mac: string; sandbox?: string; mtu?: number }>;
  ips: Array<{ address: string; gateway: string; interface: number; version?: string }>;
  routes: Array<{ dst: string; gw: string }>;
}

let host: TestHost;

beforeAll(async () => {
  host = await startTestHost('ops');
});

afterAll(async () => {
  await host?.dispose();
});

describe('CNI operations', () => {
  it('ADD wires the container the Calico way and reports both interfaces', async () => {
    const netns = await host.container('a');
    const res = await host.cni({ command: 'ADD', containerId: 'ctr-a', netns, ifname: 'eth0' }, host.conf({ mtu: 1400 }));
    expect(res.code, res.stdout).toBe(0);
    const r = res.json as AddResult;
    expect(r.cniVersion).toBe('1.1.0');
    const [hostIf, contIf] = r.interfaces;
    expect(hostIf!.sandbox).toBeUndefined();
    expect(contIf).toMatchObject({ name: 'eth0', sandbox: netns, mtu: 1400 });
    const ip = r.ips[0]!.address.split('/')[0]!;
    expect(r.ips[0]).toMatchObject({ address: `${ip}/32`, gateway: '169.254.1.1', interface: 1 });

    const inside = await run('ip', ['-n', nsOf(netns), 'route']);
    expect(inside).toContain('default via 169.254.1.1 dev eth0');
    expect(inside).toContain('169.254.1.1 dev eth0 scope link');
    const addrs = await ipJson<Array<{ mtu: number; addr_info: Array<{ local: string; prefixlen: number }> }>>(nsOf(netns), ['addr', 'show', 'eth0']);
    expect(addrs[0]!.mtu).toBe(1400);
    expect(addrs[0]!.addr_info.some((a) => a.local === ip && a.prefixlen === 32)).toBe(true);

    const hostRoutes = await run('ip', ['-n', host.netns, 'route']);
    expect(hostRoutes).toContain(`${ip} dev ${hostIf!.name}`);
    expect(hostRoutes).toMatch(/blackhole 100\.96\.\d+\.\d+\/26/);
    const sysctl = await run('ip', ['netns', 'exec', host.netns, 'sysctl', '-n', `net.ipv4.conf.${hostIf!.name}.proxy_arp`, `net.ipv4.neigh.${hostIf!.name}.proxy_delay`]);
    expect(sysctl.trim().split('\n')).toEqual(['1', '0']);
  });

  it('a repeated ADD returns the same address; containers on one host reach each other', async () => {
    const a = await host.container('a');
    const first = (await host.cni({ command: 'ADD', containerId: 'ctr-a', netns: a, ifname: 'eth0' }, host.conf({ mtu: 1400 }))).json as AddResult;
    const again = (await host.cni({ command: 'ADD', containerId: 'ctr-a', netns: a, ifname: 'eth0' }, host.conf({ mtu: 1400 }))).json as AddResult;
    expect(again.ips[0]!.address).toBe(first.ips[0]!.address);
    const b = await host.container('b');
    const other = await host.cni({ command: 'ADD', containerId: 'ctr-b', netns: b, ifname: 'eth0' });
    expect(other.code).toBe(0);
    expect((other.json as AddResult).ips[0]!.address).not.toBe(first.ips[0]!.address);
    const out = await ping(nsOf(b), first.ips[0]!.address.split('/')[0]!, 2);
    expect(out).toContain('0% packet loss');
  });

  it('the 0.4.0 result carries IP versions', async () => {
    const netns = await host.container('old');
    const res = await host.cni({ command: 'ADD', containerId: 'ctr-old', netns, ifname: 'eth0' }, host.conf({ cniVersion: '0.4.0' }));
    expect(res.code, res.stdout).toBe(0);
    expect((res.json as AddResult).ips[0]!.version).toBe('4');
    expect((res.json as AddResult).cniVersion).toBe('0.4.0');
  });

  it('CHECK passes on a healthy container and fails once someone deletes its route', async () => {
    const netns = await host.container('chk');
    const add = await host.cni({ command: 'ADD', containerId: 'ctr-chk', netns, ifname: 'eth0' });
    const conf = host.conf({ prevResult: add.json });
    const ok = await host.cni({ command: 'CHECK', containerId: 'ctr-chk', netns, ifname: 'eth0' }, conf);
    expect(ok.code, ok.stdout).toBe(0);
    await run('ip', ['-n', nsOf(netns), 'route', 'del', 'default']);
    const bad = await host.cni({ command: 'CHECK', containerId: 'ctr-chk', netns, ifname: 'eth0' }, conf);
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ code: 101, msg: 'container network does not match' });
    expect((bad.json as { details: string }).details).toContain('default route');
    // A repeated ADD repairs it.
    expect((await host.cni({ command: 'ADD', containerId: 'ctr-chk', netns, ifname: 'eth0' })).code).toBe(0);
    expect((await host.cni({ command: 'CHECK', containerId: 'ctr-chk', netns, ifname: 'eth0' }, conf)).code).toBe(0);
  });

  it('DEL frees the address, twice is fine, and it works after the namespace is gone', async () => {
    const netns = await host.container('del');
    const add = (await host.cni({ command: 'ADD', containerId: 'ctr-del', netns, ifname: 'eth0' })).json as AddResult;
    const hostIf = add.interfaces[0]!.name;
    const del = await host.cni({ command: 'DEL', containerId: 'ctr-del', netns, ifname: 'eth0' });
    expect(del.code, del.stdout).toBe(0);
    expect(del.stdout).toBe('');
    expect((await host.allocations()).some((a) => a.containerId === 'ctr-del')).toBe(false);
    expect(await run('ip', ['-n', host.netns, '-o', 'link', 'show'])).not.toContain(hostIf);
    // The interface name is free in the container as soon as DEL returns.
    expect(await run('ip', ['-n', nsOf(netns), '-o', 'link', 'show'])).not.toContain('eth0');
    expect((await host.cni({ command: 'DEL', containerId: 'ctr-del', netns, ifname: 'eth0' })).code).toBe(0);

    const gone = await host.container('gone');
    const add2 = (await host.cni({ command: 'ADD', containerId: 'ctr-gone', netns: gone, ifname: 'eth0' })).json as AddResult;
    await deleteNamedNetns(nsOf(gone));
    expect(existsSync(gone)).toBe(false);
    const del2 = await host.cni({ command: 'DEL', containerId: 'ctr-gone', netns: gone, ifname: 'eth0' });
    expect(del2.code, del2.stdout).toBe(0);
    expect((await host.allocations()).map((a) => a.ip)).not.toContain(add2.ips[0]!.address.split('/')[0]);
    expect((await host.cni({ command: 'DEL', containerId: 'ctr-gone', ifname: 'eth0' })).code).toBe(0);
  });

  it('GC frees every attachment the runtime no longer lists', async () => {
    const keep = await host.container('gck');
    const drop = await host.container('gcd');
    await host.cni({ command: 'ADD', containerId: 'ctr-keep', netns: keep, ifname: 'eth0' });
    await host.cni({ command: 'ADD', containerId: 'ctr-drop', netns: drop, ifname: 'eth0' });
    const before = await host.allocations();
    const valid = before.filter((a) => a.containerId !== 'ctr-drop').map((a) => ({ containerID: a.containerId, ifname: a.ifname }));
    const gc = await host.cni({ command: 'GC' }, host.conf({ 'cni.dev/valid-attachments': valid }));
    expect(gc.code, gc.stdout).toBe(0);
    const after = (await host.allocations()).map((a) => a.containerId);
    expect(after).not.toContain('ctr-drop');
    expect(after).toContain('ctr-keep');
    expect(after).toHaveLength(before.length - 1);
  });

  it('GC exactly as libcni sends it: both attachment keys, the other CNI_* variables set but empty', async () => {
    const keep = await host.container('lck');
    const drop = await host.container('lcd');
    await host.cni({ command: 'ADD', containerId: 'lib-keep', netns: keep, ifname: 'eth0' });
    await host.cni({ command: 'ADD', containerId: 'lib-drop', netns: drop, ifname: 'eth0' });
    const valid = (await host.allocations()).filter((a) => a.containerId !== 'lib-drop').map((a) => ({ containerID: a.containerId, ifname: a.ifname }));
    // libcni/api.go GCNetworkList: InjectConf(plugin, {name, cniVersion, cni.dev/valid-attachments, cni.dev/attachments}); args("GC", &RuntimeConf{}).
    const gc = await host.cni({ command: 'GC', containerId: '', netns: '', ifname: '', args: '' }, host.conf({ 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid }));
    expect(gc.code, gc.stdout).toBe(0);
    const after = (await host.allocations()).map((a) => a.containerId);
    expect(after).toContain('lib-keep');
    expect(after).not.toContain('lib-drop');
  });

  it('VERSION and STATUS', async () => {
    const v = await host.cni({ command: 'VERSION' }, '{}');
    expect(v.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    expect((await host.cni({ command: 'STATUS' })).code).toBe(0);
  });
});

describe('CNI errors', () => {
  const codeOf = async (call: Parameters<TestHost['cni']>[0], conf?: unknown): Promise<{ code: number; msg: string }> => {
    const r = await host.cni(call, conf);
    expect(r.code).toBe(1);
    return r.json as { code: number; msg: string };
  };

  it('bad config, bad JSON, unknown version, missing env', async () => {
    const netns = await host.container('err');
    const call = { command: 'ADD', containerId: 'ctr-err', netns, ifname: 'eth0' };
    expect(await codeOf(call, host.conf({ mtu: 'big' }))).toMatchObject({ code: 7, msg: 'invalid network configuration' });
    expect(await codeOf(call, host.conf({ pooool: ['x'] }))).toMatchObject({ code: 7 });
    expect(await codeOf(call, `{"cniVersion":"1.1.0","daemonSocket":"${host.socket}",`)).toMatchObject({ code: 6 });
    expect(await codeOf(call, host.conf({ cniVersion: '0.2.0' }))).toMatchObject({ code: 1 });
    expect(await codeOf({ ...call, containerId: undefined })).toMatchObject({ code: 4 });
    expect(await codeOf({ ...call, netns: undefined })).toMatchObject({ code: 4 });
    expect(await codeOf({ ...call, ifname: 'this-name-is-too-long' })).toMatchObject({ code: 4 });
    expect(await codeOf({ ...call, netns: '/run/netns/ct-cni-does-not-exist' })).toMatchObject({ code: 4 });
    expect(await codeOf({ ...call, command: 'ADDX' })).toMatchObject({ code: 4 });
    const noCommand = await execPlugin(SHIM, { command: 'ADD', env: { CNI_COMMAND: undefined } }, host.conf());
    expect(noCommand.json).toMatchObject({ code: 4 });
  });

  it('unknown pool is a config error naming the pools', async () => {
    const netns = await host.container('pool');
    const e = await codeOf({ command: 'ADD', containerId: 'ctr-pool', netns, ifname: 'eth0' }, host.conf({ pools: ['nope'] }));
    expect(e).toMatchObject({ code: 7, msg: 'unknown IP pool' });
    expect((e as unknown as { details: string }).details).toContain('default');
  });

  it('a daemon that is not running means "try again later"', async () => {
    const netns = await host.container('down');
    const e = await codeOf({ command: 'ADD', containerId: 'ctr-down', netns, ifname: 'eth0' }, host.conf({ daemonSocket: `${host.dir}/no-such.sock` }));
    expect(e).toMatchObject({ code: 11, msg: 'try again later' });
  });
});

describe('pool exhaustion', () => {
  let small: TestHost;
  beforeAll(async () => {
    small = await startTestHost('exh', { pools: [{ name: 'tiny', cidr: '100.96.200.0/30', blockSize: 30, strictAffinity: true }] });
  });
  afterAll(async () => {
    await small?.dispose();
  });

  it('answers code 100 once every address is used, STATUS says 50, and a DEL makes room again', async () => {
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await small.cni({ command: 'ADD', containerId: `full-${i}`, netns: await small.container(`f${i}`), ifname: 'eth0' });
      expect(r.code, r.stdout).toBe(0);
      got.push((r.json as AddResult).ips[0]!.address);
    }
    expect(new Set(got).size).toBe(4);
    const r = await small.cni({ command: 'ADD', containerId: 'full-x', netns: await small.container('fx'), ifname: 'eth0' });
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 100, msg: 'IP pool exhausted' });
    expect((await small.cni({ command: 'STATUS' })).json).toMatchObject({ code: 50 });
    expect((await small.cni({ command: 'DEL', containerId: 'full-0', ifname: 'eth0' })).code).toBe(0);
    expect((await small.cni({ command: 'ADD', containerId: 'full-x', netns: await small.container('fx'), ifname: 'eth0' })).code).toBe(0);
  });
});
