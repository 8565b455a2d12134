/**
 * The operator event stream (operator API SUBSCRIBE). Views are built only
 * when someone listens, so a master nobody watches pays nothing.
 */
import type { Master } from './master.js';
import type { AgentRecord, FrameworkRecord, TaskRecord } from './records.js';
import type { V1TaskStatus } from '../../../contracts/v1/v1.js';
import type { OperatorEvent } from '../../../contracts/v1/operator-events.js';
import { agentView, frameworkView, getState, taskView } from './views.js';

export class OperatorEvents {
  /** The operator streams subscribed, by connection id. */
  private readonly conns = new Set<string>();

  constructor(private readonly m: Master) {}

  /** A new operator stream: first the whole state, then changes. */
  subscribe(conn: string): void {
    this.m.send(conn, { type: 'SUBSCRIBED', subscribed: { get_state: getState(this.m), heartbeat_interval_seconds: this.m.config.frameworks.heartbeatIntervalSeconds } } satisfies OperatorEvent);
    this.conns.add(conn);
  }

  /** The stream closed. */
  unsubscribe(conn: string): void {
    this.conns.delete(conn);
  }

  private get watched(): boolean {
    return this.conns.size > 0;
  }

  private publish(e: OperatorEvent): void {
    for (const c of this.conns) this.m.send(c, e);
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
    this.publish({ type: 'HEARTBEAT' });
  }

  closeAll(): void {
    for (const c of this.conns) this.m.close(c);
    this.conns.clear();
  }
}
