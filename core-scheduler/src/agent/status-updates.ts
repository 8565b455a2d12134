/**
 * Reliable status updates, agent side: updates of one task go out in order,
 * the next only after the previous is acknowledged; an unacknowledged head is
 * resent when its own backoff expires (10 s, doubling, as Mesos does), so a
 * slow framework is not flooded with copies; updates produced in the same
 * turn travel in one UPDATE call.
 */
import { randomUuidBase64 } from '../../../common/uuid.js';
import type { StatusUpdateGroup, V1TaskStatus } from '../../../contracts/v1/v1.js';

export interface PendingUpdate {
  frameworkId: string;
  status: V1TaskStatus;
  /** When it was last sent and how long to wait before sending it again (not checkpointed). */
  sentAt?: number;
  backoffMs?: number;
}

interface StatusUpdateOptions {
  /** Send statuses to the master, grouped by framework (AgentSession.sendUpdates). */
  send(groups: StatusUpdateGroup[]): Promise<unknown>;
  /** Whether the session can send right now. */
  canSend(): boolean;
  initialRetryMs?: number;
  maxRetryMs?: number;
  onAcknowledged?(frameworkId: string, status: V1TaskStatus): void;
  /** A task's queue changed (checkpoint it). */
  onQueueChanged?(frameworkId: string, taskId: string, queue: PendingUpdate[]): void;
}

export class StatusUpdateManager {
  /**
   * Unacknowledged updates, oldest first, per framework and task. Two levels
   * instead of one "framework/task" key: no key string is built and hashed
   * for every update and acknowledgement.
   */
  private readonly queues = new Map<string, Map<string, PendingUpdate[]>>();
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

  private queue(frameworkId: string, taskId: string): PendingUpdate[] | undefined {
    return this.queues.get(frameworkId)?.get(taskId);
  }

  /** Append to a task's queue (a new one holds exactly its first update: most tasks never have two). */
  private append(p: PendingUpdate): PendingUpdate[] {
    let tasks = this.queues.get(p.frameworkId);
    if (!tasks) this.queues.set(p.frameworkId, (tasks = new Map()));
    const taskId = p.status.task_id.value;
    const q = tasks.get(taskId);
    if (q) {
      q.push(p);
      return q;
    }
    const fresh = [p];
    tasks.set(taskId, fresh);
    return fresh;
  }

  private *allQueues(): Generator<PendingUpdate[]> {
    for (const tasks of this.queues.values()) yield* tasks.values();
  }

  /** Queue a new status (a uuid is added); it is sent now if nothing of its task is waiting. */
  add(frameworkId: string, status: V1TaskStatus): V1TaskStatus {
    // Copied, then completed: a spread followed by new fields ({ ...status, uuid }) took V8 ~1.2 µs an
    // update against ~0.1 µs this way (bench: 100,000 updates a placement in the simulated fleet).
    const full: V1TaskStatus = Object.assign({}, status);
    full.uuid = randomUuidBase64();
    full.timestamp ??= Date.now() / 1000;
    // Every field from the start: one object shape.
    const q = this.append({ frameworkId, status: full, sentAt: undefined, backoffMs: undefined });
    this.opts.onQueueChanged?.(frameworkId, status.task_id.value, q);
    if (q.length === 1) this.enqueue(q[0]!);
    return full;
  }

  /** Restore unacknowledged updates from a checkpoint (agent recovery). */
  restore(pending: PendingUpdate[]): void {
    for (const p of pending) this.append(p);
  }

  acknowledge(frameworkId: string, taskId: string, uuid: string): boolean {
    const tasks = this.queues.get(frameworkId);
    const q = tasks?.get(taskId);
    if (!q?.length || q[0]!.status.uuid !== uuid) return false; // duplicate or stale ack
    const done = q.shift()!;
    if (q.length === 0) {
      tasks!.delete(taskId);
      if (tasks!.size === 0) this.queues.delete(frameworkId);
    }
    this.opts.onQueueChanged?.(frameworkId, taskId, q);
    this.opts.onAcknowledged?.(frameworkId, done.status);
    if (q.length) this.enqueue(q[0]!);
    return true;
  }

  /** The acknowledgements of one ACKNOWLEDGE_BATCH event (all of one framework). */
  acknowledgeAll(frameworkId: string, acks: ReadonlyArray<{ task_id: { value: string }; uuid: string }>): void {
    for (const ack of acks) this.acknowledge(frameworkId, ack.task_id.value, ack.uuid);
  }

  /** Forget a framework's updates (it was removed). */
  dropFramework(frameworkId: string): void {
    const tasks = this.queues.get(frameworkId);
    if (!tasks) return;
    this.queues.delete(frameworkId);
    for (const taskId of tasks.keys()) this.opts.onQueueChanged?.(frameworkId, taskId, []);
  }

  /** Whether a task still has updates waiting for acknowledgement. */
  hasPending(frameworkId: string, taskId: string): boolean {
    return (this.queue(frameworkId, taskId)?.length ?? 0) > 0;
  }

  pending(): PendingUpdate[] {
    return [...this.allQueues()].flat().map(({ frameworkId, status }) => ({ frameworkId, status }));
  }

  latestPending(frameworkId: string, taskId: string): V1TaskStatus | undefined {
    return this.queue(frameworkId, taskId)?.at(-1)?.status;
  }

  /** Resend every task's oldest unacknowledged update now (after re-registering), restarting backoff. */
  resendAll(): void {
    for (const q of this.allQueues()) {
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
    const groups = new Map<string, StatusUpdateGroup>();
    for (const u of batch) {
      let g = groups.get(u.frameworkId);
      if (!g) groups.set(u.frameworkId, (g = { framework_id: { value: u.frameworkId }, statuses: [] }));
      g.statuses.push(u.status);
    }
    this.opts.send([...groups.values()]).catch(() => {
      // The retry timer resends whatever is still unacknowledged.
    });
  }

  /** One timer for the earliest due resend. */
  private armRetry(): void {
    let due = Infinity;
    for (const q of this.allQueues()) {
      const head = q[0];
      if (head?.sentAt !== undefined) due = Math.min(due, head.sentAt + head.backoffMs!);
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (due === Infinity) return;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined;
        const now = Date.now();
        for (const q of this.allQueues()) {
          const head = q[0];
          if (head && (head.sentAt === undefined || head.sentAt + head.backoffMs! <= now)) this.outgoing.push(head);
        }
        if (this.outgoing.length) this.flush();
        else this.armRetry();
      },
      Math.max(1, due - Date.now()),
    );
    this.retryTimer.unref();
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
