/**
 * Reliable status updates, agent side: updates of one task go out in order,
 * the next only after the previous is acknowledged; unacknowledged heads are
 * resent with exponential backoff; updates produced in the same turn travel
 * in one UPDATE call.
 */
import { randomBytes } from 'node:crypto';
import type { V1TaskStatus } from '../protocol/v1.js';

export interface PendingUpdate {
  frameworkId: string;
  status: V1TaskStatus;
}

export interface StatusUpdateOptions {
  send(updates: Array<{ framework_id: { value: string }; status: V1TaskStatus }>): Promise<unknown>;
  /** Whether the session can send right now. */
  canSend(): boolean;
  initialRetryMs?: number;
  maxRetryMs?: number;
  onAcknowledged?(frameworkId: string, status: V1TaskStatus): void;
}

export class StatusUpdateManager {
  /** Per task key: unacknowledged updates, oldest first. */
  private readonly queues = new Map<string, PendingUpdate[]>();
  private readonly outgoing: PendingUpdate[] = [];
  private flushScheduled = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryMs: number;

  constructor(private readonly opts: StatusUpdateOptions) {
    this.retryMs = opts.initialRetryMs ?? 1000;
  }

  static key(frameworkId: string, taskId: string): string {
    return `${frameworkId}/${taskId}`;
  }

  /** Queue a new status (a uuid is added); it is sent now if nothing of its task is waiting. */
  add(frameworkId: string, status: V1TaskStatus): V1TaskStatus {
    const full: V1TaskStatus = { ...status, uuid: randomBytes(16).toString('base64'), timestamp: status.timestamp ?? Date.now() / 1000 };
    const key = StatusUpdateManager.key(frameworkId, status.task_id.value);
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    q.push({ frameworkId, status: full });
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
    this.opts.onAcknowledged?.(frameworkId, done.status);
    if (q.length === 0) this.queues.delete(key);
    else this.enqueue(q[0]!);
    return true;
  }

  /** Forget a framework's updates (it was removed). */
  dropFramework(frameworkId: string): void {
    for (const [key, q] of this.queues) if (q[0]?.frameworkId === frameworkId) this.queues.delete(key);
  }

  pending(): PendingUpdate[] {
    return [...this.queues.values()].flat();
  }

  latestPending(frameworkId: string, taskId: string): V1TaskStatus | undefined {
    return this.queues.get(StatusUpdateManager.key(frameworkId, taskId))?.at(-1)?.status;
  }

  /** Resend every task's oldest unacknowledged update now (after re-registering). */
  resendAll(): void {
    this.retryMs = this.opts.initialRetryMs ?? 1000;
    for (const q of this.queues.values()) if (q[0]) this.enqueue(q[0]);
  }

  private enqueue(u: PendingUpdate): void {
    this.outgoing.push(u);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    this.armRetry();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (!this.opts.canSend() || this.outgoing.length === 0) return;
    const batch = this.outgoing.splice(0);
    this.opts.send(batch.map((u) => ({ framework_id: { value: u.frameworkId }, status: u.status }))).catch(() => {
      // The retry timer resends whatever is still unacknowledged.
    });
  }

  private armRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.queues.size === 0) {
        this.retryMs = this.opts.initialRetryMs ?? 1000;
        return;
      }
      for (const q of this.queues.values()) if (q[0]) this.outgoing.push(q[0]);
      this.flush();
      this.retryMs = Math.min(this.retryMs * 2, this.opts.maxRetryMs ?? 30_000);
      this.armRetry();
    }, this.retryMs);
    this.retryTimer.unref();
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
