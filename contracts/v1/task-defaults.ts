/**
 * Task defaults: what many task infos of one message share (their resources,
 * their command), written once instead of in each task. Instances of one
 * app or job are alike, and each task's copy of the same resource list and
 * command was most of the bytes of an ACCEPT and of a LAUNCH, to encode on
 * one side and parse on the other (a resource list is five objects a task).
 *
 * Two messages carry them, each only between corral parties that announced
 * it: an ACCEPT_BATCH call (`accept_batch.task_defaults`, to a master whose
 * master_info names TASK_DEFAULTS) and an agent's LAUNCH event
 * (`launch.task_defaults`, to an agent that announced LAUNCH_DEFAULTS). The
 * receiver fills each task in before anything else sees it, so the rest of
 * the code only ever meets full TaskInfos.
 *
 * A task that leaves out `resources` takes the defaults'; one that leaves out
 * `command` takes the defaults' unless it has an executor or a container (it
 * may run without a command, e.g. a docker image's entrypoint). A task that
 * differs says so in full, e.g. `"resources": []`.
 */
import { isDeepStrictEqual } from 'node:util';
import type { V1Resource, V1TaskInfo } from './v1-schema.js';

export interface V1TaskDefaults {
  resources?: V1Resource[];
  command?: NonNullable<V1TaskInfo['command']>;
}

type TaskLike = { resources?: unknown; command?: unknown; executor?: unknown; container?: unknown };

/** Whether a task without a command takes the defaults' (see above). */
const takesDefaultCommand = (t: TaskLike): boolean => t.executor === undefined && t.container === undefined;

/** Complete `task` in place from `defaults` (the parsed message is the receiver's own). */
export function fillTaskDefaults(task: TaskLike, defaults: V1TaskDefaults): void {
  if (task.resources === undefined && defaults.resources !== undefined) task.resources = defaults.resources;
  if (task.command === undefined && defaults.command !== undefined && takesDefaultCommand(task)) task.command = defaults.command;
}

/** How two values are compared: by reference only (cheap, for a master), or also by content. */
export type Sameness = 'reference' | 'content';

const same = (a: unknown, b: unknown, how: Sameness): boolean => a === b || (how === 'content' && a !== undefined && b !== undefined && isDeepStrictEqual(a, b));

/**
 * Defaults for `tasks` and each task without what it shares with them; no
 * defaults when fewer than two tasks share anything (nothing to gain).
 */
export function factorTaskDefaults(tasks: readonly V1TaskInfo[], how: Sameness): { defaults: V1TaskDefaults | undefined; tasks: V1TaskInfo[] } {
  const first = tasks[0];
  if (!first || tasks.length < 2) return { defaults: undefined, tasks: [...tasks] };
  const defaults: V1TaskDefaults = { resources: first.resources };
  if (first.command !== undefined && takesDefaultCommand(first)) defaults.command = first.command;
  let shared = 0;
  const out = tasks.map((t) => {
    const sameResources = same(t.resources, defaults.resources, how);
    const sameCommand = defaults.command !== undefined && takesDefaultCommand(t) && same(t.command, defaults.command, how);
    if (!sameResources && !sameCommand) return t;
    shared++;
    return without(t, sameResources, sameCommand);
  });
  return shared >= 2 ? { defaults, tasks: out } : { defaults: undefined, tasks: [...tasks] };
}

/** A copy of `t` without the fields the defaults give back (built field by field: `delete` would slow every later read and encode). */
function without(t: V1TaskInfo, resources: boolean, command: boolean): V1TaskInfo {
  const out: Record<string, unknown> = {};
  for (const k in t) {
    if ((resources && k === 'resources') || (command && k === 'command')) continue;
    out[k] = (t as Record<string, unknown>)[k];
  }
  return out as V1TaskInfo;
}
