/**
 * dig against a discovery daemon following a real master: every name form
 * and record type, over UDP and TCP, truncation and TCP fallback, EDNS0,
 * SOA/NS, NXDOMAIN vs NODATA, case, host networking, forwarding (to knot),
 * and a DNS worker process sharing the socket.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startCluster, type TestCluster } from './cluster.js';
import { dig, digShort } from './dns-client.js';
import { startKnot, zoneFile, type KnotHandle } from './knot.js';
import { testDir, recordPid, forgetPid } from '../harness/resources.js';
import { startDiscovery, type RunningDiscovery } from '../../discovery/src/daemon.js';
import { join } from 'node:path';
import { rmSync } from 'node:fs';

let c: TestCluster;
let port: number;
let knot: KnotHandle | undefined;
let knotDir: string | undefined;
let fwdDir: string | undefined;
let forwarding: RunningDiscovery | undefined;
let webIp: string;

beforeAll(async () => {
  c = await startCluster({ agents: 2, discovery: { dns: { port: 0, workers: 1 } } });
  for (const pid of c.discovery.dnsWorkerPids) recordPid('discovery-dns-worker', pid);
  port = c.discovery.dnsPort;
  await c.launch({
    id: 'web-1',
    name: 'web',
    discovery: {
      name: 'web',
      ports: {
        ports: [
          { number: 8080, name: 'http', protocol: 'tcp' },
          { number: 5353, name: 'mdns', protocol: 'udp' },
        ],
      },
    },
    labels: { labels: [{ key: 'tags', value: 'v1,canary' }] },
  });
  await c.launch({ id: 'web-2', name: 'web', discovery: { name: 'web', ports: { ports: [{ number: 8080, name: 'http', protocol: 'tcp' }] } } });
  await c.launch({ id: 'hostnet-1', name: 'Host_Net.App', hostNetwork: true });
  webIp = c.ipOf('web-1');
  await Promise.all(Array.from({ length: 40 }, (_, i) => c.launch({ id: `many-${i}`, name: 'many' })));
  // Let the last updates reach DNS.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await digShort(port, 'many.marathon.corral', 'A', ['+tcp'])).length < 40) await new Promise((r) => setTimeout(r, 20));
});

afterAll(async () => {
  await forwarding?.close();
  await knot?.stop();
  for (const d of [knotDir, fwdDir]) if (d) rmSync(d, { recursive: true, force: true });
  for (const pid of c?.discovery.dnsWorkerPids ?? []) forgetPid('discovery-dns-worker', pid);
  await c?.dispose();
});

describe('Mesos-DNS names', () => {
  it('task.framework A: every healthy instance, over UDP and TCP', async () => {
    const want = [c.ipOf('web-1'), c.ipOf('web-2')].sort();
    expect((await digShort(port, 'web.marathon.corral')).sort()).toEqual(want);
    expect((await digShort(port, 'web.marathon.corral', 'A', ['+tcp'])).sort()).toEqual(want);
  });

  it('_task._tcp / _task._udp SRV to the task ports, with unique targets that resolve', async () => {
    const srv = await digShort(port, '_web._tcp.marathon.corral', 'SRV');
    expect(srv).toHaveLength(2);
    expect(srv.every((l) => l.includes(' 8080 '))).toBe(true);
    const udp = await digShort(port, '_web._udp.marathon.corral', 'SRV', ['+tcp']);
    expect(udp).toHaveLength(1);
    expect(udp[0]).toMatch(/^0 1 5353 web-[0-9a-f]{5}\.marathon\.corral\.$/);
    const target = udp[0]!.split(' ')[3]!;
    expect(await digShort(port, target)).toEqual([webIp]);
    const full = await dig(port, ['_web._udp.marathon.corral', 'SRV']);
    expect(full).toMatch(/ADDITIONAL SECTION:\n.*IN\s+A\s+100\.96\./);
  });

  it('leader, master, _leader._tcp, agent/slave', async () => {
    expect(await digShort(port, 'leader.corral')).toEqual(['127.0.0.1']);
    expect(await digShort(port, 'master.corral', 'A', ['+tcp'])).toEqual(['127.0.0.1']);
    expect(await digShort(port, '_leader._tcp.corral', 'SRV')).toEqual([`0 1 ${c.master.port} leader.corral.`]);
    expect((await digShort(port, 'agent.corral')).sort()).toEqual(['198.18.0.1', '198.18.0.2']);
    expect((await digShort(port, 'slave.corral')).sort()).toEqual(['198.18.0.1', '198.18.0.2']);
  });

  it('host-networked tasks answer with their agent address; names are sanitised', async () => {
    const agentIp = c.agentOf('hostnet-1').session.agentId ? (await digShort(port, 'host-net-app.marathon.corral'))[0] : undefined;
    expect(['198.18.0.1', '198.18.0.2']).toContain(agentIp);
  });
});

describe('Consul names', () => {
  it('name.service A and SRV, tag.name.service, _name._tcp/_tag.service, addr names', async () => {
    const want = [c.ipOf('web-1'), c.ipOf('web-2')].sort();
    expect((await digShort(port, 'web.service.corral')).sort()).toEqual(want);
    expect((await digShort(port, 'web.service.dc1.corral')).sort()).toEqual(want);
    expect(await digShort(port, 'canary.web.service.corral')).toEqual([webIp]);
    expect((await digShort(port, 'http.web.service.corral')).sort()).toEqual(want);
    const srv = await digShort(port, '_web._tcp.service.corral', 'SRV');
    expect(srv).toHaveLength(2);
    expect(srv.every((l) => /^1 1 8080 [0-9a-f]{8}\.addr\.corral\.$/.test(l))).toBe(true);
    expect(await digShort(port, '_web._v1.service.corral', 'SRV')).toEqual([
      `1 1 8080 ${webIp
        .split('.')
        .map((o) => Number(o).toString(16).padStart(2, '0'))
        .join('')}.addr.corral.`,
    ]);
    expect((await digShort(port, 'web.service.corral', 'SRV', ['+tcp'])).length).toBe(2);
  });

  it('node.node: agents and this daemon', async () => {
    expect(await digShort(port, '198-18-0-1.node.corral')).toEqual(['198.18.0.1']);
    expect(await digShort(port, 'discovery-node.node.dc1.corral')).toEqual(['127.0.0.1']);
  });
});

describe('protocol behaviour', () => {
  it('SOA and NS at the apex with glue; ANY returns every record of a name', async () => {
    expect((await digShort(port, 'corral', 'SOA'))[0]).toMatch(/^ns1\.corral\. hostmaster\.corral\. \d+ 60 30 86400 1$/);
    const ns = await dig(port, ['corral', 'NS']);
    expect(ns).toMatch(/ANSWER SECTION:\ncorral\.\s+\d+\s+IN\s+NS\s+ns1\.corral\./);
    expect(ns).toMatch(/ADDITIONAL SECTION:[\s\S]*ns1\.corral\.\s+\d+\s+IN\s+A\s+127\.0\.0\.1/);
    const any = await digShort(port, 'web.service.corral', 'ANY', ['+tcp']);
    expect(any.length).toBe(4);
  });

  it('NXDOMAIN for missing names, NODATA for other types and empty non-terminals', async () => {
    const nx = await dig(port, ['nosuch.marathon.corral', 'A']);
    expect(nx).toContain('status: NXDOMAIN');
    expect(nx).toMatch(/AUTHORITY SECTION:\ncorral\.\s+1\s+IN\s+SOA/);
    const nodata = await dig(port, ['web.marathon.corral', 'AAAA']);
    expect(nodata).toContain('status: NOERROR');
    expect(nodata).toContain('ANSWER: 0');
    const ent = await dig(port, ['marathon.corral', 'A', '+tcp']);
    expect(ent).toContain('status: NOERROR');
    expect(await dig(port, ['_tcp.marathon.corral', 'SRV'])).toContain('status: NOERROR');
    expect(await dig(port, ['other.zone', 'A'])).toContain('status: REFUSED');
  });

  it('case-insensitive, answering in the case asked', async () => {
    const out = await dig(port, ['WeB.MaRaThOn.CoRrAl', 'A']);
    expect(out).toContain('status: NOERROR');
    expect(out).toMatch(/ANSWER SECTION:\nWeB\.MaRaThOn\.CoRrAl\.\s+0\s+IN\s+A/);
  });

  it('truncates big answers over UDP and dig falls back to TCP', async () => {
    const udp = await dig(port, ['many.marathon.corral', 'A', '+noedns', '+ignore']);
    expect(udp).toMatch(/flags: qr aa tc rd/);
    expect(udp).toContain('ANSWER: 0');
    const fallback = await dig(port, ['many.marathon.corral', 'A', '+noedns']);
    expect(fallback).toContain('Truncated, retrying in TCP mode');
    expect(fallback).toContain('ANSWER: 40');
    const edns = await dig(port, ['many.marathon.corral', 'A', '+bufsize=1232']);
    expect(edns).toContain('ANSWER: 40');
    expect(edns).toMatch(/EDNS: version: 0, flags:; udp: 1232/);
  });

  it('rotates multiple answers', async () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 8; i++) firsts.add((await digShort(port, 'web.marathon.corral'))[0]!);
    expect(firsts.size).toBe(2);
  });

  it('the worker process answers too, and its counters reach /v1/corral/status', async () => {
    expect(c.discovery.dnsWorkerPids).toHaveLength(1);
    for (let i = 0; i < 30; i++) await digShort(port, 'web.marathon.corral');
    await new Promise((r) => setTimeout(r, 50));
    c.discovery.dns.stats();
    await new Promise((r) => setTimeout(r, 100));
    const status = (await (await fetch(`${c.discovery.httpUrl}/v1/corral/status`)).json()) as { dns: { workers: number; stats: { queries: number } } };
    expect(status.dns.workers).toBe(1);
    expect(status.dns.stats.queries).toBeGreaterThan(30);
    expect(c.discovery.dns.responder.stats.queries).toBeLessThan(status.dns.stats.queries);
  });
});

describe('forwarding', () => {
  it('forwards names outside the zone to an upstream (knot) over UDP and TCP', async () => {
    knotDir = testDir('discovery-knot');
    knot = await startKnot(
      knotDir,
      'example.test',
      zoneFile('example.test', [
        { name: 'example.test', type: 'SOA', data: 'ns.example.test. h.example.test. 1 60 60 60 60' },
        { name: 'example.test', type: 'NS', data: 'ns.example.test.' },
        { name: 'www.example.test', type: 'A', data: '192.0.2.10' },
      ]),
    );
    const dir = (fwdDir = testDir('discovery-fwd'));
    forwarding = await startDiscovery({
      insecure: true,
      workDir: dir,
      store: { backend: 'embedded', path: join(dir, 'kv.db'), sync: 'normal' },
      dns: { port: 0, workers: 0, upstreams: [`127.0.0.1:${knot.port}`], forwardTimeoutMs: 500 },
      http: { port: 0 },
    });
    const p = forwarding.dnsPort;
    expect(await digShort(p, 'www.example.test')).toEqual(['192.0.2.10']);
    expect(await digShort(p, 'www.example.test', 'A', ['+tcp'])).toEqual(['192.0.2.10']);
    expect(await dig(p, ['nope.example.test', 'A'])).toContain('status: NXDOMAIN');
    expect(await dig(p, ['ns1.corral', 'A'])).toMatch(/flags: qr aa rd ra/);
    await knot.stop();
    expect(await dig(p, ['www.example.test', 'A'])).toContain('status: SERVFAIL');
  });
});
