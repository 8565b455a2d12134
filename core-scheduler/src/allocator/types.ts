/**
 * The allocator's types and the small pure rules a round applies to them
 * (guarantees still unmet, the headroom they need, what is worth offering).
 */
import type { Resources } from '../resources/resources.js';
import { nameId } from '../resources/values.js';
import type { DrfSorter, Quantities, SortedClient } from './sorter.js';
import type { AgentEntry } from './agent-entry.js';
import { addQuantities } from './agent-entry.js';

export interface AllocatorOptions {
  /** An offer must contain at least one of these (natural units). Mesos default: cpus 0.01 or mem 32. */
  minAllocatable?: Array<Record<string, number>>;
  /** Resource names ignored when computing dominant shares (e.g. gpus). */
  fairnessExcludedResourceNames?: string[];
}

export interface OfferDecision {
  frameworkId: string;
  agentId: string;
  role: string;
  resources: Resources;
}

export interface FrameworkOptions {
  roles: string[];
  active?: boolean;
  /** REVOCABLE_RESOURCES capability: may be offered oversubscribed resources. */
  revocable?: boolean;
  suppressedRoles?: string[];
}

export interface QuotaSpec {
  guarantee?: Record<string, number>;
  limit?: Record<string, number>;
}

export interface FrameworkEntry {
  id: string;
  active: boolean;
  revocable: boolean;
  clients: Map<string, Client>;
}

/** A framework within one of its roles: the unit that receives offers. */
export interface Client {
  framework: FrameworkEntry;
  role: RoleEntry;
  sorted: SortedClient<Client>;
  suppressed: boolean;
  /** Agents holding a filter of this client, so REVIVE can clear them. */
  filteredAgents: Set<AgentEntry>;
}

export interface RoleEntry {
  name: string;
  weight: number;
  guarantee: Quantities | undefined;
  limit: Quantities | undefined;
  /** Frameworks of this role in DRF order. */
  frameworks: DrfSorter<Client>;
  /** Position among roles; `allocated` = reservations to the role + its unreserved allocations. */
  sorted: SortedClient<RoleEntry>;
  activeClients: number;
}

export const toMilliQuantities = (rec: Record<string, number> | undefined): Quantities | undefined => {
  if (!rec) return undefined;
  const q: Quantities = [];
  for (const [k, v] of Object.entries(rec)) q[nameId(k)] = Math.round(v * 1000);
  return q;
};

/** Per guaranteed name, what the role still lacks (0 when met); undefined when all are met. */
export function remainingGuarantee(r: RoleEntry): Quantities | undefined {
  if (!r.guarantee) return undefined;
  const out: Quantities = [];
  let unmet = false;
  r.guarantee.forEach((g, i) => {
    const left = Math.max(0, g - (r.sorted.allocated[i] ?? 0));
    out[i] = left;
    if (left > 0) unmet = true;
  });
  return unmet ? out : undefined;
}

/** What all roles' unmet guarantees still need; undefined when every guarantee is met. */
export function headroomNeeded(roles: Iterable<RoleEntry>): Quantities | undefined {
  let need: Quantities | undefined;
  for (const r of roles) {
    const rem = remainingGuarantee(r);
    if (rem) addQuantities((need ??= []), rem);
  }
  return need;
}

/**
 * Worth offering: holds at least one of the minimum bundles (name id,
 * thousandths). Runs once per agent and role in every round: no allocation here.
 */
export function isOfferable(minAllocatable: ReadonlyArray<ReadonlyArray<readonly [number, number]>>, res: Resources): boolean {
  if (res.isEmpty()) return false;
  for (const min of minAllocatable) {
    let enough = true;
    for (let i = 0; i < min.length && enough; i++) enough = res.scalarById(min[i]![0]) >= min[i]![1];
    if (enough) return true;
  }
  return false;
}
