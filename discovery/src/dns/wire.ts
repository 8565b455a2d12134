/**
 * DNS wire format: a strict, allocation-light parser for queries and a small
 * writer for the record types discovery serves (A, AAAA, SRV, SOA, NS, OPT).
 *
 * Why not a library on the hot path: a `dns2` server did ~9.2k qps here and
 * `dns-packet` decode+encode ~68k; answers are precomputed by this writer and
 * the per-query work is this parser plus a copy (`npx tsx bench/dns-servers.ts`
 * serves the same records all three ways; figures in docs/benchmarks.md).
 */
import { isIPv4 } from 'node:net';

export const QTYPE = { A: 1, NS: 2, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, AXFR: 252, ANY: 255 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;
const HEADER_BYTES = 12;
/** Classic UDP limit without EDNS0. */
export const PLAIN_UDP_LIMIT = 512;

export type RR =
  | { type: 'A'; ip: string }
  | { type: 'AAAA'; ip: string }
  | { type: 'SRV'; priority: number; weight: number; port: number; target: string }
  | { type: 'NS'; host: string }
  | { type: 'SOA'; mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };

export const TYPE_CODE: Record<RR['type'], number> = { A: QTYPE.A, AAAA: QTYPE.AAAA, SRV: QTYPE.SRV, NS: QTYPE.NS, SOA: QTYPE.SOA };

export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

export interface Query {
  id: number;
  /** Header flags word as received (RD, CD… are echoed). */
  flags: number;
  /** Offset just past the question name (after its root label). */
  nameEnd: number;
  /** The question name in wire form, ASCII-lowercased: the cache key. */
  nameKey: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question. */
  questionEnd: number;
  edns: Edns | undefined;
}

type ParseResult = { ok: true; query: Query } | { ok: false; rcode: number; id: number; flags: number } | { ok: false; drop: true };

/**
 * Parse one query. Malformed input that still has a header gets FORMERR (or
 * NOTIMP for other opcodes); shorter input and responses are dropped, so we
 * never answer a packet that could be a reflected answer.
 */
export function parseQuery(msg: Buffer): ParseResult {
  if (msg.length < HEADER_BYTES) return { ok: false, drop: true };
  const id = (msg[0]! << 8) | msg[1]!;
  const flags = (msg[2]! << 8) | msg[3]!;
  if (flags & 0x8000) return { ok: false, drop: true };
  const fail = (rcode: number): ParseResult => ({ ok: false, rcode, id, flags });
  if ((flags >> 11) & 0xf) return fail(RCODE.NOTIMP);
  const qd = (msg[4]! << 8) | msg[5]!;
  const an = (msg[6]! << 8) | msg[7]!;
  const ns = (msg[8]! << 8) | msg[9]!;
  const ar = (msg[10]! << 8) | msg[11]!;
  if (qd !== 1 || an !== 0 || ns !== 0 || ar > 1) return fail(RCODE.FORMERR);
  let off = HEADER_BYTES;
  let nameLen = 0;
  for (;;) {
    if (off >= msg.length) return fail(RCODE.FORMERR);
    const len = msg[off]!;
    if (len === 0) {
      off++;
      break;
    }
    // Compression pointers and the reserved label kinds have no place in a question.
    if (len > 63) return fail(RCODE.FORMERR);
    nameLen += len + 1;
    if (nameLen > 254) return fail(RCODE.FORMERR);
    off += len + 1;
  }
  const nameEnd = off;
  if (off + 4 > msg.length) return fail(RCODE.FORMERR);
  const qtype = (msg[off]! << 8) | msg[off + 1]!;
  const qclass = (msg[off + 2]! << 8) | msg[off + 3]!;
  off += 4;
  const questionEnd = off;
  let edns: Edns | undefined;
  if (ar === 1) {
    // Only an OPT pseudo-record is understood in a query's additional section.
    if (off + 11 > msg.length || msg[off] !== 0) return fail(RCODE.FORMERR);
    const type = (msg[off + 1]! << 8) | msg[off + 2]!;
    if (type !== QTYPE.OPT) return fail(RCODE.FORMERR);
    const udpSize = (msg[off + 3]! << 8) | msg[off + 4]!;
    const version = msg[off + 6]!;
    const dnssecOk = (msg[off + 7]! & 0x80) !== 0;
    const rdlen = (msg[off + 9]! << 8) | msg[off + 10]!;
    off += 11 + rdlen;
    if (off !== msg.length) return fail(RCODE.FORMERR);
    edns = { udpSize: Math.max(PLAIN_UDP_LIMIT, udpSize), version, dnssecOk };
  } else if (off !== msg.length) {
    return fail(RCODE.FORMERR);
  }
  const nameKey = msg.toString('latin1', HEADER_BYTES, nameEnd).toLowerCase();
  return { ok: true, query: { id, flags, nameEnd, nameKey, qtype, qclass, questionEnd, edns } };
}

/** Dotted lower-case name of a wire key, or undefined if a label holds bytes no served name can have. */
export function keyToName(nameKey: string): string | undefined {
  const labels: string[] = [];
  let off = 0;
  for (;;) {
    const len = nameKey.charCodeAt(off);
    if (len === 0 || Number.isNaN(len)) break;
    const label = nameKey.slice(off + 1, off + 1 + len);
    if (!/^[a-z0-9_-]+$/.test(label)) return undefined;
    labels.push(label);
    off += len + 1;
  }
  return labels.join('.');
}

/** Wire key (as parseQuery makes it) of a dotted name. */
export function nameToKey(name: string): string {
  if (name === '') return '\0';
  return (
    name
      .split('.')
      .map((l) => String.fromCharCode(l.length) + l)
      .join('') + '\0'
  );
}

/** Growable buffer writer with RFC 1035 name compression (suffix pointers). */
export class Writer {
  private buf: Buffer;
  off = 0;
  private readonly names = new Map<string, number>();

  constructor(size = 512) {
    this.buf = Buffer.alloc(size);
  }

  private room(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.off++] = v & 0xff;
  }

  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16BE(v & 0xffff, this.off);
    this.off += 2;
  }

  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.off);
    this.off += b.length;
  }

  setU16(at: number, v: number): void {
    this.buf.writeUInt16BE(v & 0xffff, at);
  }

  /** Remember that `name` (dotted, lower-case) is written at `at`, so later names can point to it. */
  remember(name: string, at: number): void {
    if (at < 0x4000 && !this.names.has(name)) this.names.set(name, at);
  }

  /** Write a dotted name; `compress` false writes every label (RFC 2782 for SRV targets). */
  name(name: string, compress = true): void {
    const labels = name === '' ? [] : name.split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.');
      const ptr = compress ? this.names.get(suffix) : undefined;
      if (ptr !== undefined) {
        this.u16(0xc000 | ptr);
        return;
      }
      this.remember(suffix, this.off);
      const label = Buffer.from(labels[i]!, 'latin1');
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }

  /** A resource record; RDLENGTH is filled in after the rdata is written. */
  rr(owner: string, rr: RR, ttl: number): void {
    this.name(owner);
    this.u16(TYPE_CODE[rr.type]);
    this.u16(CLASS_IN);
    this.u32(ttl);
    const lenAt = this.off;
    this.u16(0);
    const start = this.off;
    switch (rr.type) {
      case 'A':
        for (const part of rr.ip.split('.')) this.u8(Number(part));
        break;
      case 'AAAA':
        this.bytes(ipv6Bytes(rr.ip));
        break;
      case 'SRV':
        this.u16(rr.priority);
        this.u16(rr.weight);
        this.u16(rr.port);
        this.name(rr.target, false);
        break;
      case 'NS':
        this.name(rr.host);
        break;
      case 'SOA':
        this.name(rr.mname);
        this.name(rr.rname);
        this.u32(rr.serial);
        this.u32(rr.refresh);
        this.u32(rr.retry);
        this.u32(rr.expire);
        this.u32(rr.minimum);
        break;
    }
    this.setU16(lenAt, this.off - start);
  }

  /** EDNS0 OPT pseudo-record advertising our UDP payload size. */
  opt(udpSize: number, extRcode = 0): void {
    this.u8(0);
    this.u16(QTYPE.OPT);
    this.u16(udpSize);
    this.u8(extRcode);
    this.u8(0);
    this.u16(0);
    this.u16(0);
  }

  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.off));
  }
}

export function ipv6Bytes(ip: string): Buffer {
  const out = Buffer.alloc(16);
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 && isIPv4(v4[1]!)) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -v4[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const parts = tail === undefined ? headParts : [...headParts, ...Array(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  parts.forEach((p, i) => out.writeUInt16BE(parseInt(p || '0', 16), i * 2));
  return out;
}

/** Header flags of an answer: QR, the query's opcode and RD (and CD), AA for our zone, RA when we forward. */
export function answerFlags(queryFlags: number, opts: { aa: boolean; ra: boolean; tc?: boolean; rcode: number }): number {
  return 0x8000 | (queryFlags & 0x7910) | (opts.aa ? 0x0400 : 0) | (opts.tc ? 0x0200 : 0) | (opts.ra ? 0x0080 : 0) | (opts.rcode & 0xf);
}

/** An error answer with no question (used when the question could not be parsed). */
export function errorAnswer(id: number, queryFlags: number, rcode: number, ra: boolean): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(answerFlags(queryFlags, { aa: false, ra, rcode }), 2);
  return b;
}
