/**
 * Offers: running allocation rounds (periodically and, batched, right after
 * events that free resources), turning decisions into v1 offers, DECLINE,
 * rescinding, and ACCEPT (validated in accept.ts, applied here).
 */
import { CorralError } from '../../../contracts/errors.js';
import type { Master } from './master.js';
import type { FrameworkRecord, OfferRecord } from './records.js';
import type { SchedulerEvent, V1Offer } from '../../../contracts/v1/v1.js';
import type { V1Accept } from '../../../contracts/v1/v1-schema.js';
import { planAccept, type AcceptPlan } from './accept.js';

export class OfferManager {
  private seq = 0;
  private pending: Set<string> | 'all' | undefined;
  private batchArmed = false;
  private readonly offersMade;
  private readonly roundSeconds;

  constructor(private readonly m: Master) {
    this.offersMade = m.metrics.counter('offers_total', 'Offers made to frameworks');
    this.roundSeconds = m.metrics.histogram('allocation_round_seconds', 'Time spent in one allocation round', [0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1]);
  }

  /** Ask for a round soon for some agents (or all); requests within `batchMs` are merged. */
  requestAllocation(agentIds?: Iterable<string>): void {
    if (this.m.isStopped) return;
    if (!agentIds || this.pending === 'all') this.pending = 'all';
    else {
      this.pending ??= new Set();
      for (const id of agentIds) this.pending.add(id);
    }
    if (!this.batchArmed) {
      this.batchArmed = true;
      this.m.startTimer('allocation-batch', this.m.config.allocation.batchMs);
    }
  }

  /** The batch window of `requestAllocation` is over: one round for everything asked for in it. */
  batchDue(): void {
    this.batchArmed = false;
    const which = this.pending;
    this.pending = undefined;
    this.allocate(which === 'all' ? undefined : which);
  }

  stop(): void {
    if (this.batchArmed) this.m.cancelTimer('allocation-batch');
    this.batchArmed = false;
  }

  allocate(agentIds?: Iterable<string>): void {
    if (this.m.isStopped) return;
    const end = this.roundSeconds.startTimer();
    const decisions = this.m.allocator.allocate(this.m.clock.now(), agentIds);
    end();
    if (decisions.length === 0) return;
    const byFramework = new Map<FrameworkRecord, V1Offer[]>();
    const now = this.m.clock.now();
    for (const d of decisions) {
      const f = this.m.frameworks.get(d.frameworkId);
      const a = this.m.agents.get(d.agentId);
      if (!f?.connected || !a || a.status !== 'connected') {
        // Raced with a disconnect: give it straight back.
        this.m.allocator.recover(d.frameworkId, d.agentId, d.role, d.resources);
        continue;
      }
      const offer: OfferRecord = { id: `${this.m.info.id}-O${++this.seq}`, frameworkId: f.id, agentId: a.id, role: d.role, resources: d.resources, createdAt: now };
      this.m.offers.set(offer.id, offer);
      f.offers.add(offer.id);
      let list = byFramework.get(f);
      if (!list) byFramework.set(f, (list = []));
      list.push(this.toV1(offer));
    }
    for (const [f, offers] of byFramework) {
      this.offersMade.inc(offers.length);
      this.m.send(f.conn, { type: 'OFFERS', offers: { offers } } satisfies SchedulerEvent);
    }
  }

  toV1(o: OfferRecord): V1Offer {
    const a = this.m.agents.get(o.agentId)!;
    return {
      id: { value: o.id },
      framework_id: { value: o.frameworkId },
      agent_id: { value: o.agentId },
      hostname: a.info.hostname,
      // Mesos sets it on every offer; some frameworks read the agent's IP from it.
      url: a.url,
      resources: o.resources.toV1(o.role),
      attributes: a.attributes,
      executor_ids: [],
      allocation_info: { role: o.role },
    };
  }

  /** Take an offer out of circulation; its resources go back with an optional filter. */
  private retire(o: OfferRecord, refuseUntil?: number): void {
    this.m.offers.delete(o.id);
    this.m.frameworks.get(o.frameworkId)?.offers.delete(o.id);
    this.m.allocator.recover(o.frameworkId, o.agentId, o.role, o.resources, refuseUntil);
  }

  rescind(o: OfferRecord): void {
    this.retire(o);
    const f = this.m.frameworks.get(o.frameworkId);
    this.m.send(f?.conn, { type: 'RESCIND', rescind: { offer_id: { value: o.id } } } satisfies SchedulerEvent);
  }

  rescindAgentOffers(agentId: string): void {
    for (const o of [...this.m.offers.values()]) if (o.agentId === agentId) this.rescind(o);
  }

  rescindFrameworkOffers(frameworkId: string): void {
    const f = this.m.frameworks.get(frameworkId);
    if (!f) return;
    for (const id of [...f.offers]) {
      const o = this.m.offers.get(id);
      if (o) this.rescind(o);
    }
  }

  private refuseUntil(refuseSeconds: number | undefined): number | undefined {
    const s = refuseSeconds ?? this.m.config.allocation.defaultRefuseSeconds;
    return s > 0 ? this.m.clock.now() + s * 1000 : undefined;
  }

  /** Offers named in a call, which must all exist and belong to the caller. */
  private ownOffers(f: FrameworkRecord, ids: { value: string }[]): OfferRecord[] {
    const seen = new Set<string>();
    return ids.map(({ value }) => {
      if (seen.has(value)) throw new CorralError('INVALID_ARGUMENT', `offer ${value} is listed twice`);
      seen.add(value);
      const o = this.m.offers.get(value);
      if (!o) throw new CorralError('INVALID_ARGUMENT', `offer ${value} is not outstanding (unknown, already used, declined or rescinded)`);
      if (o.frameworkId !== f.id) throw new CorralError('INVALID_ARGUMENT', `offer ${value} was made to another framework`);
      return o;
    });
  }

  decline(f: FrameworkRecord, ids: { value: string }[], refuseSeconds: number | undefined): void {
    const offers = this.ownOffers(f, ids);
    const until = this.refuseUntil(refuseSeconds);
    for (const o of offers) this.retire(o, until);
    this.requestAllocation(new Set(offers.map((o) => o.agentId)));
  }

  /**
   * ACCEPT: everything is validated first; an invalid call changes nothing (the
   * offers stay outstanding) and is answered with a 400 naming the problem.
   */
  accept(f: FrameworkRecord, call: V1Accept): void {
    let offers: OfferRecord[];
    try {
      offers = this.ownOffers(f, call.offer_ids);
    } catch (err) {
      if (err instanceof CorralError) this.m.taskManager.reportInvalidOffers(f, call.operations, err.message);
      throw err;
    }
    let plan: AcceptPlan;
    try {
      plan = planAccept(this.m, f, offers, call.operations);
    } catch (err) {
      if (err instanceof CorralError) this.m.taskManager.reportInvalidLaunch(f, call.operations, err.message);
      throw err;
    }
    for (const o of offers) {
      this.m.offers.delete(o.id);
      f.offers.delete(o.id);
    }
    const agent = plan.agent;
    for (const step of plan.steps) {
      if (step.kind === 'convert') {
        this.m.allocator.convertAllocated(f.id, agent.id, plan.role, step.consumed, step.converted);
        this.m.agentManager.applyConversion(agent, step.consumed, step.converted);
      } else {
        this.m.taskManager.launch(f, agent, plan.role, step.tasks);
      }
    }
    if (plan.unauthorized.length > 0) this.m.taskManager.reportUnauthorizedTasks(f, plan.unauthorized);
    if (!plan.remaining.isEmpty()) this.m.allocator.recover(f.id, agent.id, plan.role, plan.remaining, this.refuseUntil(call.filters?.refuse_seconds));
    this.requestAllocation([agent.id]);
  }
}
