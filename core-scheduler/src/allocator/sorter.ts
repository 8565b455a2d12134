/**
 * Weighted DRF ordering of clients (roles, or frameworks within a role).
 * A client's dominant share is the largest of allocated/total over resource
 * names, divided by its weight; the client with the lowest share comes first
 * (ties: fewer allocations, then first registered). Only the one client whose
 * allocation changed is re-positioned, so an update costs a binary search and
 * a short memmove instead of a full sort.
 *
 * Quantities are dense arrays indexed by resource-name id (see values.ts), in
 * thousandths: the allocator updates them on every offer, and array slots are
 * far cheaper than Map entries on that path.
 */

import { nameOf } from '../resources/values.js';

export type Quantities = number[];

export function toRecord(q: Quantities): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < q.length; i++) if (q[i]) out[nameOf(i)] = q[i]! / 1000;
  return out;
}

export class SortedClient<T> {
  share = 0;
  allocations = 0;
  /** Scalar quantities (thousandths) counted toward the share. */
  readonly allocated: Quantities = [];

  constructor(
    readonly value: T,
    readonly seq: number,
    public weight: number,
  ) {}
}

const before = <T>(a: SortedClient<T>, share: number, allocations: number, seq: number): boolean =>
  a.share < share || (a.share === share && (a.allocations < allocations || (a.allocations === allocations && a.seq < seq)));

export class DrfSorter<T> {
  private readonly list: SortedClient<T>[] = [];
  private seq = 0;
  /** Totals changed: shares are stale until the next read re-sorts everything once. */
  private dirty = false;
  private generation = 0;
  private snap: { generation: number; list: SortedClient<T>[] } | undefined;

  constructor(
    private readonly totals: Quantities,
    private readonly excluded: ReadonlySet<number>,
  ) {}

  get size(): number {
    return this.list.length;
  }

  /** Clients in DRF order; do not mutate. */
  get ordered(): readonly SortedClient<T>[] {
    if (this.dirty) this.resortAll();
    return this.list;
  }

  /** A copy of the order that stays valid while clients move (re-used until the order changes). */
  snapshot(): readonly SortedClient<T>[] {
    const list = this.ordered;
    if (!this.snap || this.snap.generation !== this.generation) this.snap = { generation: this.generation, list: list.slice() };
    return this.snap.list;
  }

  /** Cluster totals changed; re-sort lazily instead of on every agent added. */
  invalidate(): void {
    this.dirty = true;
  }

  add(value: T, weight = 1): SortedClient<T> {
    const c = new SortedClient(value, this.seq++, weight);
    this.generation++;
    if (this.dirty) this.list.push(c);
    else this.list.splice(this.lowerBound(c.share, c.allocations, c.seq), 0, c);
    return c;
  }

  remove(c: SortedClient<T>): void {
    const i = this.dirty ? this.list.indexOf(c) : this.indexOf(c);
    if (i >= 0) this.list.splice(i, 1);
    this.generation++;
  }

  /**
   * Change a client's allocation: `apply` edits `c.allocated` in place; then
   * the client is re-positioned.
   */
  update(c: SortedClient<T>, apply: (allocated: Quantities) => void, allocationDelta: number): void {
    const i = this.dirty ? -1 : this.indexOf(c);
    apply(c.allocated);
    c.allocations += allocationDelta;
    if (!this.dirty) this.reposition(c, i);
  }

  setWeight(c: SortedClient<T>, weight: number): void {
    c.weight = weight;
    if (this.dirty) return;
    this.reposition(c, this.indexOf(c));
  }

  /** Totals changed (agents came or went): recompute every share. */
  resortAll(): void {
    this.dirty = false;
    this.generation++;
    for (const c of this.list) c.share = this.computeShare(c);
    this.list.sort((a, b) => a.share - b.share || a.allocations - b.allocations || a.seq - b.seq);
  }

  shareOf(c: SortedClient<T>): number {
    return this.computeShare(c);
  }

  private reposition(c: SortedClient<T>, at: number): void {
    const share = this.computeShare(c);
    if (at >= 0) {
      // Most updates leave the client where it is; check neighbours before moving anything.
      const prev = this.list[at - 1];
      const next = this.list[at + 1];
      c.share = share;
      const okPrev = !prev || before(prev, share, c.allocations, c.seq);
      const okNext = !next || before(c, next.share, next.allocations, next.seq);
      if (okPrev && okNext) return;
      this.list.splice(at, 1);
    }
    c.share = share;
    this.generation++;
    this.list.splice(this.lowerBound(share, c.allocations, c.seq), 0, c);
  }

  private computeShare(c: SortedClient<T>): number {
    let share = 0;
    const a = c.allocated;
    for (let i = 0; i < a.length; i++) {
      const q = a[i];
      if (!q || this.excluded.has(i)) continue;
      const total = this.totals[i];
      if (total && total > 0) {
        const s = q / total;
        if (s > share) share = s;
      }
    }
    return share / c.weight;
  }

  private lowerBound(share: number, allocations: number, seq: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.list[mid]!, share, allocations, seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private indexOf(c: SortedClient<T>): number {
    // The client sits where its (unchanged) key says; fall back to a scan if the key drifted.
    const i = this.lowerBound(c.share, c.allocations, c.seq);
    if (this.list[i] === c) return i;
    return this.list.indexOf(c);
  }
}
