/**
 * A recording v1 framework for tests: keeps every event, can auto-acknowledge.
 */
import { SchedulerClient } from '../../contracts/client/scheduler-client.js';
import type { SchedulerEvent, V1FrameworkInfo, V1Offer, V1TaskStatus } from '../../contracts/v1/v1.js';

export class TestFramework {
  readonly client: SchedulerClient;
  readonly events: SchedulerEvent[] = [];
  autoAck = true;
  /** Updates to leave unacknowledged even with autoAck. */
  holdAck: (status: V1TaskStatus) => boolean = () => false;

  constructor(master: string, info: Partial<V1FrameworkInfo> = {}, auth: { principal?: string; secret?: string } = {}) {
    this.client = new SchedulerClient({
      master,
      ...auth,
      // No user: tasks run as the agent's default (unprivileged) user, which every principal may use. Agents run a
      // framework's tasks as the user it names, and fail them when that user does not exist on the host.
      framework: { user: '', name: 'test-framework', ...info },
      onEvent: (e, c) => {
        this.events.push(e);
        if (this.autoAck && e.type === 'UPDATE' && e.update.status.uuid && !this.holdAck(e.update.status)) void c.acknowledge(e.update.status).catch(() => undefined);
      },
    });
  }

  get id(): string {
    return this.client.frameworkId!;
  }

  subscribe(): Promise<string> {
    return this.client.subscribe();
  }

  /** The next batch of offers not yet taken by the test (it may already have arrived). */
  async offers(timeoutMs = 5000): Promise<V1Offer[]> {
    const pending = this.events.findIndex((e, i) => e.type === 'OFFERS' && i >= this.offersTaken);
    if (pending >= 0) {
      this.offersTaken = pending + 1;
      return (this.events[pending] as Extract<SchedulerEvent, { type: 'OFFERS' }>).offers.offers;
    }
    const e = await this.client.next((x) => x.type === 'OFFERS', timeoutMs);
    this.offersTaken = this.events.indexOf(e) + 1;
    return (e as Extract<SchedulerEvent, { type: 'OFFERS' }>).offers.offers;
  }

  private offersTaken = 0;

  update(taskId: string, state: string, timeoutMs = 5000): Promise<V1TaskStatus> {
    const seen = this.updates(taskId).find((s) => s.state === state);
    if (seen) return Promise.resolve(seen);
    return this.client
      .next((e) => e.type === 'UPDATE' && e.update.status.task_id.value === taskId && e.update.status.state === state, timeoutMs)
      .then((e) => (e as Extract<SchedulerEvent, { type: 'UPDATE' }>).update.status);
  }

  updates(taskId: string): V1TaskStatus[] {
    return this.events.flatMap((e) => (e.type === 'UPDATE' && e.update.status.task_id.value === taskId ? [e.update.status] : []));
  }

  launch(offer: V1Offer, tasks: Array<{ id: string; resources: string }>, refuseSeconds?: number): Promise<unknown> {
    return this.client.accept(
      [offer.id.value],
      [
        {
          type: 'LAUNCH',
          launch: {
            task_infos: tasks.map((t) => ({
              name: t.id,
              task_id: { value: t.id },
              agent_id: offer.agent_id,
              resources: resourcesJson(t.resources, offer.allocation_info.role),
              command: { value: 'sleep 1000' },
            })),
          },
        },
      ],
      refuseSeconds,
    );
  }
}

import { parseResources } from '../../core-scheduler/src/resources/parse.js';
export function resourcesJson(text: string, role?: string): ReturnType<ReturnType<typeof parseResources>['toV1']> {
  return parseResources(text).toV1(role);
}
