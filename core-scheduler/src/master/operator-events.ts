/**
 * The operator event stream (operator API SUBSCRIBE) and in-process listeners
 * (discovery follows tasks this way when it runs beside the master). Views
 * are built only when someone listens, so a master nobody watches pays nothing.
 */
import type { Master } from './master.js';
import type { AgentRecord, FrameworkRecord, Outbox, TaskRecord } from './records.js';
import type { V1TaskStatus } from '../../../contracts/v1/v1.js';
import type { OperatorEvent } from '../../../contracts/v1/operator-events.js';
import { agentView, frameworkView, getState, taskView } from './views.js';

export class OperatorEvents {
  private readonly outboxes = new Set<Outbox<OperatorEvent>>();
  private readonly listeners = new Set<(e: OperatorEvent) => void>();

  constructor(private readonly m: Master) {}

  /** A new operator stream: first the whole state, then changes. */
  subscribe(outbox: Outbox<OperatorEvent>): () => void {
    outbox.send({ type: 'SUBSCRIBED', subscribed: { get_state: getState(this.m), heartbeat_interval_seconds: this.m.config.frameworks.heartbeatIntervalSeconds } });
    this.outboxes.add(outbox);
    return () => this.outboxes.delete(outbox);
  }

  listen(fn: (e: OperatorEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private get watched(): boolean {
    return this.outboxes.size > 0 || this.listeners.size > 0;
  }

  private publish(e: OperatorEvent): void {
    for (const o of this.outboxes) if (!o.send(e)) this.outboxes.delete(o);
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.m.log.error({ err }, 'operator event listener failed');
      }
    }
  }

  taskAdded(t: TaskRecord): void {
    if (this.watched) this.publish({ type: 'TASK_ADDED', task_added: { task: taskView(t) } });
  }

  taskUpdated(t: TaskRecord, status: V1TaskStatus): void {
    if (this.watched) this.publish({ type: 'TASK_UPDATED', task_updated: { framework_id: { value: t.frameworkId }, status, state: t.state } });
  }

  agentAdded(a: AgentRecord): void {
    if (this.watched) this.publish({ type: 'AGENT_ADDED', agent_added: { agent: agentView(this.m, a) } });
  }

  agentRemoved(a: AgentRecord): void {
    if (this.watched) this.publish({ type: 'AGENT_REMOVED', agent_removed: { agent_id: { value: a.id } } });
  }

  frameworkAdded(f: FrameworkRecord): void {
    if (this.watched) this.publish({ type: 'FRAMEWORK_ADDED', framework_added: { framework: frameworkView(this.m, f) } });
  }

  frameworkUpdated(f: FrameworkRecord): void {
    if (this.watched) this.publish({ type: 'FRAMEWORK_UPDATED', framework_updated: { framework: frameworkView(this.m, f) } });
  }

  frameworkRemoved(f: FrameworkRecord): void {
    if (this.watched) this.publish({ type: 'FRAMEWORK_REMOVED', framework_removed: { framework_info: f.info } });
  }

  heartbeat(): void {
    for (const o of this.outboxes) if (!o.send({ type: 'HEARTBEAT' })) this.outboxes.delete(o);
  }

  closeAll(): void {
    for (const o of this.outboxes) o.close();
    this.outboxes.clear();
  }
}
