/**
 * The agent's checkpoint on local disk: its id, the frameworks and tasks it
 * runs (with each container's config), unacknowledged status updates, and the
 * resources the master checkpointed on it.
 *
 * One SQLite table of key → JSON, in WAL mode with synchronous=NORMAL: a
 * commit survives the agent being killed (the checkpoint exists for process
 * crashes, as Mesos's agent checkpoint does). Nobody watches it, so it keeps
 * no history or revisions. Writes made in one event-loop turn commit in one
 * transaction (group commit), and `flushed()` commits at once and tells
 * whether it worked — a status update is checkpointed before it is sent, so a
 * crash can neither lose nor invent one.
 *
 * Per-task cost: a task's record is split into what never changes after launch
 * (TaskInfo, container config; written once) and its state (state, latest
 * status, kill flags; rewritten on each change), and values are serialised
 * only at commit, so a record changed several times in one turn is serialised
 * once. Copying the WAL back into the database (the step that syncs to disk)
 * waits for a quiet second instead of landing in the middle of a burst of
 * launches; a WAL past WAL_AUTOCHECKPOINT_PAGES is copied back regardless.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { CorralError, errorMessage } from '../../../contracts/errors.js';
import { logger } from '../../../common/log.js';
import { openExclusiveWal } from '../../../common/store/embedded-sql.js';
import type { ContainerConfig, ContainerizerType } from '../../../contracts/containerizer.js';
import type { PendingUpdate } from './status-updates.js';
import type { V1FrameworkInfo, V1Resource, V1TaskInfo, V1TaskState, V1TaskStatus } from '../../../contracts/v1/v1.js';

const K = {
  agentId: 'agent/id',
  resources: 'agent/checkpointed-resources',
  framework: (id: string) => `agent/frameworks/${id}`,
  frameworks: 'agent/frameworks/',
  task: (fw: string, task: string) => `agent/tasks/${fw}/${task}`,
  tasks: 'agent/tasks/',
  taskState: (fw: string, task: string) => `agent/task-states/${fw}/${task}`,
  taskStates: 'agent/task-states/',
  updates: (fw: string, task: string) => `agent/updates/${fw}/${task}`,
  allUpdates: 'agent/updates/',
};

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

/** The part of a task's record that changes after launch. */
type TaskState = Pick<TaskCheckpoint, 'state' | 'status' | 'killRequested' | 'killedUnhealthy' | 'endedAt'>;

interface CheckpointState {
  agentId?: string;
  checkpointedResources: V1Resource[];
  frameworks: V1FrameworkInfo[];
  tasks: TaskCheckpoint[];
  updates: PendingUpdate[];
}

/** A pending write: the value's JSON made at commit time, or null to delete the key. */
type PendingOp = () => string | null;
const DELETE: PendingOp = () => null;

/** Pages (4 KiB) the WAL may grow to before SQLite copies it back on its own (16 MiB; SQLite's default is 1000). */
const WAL_AUTOCHECKPOINT_PAGES = 4096;
/** How long the checkpoint must have been idle before the WAL is copied back and truncated. */
const IDLE_CHECKPOINT_MS = 1000;

export class Checkpoint {
  private pending = new Map<string, PendingOp>();
  private scheduled = false;
  /** Tasks whose unchanging part is on disk (or in `pending`). */
  private readonly staticWritten = new Set<string>();
  private readonly upsert: Database.Statement<[string, string]>;
  private readonly remove: Database.Statement<[string]>;
  private readonly commitOps: (ops: Array<[string, PendingOp]>) => void;
  private readonly log = logger('agent-checkpoint');
  private lastError: unknown;
  private closed = false;
  private lastCommitAt = 0;
  private walTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(private readonly db: Database.Database) {
    this.upsert = db.prepare(`INSERT INTO checkpoint (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`);
    this.remove = db.prepare(`DELETE FROM checkpoint WHERE key = ?`);
    this.commitOps = db.transaction((ops: Array<[string, PendingOp]>) => {
      for (const [key, op] of ops) {
        const value = op();
        if (value === null) this.remove.run(key);
        else this.upsert.run(key, value);
      }
    });
  }

  static async open(path: string): Promise<Checkpoint> {
    return new Checkpoint(openDatabase(path));
  }

  async load(): Promise<CheckpointState> {
    const rows = this.db.prepare(`SELECT key, value FROM checkpoint WHERE key >= 'agent/' AND key < 'agent0' ORDER BY key`).all() as Array<{ key: string; value: string }>;
    const json = <T>(v: string): T => JSON.parse(v) as T;
    const state: CheckpointState = { checkpointedResources: [], frameworks: [], tasks: [], updates: [] };
    const taskStates = new Map<string, TaskState>();
    const tasks: Array<[string, TaskCheckpoint]> = [];
    for (const { key, value } of rows) {
      if (key === K.agentId) state.agentId = value;
      else if (key === K.resources) state.checkpointedResources = json<V1Resource[]>(value);
      else if (key.startsWith(K.frameworks)) state.frameworks.push(json<V1FrameworkInfo>(value));
      else if (key.startsWith(K.tasks)) tasks.push([key.slice(K.tasks.length), json<TaskCheckpoint>(value)]);
      else if (key.startsWith(K.taskStates)) taskStates.set(key.slice(K.taskStates.length), json<TaskState>(value));
      else if (key.startsWith(K.allUpdates)) state.updates.push(...json<PendingUpdate[]>(value));
    }
    for (const [id, t] of tasks) {
      // A record written whole (before records were split) has its state inside; a state record is newer.
      const s = taskStates.get(id);
      state.tasks.push(s ? { ...t, ...s } : t);
      this.staticWritten.add(id);
    }
    return state;
  }

  private put(key: string, value: PendingOp): void {
    this.pending.set(key, value);
    this.schedule();
  }

  private del(key: string): void {
    this.pending.set(key, DELETE);
    this.schedule();
  }

  setAgentId(id: string): void {
    this.put(K.agentId, () => id);
  }

  setCheckpointedResources(resources: V1Resource[]): void {
    this.put(K.resources, () => JSON.stringify(resources));
  }

  putFramework(info: V1FrameworkInfo & { id: { value: string } }): void {
    this.put(K.framework(info.id.value), () => JSON.stringify(info));
  }

  removeFramework(id: string): void {
    this.del(K.framework(id));
  }

  /**
   * The task's record as it is at commit time (the object is read then, so
   * later changes in the same turn are included). The unchanging part is
   * written only the first time.
   */
  putTask(t: TaskCheckpoint): void {
    const id = `${t.frameworkId}/${t.task.task_id.value}`;
    if (!this.staticWritten.has(id)) {
      this.staticWritten.add(id);
      this.put(K.tasks + id, () => JSON.stringify({ frameworkId: t.frameworkId, task: t.task, containerizer: t.containerizer, container: t.container, launchedAt: t.launchedAt }));
    }
    this.put(K.taskStates + id, () => {
      const s: TaskState = { state: t.state, status: t.status, killRequested: t.killRequested };
      if (t.killedUnhealthy !== undefined) s.killedUnhealthy = t.killedUnhealthy;
      if (t.endedAt !== undefined) s.endedAt = t.endedAt;
      return JSON.stringify(s);
    });
  }

  removeTask(frameworkId: string, taskId: string): void {
    this.staticWritten.delete(`${frameworkId}/${taskId}`);
    this.del(K.task(frameworkId, taskId));
    this.del(K.taskState(frameworkId, taskId));
    this.del(K.updates(frameworkId, taskId));
  }

  /**
   * The whole unacknowledged queue of one task (small: usually one update).
   * The queue is read at commit time, so a queue that changes several times in
   * one turn (added, then acknowledged) is written once, as it ends up.
   */
  setUpdates(frameworkId: string, taskId: string, updates: PendingUpdate[]): void {
    this.put(K.updates(frameworkId, taskId), () => (updates.length === 0 ? null : JSON.stringify(updates.map(({ frameworkId: f, status }) => ({ frameworkId: f, status })))));
  }

  /** Commits everything written so far; resolves once it is on disk, rejects if it could not be. */
  flushed(): Promise<void> {
    this.commit();
    return this.lastError === undefined ? Promise.resolve() : Promise.reject(this.lastError);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.commit();
    });
  }

  /** One transaction for all pending writes. On failure they stay pending (newer writes of a key win) and are retried by the next commit. */
  private commit(): void {
    if (this.pending.size === 0 || this.closed) return;
    const ops = [...this.pending];
    this.pending = new Map();
    try {
      this.commitOps(ops);
      this.lastError = undefined;
      this.lastCommitAt = performance.now();
      this.walTimer ??= setTimeout(() => this.idleWalCheckpoint(), IDLE_CHECKPOINT_MS).unref();
    } catch (err) {
      this.lastError = new CorralError('UNAVAILABLE', `cannot write the agent checkpoint: ${errorMessage(err)}`, undefined, { cause: err });
      this.log.error({ err: errorMessage(err), writes: ops.length }, 'checkpoint commit failed; will retry with the next write');
      for (const [key, op] of ops) if (!this.pending.has(key)) this.pending.set(key, op);
    }
  }

  /** Copies the WAL back into the database once no commit has come for IDLE_CHECKPOINT_MS. */
  private idleWalCheckpoint(): void {
    this.walTimer = undefined;
    if (this.closed) return;
    const quiet = performance.now() - this.lastCommitAt;
    if (quiet < IDLE_CHECKPOINT_MS) {
      this.walTimer = setTimeout(() => this.idleWalCheckpoint(), IDLE_CHECKPOINT_MS - quiet).unref();
      return;
    }
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      // Harmless: the WAL holds the commits, and SQLite copies it back by itself at WAL_AUTOCHECKPOINT_PAGES.
      this.log.warn({ err: errorMessage(err) }, 'checkpoint WAL copy-back failed');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.walTimer) clearTimeout(this.walTimer);
    this.walTimer = undefined;
    try {
      await this.flushed();
    } finally {
      this.closed = true;
      this.db.close();
    }
  }
}

/**
 * Opens (creating) the checkpoint database, held exclusively by this agent.
 * A checkpoint written by an earlier release in the general store's layout
 * (tables kv, history, meta, leases) is carried over once, in one transaction.
 */
function openDatabase(path: string): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  let db: Database.Database | undefined;
  try {
    // A second agent on the same work dir is refused at the first write below.
    db = openExclusiveWal(path, 'normal');
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    const d = db;
    d.transaction(() => {
      d.exec(`CREATE TABLE IF NOT EXISTS checkpoint (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      const legacy = d.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'`).get();
      if (legacy) {
        d.exec(`INSERT OR REPLACE INTO checkpoint (key, value) SELECT key, CAST(value AS TEXT) FROM kv WHERE key >= 'agent/' AND key < 'agent0'`);
        d.exec(`DROP TABLE IF EXISTS history; DROP TABLE IF EXISTS kv; DROP TABLE IF EXISTS leases; DROP TABLE IF EXISTS meta`);
      }
    }).immediate();
    return db;
  } catch (err) {
    db?.close();
    const code = (err as { code?: unknown }).code;
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
      throw new CorralError('UNAVAILABLE', `the agent checkpoint ${path} is in use by another agent`, { path }, { cause: err });
    }
    throw new CorralError('UNAVAILABLE', `cannot open the agent checkpoint ${path}: ${errorMessage(err)}`, { path }, { cause: err });
  }
}
