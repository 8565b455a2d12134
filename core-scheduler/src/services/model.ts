/**
 * The service framework's records: an app (its definition and rollout
 * version) and its instances. An instance is a stable slot — index i of app
 * `web` — that keeps its identity (volume names, DNS) while the task filling
 * it changes. At most one task fills a slot at a time, which is how the
 * framework never runs more than `instances` tasks. Zod schemas check what is
 * read back from the Store; the helpers here are pure.
 */
import { z } from '../../../common/validate.js';
import { isTerminal, type V1TaskState } from '../../../contracts/v1/v1.js';
import { taskStateSchema } from '../../../contracts/v1/v1-schema.js';
import { appSpecSchema, type BackoffSpec } from './app-spec.js';

export const restartStrategySchema = z.enum(['rolling', 'all']);
export type RestartStrategy = z.output<typeof restartStrategySchema>;

export const appRecordSchema = z.object({
  spec: appSpecSchema,
  /** Rollout generation: bumped by a changed definition or a restart; tasks of older versions are replaced. */
  version: z.number().int().nonnegative(),
  strategy: restartStrategySchema,
  /** Being removed: every task is killed, then the app is forgotten. */
  deleting: z.boolean(),
  createdAt: z.number(),
  updatedAt: z.number(),
});
export type AppRecord = z.output<typeof appRecordSchema>;

/** Why the framework itself asked a task to die; decides what happens when it ends. */
const killReasonSchema = z.enum(['restart', 'stop', 'unhealthy']);

export const taskRefSchema = z.object({
  id: z.string(),
  agentId: z.string(),
  hostname: z.string(),
  attributes: z.record(z.string(), z.string()),
  /** App version the task was launched with. */
  version: z.number().int().nonnegative(),
  state: taskStateSchema,
  launchedAt: z.number(),
  runningSince: z.number().optional(),
  /** Latest health verdict from the agent; undefined until the first check. */
  healthy: z.boolean().optional(),
  unhealthySince: z.number().optional(),
  unreachableSince: z.number().optional(),
  kill: killReasonSchema.optional(),
  ips: z.array(z.string()),
  hostPorts: z.array(z.number().int()),
  message: z.string().optional(),
});
export type TaskRef = z.output<typeof taskRefSchema>;

const lastErrorSchema = z.object({ taskId: z.string(), state: z.string(), message: z.string(), at: z.number() });

export const instanceRecordSchema = z.object({
  app: z.string(),
  index: z.number().int().nonnegative(),
  goal: z.enum(['running', 'stopped']),
  task: taskRefSchema.optional(),
  /** Quick failures in a row, for the backoff. */
  failures: z.number().int().nonnegative(),
  /** Not launched again before this time (ms since the epoch). */
  delayUntil: z.number().optional(),
  lastError: lastErrorSchema.optional(),
});
export type InstanceRecord = z.output<typeof instanceRecordSchema>;

/** The task still occupies its slot: it may run, or come back (unreachable). */
export function isLive(state: V1TaskState): boolean {
  return !isTerminal(state) && state !== 'TASK_UNKNOWN';
}

/** The task ended because its host went away, not because the app failed. */
export function lostWithHost(state: V1TaskState): boolean {
  return state === 'TASK_LOST' || state === 'TASK_GONE' || state === 'TASK_GONE_BY_OPERATOR' || state === 'TASK_DROPPED' || state === 'TASK_UNKNOWN';
}

/** Delay before the n-th quick failure in a row (n ≥ 1) may relaunch: initial·factor^(n-1), capped. */
export function backoffDelayMs(b: BackoffSpec, failures: number): number {
  if (failures <= 0) return 0;
  const seconds = b.initialSeconds * Math.pow(b.factor, Math.min(failures - 1, 64));
  return Math.round(Math.min(seconds, b.maxSeconds) * 1000);
}

/** Task ids carry their slot, so a task seen in a status update or a reconciliation can be traced back. */
export function newTaskId(app: string, index: number, now: number): string {
  return `${app}.${index}.${now.toString(36)}${Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
}

export const instanceKey = (app: string, index: number): string => `${app}/${index}`;

/** What an instance is doing, in one word, for people and metrics. */
export type InstancePhase = 'running' | 'starting' | 'unhealthy' | 'unreachable' | 'killing' | 'backoff' | 'waiting' | 'stopping';

export function instancePhase(i: InstanceRecord, now: number): InstancePhase {
  const t = i.task;
  if (i.goal === 'stopped') return 'stopping';
  if (!t) return i.delayUntil !== undefined && i.delayUntil > now ? 'backoff' : 'waiting';
  if (t.kill || t.state === 'TASK_KILLING') return 'killing';
  if (t.state === 'TASK_UNREACHABLE') return 'unreachable';
  if (t.state === 'TASK_RUNNING') return t.healthy === false ? 'unhealthy' : 'running';
  return 'starting';
}

/** RUNNING, and healthy when the app checks health: what a rolling restart waits for. */
export function isReady(t: TaskRef | undefined, hasHealthCheck: boolean): boolean {
  return t !== undefined && !t.kill && t.state === 'TASK_RUNNING' && (hasHealthCheck ? t.healthy === true : t.healthy !== false);
}
