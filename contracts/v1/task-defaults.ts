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
 *
 * Implied task fields (an ACCEPT_BATCH to a master whose master_info names
 * IMPLIED_TASK_FIELDS): the offers of one ACCEPT are all of one agent, and a
 * task is usually named by its id. An entry of the batch may name its agent
 * once (`accepts[i].agent_id`); its LAUNCH tasks that leave out `agent_id`
 * take it, and those that leave out `name` are named by their task id. The
 * agent id was more than half of each task's bytes in such a call.
 */
import { isDeepStrictEqual } from 'node:util';
import type { V1Accept, V1Operation, V1Resource, V1TaskInfo } from './v1-schema.js';

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

type ImpliedLike = { agent_id?: unknown; name?: unknown; task_id?: unknown };

/** Complete `task` in place with its implied fields (see above); `agentId` is its ACCEPT's, when it named one. */
export function fillImpliedTaskFields(task: ImpliedLike, agentId: unknown): void {
  if (task.agent_id === undefined && agentId !== undefined) task.agent_id = agentId;
  if (task.name === undefined && typeof task.task_id === 'object' && task.task_id !== null) {
    const id = (task.task_id as { value?: unknown }).value;
    if (typeof id === 'string') task.name = id;
  }
}

/**
 * One ACCEPT's LAUNCH operations with the implied fields left out of their
 * tasks: the agent id when all of them name the same one (returned, for the
 * entry to name once), and each name equal to its task id. Copies; the
 * ACCEPT given is not changed.
 */
export function omitImpliedTaskFields(operations: readonly V1Operation[]): { agentId: V1TaskInfo['agent_id'] | undefined; operations: V1Operation[] } {
  const tasks = operations.flatMap((op) => (op.type === 'LAUNCH' && op.launch ? op.launch.task_infos : []));
  const agentId = tasks[0]?.agent_id;
  const oneAgent = agentId !== undefined && tasks.every((t) => t.agent_id?.value === agentId.value);
  const omit = (t: V1TaskInfo): V1TaskInfo => {
    const out: Record<string, unknown> = {};
    // A malformed task (from an untyped caller) goes as given, for the master to word what is wrong.
    const id = (t.task_id as V1TaskInfo['task_id'] | undefined)?.value;
    for (const k in t) {
      if ((oneAgent && k === 'agent_id') || (k === 'name' && id !== undefined && t.name === id)) continue;
      out[k] = (t as Record<string, unknown>)[k];
    }
    return out as V1TaskInfo;
  };
  return {
    agentId: oneAgent ? agentId : undefined,
    operations: operations.map((op) => (op.type === 'LAUNCH' && op.launch ? { ...op, launch: { ...op.launch, task_infos: op.launch.task_infos.map(omit) } } : op)),
  };
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

/**
 * An ACCEPT_BATCH body with the shorthands a master announced: with implied
 * task fields, each ACCEPT names its agent once and its tasks leave out what
 * it implies; with task defaults, what the tasks share goes once. The
 * ACCEPTs given are not changed.
 */
export function acceptBatchBody(
  given: V1Accept[],
  takes: { impliedFields: boolean; taskDefaults: boolean },
): { accepts: Array<V1Accept & { agent_id?: V1TaskInfo['agent_id'] }>; task_defaults?: V1TaskDefaults } {
  const accepts: Array<V1Accept & { agent_id?: V1TaskInfo['agent_id'] }> = takes.impliedFields
    ? given.map((a) => {
        const { agentId, operations } = omitImpliedTaskFields(a.operations);
        return { ...a, operations, ...(agentId ? { agent_id: agentId } : {}) };
      })
    : given;
  if (!takes.taskDefaults) return { accepts };
  const launches = accepts.flatMap((a) => a.operations.filter((op) => op.type === 'LAUNCH' && op.launch));
  const { defaults, tasks } = factorTaskDefaults(
    launches.flatMap((op) => op.launch!.task_infos),
    'content',
  );
  if (!defaults) return { accepts };
  // The factored tasks in the order they were taken, put back into copies of their operations.
  let next = 0;
  const trimmed = accepts.map((a) => ({
    ...a,
    operations: a.operations.map((op) => (op.type === 'LAUNCH' && op.launch ? { ...op, launch: { ...op.launch, task_infos: op.launch.task_infos.map(() => tasks[next++]!) } } : op)),
  }));
  return { accepts: trimmed, task_defaults: defaults };
}
