/**
 * Per-agent allocator state and the small resource helpers the round needs.
 */
import { Resources } from '../resources/resources.js';
import type { Quantities } from './sorter.js';
import type { Client } from './allocator.js';

export interface Filter {
  /** Offers of resources within `resources` are refused until this time (ms). */
  until: number;
  resources: Resources;
  /**
   * The agent's growVersion at which the filter was last seen to cover the
   * candidate. While the agent's free pool has not grown since, the candidate
   * is still covered and the containment check can be skipped.
   */
  coversAt: number;
}

export class AgentEntry {
  available: Resources;
  readonly allocations = new Map<Client, Resources>();
  readonly filters = new Map<Client, Filter>();
  /** Bumped on any change to `available`. */
  version = 0;
  /** Bumped only when `available` grows beyond what it held at the previous bump. */
  growVersion = 0;
  listIndex = 0;
  /** Set when a round found nothing to offer here for agent-local reasons. */
  skip: { version: number; epoch: number; until: number } | undefined;
  /**
   * No reservations and nothing revocable: every framework may take all of
   * `available`, so a round can hand the object over instead of filtering a copy.
   */
  simple = true;
  /** The pool last handed over whole; getting exactly it back is not growth. */
  handedOver: Resources | undefined;

  constructor(
    readonly id: string,
    public total: Resources,
    public revocableTotal: Resources,
    public active: boolean,
  ) {
    this.available = total.plus(revocableTotal);
    this.refreshSimple();
  }

  refreshSimple(): void {
    this.simple = this.revocableTotal.isEmpty() && [...this.total].every((e) => !e.reserved);
  }

  touch(grew: boolean): void {
    this.version++;
    if (grew) {
      this.growVersion++;
      this.handedOver = undefined;
    }
  }
}

/**
 * Whether filter `f` of client `c` refuses `candidate` on agent `a` at `now`;
 * `exact` = the candidate is all the client may use here (enables the cached check).
 */
export function isFiltered(a: AgentEntry, c: Client, f: Filter, candidate: Resources, now: number, exact: boolean): boolean {
  if (now >= f.until) {
    a.filters.delete(c);
    c.filteredAgents.delete(a);
    return false;
  }
  if (exact && f.coversAt === a.growVersion) return true;
  if (f.resources.contains(candidate)) {
    if (exact) f.coversAt = a.growVersion;
    return true;
  }
  return false;
}

/** Scalar amounts by name id, in thousandths (non-revocable only unless asked). */
export function scalarQuantities(res: Resources, opts: { unreservedOnly?: boolean; includeRevocable?: boolean } = {}): Quantities {
  const q: Quantities = [];
  for (const e of res) {
    if (e.kind !== 'SCALAR' || (e.revocable && !opts.includeRevocable) || (opts.unreservedOnly && e.reserved)) continue;
    q[e.nid] = (q[e.nid] ?? 0) + e.scalar;
  }
  return q;
}

export function addQuantities(into: Quantities, q: Quantities, sign = 1): void {
  for (let i = 0; i < q.length; i++) if (q[i]) into[i] = (into[i] ?? 0) + sign * q[i]!;
}

/**
 * Cap unreserved, non-revocable scalar resources by `allowance` (thousandths
 * per name id; names without a slot are not capped). Everything else passes.
 */
export function chopUnreserved(res: Resources, allowance: Quantities): Resources {
  const left = allowance.slice();
  const out = new Resources();
  for (const e of res) {
    const room = left[e.nid];
    if (e.kind !== 'SCALAR' || e.reserved || e.revocable || room === undefined) {
      out.addEntry(e);
      continue;
    }
    const take = Math.min(Math.max(0, room), e.scalar);
    left[e.nid] = room - take;
    if (take > 0) out.addEntry(e.withScalar(take));
  }
  return out;
}
