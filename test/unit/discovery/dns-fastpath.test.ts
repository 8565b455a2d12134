/**
 * The native UDP fast path (native/dns, discovery/src/dns/fastpath.ts)
 * against node:dgram: two servers with the same names, one on each path,
 * get the same queries in the same order — first ones (answered by JS,
 * which fills the native table) and repeats (answered by the native thread)
 * — and every answer must be the same bytes: ID, RD/CD echo, the question's
 * letter case, rotations, truncation by EDNS size, negative answers,
 * refusals and errors. A change of names must show in the next answer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { DnsServer, type DnsServerOptions } from '../../../discovery/src/dns/server.js';
import { loadDnsAddon } from '../../../discovery/src/dns/fastpath.js';
import { logger } from '../../../common/log.js';
import type { NameDelta } from '../../../discovery/src/dns/zone.js';
import type { RR } from '../../../discovery/src/dns/wire.js';

// This file picks each server's path itself; a run of the suite with CORRAL_DNS_FAST_PATH=0 must not take that away.
delete process.env.CORRAL_DNS_FAST_PATH;
const addon = loadDnsAddon();

const opts = (fastPath: boolean): DnsServerOptions => ({
  host: '127.0.0.1',
  port: 0,
  domain: 'corral',
  datacenter: 'dc1',
  upstreams: [],
  forwardTimeoutMs: 1000,
  workers: 0,
  tcpIdleMs: 5000,
  tcpMaxConnections: 10,
  ttl: 0,
  maxUdpPayload: 1232,
  recursionAvailable: false,
  maxRotations: 4,
  forwarding: false,
  fastPath,
  log: logger('dns-fastpath-test'),
});

const many = (n: number, base: number): RR[] => Array.from({ length: n }, (_, i) => ({ type: 'A', ip: `100.96.${base}.${i + 1}` }));
const names: NameDelta[] = [
  ['corral', [{ type: 'SOA', mname: 'ns1.corral', rname: 'hostmaster.corral', serial: 1, refresh: 60, retry: 30, expire: 86400, minimum: 1 }]],
  ['web.marathon.corral', many(3, 1)],
  ['_web._tcp.marathon.corral', [{ type: 'SRV', priority: 0, weight: 1, port: 31000, target: 'web.marathon.corral' }]],
  ['big.marathon.corral', many(60, 2)],
  [
    'one.marathon.corral',
    [
      { type: 'A', ip: '100.96.3.1' },
      { type: 'AAAA', ip: 'fd00::1' },
    ],
  ],
];

/** A query in wire form: id, flags word, name as given (case kept), type, class, optional OPT (size, version, DO). */
function wire(id: number, flags: number, name: string, qtype: number, qclass = 1, opt?: { size: number; version?: number; dnssecOk?: boolean }): Buffer {
  const labels = name.split('.').filter(Boolean);
  const parts: Buffer[] = [];
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(opt ? 1 : 0, 10);
  parts.push(h);
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  const q = Buffer.alloc(5);
  q.writeUInt16BE(qtype, 1);
  q.writeUInt16BE(qclass, 3);
  parts.push(q);
  if (opt) {
    const o = Buffer.alloc(11);
    o.writeUInt16BE(41, 1);
    o.writeUInt16BE(opt.size, 3);
    o[6] = opt.version ?? 0;
    o[7] = opt.dnssecOk ? 0x80 : 0;
    parts.push(o);
  }
  return Buffer.concat(parts);
}

/** The queries, each sent three times in a row (the first is JS's, the rest the table's). */
function queries(): Buffer[] {
  const list: Buffer[] = [
    wire(1, 0x0100, 'web.marathon.corral', 1),
    wire(2, 0x0100, 'WeB.MaraThon.CORRAL', 1),
    wire(3, 0x0110, 'web.marathon.corral', 1, 1, { size: 4096 }),
    wire(4, 0x0000, '_web._tcp.marathon.corral', 33),
    wire(5, 0x0100, '_web._tcp.marathon.corral', 33, 255, { size: 1232, dnssecOk: true }),
    wire(6, 0x0100, 'big.marathon.corral', 1),
    wire(7, 0x0100, 'big.marathon.corral', 1, 1, { size: 600 }),
    wire(8, 0x0100, 'big.marathon.corral', 1, 1, { size: 4096 }),
    wire(9, 0x0100, 'big.marathon.corral', 1, 1, { size: 100 }),
    wire(10, 0x0100, 'one.marathon.corral', 28),
    wire(11, 0x0100, 'one.marathon.corral', 16),
    wire(12, 0x0100, 'missing.marathon.corral', 1),
    wire(13, 0x0100, 'MISSING.marathon.corral', 1, 1, { size: 512 }),
    wire(14, 0x0100, 'example.org', 1),
    wire(15, 0x0100, 'corral', 6),
    wire(16, 0x0100, 'web.marathon.corral', 1, 3),
    wire(17, 0x0100, 'web.marathon.corral', 1, 1, { size: 1232, version: 1 }),
    wire(18, 0x0100, 'web.marathon.corral', 252),
    wire(19, 0x0900, 'web.marathon.corral', 1),
    wire(20, 0x0100, 'w\u00c9b.marathon.corral', 1),
    Buffer.concat([wire(21, 0x0100, 'web.marathon.corral', 1), Buffer.from([0])]),
  ];
  return list.flatMap((q) => [q, q, q]);
}

/** Sends each query and waits for its answer (or a bounded silence) before the next, so order is the same on both servers. */
async function exchangeAll(port: number, msgs: Buffer[]): Promise<Array<string | undefined>> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const out: Array<string | undefined> = [];
  try {
    for (const m of msgs) {
      const reply = await new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => {
          sock.off('message', on);
          resolve(undefined);
        }, 2000);
        const on = (b: Buffer): void => {
          clearTimeout(timer);
          resolve(b);
        };
        sock.once('message', on);
        sock.send(m, port, '127.0.0.1');
      });
      out.push(reply?.toString('hex'));
    }
  } finally {
    sock.close();
  }
  return out;
}

let servers: DnsServer[] = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
});

describe('DNS UDP fast path', () => {
  it('is built, and serves when asked to', async () => {
    expect('addon' in addon ? 'built' : addon.reason).toBe('built');
    const fast = await DnsServer.start(opts(true), names);
    const slow = await DnsServer.start(opts(false), names);
    servers.push(fast, slow);
    expect(fast.udpPath).toBe('native');
    expect(slow.udpPath).toBe('dgram');
  });

  it('answers byte for byte as the node:dgram path, before and after the table is filled and after a change of names', async () => {
    const fast = await DnsServer.start(opts(true), names);
    const slow = await DnsServer.start(opts(false), names);
    servers.push(fast, slow);
    const msgs = queries();
    const a = await exchangeAll(fast.port, msgs);
    const b = await exchangeAll(slow.port, msgs);
    expect(a).toEqual(b);
    // Every one of these gets an answer (errors included): none was lost between the paths.
    expect(a.every((x) => x !== undefined)).toBe(true);
    // The repeats came from the native table: the process's own counters cover them too.
    expect(fast.stats().queries).toBe(msgs.length);
    expect(fast.responder.stats.queries).toBeLessThan(fast.stats().queries / 2);
    expect(fast.stats()).toEqual(slow.stats());

    const change: NameDelta[] = [
      ['web.marathon.corral', [{ type: 'A', ip: '100.96.9.9' }]],
      ['missing.marathon.corral', [{ type: 'A', ip: '100.96.9.8' }]],
    ];
    fast.apply(change);
    slow.apply(change);
    const again = [wire(30, 0x0100, 'web.marathon.corral', 1), wire(31, 0x0100, 'missing.marathon.corral', 1)].flatMap((q) => [q, q]);
    const c = await exchangeAll(fast.port, again);
    const d = await exchangeAll(slow.port, again);
    expect(c).toEqual(d);
    expect(c[0]).toContain(Buffer.from([100, 96, 9, 9]).toString('hex'));
    expect(c[3]).toContain(Buffer.from([100, 96, 9, 8]).toString('hex'));
  });
});
