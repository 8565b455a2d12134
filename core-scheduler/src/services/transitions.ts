/**
 * How an instance changes with what happens to its task: status updates
 * (state, health, addresses), the task ending (restart at once, or after a
 * capped exponential backoff when the app itself failed), and deadlines
 * (give up on an unreachable task, kill one that stays unhealthy, forget old
 * failures). Pure functions on the records; the manager persists and acts.
 */
import type { V1TaskStatus } from '../../../contracts/v1/v1.js';
import type { AppSpec, HealthCheckSpec } from './app-spec.js';
import { backoffDelayMs, isLive, lostWithHost, type InstanceRecord, type TaskRef } from './model.js';

export interface TransitionTimes {
  now: number;
  /** How long a TASK_UNREACHABLE task keeps its slot before it is replaced. */
  unreachableReplaceMs: number;
}

interface StatusOutcome {
  /** The record changed (persist it). */
  changed: boolean;
  /** The task is alive but should not be: (re-)send KILL. */
  kill: boolean;
  /** The task ended: the slot is free again. */
  ended: boolean;
}

function addresses(status: V1TaskStatus): string[] | undefined {
  const ips = (status.container_status?.network_infos ?? []).flatMap((n) => (n.ip_addresses ?? []).map((a) => a.ip_address).filter((ip): ip is string => Boolean(ip)));
  return ips.length ? ips : undefined;
}

/** Apply a status of the instance's current task. */
export function applyStatus(inst: InstanceRecord, app: AppSpec, status: V1TaskStatus, t: TransitionTimes): StatusOutcome {
  const task = inst.task!;
  const before = JSON.stringify(task);
  if (!isLive(status.state)) {
    endTask(inst, app, task, status, t.now);
    return { changed: true, kill: false, ended: true };
  }
  task.state = status.state;
  if (status.message) task.message = status.message;
  const ips = addresses(status);
  if (ips) task.ips = ips;
  if (status.state === 'TASK_UNREACHABLE') task.unreachableSince ??= t.now;
  else task.unreachableSince = undefined;
  if (status.state === 'TASK_RUNNING') task.runningSince ??= t.now;
  if (status.healthy !== undefined) {
    task.healthy = status.healthy;
    task.unhealthySince = status.healthy ? undefined : (task.unhealthySince ?? t.now);
  }
  const unwanted = inst.goal === 'stopped' || task.kill !== undefined;
  return { changed: JSON.stringify(task) !== before, kill: unwanted && status.state !== 'TASK_UNREACHABLE', ended: false };
}

/** The task is over: free the slot, and decide when it may be filled again. */
export function endTask(inst: InstanceRecord, app: AppSpec, task: TaskRef, status: Pick<V1TaskStatus, 'state' | 'message' | 'reason'>, now: number): void {
  inst.task = undefined;
  if (inst.goal === 'stopped' || task.kill === 'restart' || task.kill === 'stop') return;
  const message = task.kill === 'unhealthy' ? 'killed after failing its health checks' : (status.message ?? status.reason ?? status.state);
  inst.lastError = { taskId: task.id, state: status.state, message: `${message}${task.hostname ? ` (on ${task.hostname})` : ''}`, at: now };
  // A host that went away is not the app's fault: replace at once, elsewhere.
  if (lostWithHost(status.state)) return;
  const ranMs = task.runningSince !== undefined ? now - task.runningSince : 0;
  if (ranMs >= app.backoff.resetAfterSeconds * 1000) inst.failures = 0;
  inst.failures += 1;
  inst.delayUntil = now + backoffDelayMs(app.backoff, inst.failures);
}

/** How long an instance may stay unhealthy before the framework kills it (when the agent has not). */
function unhealthyKillAfterMs(hc: HealthCheckSpec): number | undefined {
  if (hc.consecutiveFailures === 0) return undefined;
  // The agent reports the first failure, then kills after `consecutiveFailures`; allow one interval more.
  return Math.round(((hc.consecutiveFailures + 1) * hc.intervalSeconds + hc.timeoutSeconds) * 1000);
}

type DeadlineAction = 'replace-unreachable' | 'kill-unhealthy' | undefined;

/**
 * Deadlines of one instance at `now`: what is due (at most one action) and
 * when the next one falls (for the timer).
 */
export function dueDeadlines(inst: InstanceRecord, app: AppSpec, t: TransitionTimes): { action: DeadlineAction; next: number | undefined; changed: boolean } {
  const task = inst.task;
  const times: number[] = [];
  let action: DeadlineAction;
  let changed = false;
  if (!task) {
    if (inst.delayUntil !== undefined) {
      if (inst.delayUntil <= t.now) {
        inst.delayUntil = undefined;
        changed = true;
      } else times.push(inst.delayUntil);
    }
    return { action, next: times.length ? Math.min(...times) : undefined, changed };
  }
  if (task.unreachableSince !== undefined) {
    const at = task.unreachableSince + t.unreachableReplaceMs;
    if (at <= t.now) action = 'replace-unreachable';
    else times.push(at);
  }
  const killAfter = app.healthCheck ? unhealthyKillAfterMs(app.healthCheck) : undefined;
  if (!action && killAfter !== undefined && task.unhealthySince !== undefined && task.state === 'TASK_RUNNING' && !task.kill) {
    const at = task.unhealthySince + killAfter;
    if (at <= t.now) action = 'kill-unhealthy';
    else times.push(at);
  }
  if (inst.failures > 0 && task.state === 'TASK_RUNNING' && task.runningSince !== undefined && task.healthy !== false) {
    const at = task.runningSince + app.backoff.resetAfterSeconds * 1000;
    if (at <= t.now) {
      inst.failures = 0;
      inst.delayUntil = undefined;
      changed = true;
    } else times.push(at);
  }
  return { action, next: times.length ? Math.min(...times) : undefined, changed };
}

/** Give up on an unreachable task: its slot is filled elsewhere; if the task comes back it is killed as unknown. */
export function replaceUnreachable(inst: InstanceRecord, now: number, waitedMs: number): void {
  const task = inst.task!;
  inst.task = undefined;
  inst.lastError = { taskId: task.id, state: 'TASK_UNREACHABLE', message: `agent ${task.hostname} unreachable for ${Math.round(waitedMs / 1000)} s; replaced`, at: now };
}
