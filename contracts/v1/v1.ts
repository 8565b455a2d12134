/**
 * Mesos v1 JSON shapes as corral emits them. Inputs are defined (and
 * validated) in v1-schema.ts; this file adds what only flows outward.
 */
export type { V1Id, V1Resource, V1Reservation, V1DiskInfo, V1Attribute, V1FrameworkInfo, V1TaskInfo, V1TaskStatus, V1TaskState, V1Operation, V1QuotaConfig } from './v1-schema.js';
export type { V1AgentInfo } from './agent-schema.js';
import type { V1AgentAcknowledgements, V1Id, V1Resource, V1Attribute, V1FrameworkInfo, V1TaskInfo, V1TaskStatus, V1TaskState } from './v1-schema.js';
import type { V1AgentInfo } from './agent-schema.js';
import { fillTaskDefaults, type V1TaskDefaults } from './task-defaults.js';

export interface V1Offer {
  id: V1Id;
  framework_id: V1Id;
  agent_id: V1Id;
  hostname: string;
  resources: V1Resource[];
  attributes: V1Attribute[];
  executor_ids: V1Id[];
  allocation_info: { role: string };
  /** The agent's endpoint, as Mesos's master sets on every offer (see master/addresses.ts). */
  url: { scheme: string; address: { hostname: string; ip: string; port: number }; path: string };
}

export interface V1MasterInfo {
  id: string;
  ip: number;
  port: number;
  hostname: string;
  version: string;
  /** As Mesos names its master process: "master@<ip>:<port>". */
  pid: string;
  address: { hostname: string; ip: string; port: number };
  /** What this master understands beyond the base protocol (MASTER_CAPABILITIES), as Mesos's MasterInfo.capabilities. */
  capabilities?: Array<{ type: string }>;
}

/** Whether a v1 capability list (FrameworkInfo's, MasterInfo's) names `type`. */
export const hasCapability = (info: { capabilities?: ReadonlyArray<{ type?: string }> | undefined } | undefined, type: string): boolean => (info?.capabilities ?? []).some((c) => c.type === type);

/**
 * Features of this master's agent and scheduler protocols, announced in
 * master_info: an agent or a framework uses one only with a master that
 * announced it, so either can be upgraded before or after their master.
 * GROUPED_STATUS_UPDATES: an agent's UPDATE call may group its statuses by
 * framework. TASK_DEFAULTS: an ACCEPT_BATCH call may carry task_defaults.
 * IMPLIED_TASK_FIELDS: an ACCEPT_BATCH entry may name its agent once, and
 * its LAUNCH tasks may leave out agent_id and a name equal to their id (see
 * task-defaults.ts). GROUPED_ACKNOWLEDGEMENTS: an ACKNOWLEDGE_BATCH call may
 * group its acknowledgements by agent (`acknowledge_batch.agents`).
 * UPDATE_BATCHES: a framework that asks for it when it subscribes gets the
 * updates of one agent call as one UPDATE_BATCH record (see update-batch.ts).
 */
export const MASTER_CAPABILITIES = ['GROUPED_STATUS_UPDATES', 'TASK_DEFAULTS', 'IMPLIED_TASK_FIELDS', 'GROUPED_ACKNOWLEDGEMENTS', 'UPDATE_BATCHES'] as const;

/** An agent's statuses of one framework, as an UPDATE call's `frameworks` form carries them. */
export interface StatusUpdateGroup {
  framework_id: V1Id;
  statuses: V1TaskStatus[];
}

/** The body of an agent's UPDATE call: grouped by framework to a master that takes it, else one entry per status. */
export function agentUpdateCall(groups: StatusUpdateGroup[], grouped: boolean): Record<string, unknown> {
  if (grouped) return { type: 'UPDATE', update: { frameworks: groups } };
  return { type: 'UPDATE', update: { updates: groups.flatMap((g) => g.statuses.map((status) => ({ framework_id: g.framework_id, status }))) } };
}

/** An acknowledgement that names its agent, as ACKNOWLEDGE and the flat ACKNOWLEDGE_BATCH carry it. */
export interface GroupableAck {
  agent_id: V1Id;
  task_id: V1Id;
  uuid: string;
}

/** Acknowledgements grouped by the agent they name, each agent named once (GROUPED_ACKNOWLEDGEMENTS). */
export function groupAcknowledgementsByAgent(acks: readonly GroupableAck[]): V1AgentAcknowledgements[] {
  const groups = new Map<string, V1AgentAcknowledgements>();
  for (const a of acks) {
    let g = groups.get(a.agent_id.value);
    if (!g) groups.set(a.agent_id.value, (g = { agent_id: a.agent_id, acknowledgements: [] }));
    g.acknowledgements.push({ task_id: a.task_id, uuid: a.uuid });
  }
  return [...groups.values()];
}

export type SchedulerEvent =
  | { type: 'SUBSCRIBED'; subscribed: { framework_id: V1Id; heartbeat_interval_seconds: number; master_info: V1MasterInfo } }
  | { type: 'OFFERS'; offers: { offers: V1Offer[] } }
  | { type: 'RESCIND'; rescind: { offer_id: V1Id } }
  | { type: 'UPDATE'; update: { status: V1TaskStatus } }
  | { type: 'MESSAGE'; message: { agent_id: V1Id; executor_id: V1Id; data: string } }
  | { type: 'FAILURE'; failure: { agent_id?: V1Id; executor_id?: V1Id; status?: number } }
  | { type: 'ERROR'; error: { message: string } }
  | { type: 'HEARTBEAT' };

/** A task as the operator API reports it. */
export interface V1Task {
  name: string;
  task_id: V1Id;
  framework_id: V1Id;
  agent_id: V1Id;
  state: V1TaskState;
  resources: V1Resource[];
  statuses: V1TaskStatus[];
  status_update_state?: V1TaskState;
  status_update_uuid?: string;
  labels?: V1TaskInfo['labels'];
  discovery?: V1TaskInfo['discovery'];
  container?: V1TaskInfo['container'];
  health_check?: V1TaskInfo['health_check'];
  kill_policy?: V1TaskInfo['kill_policy'];
  role?: string;
}

export interface V1AgentSummary {
  agent_info: V1AgentInfo & { id: V1Id };
  active: boolean;
  deactivated: boolean;
  version: string;
  registered_time?: { nanoseconds: number };
  reregistered_time?: { nanoseconds: number };
  total_resources: V1Resource[];
  allocated_resources: V1Resource[];
  offered_resources: V1Resource[];
}

export interface V1FrameworkSummary {
  framework_info: V1FrameworkInfo & { id: V1Id };
  active: boolean;
  connected: boolean;
  recovered: boolean;
  registered_time?: { nanoseconds: number };
  reregistered_time?: { nanoseconds: number };
  unregistered_time?: { nanoseconds: number };
  offers: V1Offer[];
  allocated_resources: V1Resource[];
  offered_resources: V1Resource[];
}

export type AgentEvent =
  | { type: 'REGISTERED'; registered: { agent_id: V1Id; heartbeat_interval_seconds: number; master_info: V1MasterInfo; checkpointed_resources: V1Resource[] } }
  /**
   * Tasks to run. To an agent that announced COMPACT_LAUNCH the tasks come
   * without what every task of the event shares: `allocation_role` stands for
   * each resource's allocation_info, an unreserved resource has no role ("*"),
   * and a task has no agent_id (the agent's own). To an agent that announced
   * LAUNCH_DEFAULTS, what the tasks share may come once, as `task_defaults`
   * (see task-defaults.ts). expandCompactLaunch() gives back the full TaskInfos.
   */
  | { type: 'LAUNCH'; launch: { framework_info: V1FrameworkInfo & { id: V1Id }; tasks: V1TaskInfo[]; allocation_role?: string; task_defaults?: V1TaskDefaults } }
  | { type: 'KILL'; kill: { framework_id: V1Id; task_id: V1Id; kill_policy?: V1TaskInfo['kill_policy'] } }
  | { type: 'ACKNOWLEDGE'; acknowledge: { framework_id: V1Id; task_id: V1Id; uuid: string } }
  /** Many acknowledgements of one framework in one record: sent only to agents that announce ACKNOWLEDGE_BATCH. */
  | { type: 'ACKNOWLEDGE_BATCH'; acknowledge_batch: { framework_id: V1Id; acknowledgements: { task_id: V1Id; uuid: string }[] } }
  | { type: 'APPLY_OPERATIONS'; apply_operations: { checkpointed_resources: V1Resource[] } }
  | { type: 'SHUTDOWN_FRAMEWORK'; shutdown_framework: { framework_id: V1Id } }
  | { type: 'MESSAGE'; message: { framework_id: V1Id; executor_id: V1Id; data: string } }
  | { type: 'RECONCILE_TASKS'; reconcile_tasks: { tasks: { framework_id: V1Id; task_id: V1Id }[] } }
  | { type: 'SHUTDOWN'; shutdown: { message: string } }
  /** A call on the agent's channel failed (over HTTP the call's answer says so instead). */
  | { type: 'ERROR'; error: { code: string; message: string } }
  | { type: 'HEARTBEAT' };

/**
 * Agent protocol features an agent announces when it registers; the master
 * uses a feature only with agents that announced it, so agents of an older
 * release keep working during an upgrade.
 */
export const AGENT_CAPABILITIES = ['ACKNOWLEDGE_BATCH', 'COMPACT_LAUNCH', 'LAUNCH_DEFAULTS'] as const;
export type AgentCapability = (typeof AGENT_CAPABILITIES)[number];

/**
 * The agent's side of COMPACT_LAUNCH: complete the tasks of a LAUNCH event in
 * place (the parsed event is the agent's own), so everything downstream sees
 * full TaskInfos. A LAUNCH without allocation_role is already full.
 */
export function expandCompactLaunch(launch: Extract<AgentEvent, { type: 'LAUNCH' }>['launch'], agentId: V1Id): void {
  const defaults = launch.task_defaults;
  if (defaults !== undefined) {
    for (const task of launch.tasks) fillTaskDefaults(task, defaults);
    delete launch.task_defaults;
  }
  const role = launch.allocation_role;
  if (role === undefined) return;
  // One shared allocation_info: the tasks only read it.
  const allocation = { role };
  for (const task of launch.tasks) {
    task.agent_id ??= agentId;
    for (const r of task.resources) {
      if (r.role === undefined && r.reservations === undefined) r.role = '*';
      r.allocation_info ??= allocation;
    }
  }
}

export const TERMINAL_STATES: ReadonlySet<V1TaskState> = new Set<V1TaskState>([
  'TASK_FINISHED',
  'TASK_FAILED',
  'TASK_KILLED',
  'TASK_ERROR',
  'TASK_LOST',
  'TASK_DROPPED',
  'TASK_GONE',
  'TASK_GONE_BY_OPERATOR',
]);

export const isTerminal = (s: V1TaskState): boolean => TERMINAL_STATES.has(s);

export const nanos = (ms: number): { nanoseconds: number } => ({ nanoseconds: Math.round(ms * 1e6) });
