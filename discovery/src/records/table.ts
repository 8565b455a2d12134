/**
 * The record table: every owner (a task, a service instance, an agent, the
 * master, the zone apex) contributes a list of records; the table merges
 * them per name and publishes only the names that changed. It also tracks
 * which names exist only as ancestors of others (empty non-terminals), so
 * the DNS side can tell NODATA from NXDOMAIN.
 *
 * Changes made in one tick are published together, once, on a microtask:
 * a burst of task updates costs one delta, not one per task.
 */
import type { RR } from '../dns/wire.js';
import type { NameDelta } from '../dns/zone.js';

export interface OwnedRecord {
  name: string;
  rr: RR;
}

interface Entry {
  rr: RR;
  refs: number;
}

function rrKey(rr: RR): string {
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      return `${rr.type} ${rr.ip}`;
    case 'SRV':
      return `SRV ${rr.priority} ${rr.weight} ${rr.port} ${rr.target}`;
    case 'NS':
      return `NS ${rr.host}`;
    case 'SOA':
      return `SOA ${rr.mname} ${rr.rname} ${rr.serial}`;
  }
}

export class RecordTable {
  private readonly owners = new Map<string, Map<string, OwnedRecord>>();
  private readonly names = new Map<string, Map<string, Entry>>();
  /** Distinct records at or below each name, for existence of empty non-terminals. */
  private readonly subtree = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private readonly listeners = new Set<(deltas: NameDelta[]) => void>();
  private scheduled = false;

  constructor(readonly domain: string) {}

  /** Replace everything `owner` contributes. */
  set(owner: string, records: OwnedRecord[]): void {
    const next = new Map<string, OwnedRecord>();
    for (const r of records) {
      if (!this.inZone(r.name)) continue;
      next.set(`${r.name}\n${rrKey(r.rr)}`, r);
    }
    const prev = this.owners.get(owner);
    if (prev) for (const [k, r] of prev) if (!next.has(k)) this.remove(r);
    for (const [k, r] of next) if (!prev?.has(k)) this.add(r);
    if (next.size) this.owners.set(owner, next);
    else this.owners.delete(owner);
  }

  delete(owner: string): void {
    this.set(owner, []);
  }

  /** Publish pending changes now (normally done on a microtask). */
  flush(): NameDelta[] {
    this.scheduled = false;
    if (this.dirty.size === 0) return [];
    const deltas: NameDelta[] = [];
    for (const name of this.dirty) deltas.push([name, this.current(name)]);
    this.dirty.clear();
    for (const l of this.listeners) l(deltas);
    return deltas;
  }

  onChange(fn: (deltas: NameDelta[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Every served name with its records (empty non-terminals included). */
  snapshot(): NameDelta[] {
    const out: NameDelta[] = [];
    for (const name of this.subtree.keys()) out.push([name, this.current(name) ?? []]);
    return out;
  }

  get ownerCount(): number {
    return this.owners.size;
  }

  get nameCount(): number {
    return this.subtree.size;
  }

  private inZone(name: string): boolean {
    return name === this.domain || name.endsWith('.' + this.domain);
  }

  private current(name: string): RR[] | null {
    const entries = this.names.get(name);
    if (entries?.size) return [...entries.values()].map((e) => e.rr);
    return this.subtree.has(name) ? [] : null;
  }

  private add(r: OwnedRecord): void {
    let entries = this.names.get(r.name);
    if (!entries) this.names.set(r.name, (entries = new Map()));
    const key = rrKey(r.rr);
    const e = entries.get(key);
    if (e) {
      e.refs++;
      return;
    }
    entries.set(key, { rr: r.rr, refs: 1 });
    this.touch(r.name);
    this.walkUp(r.name, +1);
  }

  private remove(r: OwnedRecord): void {
    const entries = this.names.get(r.name);
    const key = rrKey(r.rr);
    const e = entries?.get(key);
    if (!entries || !e) return;
    if (--e.refs > 0) return;
    entries.delete(key);
    if (entries.size === 0) this.names.delete(r.name);
    this.touch(r.name);
    this.walkUp(r.name, -1);
  }

  /** Count a record in or out of its name and every ancestor up to the apex; flips of existence are changes. */
  private walkUp(name: string, by: 1 | -1): void {
    let n = name;
    for (;;) {
      const before = this.subtree.get(n) ?? 0;
      const after = before + by;
      if (after <= 0) this.subtree.delete(n);
      else this.subtree.set(n, after);
      if ((before === 0) !== after <= 0) this.touch(n);
      if (n === this.domain) break;
      const dot = n.indexOf('.');
      if (dot < 0) break;
      n = n.slice(dot + 1);
    }
  }

  private touch(name: string): void {
    this.dirty.add(name);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }
}
