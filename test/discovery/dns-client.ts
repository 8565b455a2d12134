/**
 * Test-side DNS helpers: `dig` for the real client behaviour, and a small
 * dns-packet UDP client for tight polling loops and crafted packets.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { run } from '../harness/resources.js';

/** `dig @127.0.0.1 -p PORT name type +short [extra]` → non-empty lines. */
export async function digShort(port: number, name: string, type = 'A', extra: string[] = []): Promise<string[]> {
  const out = await run('dig', ['@127.0.0.1', '-p', String(port), name, type, '+short', '+time=2', '+tries=1', ...extra]);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Full dig output (status, flags, sections). */
export function dig(port: number, args: string[]): Promise<string> {
  return run('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', ...args]);
}

/** Send raw bytes over UDP and wait for one reply (undefined on timeout). */
export function udpExchange(port: number, msg: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      resolve(undefined);
    }, timeoutMs);
    sock.once('message', (m) => {
      clearTimeout(timer);
      sock.close();
      resolve(m);
    });
    sock.send(msg, port, '127.0.0.1');
  });
}

let nextId = 1;

/** A query for (name, type), optionally with EDNS0. */
export function query(name: string, type: dnsPacket.RecordType = 'A', edns?: number): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: (nextId = (nextId + 1) & 0xffff),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    ...(edns ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: edns, flags: 0 } as dnsPacket.Answer] } : {}),
  });
}

export async function resolve(port: number, name: string, type: dnsPacket.RecordType = 'A'): Promise<dnsPacket.Packet | undefined> {
  const reply = await udpExchange(port, query(name, type));
  return reply ? dnsPacket.decode(reply) : undefined;
}

/** Addresses in an A answer (empty for NXDOMAIN/NODATA/timeout). */
export async function addresses(port: number, name: string): Promise<string[]> {
  const p = await resolve(port, name, 'A');
  return (p?.answers ?? [])
    .filter((a) => a.type === 'A')
    .map((a) => String((a as { data: unknown }).data))
    .sort();
}

/** Poll until `pred` holds for the answer, or fail after timeoutMs. */
export async function waitForAnswer(port: number, name: string, pred: (ips: string[]) => boolean, timeoutMs = 5000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  while (Date.now() < deadline) {
    last = await addresses(port, name);
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${name}: answer ${JSON.stringify(last)} did not reach the expected state within ${timeoutMs} ms`);
}
