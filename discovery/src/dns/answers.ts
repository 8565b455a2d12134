/**
 * Builds complete answer messages for one (name, type, EDNS) question: the
 * slow path behind the responder's cache. Each answer is built once per
 * rotation of its record set, with ID 0; the responder copies a template and
 * patches the ID, the RD/CD bits and the question's letter case.
 */
import { ZoneData } from './zone.js';
import { QTYPE, RCODE, Writer, answerFlags, type RR } from './wire.js';

export interface AnswerOptions {
  ttl: number;
  /** Our advertised EDNS0 UDP payload size. */
  maxUdpPayload: number;
  /** RA: set when other names are forwarded to upstream resolvers. */
  recursionAvailable: boolean;
  /** Rotations precomputed for a multi-record answer. */
  maxRotations: number;
}

export interface Template {
  rcode: number;
  /** One message per rotation of the answer records. */
  variants: Buffer[];
  /** TC=1 message with the question only, for clients whose limit the answer exceeds. */
  truncated: Buffer;
  /** Next rotation to hand out. */
  rot: number;
}

interface Question {
  /** Question name in wire form (lower-case). */
  nameKey: string;
  /** Dotted form of the question name. */
  name: string;
  qtype: number;
  qclass: number;
  edns: boolean;
}

function header(w: Writer, flags: number): void {
  w.u16(0);
  w.u16(flags);
  w.u16(1);
  w.u16(0);
  w.u16(0);
  w.u16(0);
}

function question(w: Writer, q: Question): void {
  w.bytes(Buffer.from(q.nameKey, 'latin1'));
  w.remember(q.name, 12);
  w.u16(q.qtype);
  w.u16(q.qclass);
}

function rotate<T>(list: T[], by: number): T[] {
  return by === 0 ? list : [...list.slice(by), ...list.slice(0, by)];
}

/** The message for a question whose answer is `answers` under rcode, with SOA authority on negative answers. */
function message(zone: ZoneData, q: Question, opts: AnswerOptions, rcode: number, answers: RR[], ownerTtl: number, tc = false): Buffer {
  const w = new Writer();
  header(w, answerFlags(0, { aa: true, ra: opts.recursionAvailable, tc, rcode }));
  question(w, q);
  let an = 0;
  let ns = 0;
  let ar = 0;
  if (!tc) {
    for (const rr of answers) {
      w.rr(q.name, rr, rr.type === 'SOA' || rr.type === 'NS' ? ownerTtl : opts.ttl);
      an++;
    }
    const soa = zone.soa();
    if (answers.length === 0 && soa && soa.type === 'SOA') {
      w.rr(zone.domain, soa, soa.minimum);
      ns++;
    }
    // Glue for SRV targets and name servers, so one round trip is enough.
    const extra = new Set<string>();
    for (const rr of answers) {
      const target = rr.type === 'SRV' ? rr.target : rr.type === 'NS' ? rr.host : undefined;
      if (!target || extra.has(target) || target === q.name) continue;
      extra.add(target);
      for (const addr of zone.addresses(target)) {
        w.rr(target, addr, opts.ttl);
        ar++;
      }
    }
  }
  if (q.edns) {
    w.opt(opts.maxUdpPayload);
    ar++;
  }
  const buf = w.finish();
  buf.writeUInt16BE(an, 6);
  buf.writeUInt16BE(ns, 8);
  buf.writeUInt16BE(ar, 10);
  return buf;
}

/** Answer templates for a question about a name inside our zone. */
export function buildTemplate(zone: ZoneData, q: Question, opts: AnswerOptions): Template {
  if (q.qtype === QTYPE.AXFR || q.qtype === 251) {
    // Zone transfers are not offered: the data is live, not a zone file.
    return single(q, opts, RCODE.REFUSED);
  }
  const found = zone.lookup(q.name, q.qtype);
  const rcode = found.exists ? RCODE.NOERROR : RCODE.NXDOMAIN;
  const soa = zone.soa();
  const soaTtl = soa?.type === 'SOA' ? soa.minimum : opts.ttl;
  const n = found.answers.length;
  const rotations = n > 1 ? Math.min(n, opts.maxRotations) : 1;
  const variants: Buffer[] = [];
  for (let i = 0; i < rotations; i++) variants.push(message(zone, q, opts, rcode, rotate(found.answers, i), soaTtl));
  return { rcode, variants, truncated: message(zone, q, opts, rcode, [], soaTtl, true), rot: 0 };
}

/** A bodiless answer (REFUSED, NOTIMP…) that still carries the question. */
export function single(q: Question, opts: AnswerOptions, rcode: number): Template {
  const w = new Writer();
  header(w, answerFlags(0, { aa: false, ra: opts.recursionAvailable, rcode }));
  question(w, q);
  if (q.edns) w.opt(opts.maxUdpPayload);
  const buf = w.finish();
  if (q.edns) buf.writeUInt16BE(1, 10);
  return { rcode, variants: [buf], truncated: buf, rot: 0 };
}

/** BADVERS: the client spoke an EDNS version we do not (RFC 6891 §6.1.3). */
export function badVersion(q: Question, opts: AnswerOptions): Buffer {
  const w = new Writer();
  header(w, answerFlags(0, { aa: false, ra: opts.recursionAvailable, rcode: 0 }));
  question(w, q);
  w.opt(opts.maxUdpPayload, 1);
  const buf = w.finish();
  buf.writeUInt16BE(1, 10);
  return buf;
}

export type { Question };
