/**
 * Hostile input against a live daemon: random and mutated DNS packets over
 * UDP and TCP (no crash, no hang, FORMERR where a header was readable), and
 * random HTTP bodies and paths on the Consul API (400/404/405, never 500).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { startDiscovery, type RunningDiscovery } from '../../discovery/src/daemon.js';
import { testDir } from '../harness/resources.js';
import { udpExchange, query, digShort } from './dns-client.js';
import { join } from 'node:path';
import { rmSync } from 'node:fs';

let d: RunningDiscovery;
let dir: string;

beforeAll(async () => {
  dir = testDir('discovery-fuzz');
  d = await startDiscovery({
    insecure: true,
    workDir: dir,
    store: { backend: 'embedded', path: join(dir, 'kv.db'), sync: 'normal' },
    dns: { port: 0, workers: 0 },
    http: { port: 0 },
    nodeName: 'fuzz-node',
  });
});

afterAll(async () => {
  await d?.close();
  rmSync(dir, { recursive: true, force: true });
});

function tcpExchange(port: number, payload: Buffer, timeoutMs = 1000): Promise<{ replies: Buffer[]; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const replies: Buffer[] = [];
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ replies, closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (replies.length) finish(false);
    });
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.write(payload);
  });
}

describe('DNS fuzzing', () => {
  it('answers random query-shaped UDP packets with FORMERR or a valid answer, and keeps serving', async () => {
    const packets = fc.sample(fc.uint8Array({ minLength: 12, maxLength: 200 }), 300).map((b) => {
      const m = Buffer.from(b);
      m[2] = m[2]! & 0x07; // QR=0, opcode QUERY
      return m;
    });
    let formerr = 0;
    for (const m of packets) {
      const reply = await udpExchange(d.dnsPort, m, 300);
      expect(reply).toBeDefined();
      expect(reply!.readUInt16BE(0)).toBe(m.readUInt16BE(0));
      const decoded = dnsPacket.decode(reply!) as unknown as { rcode: string };
      if (decoded.rcode === 'FORMERR') formerr++;
    }
    expect(formerr).toBeGreaterThan(200);
    expect(await digShort(d.dnsPort, 'ns1.corral')).toEqual(['127.0.0.1']);
  });

  it('never answers packets that claim to be responses (no reflection)', async () => {
    const resp = dnsPacket.encode({ type: 'response', id: 5, questions: [{ type: 'A', name: 'ns1.corral' }] });
    expect(await udpExchange(d.dnsPort, resp, 300)).toBeUndefined();
  });

  it('handles TCP garbage: short reads, bogus lengths and junk without hanging', async () => {
    const good = query('ns1.corral');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(good.length);
    // Byte-by-byte delivery of a valid query still gets an answer.
    const slow = await new Promise<Buffer[]>((resolve) => {
      const sock = net.connect(d.dnsPort, '127.0.0.1');
      const all = Buffer.concat([len, good]);
      let i = 0;
      const tick = setInterval(() => (i < all.length ? sock.write(all.subarray(i, ++i)) : clearInterval(tick)), 1);
      sock.on('data', (c: Buffer) => {
        clearInterval(tick);
        sock.destroy();
        resolve([c]);
      });
    });
    expect(slow[0]!.length).toBeGreaterThan(2);
    for (const junk of fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), 25)) {
      const r = await tcpExchange(d.dnsPort, Buffer.from(junk), 100);
      for (const reply of r.replies) expect(() => dnsPacket.decode(reply)).not.toThrow();
    }
    const mutated = Buffer.from(good);
    mutated[5] = 7; // QDCOUNT 7
    const r = await tcpExchange(d.dnsPort, Buffer.concat([len, mutated]));
    expect((dnsPacket.decode(r.replies[0]!) as unknown as { rcode: string }).rcode).toBe('FORMERR');
    expect(await digShort(d.dnsPort, 'ns1.corral', 'A', ['+tcp'])).toEqual(['127.0.0.1']);
  });
});

describe('HTTP fuzzing', () => {
  const endpoints: Array<[string, string]> = [
    ['PUT', '/v1/txn'],
    ['PUT', '/v1/session/create'],
    ['PUT', '/v1/catalog/register'],
    ['PUT', '/v1/catalog/deregister'],
    ['PUT', '/v1/agent/service/register'],
    ['PUT', '/v1/agent/check/register'],
    ['PUT', '/v1/agent/check/update/x'],
  ];

  it('random bodies get 4xx with a JSON error, never a 500', async () => {
    const bodies = fc.sample(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.json({ maxDepth: 3 }),
        fc.constantFrom(
          '[{"KV":{"Verb":"set","Key":"","Value":"!!"}}]',
          '{"Name":1}',
          '{"Node":"n"}',
          '{"TTL":"forever"}',
          '{"Name":"s","Check":{"HTTP":"notaurl","Interval":"1s"}}',
          '[{"KV":{"Verb":"lock","Key":"k"}}]',
          'null',
          '[]',
          '{}',
        ),
      ),
      60,
    );
    const statuses = new Map<number, number>();
    for (const [method, path] of endpoints) {
      for (const body of bodies) {
        const res = await fetch(`${d.httpUrl}${path}`, { method, body, headers: { 'content-type': 'application/json' } });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect(res.status, `${method} ${path} ${body.slice(0, 80)}`).toBeLessThan(500);
        if (res.status >= 400) expect(res.headers.get('content-type')).toContain('application/json');
        else await res.arrayBuffer();
      }
    }
    expect(statuses.get(400) ?? 0).toBeGreaterThan(endpoints.length * 30);
  });

  it('bad query parameters and paths are 400/404/405, not crashes', async () => {
    const cases: Array<[string, string, number]> = [
      ['GET', '/v1/kv/a?index=abc', 400],
      ['GET', '/v1/kv/a?index=1&wait=forever', 400],
      ['PUT', '/v1/kv/a?cas=-1', 400],
      ['PUT', '/v1/kv/a?flags=x', 400],
      ['PUT', '/v1/kv/?acquire=s', 400],
      ['PUT', '/v1/kv/a?acquire=', 400],
      ['GET', '/v1/kv/%E0%A4%A', 400],
      ['GET', '/v1/health/state/bogus', 400],
      ['PUT', '/v1/session/renew/nope', 404],
      ['PUT', '/v1/agent/check/pass/nope', 404],
      ['GET', '/v1/nothing', 404],
      ['DELETE', '/v1/catalog/services', 405],
    ];
    for (const [method, path, want] of cases) {
      const res = await fetch(`${d.httpUrl}${path}`, { method, ...(method === 'PUT' ? { body: 'x' } : {}) });
      expect(res.status, `${method} ${path}`).toBe(want);
      await res.arrayBuffer();
    }
    expect((await fetch(`${d.httpUrl}/v1/status/leader`)).status).toBe(200);
  });
});
