/**
 * IPAM under load and crashes, through the real shim and daemon:
 *  - 100 ADDs at once on one host get 100 distinct addresses;
 *  - 10,000 ADD/DEL cycles leave the pool's accounting at zero (no
 *    allocation, no block, no interface left behind);
 *  - a daemon SIGKILLed in the middle of ADDs: after a restart the leaked
 *    addresses are reclaimed and no live container's address is touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../harness/resources.js';
import { deleteNamedNetns } from '../../common/netkit/netns.js';
import { daemonRequest } from '../../plugins/cni-calico-like/src/daemon/client.js';
import { startTestHost, ping, nsOf, type TestHost } from './helpers.js';

const ipOf = (json: unknown): string => (json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!;

async function hostLinks(host: TestHost): Promise<string[]> {
  const out = await run('ip', ['-n', host.netns, '-o', 'link', 'show']);
  return out
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => n && n !== 'lo');
}

describe('many containers on one host', () => {
  let host: TestHost;
  beforeAll(async () => {
    host = await startTestHost('sc', { pools: [{ name: 'default', cidr: '100.96.0.0/16', blockSize: 26 }] });
  });
  afterAll(async () => {
    await host?.dispose();
  });

  it('100 parallel ADDs get 100 distinct addresses', async () => {
    const netns = await Promise.all(Array.from({ length: 100 }, (_, i) => host.container(`p${i}`)));
    const results = await Promise.all(netns.map((n, i) => host.cni({ command: 'ADD', containerId: `par-${i}`, netns: n, ifname: 'eth0' })));
    for (const r of results) expect(r.code, r.stdout).toBe(0);
    const ips = results.map((r) => ipOf(r.json));
    expect(new Set(ips).size).toBe(100);
    expect((await host.allocations()).length).toBe(100);
    const dels = await Promise.all(netns.map((n, i) => host.cni({ command: 'DEL', containerId: `par-${i}`, netns: n, ifname: 'eth0' })));
    for (const d of dels) expect(d.code, d.stdout).toBe(0);
    expect(await host.allocations()).toHaveLength(0);
    for (let i = 0; i < 100; i++) await deleteNamedNetns(nsOf(netns[i]!));
  }, 120_000);

  it('10,000 ADD/DEL cycles bring the pool accounting back to zero', async () => {
    const workers = 8;
    const perWorker = 10_000 / workers;
    const netns = await Promise.all(Array.from({ length: workers }, (_, w) => host.container(`w${w}`)));
    const seen = new Set<string>();
    await Promise.all(
      netns.map(async (n, w) => {
        for (let i = 0; i < perWorker; i++) {
          const call = { containerId: `cyc-${w}-${i}`, netns: n, ifname: 'eth0' };
          const add = await host.cni({ command: 'ADD', ...call });
          if (add.code !== 0) throw new Error(`ADD ${w}/${i}: ${add.stdout}`);
          seen.add(ipOf(add.json));
          const del = await host.cni({ command: 'DEL', ...call });
          if (del.code !== 0) throw new Error(`DEL ${w}/${i}: ${del.stdout}`);
        }
      }),
    );
    expect(seen.size).toBeGreaterThan(workers);
    expect(await host.allocations()).toHaveLength(0);
    const ipam = await daemonRequest<{ pools: Array<{ used: number; borrowed: number }> }>(host.socket, 'GET', '/v1/ipam');
    expect(ipam.pools[0]).toMatchObject({ used: 0, borrowed: 0 });
    const pass = await daemonRequest<{ releasedBlocks: string[] }>(host.socket, 'POST', '/v1/reconcile');
    expect(pass.releasedBlocks.length).toBeGreaterThan(0);
    const after = await daemonRequest<{ blocks: unknown[] }>(host.socket, 'GET', '/v1/ipam');
    expect(after.blocks).toHaveLength(0);
    // Every veth is gone once the reaper's batch ran; no block blackhole remains.
    for (let i = 0; i < 50 && (await hostLinks(host)).length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await hostLinks(host)).toEqual([]);
    expect(await run('ip', ['-n', host.netns, 'route'])).not.toContain('blackhole');
  }, 600_000);
});

describe('daemon killed in the middle of ADDs', () => {
  let host: TestHost;
  beforeAll(async () => {
    host = await startTestHost('kill', { faults: { delayAfterAssignMs: 300 } });
  });
  afterAll(async () => {
    await host?.dispose();
  });

  it('reclaims the leaked addresses and leaves every live container alone', async () => {
    // Live containers, wired before the crash (each ADD waits out the injected pause).
    const live = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const netns = await host.container(`live${i}`);
        const r = await host.cni({ command: 'ADD', containerId: `live-${i}`, netns, ifname: 'eth0' });
        expect(r.code, r.stdout).toBe(0);
        return { id: `live-${i}`, netns, ip: ipOf(r.json) };
      }),
    );
    // Doomed ADDs: the daemon dies while they sit between taking the address and answering.
    const doomedNs = await Promise.all(Array.from({ length: 6 }, (_, i) => host.container(`doom${i}`)));
    const pending = doomedNs.map((n, i) => host.cni({ command: 'ADD', containerId: `doom-${i}`, netns: n, ifname: 'eth0' }));
    await new Promise((r) => setTimeout(r, 150));
    await host.kill();
    const outcomes = await Promise.all(pending);
    for (const o of outcomes) expect(o.json).toMatchObject({ code: 11 });

    await host.restart();
    const leaked = (await host.allocations()).filter((a) => a.containerId.startsWith('doom-'));
    expect(leaked.length).toBe(6);
    // The runtime gives up on the failed sandboxes (no DEL), as runtimes do after a crash.
    for (const n of doomedNs) await deleteNamedNetns(nsOf(n));

    const pass = await daemonRequest<{ freed: string[] }>(host.socket, 'POST', '/v1/reconcile');
    expect(pass.freed).toHaveLength(6);
    const after = await host.allocations();
    expect(after.map((a) => a.containerId).sort()).toEqual(live.map((l) => l.id).sort());
    for (const l of live) expect(after.find((a) => a.containerId === l.id)?.ip).toBe(l.ip);
    // Live containers still reach each other, and a new container gets an unused address.
    expect(await ping(nsOf(live[0]!.netns), live[1]!.ip)).toContain('0% packet loss');
    const fresh = await host.cni({ command: 'ADD', containerId: 'fresh', netns: await host.container('fresh'), ifname: 'eth0' });
    expect(live.map((l) => l.ip)).not.toContain(ipOf(fresh.json));
    // A second pass finds nothing more to free.
    expect((await daemonRequest<{ freed: string[] }>(host.socket, 'POST', '/v1/reconcile')).freed).toEqual([]);
  }, 120_000);
});
