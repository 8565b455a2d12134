/**
 * The allocator's books: agents, frameworks, roles and clients, who holds
 * what on which agent, and the DRF shares that follow from it. Every change
 * of an allocation goes through `give` and `account`, so the shares are
 * exact after any sequence of operations. The Allocator (allocator.ts) adds
 * the events the master feeds it and the allocation round.
 */
import { Resources } from '../resources/resources.js';
import { nameId } from '../resources/values.js';
import { DrfSorter, toRecord, type Quantities } from './sorter.js';
import { addQuantities, type AgentEntry } from './agent-entry.js';
import type { AllocatorOptions, Client, FrameworkEntry, RoleEntry } from './types.js';

export class AllocatorLedger {
  protected readonly agents = new Map<string, AgentEntry>();
  protected readonly agentList: AgentEntry[] = [];
  protected readonly frameworks = new Map<string, FrameworkEntry>();
  protected readonly roles = new Map<string, RoleEntry>();
  /** Cluster totals (non-revocable scalars, thousandths) that shares are relative to. */
  protected readonly totals: Quantities = [];
  protected readonly excluded: ReadonlySet<number>;
  protected readonly roleSorter: DrfSorter<RoleEntry>;
  protected readonly minAllocatable: Array<Array<[number, number]>>;
  /** Bumped whenever which frameworks may receive offers changes; invalidates per-agent skip caches. */
  protected epoch = 0;

  constructor(opts: AllocatorOptions = {}) {
    this.excluded = new Set((opts.fairnessExcludedResourceNames ?? []).map(nameId));
    this.roleSorter = new DrfSorter<RoleEntry>(this.totals, this.excluded);
    this.minAllocatable = (opts.minAllocatable ?? [{ cpus: 0.01 }, { mem: 32 }]).map((r) => Object.entries(r).map(([k, v]) => [nameId(k), Math.round(v * 1000)] as [number, number]));
  }

  protected convertTotal(a: AgentEntry, consumed: Resources, converted: Resources): void {
    this.changeReservations(a.total, -1);
    a.total.subtract(consumed.nonRevocable()).add(converted.nonRevocable());
    this.changeReservations(a.total, 1);
    a.refreshSimple();
  }

  /** Move `res` from the agent's free pool to the client; returns a copy for the offer. */
  protected give(a: AgentEntry, c: Client, res: Resources): Resources {
    const held = a.allocations.get(c);
    if (held === a.handedOver) a.handedOver = undefined;
    if (res === a.available) {
      // Everything free goes to one framework: hand the object over.
      a.available = new Resources();
      if (held) held.add(res);
      else {
        a.allocations.set(c, res);
        a.handedOver = res;
      }
    } else {
      a.available.subtract(res);
      if (held) held.add(res);
      else a.allocations.set(c, res.clone());
    }
    a.touch(false);
    this.account(c, res, 1, held ? 0 : 1);
    return res.clone();
  }

  /**
   * Update framework and role shares for resources given (+1) or returned (-1);
   * `agentsDelta` tracks on how many agents the client holds something (a DRF tie-breaker).
   */
  protected account(c: Client, res: Resources, sign: 1 | -1, agentsDelta: number): void {
    c.role.frameworks.update(
      c.sorted,
      (alloc) => {
        for (const e of res) if (e.kind === 'SCALAR' && !e.revocable) alloc[e.nid] = (alloc[e.nid] ?? 0) + sign * e.scalar;
      },
      agentsDelta,
    );
    // Reservations already count toward the role; only unreserved allocations move its share.
    let unreserved = false;
    for (const e of res)
      if (e.kind === 'SCALAR' && !e.revocable && !e.reserved) {
        unreserved = true;
        break;
      }
    if (unreserved) {
      this.roleSorter.update(
        c.role.sorted,
        (alloc) => {
          for (const e of res) if (e.kind === 'SCALAR' && !e.revocable && !e.reserved) alloc[e.nid] = (alloc[e.nid] ?? 0) + sign * e.scalar;
        },
        0,
      );
    }
  }

  protected changeReservations(total: Resources, sign: 1 | -1): void {
    for (const e of total) {
      const role = Resources.reservationRole(e);
      if (!role || e.kind !== 'SCALAR') continue;
      this.roleSorter.update(
        this.role(role).sorted,
        (alloc) => {
          alloc[e.nid] = (alloc[e.nid] ?? 0) + sign * e.scalar;
        },
        0,
      );
    }
  }

  protected changeTotals(q: Quantities, sign: 1 | -1): void {
    addQuantities(this.totals, q, sign);
    this.roleSorter.invalidate();
    for (const r of this.roles.values()) r.frameworks.invalidate();
  }

  // ---- lookups and bookkeeping -------------------------------------------

  protected agent(id: string): AgentEntry {
    const a = this.agents.get(id);
    if (!a) throw new Error(`unknown agent ${id}`);
    return a;
  }

  protected framework(id: string): FrameworkEntry {
    const f = this.frameworks.get(id);
    if (!f) throw new Error(`unknown framework ${id}`);
    return f;
  }

  protected role(name: string): RoleEntry {
    let r = this.roles.get(name);
    if (!r) {
      const entry = { name, weight: 1, guarantee: undefined, limit: undefined, frameworks: new DrfSorter<Client>(this.totals, this.excluded), activeClients: 0 } as unknown as RoleEntry;
      entry.sorted = this.roleSorter.add(entry, 1);
      this.roles.set(name, entry);
      r = entry;
    }
    return r;
  }

  protected clientFor(frameworkId: string, role: string): Client {
    const c = this.framework(frameworkId).clients.get(role);
    if (!c) throw new Error(`framework ${frameworkId} is not subscribed to role ${role}`);
    return c;
  }

  protected clientsOf(frameworkId: string, roles?: string[]): Client[] {
    const f = this.framework(frameworkId);
    if (!roles || roles.length === 0) return [...f.clients.values()];
    return roles.map((r) => f.clients.get(r)).filter((c): c is Client => c !== undefined);
  }

  protected setRoles(f: FrameworkEntry, roles: string[], suppressed: Set<string>): void {
    const want = new Set(roles);
    for (const c of [...f.clients.values()]) if (!want.has(c.role.name) && c.sorted.allocations === 0) this.dropClient(c);
    for (const name of want) {
      let c = f.clients.get(name);
      if (!c) {
        const role = this.role(name);
        c = { framework: f, role, suppressed: false, filteredAgents: new Set() } as unknown as Client;
        c.sorted = role.frameworks.add(c, 1);
        f.clients.set(name, c);
        if (f.active) role.activeClients++;
      }
      c.suppressed = suppressed.has(name);
    }
    // A role the framework left but still holds resources in stays, suppressed, until they come back.
    for (const [name, c] of f.clients) if (!want.has(name)) c.suppressed = true;
  }

  protected dropClient(c: Client): void {
    for (const a of this.agentList) {
      const held = a.allocations.get(c);
      if (!held) continue;
      a.allocations.delete(c);
      a.available.add(held);
      a.touch(true);
      this.account(c, held, -1, -1);
    }
    for (const a of c.filteredAgents) a.filters.delete(c);
    c.role.frameworks.remove(c.sorted);
    if (c.framework.active) c.role.activeClients--;
    c.framework.clients.delete(c.role.name);
  }

  // ---- introspection (operator API, tests, invariants) -------------------

  agentView(id: string): { total: Resources; revocable: Resources; available: Resources; allocated: Map<string, Map<string, Resources>> } | undefined {
    const a = this.agents.get(id);
    if (!a) return undefined;
    const allocated = new Map<string, Map<string, Resources>>();
    for (const [c, res] of a.allocations) {
      let m = allocated.get(c.framework.id);
      if (!m) allocated.set(c.framework.id, (m = new Map()));
      m.set(c.role.name, res.clone());
    }
    return { total: a.total.clone(), revocable: a.revocableTotal.clone(), available: a.available.clone(), allocated };
  }

  agentIds(): string[] {
    return this.agentList.map((a) => a.id);
  }

  roleView(): Array<{ role: string; weight: number; share: number; consumed: Record<string, number>; guarantee?: Record<string, number>; limit?: Record<string, number>; frameworks: string[] }> {
    return [...this.roles.values()].map((r) => ({
      role: r.name,
      weight: r.weight,
      share: this.roleSorter.shareOf(r.sorted),
      consumed: toRecord(r.sorted.allocated),
      ...(r.guarantee ? { guarantee: toRecord(r.guarantee) } : {}),
      ...(r.limit ? { limit: toRecord(r.limit) } : {}),
      frameworks: r.frameworks.ordered.map((c) => c.value.framework.id),
    }));
  }

  /** Weighted dominant share of a framework within a role. */
  frameworkShare(frameworkId: string, role: string): number {
    const c = this.frameworks.get(frameworkId)?.clients.get(role);
    return c ? c.role.frameworks.shareOf(c.sorted) : 0;
  }

  roleShare(role: string): number {
    const r = this.roles.get(role);
    return r ? this.roleSorter.shareOf(r.sorted) : 0;
  }
}
