/**
 * Resources: a bag of named resources, each with an identity (name,
 * reservation, disk/persistence, revocability) and a value (scalar, ranges or
 * set). Entries with the same identity merge; different identities never do,
 * so "4 CPUs reserved to ads" and "4 unreserved CPUs" stay apart.
 *
 * JSON in and out uses the Mesos v1 Resource shape (see ../protocol/v1.ts).
 */
import type { V1Resource, V1Reservation, V1DiskInfo } from '../../../contracts/v1/v1.js';
import { nameId, toMilli, fromMilli, normalizeRanges, rangesUnion, rangesDifference, rangesContain, rangesSize, setUnion, setDifference, setContains, type Ranges } from './values.js';

type Kind = 'SCALAR' | 'RANGES' | 'SET';

export interface Reservation {
  type: 'STATIC' | 'DYNAMIC';
  role: string;
  principal?: string;
  labels?: { key: string; value?: string }[];
}

/**
 * One resource with its identity and value. Immutable: arithmetic builds new
 * entries, so any number of Resources can share one entry and cloning a
 * Resources is a Map copy.
 */
export class Entry {
  /** Dense id of `name` (see values.ts nameId). */
  readonly nid: number;

  constructor(
    readonly key: string,
    readonly name: string,
    readonly kind: Kind,
    /** Reservation stack; empty means unreserved ("*"). corral roles are flat, so at most one. */
    readonly reservations: readonly Reservation[],
    readonly disk: V1DiskInfo | undefined,
    readonly revocable: boolean,
    /** Thousandths for SCALAR. */
    readonly scalar: number,
    readonly ranges: readonly (readonly [number, number])[],
    readonly set: readonly string[],
    nid?: number,
  ) {
    this.nid = nid ?? nameId(name);
  }

  withScalar(scalar: number): Entry {
    return new Entry(this.key, this.name, this.kind, this.reservations, this.disk, this.revocable, scalar, this.ranges, this.set, this.nid);
  }

  withRanges(ranges: readonly (readonly [number, number])[]): Entry {
    return new Entry(this.key, this.name, this.kind, this.reservations, this.disk, this.revocable, 0, ranges, this.set, this.nid);
  }

  withSet(set: readonly string[]): Entry {
    return new Entry(this.key, this.name, this.kind, this.reservations, this.disk, this.revocable, 0, this.ranges, set, this.nid);
  }

  /** Same identity, value = this + other. */
  plus(o: Entry): Entry {
    return this.kind === 'SCALAR' ? this.withScalar(this.scalar + o.scalar) : this.kind === 'RANGES' ? this.withRanges(rangesUnion(this.ranges, o.ranges)) : this.withSet(setUnion(this.set, o.set));
  }

  /** Same identity, value = this - other. */
  minus(o: Entry): Entry {
    return this.kind === 'SCALAR'
      ? this.withScalar(this.scalar - o.scalar)
      : this.kind === 'RANGES'
        ? this.withRanges(rangesDifference(this.ranges, o.ranges))
        : this.withSet(setDifference(this.set, o.set));
  }

  get reserved(): boolean {
    return this.reservations.length > 0;
  }

  isEmpty(): boolean {
    return this.kind === 'SCALAR' ? this.scalar <= 0 : this.kind === 'RANGES' ? this.ranges.length === 0 : this.set.length === 0;
  }
}

const stableLabels = (l: Reservation['labels']): string => (l && l.length ? JSON.stringify(l.map((x) => [x.key, x.value ?? ''])) : '');

function identityKey(name: string, reservations: readonly Reservation[], disk: V1DiskInfo | undefined, revocable: boolean): string {
  let k = name;
  for (const r of reservations) k += `|${r.type[0]}:${r.role}:${r.principal ?? ''}:${stableLabels(r.labels)}`;
  if (disk) k += `|disk:${disk.persistence?.id ?? ''}:${disk.volume?.container_path ?? ''}:${disk.volume?.mode ?? ''}:${disk.source ? JSON.stringify(disk.source) : ''}`;
  if (revocable) k += '|rev';
  return k;
}

/** Entries are immutable, so the common empty lists are one shared frozen array, not three per entry. */
const NONE: readonly never[] = Object.freeze([]);

function makeEntry(
  name: string,
  kind: Kind,
  reservations: readonly Reservation[],
  disk: V1DiskInfo | undefined,
  revocable: boolean,
  value: { scalar?: number; ranges?: readonly (readonly [number, number])[]; set?: readonly string[] } = {},
): Entry {
  return new Entry(
    identityKey(name, reservations, disk, revocable),
    name,
    kind,
    reservations.length ? reservations : NONE,
    disk,
    revocable,
    value.scalar ?? 0,
    value.ranges ?? NONE,
    value.set ?? NONE,
  );
}

/** Every empty Resources starts out sharing this map (it is never written: writers copy first). */
const NO_ENTRIES: Map<string, Entry> = new Map();

export class Resources implements Iterable<Entry> {
  /**
   * Copy on write: a clone shares its source's map until either side
   * changes. A round hands out tens of thousands of offers that are only
   * read, and copying each map made the round mostly garbage collection.
   */
  private entries: Map<string, Entry> = NO_ENTRIES;
  private shared = true;

  constructor(entries?: Iterable<Entry>) {
    if (entries) for (const e of entries) this.addEntry(e);
  }

  private own(): void {
    if (!this.shared) return;
    this.entries = new Map(this.entries);
    this.shared = false;
  }

  static empty(): Resources {
    return new Resources();
  }

  [Symbol.iterator](): Iterator<Entry> {
    return this.entries.values();
  }

  get size(): number {
    return this.entries.size;
  }

  isEmpty(): boolean {
    return this.entries.size === 0;
  }

  /** Whether both hold one and the same entries (one is an unchanged clone of the other): then they are equal. */
  sharesEntriesWith(o: Resources): boolean {
    return this.entries === o.entries;
  }

  clone(): Resources {
    const r = new Resources();
    r.entries = this.entries;
    r.shared = this.shared = true;
    return r;
  }

  /** Mutating add of one entry. */
  addEntry(e: Entry): this {
    if (e.isEmpty()) return this;
    this.own();
    const have = this.entries.get(e.key);
    this.entries.set(e.key, have ? have.plus(e) : e);
    return this;
  }

  /** Mutating add. */
  add(other: Resources): this {
    for (const e of other.entries.values()) this.addEntry(e);
    return this;
  }

  /** Mutating subtract; the caller guarantees containment (checked by `contains`). */
  subtract(other: Resources): this {
    this.own();
    for (const e of other.entries.values()) {
      const have = this.entries.get(e.key);
      if (!have) continue;
      const left = have.minus(e);
      if (left.isEmpty()) this.entries.delete(e.key);
      else this.entries.set(e.key, left);
    }
    return this;
  }

  plus(other: Resources): Resources {
    return this.clone().add(other);
  }

  minus(other: Resources): Resources {
    return this.clone().subtract(other);
  }

  contains(other: Resources): boolean {
    for (const e of other.entries.values()) {
      const have = this.entries.get(e.key);
      if (!have) return false;
      if (e.kind === 'SCALAR' ? have.scalar < e.scalar : e.kind === 'RANGES' ? !rangesContain(have.ranges, e.ranges) : !setContains(have.set, e.set)) return false;
    }
    return true;
  }

  equals(other: Resources): boolean {
    return this.entries.size === other.entries.size && this.contains(other) && other.contains(this);
  }

  filter(pred: (e: Entry) => boolean): Resources {
    const r = new Resources();
    for (const e of this.entries.values()) if (pred(e)) r.addEntry(e);
    return r;
  }

  /** Sum of the scalar entries with name id `nid` (reserved and revocable included), in thousandths. */
  scalarById(nid: number): number {
    let sum = 0;
    for (const e of this.entries.values()) if (e.nid === nid && e.kind === 'SCALAR') sum += e.scalar;
    return sum;
  }

  /** Role that owns a reserved entry, or undefined when unreserved. */
  static reservationRole(e: Entry): string | undefined {
    return e.reservations.length ? e.reservations[e.reservations.length - 1]!.role : undefined;
  }

  unreserved(): Resources {
    return this.filter((e) => e.reservations.length === 0);
  }

  reserved(role?: string): Resources {
    return this.filter((e) => e.reservations.length > 0 && (role === undefined || Resources.reservationRole(e) === role));
  }

  /** What a framework in `role` may be offered: unreserved plus reserved to that role. */
  allocatableTo(role: string): Resources {
    return this.filter((e) => e.reservations.length === 0 || Resources.reservationRole(e) === role);
  }

  revocable(): Resources {
    return this.filter((e) => e.revocable);
  }

  nonRevocable(): Resources {
    return this.filter((e) => !e.revocable);
  }

  persistentVolumes(): Resources {
    return this.filter((e) => e.disk?.persistence !== undefined);
  }

  /** Sum of scalar values by resource name, in thousandths. */
  quantities(into = new Map<string, number>()): Map<string, number> {
    for (const e of this.entries.values()) {
      const v = e.kind === 'SCALAR' ? e.scalar : e.kind === 'RANGES' ? rangesSize(e.ranges) * 1000 : e.set.length * 1000;
      into.set(e.name, (into.get(e.name) ?? 0) + v);
    }
    return into;
  }

  /** Total scalar amount of `name` (e.g. "cpus") in natural units. */
  scalar(name: string): number {
    let m = 0;
    for (const e of this.entries.values()) if (e.name === name && e.kind === 'SCALAR') m += e.scalar;
    return fromMilli(m);
  }

  ranges(name: string): [number, number][] {
    let out: [number, number][] = [];
    for (const e of this.entries.values()) if (e.name === name && e.kind === 'RANGES') out = rangesUnion(out, e.ranges);
    return out;
  }

  /** Replace the reservation stack / disk info of every entry (used by RESERVE, CREATE and their inverses). */
  map(fn: (e: Entry) => { reservations?: readonly Reservation[]; disk?: V1DiskInfo | undefined }): Resources {
    const r = new Resources();
    for (const e of this.entries.values()) {
      const change = fn(e);
      const reservations = change.reservations ?? e.reservations;
      const disk = 'disk' in change ? change.disk : e.disk;
      r.addEntry(makeEntry(e.name, e.kind, reservations, disk, e.revocable, e));
    }
    return r;
  }

  // ---- conversions -------------------------------------------------------

  static scalarEntry(name: string, value: number, opts: { reservations?: Reservation[]; disk?: V1DiskInfo; revocable?: boolean } = {}): Entry {
    return makeEntry(name, 'SCALAR', opts.reservations ?? [], opts.disk, opts.revocable ?? false, { scalar: toMilli(value) });
  }

  static rangesEntry(name: string, ranges: Ranges, opts: { reservations?: Reservation[]; revocable?: boolean } = {}): Entry {
    return makeEntry(name, 'RANGES', opts.reservations ?? [], undefined, opts.revocable ?? false, { ranges: normalizeRanges(ranges) });
  }

  static setEntry(name: string, items: string[], opts: { reservations?: Reservation[]; revocable?: boolean } = {}): Entry {
    return makeEntry(name, 'SET', opts.reservations ?? [], undefined, opts.revocable ?? false, { set: [...new Set(items)].sort() });
  }

  /** From validated v1 JSON (both the `reservations` stack and the pre-1.4 `role`/`reservation` fields are understood). */
  static fromV1(list: readonly V1Resource[]): Resources {
    const r = new Resources();
    for (const v of list) {
      const reservations = v1Reservations(v);
      const value =
        v.type === 'SCALAR'
          ? { scalar: toMilli(v.scalar?.value ?? 0) }
          : v.type === 'RANGES'
            ? { ranges: normalizeRanges((v.ranges?.range ?? []).map((x) => [x.begin, x.end] as [number, number])) }
            : { set: [...new Set(v.set?.item ?? [])].sort() };
      r.addEntry(makeEntry(v.name, v.type as Kind, reservations, v.disk, v.revocable !== undefined, value));
    }
    return r;
  }

  toV1(allocationRole?: string): V1Resource[] {
    const out: V1Resource[] = [];
    for (const e of this.entries.values()) {
      const v: V1Resource = { name: e.name, type: e.kind };
      if (e.kind === 'SCALAR') v.scalar = { value: fromMilli(e.scalar) };
      else if (e.kind === 'RANGES') v.ranges = { range: e.ranges.map(([begin, end]) => ({ begin, end })) };
      else v.set = { item: [...e.set] };
      const role = Resources.reservationRole(e);
      // Both shapes: `reservations` for refinement-aware clients, `role`/`reservation` for older ones.
      v.role = role ?? '*';
      if (e.reservations.length) {
        v.reservations = e.reservations.map((r) => ({ type: r.type, role: r.role, ...(r.principal ? { principal: r.principal } : {}), ...(r.labels ? { labels: { labels: r.labels } } : {}) }));
        const top = e.reservations[e.reservations.length - 1]!;
        if (top.type === 'DYNAMIC') v.reservation = { ...(top.principal ? { principal: top.principal } : {}), ...(top.labels ? { labels: { labels: top.labels } } : {}) };
      }
      if (e.disk) v.disk = e.disk;
      if (e.revocable) v.revocable = {};
      if (allocationRole !== undefined) v.allocation_info = { role: allocationRole };
      out.push(v);
    }
    return out;
  }

  toString(): string {
    return formatResources(this);
  }
}

/**
 * Whether two v1 lists certainly parse to the same Resources: only plain
 * scalars are compared (name, value, legacy role, allocation role); anything
 * else counts as different, which only costs a parse.
 */
export function sameV1Scalars(a: readonly V1Resource[], b: readonly V1Resource[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.type !== 'SCALAR' || y.type !== 'SCALAR' || x.name !== y.name || x.scalar?.value !== y.scalar?.value || x.role !== y.role) return false;
    if (x.allocation_info?.role !== y.allocation_info?.role) return false;
    if (x.reservations !== undefined || y.reservations !== undefined || x.reservation !== undefined || y.reservation !== undefined) return false;
    if (x.disk !== undefined || y.disk !== undefined || x.revocable !== undefined || y.revocable !== undefined) return false;
  }
  return true;
}

function v1Reservations(v: V1Resource): Reservation[] {
  if (v.reservations && v.reservations.length) {
    return v.reservations.map((r: V1Reservation) => ({
      type: r.type ?? (r.principal !== undefined || r.labels !== undefined ? 'DYNAMIC' : 'STATIC'),
      role: r.role ?? v.role ?? '*',
      ...(r.principal !== undefined ? { principal: r.principal } : {}),
      ...(r.labels?.labels?.length ? { labels: r.labels.labels } : {}),
    }));
  }
  if (v.role && v.role !== '*') {
    const dyn = v.reservation;
    return [
      {
        type: dyn ? 'DYNAMIC' : 'STATIC',
        role: v.role,
        ...(dyn?.principal !== undefined ? { principal: dyn.principal } : {}),
        ...(dyn?.labels?.labels?.length ? { labels: dyn.labels.labels } : {}),
      },
    ];
  }
  return [];
}

/** Mesos text form, e.g. `cpus(ads):4; mem:1024; ports:[31000-32000]`. */
function formatResources(r: Resources): string {
  const parts: string[] = [];
  for (const e of r) {
    const role = Resources.reservationRole(e);
    let name = e.name + (role ? `(${role}${e.reservations.at(-1)!.type === 'DYNAMIC' ? ', ' + (e.reservations.at(-1)!.principal ?? '') : ''})` : '');
    if (e.disk?.persistence) name += `[${e.disk.persistence.id}:${e.disk.volume?.container_path ?? ''}]`;
    if (e.revocable) name += '{REV}';
    const value = e.kind === 'SCALAR' ? String(fromMilli(e.scalar)) : e.kind === 'RANGES' ? '[' + e.ranges.map(([b, x]) => `${b}-${x}`).join(', ') + ']' : '{' + e.set.join(', ') + '}';
    parts.push(`${name}:${value}`);
  }
  return parts.join('; ');
}
