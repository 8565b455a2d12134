/**
 * Turns one query message into one answer message. The hot path is a parse,
 * one map lookup and a template copy; templates are built on first use and
 * dropped wholesale whenever the served names change (rebuilding one costs
 * microseconds, and a change must show in the very next answer).
 */
import { ZoneData, type NameDelta } from './zone.js';
import { buildTemplate, single, badVersion, type AnswerOptions, type Template, type Question } from './answers.js';
import { CLASS_ANY, CLASS_IN, PLAIN_UDP_LIMIT, RCODE, errorAnswer, keyToName, parseQuery, type Query } from './wire.js';

export type Transport = 'udp' | 'tcp';

/** What to do with a query: send bytes, forward it upstream, or stay silent. */
type Outcome = Buffer | { forward: Query } | undefined;

export interface DnsStats {
  queries: number;
  noerror: number;
  nxdomain: number;
  formerr: number;
  refused: number;
  servfail: number;
  notimp: number;
  truncated: number;
  forwarded: number;
  dropped: number;
}

export const emptyStats = (): DnsStats => ({ queries: 0, noerror: 0, nxdomain: 0, formerr: 0, refused: 0, servfail: 0, notimp: 0, truncated: 0, forwarded: 0, dropped: 0 });

const RCODE_STAT: Record<number, keyof DnsStats> = {
  [RCODE.NOERROR]: 'noerror',
  [RCODE.FORMERR]: 'formerr',
  [RCODE.SERVFAIL]: 'servfail',
  [RCODE.NXDOMAIN]: 'nxdomain',
  [RCODE.NOTIMP]: 'notimp',
  [RCODE.REFUSED]: 'refused',
};

/** Cached answers for forwarded names, so the forwarding decision is also one lookup. */
const FORWARD = { forward: true } as const;
type CacheEntry = Template | typeof FORWARD;

/** Bound on cached names, so random-name floods cannot grow memory without limit. */
const MAX_CACHED_NAMES = 100_000;

export interface ResponderOptions extends AnswerOptions {
  /** True when upstream resolvers are configured for names outside the zone. */
  forwarding: boolean;
}

/** Told of each template the cache gains and of each time the cache is dropped, so a UDP fast path can mirror it. */
interface TemplateListener {
  /** `t.rot` is already advanced past the answer just made from it. */
  built(nameKey: string, slot: number, t: Template): void;
  reset(): void;
}

export class Responder {
  readonly zone: ZoneData;
  readonly stats: DnsStats = emptyStats();
  listener: TemplateListener | undefined;
  private cache = new Map<string, Map<number, CacheEntry>>();
  private readonly zoneKeySuffix: string;

  constructor(
    domain: string,
    datacenter: string,
    private readonly opts: ResponderOptions,
  ) {
    this.zone = new ZoneData(domain, datacenter);
    this.zoneKeySuffix =
      domain
        .split('.')
        .map((l) => String.fromCharCode(l.length) + l)
        .join('') + '\0';
  }

  apply(deltas: NameDelta[]): void {
    if (deltas.length === 0) return;
    this.zone.apply(deltas);
    this.cache = new Map();
    this.listener?.reset();
  }

  answer(msg: Buffer, transport: Transport): Outcome {
    const stats = this.stats;
    stats.queries++;
    let out: Outcome;
    try {
      out = this.answerUnchecked(msg, transport);
    } catch {
      // A bug must cost one SERVFAIL, never the process: every byte here is attacker-controlled.
      stats.servfail++;
      return msg.length >= 12 ? errorAnswer(msg.readUInt16BE(0), msg.readUInt16BE(2), RCODE.SERVFAIL, this.opts.forwarding) : undefined;
    }
    return out;
  }

  private answerUnchecked(msg: Buffer, transport: Transport): Outcome {
    const parsed = parseQuery(msg);
    if (!parsed.ok) {
      if ('drop' in parsed) {
        this.stats.dropped++;
        return undefined;
      }
      this.stats[RCODE_STAT[parsed.rcode]!]++;
      return errorAnswer(parsed.id, parsed.flags, parsed.rcode, this.opts.forwarding);
    }
    const q = parsed.query;
    if (q.edns && q.edns.version !== 0) {
      this.stats.noerror++;
      return this.patch(badVersion(this.question(q, q.nameKey), this.opts), msg, q);
    }
    if (q.qclass !== CLASS_IN && q.qclass !== CLASS_ANY) {
      this.stats.refused++;
      return this.patch(single(this.question(q, q.nameKey), this.opts, RCODE.REFUSED).variants[0]!, msg, q);
    }
    const slot = q.qtype * 2 + (q.edns ? 1 : 0);
    let byType = this.cache.get(q.nameKey);
    let entry = byType?.get(slot);
    let fresh = false;
    if (entry === undefined) {
      entry = this.build(q);
      fresh = true;
      if (!byType) {
        if (this.cache.size >= MAX_CACHED_NAMES) {
          this.cache = new Map();
          this.listener?.reset();
        }
        this.cache.set(q.nameKey, (byType = new Map()));
      }
      byType.set(slot, entry);
    }
    if (entry === FORWARD) {
      this.stats.forwarded++;
      return { forward: q };
    }
    const t = entry as Template;
    let src = t.variants.length === 1 ? t.variants[0]! : t.variants[(t.rot = (t.rot + 1) % t.variants.length)]!;
    if (fresh) this.listener?.built(q.nameKey, slot, t);
    const limit = transport === 'tcp' ? 65535 : q.edns ? Math.min(q.edns.udpSize, this.opts.maxUdpPayload) : PLAIN_UDP_LIMIT;
    if (src.length > limit) {
      src = t.truncated;
      this.stats.truncated++;
    }
    this.stats[RCODE_STAT[t.rcode]!]++;
    return this.patch(src, msg, q);
  }

  /** Copy a template and make it this query's answer: ID, RD/CD bits, and the question's letter case. */
  private patch(template: Buffer, msg: Buffer, q: Query): Buffer {
    const out = Buffer.allocUnsafe(template.length);
    template.copy(out);
    out[0] = msg[0]!;
    out[1] = msg[1]!;
    out[2]! |= msg[2]! & 0x01;
    out[3]! |= msg[3]! & 0x10;
    msg.copy(out, 12, 12, q.nameEnd);
    return out;
  }

  private question(q: Query, nameKey: string): Question {
    return { nameKey, name: keyToName(nameKey) ?? '', qtype: q.qtype, qclass: q.qclass, edns: q.edns !== undefined };
  }

  private build(q: Query): CacheEntry {
    const name = keyToName(q.nameKey);
    const question = this.question(q, q.nameKey);
    const inZone = name !== undefined ? this.zone.inZone(name) : this.underZone(q.nameKey);
    if (!inZone) return this.opts.forwarding ? FORWARD : single(question, this.opts, RCODE.REFUSED);
    // A name with bytes no served label can have (question.name is then '') exists nowhere in our zone.
    return buildTemplate(this.zone, question, this.opts);
  }

  /** True when a wire key ends with our zone at a label boundary. */
  private underZone(nameKey: string): boolean {
    if (!nameKey.endsWith(this.zoneKeySuffix)) return false;
    let off = 0;
    const target = nameKey.length - this.zoneKeySuffix.length;
    while (off < target) off += nameKey.charCodeAt(off) + 1;
    return off === target;
  }
}
