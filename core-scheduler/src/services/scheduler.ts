/**
 * The framework's half of two-level scheduling: turn offers into launches
 * (persisting each task on its slot first), decline the rest with a filter,
 * SUPPRESS offers while nothing waits and REVIVE when something starts
 * waiting, pass status updates to the manager and acknowledge every one that
 * carries a uuid, kill what the manager asks, and reconcile on subscription
 * and periodically.
 */
import { errorMessage } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import type { Metrics } from '../../../common/metrics.js';
import { Resources } from '../resources/resources.js';
import type { SchedulerEvent, V1Offer, V1TaskInfo } from '../../../contracts/v1/v1.js';
import { attributeText } from './constraints.js';
import type { FrameworkLink } from './framework-link.js';
import type { ServiceManager } from './manager.js';
import { newTaskId } from './model.js';
import { planLaunches, type OfferView, type PlannedLaunch } from './planner.js';
import { buildTaskInfo } from './task-info.js';

interface SchedulerOptions {
  /** Filter on declined resources while instances wait (they may fit when the offer changes). */
  refuseSeconds: number;
  /** Filter on offers when nothing waits (offers are suppressed then anyway). */
  idleRefuseSeconds: number;
  reconcileIntervalMs: number;
  log: Logger;
  metrics: Metrics;
}

/** Tasks younger than this are left out of explicit reconciliation: their launch may still be on its way. */
const RECONCILE_GRACE_MS = 10_000;
/** Errors of an ACCEPT that say the offer went away, not that the task was wrong. */
const OFFER_GONE = /not outstanding|no longer connected|not subscribed/;

export class ServiceScheduler {
  private link!: FrameworkLink;
  private suppressed = false;
  private wanted = new Set<string>();
  private reconcileTimer: ReturnType<typeof setInterval> | undefined;
  private readonly counters;

  constructor(
    private readonly manager: ServiceManager,
    private readonly opts: SchedulerOptions,
  ) {
    const m = opts.metrics;
    this.counters = {
      offers: m.counter('offers_received_total', 'Offers received from the master'),
      declined: m.counter('offers_declined_total', 'Offers declined'),
      launched: m.counter('tasks_launched_total', 'Tasks launched'),
      updates: m.counter('status_updates_total', 'Task status updates received', ['state']),
      kills: m.counter('kills_total', 'KILL calls sent'),
      revives: m.counter('revives_total', 'REVIVE calls sent'),
      suppresses: m.counter('suppresses_total', 'SUPPRESS calls sent'),
      launchFailures: m.counter('launch_failures_total', 'ACCEPT calls that failed'),
    };
  }

  attach(link: FrameworkLink): void {
    this.link = link;
    this.manager.attach({
      kill: (taskId, agentId) => this.kill(taskId, agentId),
      offersWanted: (keys) => this.offersWanted(keys),
      ensureRoles: (roles) => link.setRoles(roles),
    });
  }

  start(): void {
    this.reconcileTimer = setInterval(() => this.reconcile(), this.opts.reconcileIntervalMs);
    this.reconcileTimer.unref();
  }

  stop(): void {
    clearInterval(this.reconcileTimer);
  }

  /** A fresh subscription: offers flow again (not suppressed), and the master tells us where our tasks stand. */
  onSubscribed(): void {
    this.suppressed = false;
    this.wanted.clear();
    this.reconcile(0);
    this.manager.changed();
  }

  onEvent(e: SchedulerEvent): void {
    switch (e.type) {
      case 'OFFERS':
        void this.onOffers(e.offers.offers).catch((err: unknown) => this.opts.log.error({ err }, 'handling offers failed: %s', errorMessage(err)));
        break;
      case 'UPDATE': {
        const status = e.update.status;
        this.counters.updates.inc({ state: status.state });
        this.manager.onStatus(status);
        if (status.uuid)
          void this.link
            .call((c) => c.acknowledge(status))
            .catch((err: unknown) => this.opts.log.debug({ task: status.task_id.value }, 'acknowledge failed (the master resends): %s', errorMessage(err)));
        break;
      }
      case 'FAILURE':
        this.opts.log.warn({ failure: e.failure }, 'the master reports a failure');
        break;
      default:
        break;
    }
  }

  private toView(o: V1Offer): OfferView {
    return { id: o.id.value, agentId: o.agent_id.value, hostname: o.hostname, role: o.allocation_info.role, attributes: attributeText(o.attributes ?? []), remaining: Resources.fromV1(o.resources) };
  }

  private async onOffers(offers: V1Offer[]): Promise<void> {
    this.counters.offers.inc(offers.length);
    const pending = this.manager.launchable();
    if (pending.length === 0) {
      await this.decline(
        offers.map((o) => o.id.value),
        this.opts.idleRefuseSeconds,
      );
      return;
    }
    const views = offers.map((o) => this.toView(o));
    const plan = planLaunches(views, pending, (id) => this.manager.placements(id));
    for (const [inst, why] of plan.refusals) this.manager.noteRefusals(inst.app.id, why);
    const byOffer = new Map<string, Array<{ launch: PlannedLaunch; info: V1TaskInfo }>>();
    const now = Date.now();
    for (const launch of plan.launches) {
      const taskId = newTaskId(launch.app.id, launch.index, now);
      const info = buildTaskInfo({ app: launch.app, index: launch.index, taskId, agentId: launch.offer.agentId, role: launch.offer.role, resources: launch.resources, hostPorts: launch.hostPorts });
      this.manager.assignTask(launch.app.id, launch.index, {
        id: taskId,
        agentId: launch.offer.agentId,
        hostname: launch.offer.hostname,
        attributes: launch.offer.attributes,
        state: 'TASK_STAGING',
        launchedAt: now,
        ips: [],
        hostPorts: launch.hostPorts,
      });
      const list = byOffer.get(launch.offer.id) ?? [];
      list.push({ launch, info });
      byOffer.set(launch.offer.id, list);
    }
    const refuse = plan.refusals.size > 0 ? this.opts.refuseSeconds : this.opts.idleRefuseSeconds;
    const unused = offers.filter((o) => !byOffer.has(o.id.value)).map((o) => o.id.value);
    if (byOffer.size > 0) {
      try {
        await this.manager.persist();
      } catch (err) {
        for (const list of byOffer.values()) for (const { info } of list) this.manager.launchFailed(info.task_id.value, `cannot record the launch: ${errorMessage(err)}`, false);
        await this.decline(
          offers.map((o) => o.id.value),
          this.opts.refuseSeconds,
        );
        return;
      }
    }
    await Promise.all([
      ...[...byOffer].map(([offerId, list]) =>
        this.accept(
          offerId,
          list.map((l) => l.info),
          refuse,
        ),
      ),
      unused.length ? this.decline(unused, refuse) : Promise.resolve(),
    ]);
  }

  private async accept(offerId: string, infos: V1TaskInfo[], refuseSeconds: number): Promise<void> {
    try {
      await this.link.call((c) => c.accept([offerId], [{ type: 'LAUNCH', launch: { task_infos: infos } }], refuseSeconds));
      this.counters.launched.inc(infos.length);
    } catch (err) {
      const message = errorMessage(err);
      this.counters.launchFailures.inc();
      this.opts.log.warn({ offer: offerId, tasks: infos.length }, 'launch refused: %s', message);
      for (const info of infos) this.manager.launchFailed(info.task_id.value, `launch refused by the master: ${message}`, !OFFER_GONE.test(message));
    }
  }

  private async decline(offerIds: string[], refuseSeconds: number): Promise<void> {
    if (offerIds.length === 0) return;
    this.counters.declined.inc(offerIds.length);
    await this.link.call((c) => c.decline(offerIds, refuseSeconds)).catch((err: unknown) => this.opts.log.debug('decline failed: %s', errorMessage(err)));
  }

  private kill(taskId: string, agentId: string): void {
    this.counters.kills.inc();
    void this.link.call((c) => c.kill(taskId, agentId)).catch((err: unknown) => this.opts.log.debug({ task: taskId }, 'kill failed (retried on the next update): %s', errorMessage(err)));
  }

  /** Offers only while something waits: REVIVE when an instance starts waiting, SUPPRESS when none does. */
  private offersWanted(keys: string[]): void {
    if (!this.link?.connected) return;
    if (keys.length === 0) {
      this.wanted.clear();
      if (this.suppressed) return;
      this.suppressed = true;
      this.counters.suppresses.inc();
      void this.link
        .call((c) => c.suppress())
        .catch((err: unknown) => {
          this.suppressed = false;
          this.opts.log.debug('suppress failed: %s', errorMessage(err));
        });
      return;
    }
    const fresh = keys.some((k) => !this.wanted.has(k));
    this.wanted = new Set(keys);
    if (!fresh && !this.suppressed) return;
    this.suppressed = false;
    this.counters.revives.inc();
    void this.link.call((c) => c.revive()).catch((err: unknown) => this.opts.log.debug('revive failed: %s', errorMessage(err)));
  }

  /** Explicit reconciliation of our live tasks, then implicit (to learn of tasks we do not know). */
  reconcile(graceMs = RECONCILE_GRACE_MS): void {
    if (!this.link?.connected) return;
    const tasks = this.manager.liveTasks(graceMs);
    const run = async (): Promise<void> => {
      for (let i = 0; i < tasks.length; i += 10_000) await this.link.call((c) => c.reconcile(tasks.slice(i, i + 10_000)));
      await this.link.call((c) => c.reconcile([]));
    };
    void run().catch((err: unknown) => this.opts.log.debug('reconcile failed: %s', errorMessage(err)));
  }
}
