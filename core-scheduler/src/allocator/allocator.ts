/**
 * The allocator: decides which framework is offered which agent's resources.
 *
 * Pure: no I/O, no timers, no clock. The master feeds it events (agents and
 * frameworks coming and going, resources recovered, filters, weights, quota)
 * and calls `allocate(now)`; it returns offer decisions. Everything it hands
 * out counts as allocated until the master recovers it.
 *
 * Order of a round (Mesos's hierarchical allocator, two stages):
 *  1. quota: roles whose guarantee is not yet met get, agent by agent, their
 *     reservations plus unreserved resources up to the remaining guarantee;
 *  2. fair share: for each agent, roles in weighted-DRF order, then the
 *     frameworks of a role in DRF order; the first eligible framework gets
 *     what the role may use on that agent, minus the headroom other roles'
 *     unmet guarantees still need and within the role's quota limit.
 * A role's share counts its reservations (used or not) plus its unreserved
 * allocations, so reserving does not also earn a fair share of the rest.
 * The books it keeps (allocations, shares, lookups) are in ledger.ts.
 */
import { Resources } from '../resources/resources.js';
import type { Quantities } from './sorter.js';
import { AgentEntry, addQuantities, chopUnreserved, scalarQuantities, isFiltered, type Filter } from './agent-entry.js';
import { AllocatorLedger } from './ledger.js';
import {
  headroomNeeded,
  isOfferable,
  remainingGuarantee,
  toMilliQuantities,
  type Client,
  type FrameworkEntry,
  type FrameworkOptions,
  type OfferDecision,
  type QuotaSpec,
  type RoleEntry,
} from './types.js';

export type { Client, OfferDecision } from './types.js';

export class Allocator extends AllocatorLedger {
  private rotation = 0;
  /** Earliest expiry among the filters that refused an agent in the current round step. */
  private earliestExpiry = Infinity;

  // ---- agents -------------------------------------------------------------

  addAgent(id: string, total: Resources, opts: { active?: boolean; revocable?: Resources } = {}): void {
    if (this.agents.has(id)) throw new Error(`agent ${id} already added`);
    const a = new AgentEntry(id, total.nonRevocable(), opts.revocable?.revocable() ?? new Resources(), opts.active ?? true);
    a.listIndex = this.agentList.length;
    this.agents.set(id, a);
    this.agentList.push(a);
    this.changeTotals(scalarQuantities(a.total), 1);
    if (!a.simple) this.changeReservations(a.total, 1);
  }

  removeAgent(id: string): void {
    const a = this.agent(id);
    for (const [client, res] of a.allocations) this.account(client, res, -1, -1);
    for (const client of a.filters.keys()) client.filteredAgents.delete(a);
    this.changeReservations(a.total, -1);
    this.changeTotals(scalarQuantities(a.total), -1);
    const last = this.agentList.pop()!;
    if (last !== a) {
      this.agentList[a.listIndex] = last;
      last.listIndex = a.listIndex;
    }
    this.agents.delete(id);
  }

  hasAgent(id: string): boolean {
    return this.agents.has(id);
  }

  setAgentActive(id: string, active: boolean): void {
    const a = this.agent(id);
    a.active = active;
    a.touch(true);
  }

  /** Replace the agent's oversubscribed (revocable) estimate; revocable resources already allocated stay so. */
  setRevocable(id: string, revocable: Resources): void {
    const a = this.agent(id);
    const rev = revocable.revocable();
    const allocatedRev = new Resources();
    for (const res of a.allocations.values()) allocatedRev.add(res.revocable());
    a.available.subtract(a.available.revocable());
    a.revocableTotal = rev;
    if (rev.contains(allocatedRev)) a.available.add(rev.minus(allocatedRev));
    a.refreshSimple();
    a.touch(true);
  }

  // ---- frameworks ---------------------------------------------------------

  addFramework(id: string, opts: FrameworkOptions): void {
    if (this.frameworks.has(id)) throw new Error(`framework ${id} already added`);
    const f: FrameworkEntry = { id, active: opts.active ?? true, revocable: opts.revocable ?? false, clients: new Map() };
    this.frameworks.set(id, f);
    this.setRoles(f, opts.roles, new Set(opts.suppressedRoles ?? []));
    this.epoch++;
  }

  updateFramework(id: string, opts: FrameworkOptions): void {
    const f = this.framework(id);
    f.revocable = opts.revocable ?? f.revocable;
    if (opts.active !== undefined) this.setFrameworkActive(id, opts.active);
    this.setRoles(f, opts.roles, new Set(opts.suppressedRoles ?? []));
    this.epoch++;
  }

  /** Remove a framework; whatever it still holds returns to the agents. */
  removeFramework(id: string): void {
    const f = this.framework(id);
    for (const client of [...f.clients.values()]) this.dropClient(client);
    this.frameworks.delete(id);
    this.epoch++;
  }

  hasFramework(id: string): boolean {
    return this.frameworks.has(id);
  }

  setFrameworkActive(id: string, active: boolean): void {
    const f = this.framework(id);
    if (f.active === active) return;
    f.active = active;
    for (const c of f.clients.values()) c.role.activeClients += active ? 1 : -1;
    this.epoch++;
  }

  suppress(id: string, roles?: string[]): void {
    for (const c of this.clientsOf(id, roles)) c.suppressed = true;
    this.epoch++;
  }

  /** Clear filters and lift suppression for the given roles (all when omitted). */
  revive(id: string, roles?: string[]): void {
    for (const c of this.clientsOf(id, roles)) {
      c.suppressed = false;
      for (const a of c.filteredAgents) a.filters.delete(c);
      c.filteredAgents.clear();
    }
    this.epoch++;
  }

  // ---- roles: weights and quota ------------------------------------------

  setWeight(role: string, weight: number): void {
    if (!(weight > 0)) throw new Error('weight must be positive');
    const r = this.role(role);
    r.weight = weight;
    this.roleSorter.setWeight(r.sorted, weight);
    this.epoch++;
  }

  setQuota(role: string, quota: QuotaSpec | undefined): void {
    const r = this.role(role);
    r.guarantee = toMilliQuantities(quota?.guarantee);
    r.limit = toMilliQuantities(quota?.limit);
    this.epoch++;
  }

  // ---- allocations --------------------------------------------------------

  /** Record resources already in use (tasks found when an agent re-registers). */
  allocateExisting(frameworkId: string, agentId: string, role: string, resources: Resources): void {
    const a = this.agent(agentId);
    const c = this.clientFor(frameworkId, role);
    if (!a.available.contains(resources)) throw new Error(`agent ${agentId} does not have ${resources.toString()} available`);
    this.give(a, c, resources);
  }

  /**
   * Resources come back from a framework (declined, unused part of an accepted
   * offer, or a finished task). With `refuseUntil`, the framework is not offered
   * this agent's resources again before that time if they are within these.
   */
  recover(frameworkId: string, agentId: string, role: string, resources: Resources, refuseUntil?: number): void {
    const a = this.agents.get(agentId);
    const c = this.frameworks.get(frameworkId)?.clients.get(role);
    if (!a || !c) return; // agent or framework already removed: nothing is held any more
    const held = a.allocations.get(c);
    if (!held || !held.contains(resources)) throw new Error(`framework ${frameworkId} does not hold ${resources.toString()} on agent ${agentId}`);
    // Getting back exactly the pool that was handed over whole restores a state the
    // filters have already seen, so it is not growth (keeps their coverage cached).
    const restoring = held === a.handedOver && a.available.isEmpty() && resources.equals(held);
    if (restoring) {
      a.allocations.delete(c);
      a.available = held;
    } else {
      held.subtract(resources);
      if (held.isEmpty()) a.allocations.delete(c);
      a.available.add(resources);
    }
    a.handedOver = undefined;
    a.touch(!restoring);
    this.account(c, resources, -1, a.allocations.has(c) ? 0 : -1);
    if (refuseUntil !== undefined && !resources.isEmpty()) {
      // Usually the declined resources are all the framework could get here: note that now so
      // later rounds skip the containment check while the agent's free pool does not grow.
      const candidate = a.simple ? a.available : a.available.allocatableTo(role);
      const covers = (c.framework.revocable || a.revocableTotal.isEmpty()) && resources.contains(candidate);
      // The caller hands `resources` over (it is the offer's own copy), so the filter keeps it as is.
      const filter: Filter = { until: refuseUntil, resources, coversAt: covers ? a.growVersion : -1 };
      a.filters.set(c, filter);
      c.filteredAgents.add(a);
    }
  }

  /**
   * Apply an operation (RESERVE, UNRESERVE, CREATE, DESTROY) to resources a
   * framework holds on an agent: `consumed` turns into `converted`, both in
   * the allocation and in the agent's total.
   */
  convertAllocated(frameworkId: string, agentId: string, role: string, consumed: Resources, converted: Resources): void {
    const a = this.agent(agentId);
    const c = this.clientFor(frameworkId, role);
    const held = a.allocations.get(c);
    if (!held || !held.contains(consumed)) throw new Error(`framework ${frameworkId} does not hold ${consumed.toString()} on agent ${agentId}`);
    this.account(c, consumed, -1, 0);
    held.subtract(consumed).add(converted);
    this.account(c, converted, 1, 0);
    this.convertTotal(a, consumed, converted);
  }

  /** The same for resources nobody holds (operator endpoints). */
  convertAvailable(agentId: string, consumed: Resources, converted: Resources): void {
    const a = this.agent(agentId);
    if (!a.available.contains(consumed)) throw new Error(`agent ${agentId} does not have ${consumed.toString()} available`);
    a.available.subtract(consumed).add(converted);
    this.convertTotal(a, consumed, converted);
    a.touch(true);
  }

  // ---- the round ----------------------------------------------------------

  allocate(now: number, agentIds?: Iterable<string>): OfferDecision[] {
    const out: OfferDecision[] = [];
    const agents = this.roundAgents(agentIds);
    if (agents.length === 0 || this.frameworks.size === 0) return out;
    const quotaRoles = [...this.roles.values()].filter((r) => r.guarantee && r.activeClients > 0);
    if (quotaRoles.length) this.quotaStage(now, agents, quotaRoles, out);
    this.fairStage(now, agents, headroomNeeded(this.roles.values()), out);
    return out;
  }

  private roundAgents(agentIds?: Iterable<string>): AgentEntry[] {
    const list: AgentEntry[] = [];
    if (agentIds) {
      for (const id of agentIds) {
        const a = this.agents.get(id);
        if (a?.active) list.push(a);
      }
      return list;
    }
    // Start each full round at a different agent so no agent is always first in line.
    const n = this.agentList.length;
    if (n === 0) return list;
    this.rotation = (this.rotation + 1) % n;
    for (let i = 0; i < n; i++) {
      const a = this.agentList[(i + this.rotation) % n]!;
      if (a.active) list.push(a);
    }
    return list;
  }

  private quotaStage(now: number, agents: AgentEntry[], quotaRoles: RoleEntry[], out: OfferDecision[]): void {
    for (const a of agents) {
      if (a.available.isEmpty()) continue;
      quotaRoles.sort((x, y) => x.sorted.share - y.sorted.share);
      for (const r of quotaRoles) {
        const remaining = remainingGuarantee(r);
        if (!remaining) continue;
        const base = a.available.allocatableTo(r.name).nonRevocable();
        if (base.isEmpty()) continue;
        const candidate = chopUnreserved(base, remaining);
        if (!isOfferable(this.minAllocatable, candidate)) continue;
        const c = this.pick(a, r, candidate, candidate, true, true, false, now);
        if (c) out.push({ frameworkId: c.framework.id, agentId: a.id, role: r.name, resources: this.give(a, c, candidate) });
      }
    }
  }

  private fairStage(now: number, agents: AgentEntry[], headroom: Quantities | undefined, out: OfferDecision[]): void {
    let spare: Quantities | undefined;
    if (headroom) {
      // Unreserved resources free on active agents, less what unmet guarantees still need.
      spare = [];
      for (const a of this.agentList) if (a.active) addQuantities(spare, scalarQuantities(a.available, { unreservedOnly: true }));
      for (let i = 0; i < headroom.length; i++) if (headroom[i] !== undefined) spare[i] = (spare[i] ?? 0) - headroom[i]!;
    }
    for (const a of agents) {
      if (a.available.isEmpty()) continue;
      if (a.skip && a.skip.version === a.version && a.skip.epoch === this.epoch && now < a.skip.until) continue;
      let offered = false;
      let globallyBlocked = false;
      this.earliestExpiry = Infinity;
      for (const { value: r } of this.roleSorter.snapshot()) {
        if (r.activeClients === 0) continue;
        if (a.available.isEmpty()) break;
        let candidate = a.simple ? a.available : a.available.allocatableTo(r.name);
        if (candidate.isEmpty()) continue;
        let capped = false;
        if (spare) {
          const allowance = spare.slice();
          const own = remainingGuarantee(r);
          if (own) addQuantities(allowance, own);
          const next = chopUnreserved(candidate, allowance);
          if (!next.equals(candidate)) capped = globallyBlocked = true;
          candidate = next;
        }
        if (r.limit) {
          const room: Quantities = [];
          r.limit.forEach((lim, i) => {
            room[i] = Math.max(0, lim - (r.sorted.allocated[i] ?? 0));
          });
          const next = chopUnreserved(candidate, room);
          if (!next.equals(candidate)) capped = globallyBlocked = true;
          candidate = next;
        }
        const withoutRevocable = a.revocableTotal.isEmpty() ? candidate : candidate.nonRevocable();
        const okAll = isOfferable(this.minAllocatable, candidate);
        const okNonRevocable = withoutRevocable === candidate ? okAll : isOfferable(this.minAllocatable, withoutRevocable);
        if (!okAll && !okNonRevocable) continue;
        const c = this.pick(a, r, candidate, withoutRevocable, okAll, okNonRevocable, !capped, now);
        if (!c) continue;
        const give = c.framework.revocable ? candidate : withoutRevocable;
        if (spare) addQuantities(spare, scalarQuantities(give, { unreservedOnly: true }), -1);
        out.push({ frameworkId: c.framework.id, agentId: a.id, role: r.name, resources: this.give(a, c, give) });
        offered = true;
      }
      const blockedUntil = this.earliestExpiry;
      // Nothing offered only because of this agent's filters: skip it until something changes.
      if (!offered && !globallyBlocked) a.skip = { version: a.version, epoch: this.epoch, until: blockedUntil };
    }
  }

  /**
   * The first eligible framework of role `r`, in DRF order, that does not
   * refuse the candidate on agent `a`. Kept small and monomorphic: when every
   * framework has declined every agent this loop runs agents × frameworks times.
   */
  private pick(a: AgentEntry, r: RoleEntry, candidate: Resources, withoutRevocable: Resources, okAll: boolean, okNonRevocable: boolean, uncapped: boolean, now: number): Client | undefined {
    const list = r.frameworks.snapshot();
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!.value;
      if (!c.framework.active || c.suppressed) continue;
      const revocable = c.framework.revocable;
      if (!(revocable ? okAll : okNonRevocable)) continue;
      const f = a.filters.get(c);
      if (f !== undefined) {
        const give = revocable ? candidate : withoutRevocable;
        if (isFiltered(a, c, f, give, now, uncapped && give === candidate)) {
          if (f.until < this.earliestExpiry) this.earliestExpiry = f.until;
          continue;
        }
      }
      return c;
    }
    return undefined;
  }
}
