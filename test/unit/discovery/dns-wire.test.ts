import { describe, it, expect } from 'vitest';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { parseQuery, keyToName, nameToKey, ipv6Bytes, RCODE } from '../../../discovery/src/dns/wire.js';
import { Responder } from '../../../discovery/src/dns/responder.js';
import type { NameDelta } from '../../../discovery/src/dns/zone.js';

const opts = { ttl: 0, maxUdpPayload: 1232, recursionAvailable: false, maxRotations: 16, forwarding: false };

function responder(names: NameDelta[], forwarding = false): Responder {
  const r = new Responder('corral', 'dc1', { ...opts, forwarding, recursionAvailable: forwarding });
  r.apply([
    [
      'corral',
      [
        { type: 'SOA', mname: 'ns1.corral', rname: 'hostmaster.corral', serial: 7, refresh: 60, retry: 30, expire: 86400, minimum: 1 },
        { type: 'NS', host: 'ns1.corral' },
      ],
    ],
    ['ns1.corral', [{ type: 'A', ip: '127.0.0.1' }]],
    ...names,
  ]);
  return r;
}

type Decoded = dnsPacket.Packet & { rcode: string; flag_aa: boolean; flag_rd: boolean; flag_tc: boolean };

function ask(r: Responder, name: string, type: dnsPacket.RecordType = 'A', edns?: number, transport: 'udp' | 'tcp' = 'udp'): Decoded {
  const q = dnsPacket.encode({
    type: 'query',
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    ...(edns ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: edns } as dnsPacket.Answer] } : {}),
  });
  const out = r.answer(q, transport);
  if (!Buffer.isBuffer(out)) throw new Error('expected an answer');
  return dnsPacket.decode(out) as unknown as Decoded;
}

const data = (p: dnsPacket.Packet): string[] => (p.answers ?? []).map((a) => JSON.stringify((a as { data: unknown }).data));

describe('DNS wire parsing', () => {
  it('parses a query with EDNS0 and lower-cases the name key', () => {
    const msg = dnsPacket.encode({
      type: 'query',
      id: 7,
      questions: [{ type: 'SRV', name: 'WeB.Corral', class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer],
    });
    const p = parseQuery(msg);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.query.id).toBe(7);
    expect(p.query.qtype).toBe(33);
    expect(keyToName(p.query.nameKey)).toBe('web.corral');
    expect(p.query.edns?.udpSize).toBe(4096);
  });

  it('drops short packets and responses, FORMERRs broken questions, NOTIMPs other opcodes', () => {
    expect(parseQuery(Buffer.alloc(5))).toEqual({ ok: false, drop: true });
    const resp = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a.corral' }] });
    expect(parseQuery(resp)).toEqual({ ok: false, drop: true });
    const good = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.corral' }] });
    const truncated = good.subarray(0, good.length - 2);
    expect(parseQuery(truncated)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const trailing = Buffer.concat([good, Buffer.from([1, 2, 3])]);
    expect(parseQuery(trailing)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const pointer = Buffer.from(good);
    pointer[12] = 0xc0;
    expect(parseQuery(pointer)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const notify = Buffer.from(good);
    notify[2] = (4 << 3) & 0xff;
    expect(parseQuery(notify)).toMatchObject({ ok: false, rcode: RCODE.NOTIMP });
  });

  it('converts names and IPv6 addresses', () => {
    expect(nameToKey('a.bc')).toBe('\x01a\x02bc\x00');
    expect(keyToName(nameToKey('x-1.corral'))).toBe('x-1.corral');
    expect(keyToName('\x03a.b\x00')).toBeUndefined();
    expect(ipv6Bytes('fd00::1').toString('hex')).toBe('fd000000000000000000000000000001');
    expect(ipv6Bytes('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
  });
});

describe('Responder', () => {
  const web: NameDelta[] = [
    [
      'web.svc.corral',
      [
        { type: 'A', ip: '10.0.0.1' },
        { type: 'A', ip: '10.0.0.2' },
        { type: 'A', ip: '10.0.0.3' },
      ],
    ],
    ['_web._tcp.svc.corral', [{ type: 'SRV', priority: 0, weight: 1, port: 80, target: 'w1.svc.corral' }]],
    [
      'w1.svc.corral',
      [
        { type: 'A', ip: '10.0.0.1' },
        { type: 'AAAA', ip: 'fd00::1' },
      ],
    ],
    ['_tcp.svc.corral', []],
    ['svc.corral', []],
  ];

  it('answers A, AAAA and SRV with glue, authoritative, echoing the id and RD', () => {
    const r = responder(web);
    const a = ask(r, 'web.svc.corral');
    expect(a.id).toBe(4242);
    expect(a.flag_aa).toBe(true);
    expect(a.flag_rd).toBe(true);
    expect(data(a).sort()).toEqual(['"10.0.0.1"', '"10.0.0.2"', '"10.0.0.3"']);
    const srv = ask(r, '_web._tcp.svc.corral', 'SRV');
    expect(srv.answers?.[0]).toMatchObject({ type: 'SRV', data: { port: 80, target: 'w1.svc.corral' } });
    expect((srv.additionals ?? []).map((x) => x.type).sort()).toEqual(['A', 'AAAA']);
    expect(data(ask(r, 'w1.svc.corral', 'AAAA'))).toEqual(['"fd00::1"']);
  });

  it('tells NXDOMAIN from NODATA, including empty non-terminals, with the SOA in authority', () => {
    const r = responder(web);
    const nx = ask(r, 'nope.svc.corral');
    expect(nx.rcode).toBe('NXDOMAIN');
    expect(nx.authorities?.[0]?.type).toBe('SOA');
    const nodata = ask(r, 'web.svc.corral', 'SRV');
    expect(nodata.rcode).toBe('NOERROR');
    expect(nodata.answers).toHaveLength(0);
    expect(nodata.authorities?.[0]?.type).toBe('SOA');
    const ent = ask(r, '_tcp.svc.corral', 'SRV');
    expect(ent.rcode).toBe('NOERROR');
    expect(ent.answers).toHaveLength(0);
  });

  it('serves SOA and NS at the apex, REFUSES other zones without upstreams', () => {
    const r = responder(web);
    expect(ask(r, 'corral', 'SOA').answers?.[0]).toMatchObject({ type: 'SOA', data: { mname: 'ns1.corral', serial: 7 } });
    const ns = ask(r, 'corral', 'NS');
    expect(ns.answers?.[0]).toMatchObject({ type: 'NS', data: 'ns1.corral' });
    expect(ns.additionals?.find((x) => x.type === 'A')).toMatchObject({ name: 'ns1.corral' });
    expect(ask(r, 'example.com').rcode).toBe('REFUSED');
    expect(ask(r, 'xcorral').rcode).toBe('REFUSED');
  });

  it('is case-insensitive and keeps the letter case of the question', () => {
    const r = responder(web);
    const p = ask(r, 'WeB.SvC.CoRrAl');
    expect(p.questions?.[0]?.name).toBe('WeB.SvC.CoRrAl');
    expect(p.answers).toHaveLength(3);
    expect(p.answers?.[0]?.name).toBe('WeB.SvC.CoRrAl');
  });

  it('rotates multiple answers', () => {
    const r = responder(web);
    const firsts = new Set<string>();
    for (let i = 0; i < 6; i++) firsts.add(data(ask(r, 'web.svc.corral'))[0]!);
    expect(firsts.size).toBe(3);
  });

  it('truncates over UDP past 512 bytes (or the EDNS size) and not over TCP', () => {
    const many: NameDelta[] = [['big.corral', Array.from({ length: 60 }, (_, i) => ({ type: 'A' as const, ip: `10.1.0.${i + 1}` }))]];
    const r = responder(many);
    const udp = ask(r, 'big.corral');
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toHaveLength(0);
    const edns = ask(r, 'big.corral', 'A', 1232);
    expect(edns.flag_tc).toBe(false);
    expect(edns.answers).toHaveLength(60);
    const tcp = ask(r, 'big.corral', 'A', undefined, 'tcp');
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(60);
  });

  it('answers EDNS queries with OPT and unknown EDNS versions with BADVERS', () => {
    const r = responder(web);
    const p = ask(r, 'web.svc.corral', 'A', 4096);
    const opt = p.additionals?.find((x) => x.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    expect(opt?.udpPayloadSize).toBe(1232);
    const q = Buffer.from(
      dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'web.svc.corral' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer] }),
    );
    q[q.length - 5] = 1; // EDNS version byte
    const out = r.answer(q, 'udp') as Buffer;
    expect(out[out.length - 6]).toBe(1); // extended RCODE 1 = BADVERS (16)
    expect(dnsPacket.decode(out).answers).toHaveLength(0);
  });

  it('serves changes on the very next query', () => {
    const r = responder(web);
    expect(ask(r, 'new.corral').rcode).toBe('NXDOMAIN');
    r.apply([['new.corral', [{ type: 'A', ip: '10.9.9.9' }]]]);
    expect(data(ask(r, 'new.corral'))).toEqual(['"10.9.9.9"']);
    r.apply([['new.corral', null]]);
    expect(ask(r, 'new.corral').rcode).toBe('NXDOMAIN');
  });

  it('accepts the datacenter label in Consul names', () => {
    const r = responder([
      ['web.service.corral', [{ type: 'A', ip: '10.0.0.7' }]],
      ['service.corral', []],
    ]);
    expect(data(ask(r, 'web.service.dc1.corral'))).toEqual(['"10.0.0.7"']);
    expect(ask(r, 'web.service.dc2.corral').rcode).toBe('NXDOMAIN');
  });

  it('never throws on random bytes: drops, FORMERR or a well-formed answer', () => {
    const r = responder(web);
    // Half random packets, half a query-shaped header (QR=0, QUERY) over random bytes.
    const packet = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0x07ff }), fc.uint8Array({ minLength: 8, maxLength: 300 })).map(([id, flags, rest]) => {
        const b = Buffer.alloc(4 + rest.length);
        b.writeUInt16BE(id, 0);
        b.writeUInt16BE(flags, 2);
        Buffer.from(rest).copy(b, 4);
        return new Uint8Array(b);
      }),
    );
    fc.assert(
      fc.property(packet, (bytes) => {
        const out = r.answer(Buffer.from(bytes), 'udp');
        if (out === undefined) return bytes.length < 12 || (bytes[2]! & 0x80) !== 0;
        if (!Buffer.isBuffer(out)) return false;
        expect(out.readUInt16BE(0)).toBe((bytes[0]! << 8) | bytes[1]!);
        expect(() => dnsPacket.decode(out)).not.toThrow();
        return true;
      }),
      { numRuns: 3000 },
    );
    expect(r.stats.formerr).toBeGreaterThan(0);
  });

  it('keeps answering after mutated valid queries', () => {
    const r = responder(web);
    const base = dnsPacket.encode({ type: 'query', id: 3, questions: [{ type: 'A', name: 'web.svc.corral' }] });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, v) => {
        const m = Buffer.from(base);
        m[at] = v;
        const out = r.answer(m, 'udp');
        return out === undefined || Buffer.isBuffer(out);
      }),
      { numRuns: 2000 },
    );
    expect(data(ask(r, 'web.svc.corral'))).toHaveLength(3);
  });
});
