/**
 * The names one DNS process serves, as the record table last published them,
 * and the lookup rules: NXDOMAIN only for names that do not exist at all,
 * NODATA (NOERROR, empty answer, SOA) for names that exist with other types
 * or only as ancestors of other names (RFC 8020 empty non-terminals).
 */
import { QTYPE, TYPE_CODE, type RR } from './wire.js';

/** One change to a name: its full record list, [] for an empty non-terminal, null when it is gone. */
export type NameDelta = [name: string, rrs: RR[] | null];

interface LookupResult {
  /** The name looked up after aliases (e.g. the datacenter label) were removed. */
  name: string;
  exists: boolean;
  answers: RR[];
}

/** Labels under which Consul accepts an optional datacenter label before the domain. */
const DC_KINDS = new Set(['service', 'node', 'addr']);

export class ZoneData {
  private readonly names = new Map<string, RR[]>();

  constructor(
    readonly domain: string,
    readonly datacenter: string,
  ) {}

  get size(): number {
    return this.names.size;
  }

  apply(deltas: NameDelta[]): void {
    for (const [name, rrs] of deltas) {
      if (rrs === null) this.names.delete(name);
      else this.names.set(name, rrs);
    }
  }

  /** Every name and its records (for `corral dns records` and snapshots to DNS workers). */
  entries(): NameDelta[] {
    return [...this.names];
  }

  inZone(name: string): boolean {
    return name === this.domain || name.endsWith('.' + this.domain);
  }

  /** `web.service.dc1.corral` means `web.service.corral` when dc1 is our datacenter. */
  canonical(name: string): string {
    const dcSuffix = `.${this.datacenter}.${this.domain}`;
    if (!name.endsWith(dcSuffix)) return name;
    const head = name.slice(0, -dcSuffix.length);
    const kind = head.slice(head.lastIndexOf('.') + 1);
    return DC_KINDS.has(kind) ? `${head}.${this.domain}` : name;
  }

  lookup(queryName: string, qtype: number): LookupResult {
    const name = this.canonical(queryName);
    const rrs = this.names.get(name);
    if (!rrs) return { name, exists: false, answers: [] };
    const answers = qtype === QTYPE.ANY ? rrs : rrs.filter((rr) => TYPE_CODE[rr.type] === qtype);
    return { name, exists: true, answers };
  }

  /** Address records of a name, for the additional section of SRV and NS answers. */
  addresses(name: string): RR[] {
    return (this.names.get(name) ?? []).filter((rr) => rr.type === 'A' || rr.type === 'AAAA');
  }

  soa(): RR | undefined {
    return this.names.get(this.domain)?.find((rr) => rr.type === 'SOA');
  }
}
