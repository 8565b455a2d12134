/**
 * What the master keeps in memory about agents, frameworks, tasks and offers.
 * The registry (registry.ts) persists the part that must survive a master
 * restart; tasks are not persisted — agents report them when they re-register,
 * as in Mesos.
 */
import type { Resources } from '../resources/resources.js';
import type { V1AgentInfo, V1FrameworkInfo, V1TaskInfo, V1TaskStatus, V1TaskState, V1Attribute } from '../../../contracts/v1/v1.js';
import type { V1Url } from './addresses.js';

export type AgentStatus = 'connected' | 'disconnected' | 'recovering' | 'unreachable';

export interface AgentRecord {
  id: string;
  info: V1AgentInfo & { id: { value: string } };
  /** Resources the agent announced itself (its flags), static reservations included. */
  staticResources: Resources;
  /** Dynamic reservations and persistent volumes made through the master, persisted in the registry. */
  checkpointed: Resources;
  /** staticResources with `checkpointed` applied: what the allocator knows as the agent's total. */
  total: Resources;
  attributes: V1Attribute[];
  /** The agent's endpoint as offers carry it (Offer.url), one object shared by all its offers. */
  url: V1Url;
  status: AgentStatus;
  /** The agent's event stream while it is connected (a connection id the shell maps to the stream). */
  conn: string | undefined;
  registeredAt: number;
  reregisteredAt: number | undefined;
  lastSeen: number;
  disconnectedAt: number | undefined;
  /** When the agent was marked unreachable (TaskStatus.unreachable_time), while it is. */
  unreachableAt: number | undefined;
  /** The records themselves: a task is one object wherever it is listed, so no composite key is built per task. */
  tasks: Set<TaskRecord>;
  version: string;
  /** Agent protocol features it announced when it registered (e.g. ACKNOWLEDGE_BATCH, COMPACT_LAUNCH). */
  capabilities: ReadonlySet<string>;
  /** The principal it registered with: only that principal may re-register it or speak for it. */
  principal?: string | undefined;
}

export interface FrameworkRecord {
  id: string;
  info: V1FrameworkInfo & { id: { value: string } };
  roles: string[];
  principal: string | undefined;
  partitionAware: boolean;
  revocable: boolean;
  /** Connected with a live stream. */
  connected: boolean;
  /** Known from the registry or an agent but not (yet) re-subscribed since a master restart. */
  recovered: boolean;
  /** The scheduler's event stream while it is subscribed (a connection id). */
  conn: string | undefined;
  streamId: string | undefined;
  registeredAt: number;
  reregisteredAt: number | undefined;
  disconnectedAt: number | undefined;
  tasks: Map<string, TaskRecord>;
  /** Terminal tasks kept for the operator API (bounded). */
  completed: TaskRecord[];
  offers: Set<string>;
}

export interface TaskRecord {
  id: string;
  frameworkId: string;
  agentId: string;
  role: string;
  info: KeptTaskInfo;
  resources: Resources;
  state: V1TaskState;
  /** The latest few statuses, oldest first; replaced, not grown, so each list is exactly its length. */
  statuses: V1TaskStatus[];
  /** Latest update that carries a uuid and has not been acknowledged yet. */
  pending: V1TaskStatus | undefined;
  /** Whether the allocator still counts the task's resources. */
  holdsResources: boolean;
  launchedAt: number;
}

export interface OfferRecord {
  id: string;
  frameworkId: string;
  agentId: string;
  role: string;
  resources: Resources;
  createdAt: number;
}

/**
 * What the master keeps of a task's TaskInfo: the parts its views and the
 * discovery feed show. The command, resources and the rest went to the
 * agent; not keeping them spares ~100,000 tasks' worth of objects that every
 * young-generation collection would copy.
 */
export type KeptTaskInfo = Pick<V1TaskInfo, 'name' | 'labels' | 'discovery' | 'container' | 'health_check' | 'kill_policy'>;

export function keptTaskInfo(info: V1TaskInfo): KeptTaskInfo {
  const kept: KeptTaskInfo = { name: info.name };
  if (info.labels) kept.labels = info.labels;
  if (info.discovery) kept.discovery = info.discovery;
  if (info.container) kept.container = info.container;
  if (info.health_check) kept.health_check = info.health_check;
  if (info.kill_policy) kept.kill_policy = info.kill_policy;
  return kept;
}

/** Statuses kept per task for the operator API; the latest matters, a few explain it. */
const KEEP_STATUSES = 3;

/**
 * The kept statuses with `status` appended, as a new list of exactly that
 * length: a pushed-to array reserves room for 17 elements, and with 100,000
 * tasks those unused slots are megabytes every collection copies.
 */
export function withLatestStatus(statuses: V1TaskStatus[], status: V1TaskStatus): V1TaskStatus[] {
  if (statuses.length === 0) return [status];
  if (statuses.length === 1) return [statuses[0]!, status];
  if (statuses.length === 2) return [statuses[0]!, statuses[1]!, status];
  return [...statuses.slice(1 - KEEP_STATUSES), status];
}
