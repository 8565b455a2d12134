/**
 * The agent's checkpoint on local disk: its id, the frameworks and tasks it
 * runs (with each container's config), unacknowledged status updates, and the
 * resources the master checkpointed on it. Kept in the embedded Store (SQLite,
 * crash-safe); writes made in one event-loop turn commit together, and
 * `flushed()` lets a caller wait until its write is on disk — a status update
 * is checkpointed before it is sent, so a crash can neither lose nor invent one.
 */
import type { Store, Op } from '../../../common/store/types.js';
import { openStore } from '../../../common/store/json.js';
import type { ContainerConfig, ContainerizerType } from './containerizer.js';
import type { PendingUpdate } from './status-updates.js';
import type { V1FrameworkInfo, V1Resource, V1TaskInfo, V1TaskState, V1TaskStatus } from '../protocol/v1.js';

const K = {
  agentId: 'agent/id',
  resources: 'agent/checkpointed-resources',
  framework: (id: string) => `agent/frameworks/${id}`,
  frameworks: 'agent/frameworks/',
  task: (fw: string, task: string) => `agent/tasks/${fw}/${task}`,
  tasks: 'agent/tasks/',
  updates: (fw: string, task: string) => `agent/updates/${fw}/${task}`,
  allUpdates: 'agent/updates/',
};

const MAX_TXN_OPS = 128;

export interface TaskCheckpoint {
  frameworkId: string;
  task: V1TaskInfo;
  containerizer: ContainerizerType;
  container: ContainerConfig;
  state: V1TaskState;
  /** Latest status sent or queued. */
  status: V1TaskStatus;
  /** We asked for it to be killed (so its end is TASK_KILLED, not FAILED). */
  killRequested: boolean;
  /** Killed because its health checks kept failing. */
  killedUnhealthy?: boolean;
  launchedAt: number;
  endedAt?: number;
}

export interface CheckpointState {
  agentId?: string;
  checkpointedResources: V1Resource[];
  frameworks: V1FrameworkInfo[];
  tasks: TaskCheckpoint[];
  updates: PendingUpdate[];
}

export class Checkpoint {
  private pending = new Map<string, Op>();
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();

  private constructor(private readonly store: Store) {}

  static async open(path: string): Promise<Checkpoint> {
    // 'normal' sync: WAL survives the agent being killed; the checkpoint exists for process crashes.
    // Nobody watches the checkpoint: keep little history, so it is compacted as it goes and stays small.
    return new Checkpoint(await openStore({ backend: 'embedded', path, sync: 'normal', historyRevisions: 100 }));
  }

  async load(): Promise<CheckpointState> {
    const json = <T>(b: Buffer): T => JSON.parse(b.toString('utf8')) as T;
    const [id, res, fws, tasks, updates] = await Promise.all([
      this.store.get(K.agentId),
      this.store.get(K.resources),
      this.store.range(K.frameworks),
      this.store.range(K.tasks),
      this.store.range(K.allUpdates),
    ]);
    return {
      ...(id ? { agentId: id.value.toString('utf8') } : {}),
      checkpointedResources: res ? json<V1Resource[]>(res.value) : [],
      frameworks: fws.kvs.map((kv) => json<V1FrameworkInfo>(kv.value)),
      tasks: tasks.kvs.map((kv) => json<TaskCheckpoint>(kv.value)),
      updates: updates.kvs.flatMap((kv) => json<PendingUpdate[]>(kv.value)),
    };
  }

  private put(key: string, value: unknown): void {
    this.pending.set(key, { type: 'put', key, value: typeof value === 'string' ? value : JSON.stringify(value) });
    this.schedule();
  }

  private del(key: string): void {
    this.pending.set(key, { type: 'delete', key });
    this.schedule();
  }

  setAgentId(id: string): void {
    this.put(K.agentId, id);
  }

  setCheckpointedResources(resources: V1Resource[]): void {
    this.put(K.resources, resources);
  }

  putFramework(info: V1FrameworkInfo & { id: { value: string } }): void {
    this.put(K.framework(info.id.value), info);
  }

  removeFramework(id: string): void {
    this.del(K.framework(id));
  }

  putTask(t: TaskCheckpoint): void {
    this.put(K.task(t.frameworkId, t.task.task_id.value), t);
  }

  removeTask(frameworkId: string, taskId: string): void {
    this.del(K.task(frameworkId, taskId));
    this.del(K.updates(frameworkId, taskId));
  }

  /** The whole unacknowledged queue of one task (small: usually one update). */
  setUpdates(frameworkId: string, taskId: string, updates: PendingUpdate[]): void {
    if (updates.length === 0) this.del(K.updates(frameworkId, taskId));
    else this.put(K.updates(frameworkId, taskId), updates.map(({ frameworkId: f, status }) => ({ frameworkId: f, status })));
  }

  /** Resolves when everything written so far is committed. */
  flushed(): Promise<void> {
    if (this.pending.size) this.scheduleNow();
    return this.chain;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.scheduleNow());
  }

  private scheduleNow(): void {
    this.scheduled = false;
    if (this.pending.size === 0) return;
    const ops = [...this.pending.values()];
    this.pending = new Map();
    this.chain = this.chain
      .catch(() => undefined) // a failed batch was reported to its waiters; later batches still run
      .then(async () => {
        for (let i = 0; i < ops.length; i += MAX_TXN_OPS) await this.store.txn({ compare: [], success: ops.slice(i, i + MAX_TXN_OPS) });
      });
  }

  async close(): Promise<void> {
    await this.flushed();
    await this.store.close();
  }
}
