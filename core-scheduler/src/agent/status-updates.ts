/**
 * Reliable status updates, agent side: updates of one task go out in order,
 * the next only after the previous is acknowledged; an unacknowledged head is
 * resent when its own backoff expires (10 s, doubling, as Mesos does), so a
 * slow framework is not flooded with copies; updates produced in the same
 * turn travel in one UPDATE call.
 */
import { randomUuidBase64 } from '../../../common/uuid.js';
import type { V1TaskStatus } from '../protocol/v1.js';

export interface PendingUpdate {
  frameworkId: string;
  status: V1TaskStatus;
  /** When it was last sent and how long to wait before sending it again (not checkpointed). */
  sentAt?: number;
  backoffMs?: number;
}

export interface StatusUpdateOptions {
  send(updates: Array<{ framework_id: { value: string }; status: V1TaskStatus }>): Promise<unknown>;
  /** Whether the session can send right now. */
  canSend(): boolean;
  initialRetryMs?: number;
  maxRetryMs?: number;
  onAcknowledged?(frameworkId: string, status: V1TaskStatus): void;
  /** A task's queue changed (checkpoint it). */
  onQueueChanged?(frameworkId: string, taskId: string, queue: PendingUpdate[]): void;
}

export class StatusUpdateManager {
  /** Per task key: unacknowledged updates, oldest first. */
  private readonly queues = new Map<string, PendingUpdate[]>();
  private readonly outgoing: PendingUpdate[] = [];
  private flushScheduled = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly initialRetryMs: number;
  private readonly maxRetryMs: number;

  constructor(private readonly opts: StatusUpdateOptions) {
    this.initialRetryMs = opts.initialRetryMs ?? 10_000;
    this.maxRetryMs = opts.maxRetryMs ?? 600_000;
  }

  static key(frameworkId: string, taskId: string): string {
    return `${frameworkId}/${taskId}`;
  }

  /** Queue a new status (a uuid is added); it is sent now if nothing of its task is waiting. */
  add(frameworkId: string, status: V1TaskStatus): V1TaskStatus {
    const full: V1TaskStatus = { ...status, uuid: randomUuidBase64(), timestamp: status.timestamp ?? Date.now() / 1000 };
    const key = StatusUpdateManager.key(frameworkId, status.task_id.value);
    // Every field from the start (one object shape), and a new queue of exactly one: most tasks never have two.
    const pending: PendingUpdate = { frameworkId, status: full, sentAt: undefined, backoffMs: undefined };
    let q = this.queues.get(key);
    if (q) q.push(pending);
    else this.queues.set(key, (q = [pending]));
    this.opts.onQueueChanged?.(frameworkId, status.task_id.value, q);
    if (q.length === 1) this.enqueue(q[0]!);
    return full;
  }

  /** Restore unacknowledged updates from a checkpoint (agent recovery). */
  restore(pending: PendingUpdate[]): void {
    for (const p of pending) {
      const key = StatusUpdateManager.key(p.frameworkId, p.status.task_id.value);
      let q = this.queues.get(key);
      if (!q) this.queues.set(key, (q = []));
      q.push(p);
    }
  }

  acknowledge(frameworkId: string, taskId: string, uuid: string): boolean {
    const key = StatusUpdateManager.key(frameworkId, taskId);
    const q = this.queues.get(key);
    if (!q?.length || q[0]!.status.uuid !== uuid) return false; // duplicate or stale ack
    const done = q.shift()!;
    if (q.length === 0) this.queues.delete(key);
    this.opts.onQueueChanged?.(frameworkId, taskId, q);
    this.opts.onAcknowledged?.(frameworkId, done.status);
    if (q.length) this.enqueue(q[0]!);
    return true;
  }

  /** Forget a framework's updates (it was removed). */
  dropFramework(frameworkId: string): void {
    for (const [key, q] of this.queues) {
      if (q[0]?.frameworkId !== frameworkId) continue;
      this.queues.delete(key);
      this.opts.onQueueChanged?.(frameworkId, q[0].status.task_id.value, []);
    }
  }

  /** Whether a task still has updates waiting for acknowledgement. */
  hasPending(frameworkId: string, taskId: string): boolean {
    return (this.queues.get(StatusUpdateManager.key(frameworkId, taskId))?.length ?? 0) > 0;
  }

  pending(): PendingUpdate[] {
    return [...this.queues.values()].flat().map(({ frameworkId, status }) => ({ frameworkId, status }));
  }

  latestPending(frameworkId: string, taskId: string): V1TaskStatus | undefined {
    return this.queues.get(StatusUpdateManager.key(frameworkId, taskId))?.at(-1)?.status;
  }

  /** Resend every task's oldest unacknowledged update now (after re-registering), restarting backoff. */
  resendAll(): void {
    for (const q of this.queues.values()) {
      if (!q[0]) continue;
      q[0].backoffMs = undefined;
      this.enqueue(q[0]);
    }
  }

  private enqueue(u: PendingUpdate): void {
    this.outgoing.push(u);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outgoing.length === 0) return;
    const now = Date.now();
    const batch = this.outgoing.splice(0);
    for (const u of batch) {
      u.sentAt = now;
      u.backoffMs = u.backoffMs === undefined ? this.initialRetryMs : Math.min(u.backoffMs * 2, this.maxRetryMs);
    }
    this.armRetry();
    if (!this.opts.canSend()) return; // the retry timer (or resendAll on re-registration) sends them
    this.opts.send(batch.map((u) => ({ framework_id: { value: u.frameworkId }, status: u.status }))).catch(() => {
      // The retry timer resends whatever is still unacknowledged.
    });
  }

  /** One timer for the earliest due resend. */
  private armRetry(): void {
    let due = Infinity;
    for (const q of this.queues.values()) {
      const head = q[0];
      if (head?.sentAt !== undefined) due = Math.min(due, head.sentAt + head.backoffMs!);
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (due === Infinity) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const now = Date.now();
      for (const q of this.queues.values()) {
        const head = q[0];
        if (head && (head.sentAt === undefined || head.sentAt + head.backoffMs! <= now)) this.outgoing.push(head);
      }
      if (this.outgoing.length) this.flush();
      else this.armRetry();
    }, Math.max(1, due - Date.now()));
    this.retryTimer.unref();
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
