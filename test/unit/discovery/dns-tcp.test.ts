/**
 * DNS over TCP (discovery/src/dns/transport.ts): pipelined queries in one
 * segment, a query split across segments, answers in query order even when
 * one of them is forwarded to a (slow) upstream, and a 60-record RRset
 * carried whole. The upstream is a small UDP responder on loopback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { Responder } from '../../../discovery/src/dns/responder.js';
import { Forwarder } from '../../../discovery/src/dns/forwarder.js';
import { createTcpServer } from '../../../discovery/src/dns/transport.js';

const opts = { ttl: 0, maxUdpPayload: 1232, recursionAvailable: true, maxRotations: 1, forwarding: true };
const big = Array.from({ length: 60 }, (_, i) => ({ type: 'A' as const, ip: `100.96.0.${i + 1}` }));

let cleanup: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

function responder(): Responder {
  const r = new Responder('corral', 'dc1', opts);
  r.apply([
    ['corral', [{ type: 'SOA', mname: 'ns1.corral', rname: 'hostmaster.corral', serial: 1, refresh: 60, retry: 30, expire: 86400, minimum: 1 }]],
    ['big.fw.corral', big],
    ['small.fw.corral', [{ type: 'A', ip: '100.96.1.1' }]],
    ['fw.corral', []],
  ]);
  return r;
}

/** An upstream that answers every A question with 192.0.2.1 after `delayMs`. */
async function upstream(delayMs: number): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 5, data: '192.0.2.1' }],
    });
    setTimeout(() => s.send(reply, rinfo.port, rinfo.address), delayMs);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => s.close(() => r())));
  return s.address().port;
}

async function server(forwardPort?: number): Promise<number> {
  const forwarder = forwardPort ? new Forwarder([{ host: '127.0.0.1', port: forwardPort }], 2000) : undefined;
  const srv = createTcpServer(responder(), forwarder, { idleMs: 10_000, maxConnections: 10 });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    forwarder?.close();
    return new Promise<void>((r) => {
      srv.close(() => r());
      srv.emit('corral:close-connections');
    });
  });
  return (srv.address() as net.AddressInfo).port;
}

const frame = (id: number, name: string): Buffer => {
  const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });
  const len = Buffer.alloc(2);
  len.writeUInt16BE(q.length);
  return Buffer.concat([len, q]);
};

/** Send the segments (each its own write, with a pause so they arrive as separate reads) and collect `count` answers. */
async function exchange(port: number, segments: Buffer[], count: number): Promise<Array<dnsPacket.Packet & { id: number }>> {
  const sock = net.connect(port, '127.0.0.1');
  cleanup.push(() => void sock.destroy());
  await new Promise<void>((r) => sock.once('connect', r));
  const answers: Array<dnsPacket.Packet & { id: number }> = [];
  const done = new Promise<void>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    sock.on('error', reject);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        answers.push(dnsPacket.decode(buf.subarray(2, 2 + len)) as dnsPacket.Packet & { id: number });
        buf = buf.subarray(2 + len);
      }
      if (answers.length >= count) resolve();
    });
  });
  for (const s of segments) {
    sock.write(s);
    await new Promise((r) => setTimeout(r, 20));
  }
  await done;
  return answers;
}

describe('DNS over TCP', () => {
  it('answers pipelined and split queries in order; a 60-record RRset comes whole', async () => {
    const port = await server();
    const all = Buffer.concat([frame(1, 'big.fw.corral'), frame(2, 'small.fw.corral'), frame(3, 'nope.fw.corral')]);
    const fourth = frame(4, 'BIG.fw.corral');
    // Three whole queries and the first byte of the fourth, then the rest of it in two pieces.
    const answers = await exchange(port, [Buffer.concat([all, fourth.subarray(0, 1)]), fourth.subarray(1, 9), fourth.subarray(9)], 4);
    expect(answers.map((a) => a.id)).toEqual([1, 2, 3, 4]);
    expect(answers[0]!.answers).toHaveLength(60);
    expect(answers[0]!.flags! & 0x0200).toBe(0);
    expect(answers[1]!.answers!.map((a) => (a as { data: string }).data)).toEqual(['100.96.1.1']);
    expect((answers[2] as unknown as { rcode: string }).rcode).toBe('NXDOMAIN');
    expect(answers[3]!.answers).toHaveLength(60);
    expect(answers[3]!.questions![0]!.name).toBe('BIG.fw.corral');
  });

  it('keeps query order when a forwarded answer is slower than the ones after it', async () => {
    const port = await server(await upstream(150));
    const answers = await exchange(port, [Buffer.concat([frame(10, 'small.fw.corral'), frame(11, 'example.org'), frame(12, 'big.fw.corral'), frame(13, 'small.fw.corral')])], 4);
    expect(answers.map((a) => a.id)).toEqual([10, 11, 12, 13]);
    expect(answers[1]!.answers!.map((a) => (a as { data: string }).data)).toEqual(['192.0.2.1']);
    expect(answers[2]!.answers).toHaveLength(60);
    // Once the forwarded answer is out, later queries are answered at once again.
    const again = await exchange(port, [frame(20, 'small.fw.corral')], 1);
    expect(again[0]!.id).toBe(20);
  });
});
