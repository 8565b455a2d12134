/**
 * Tasks: launching onto agents, status updates (relayed to the framework at
 * least once until acknowledged), acknowledgements, reconciliation and kill.
 */
import { CorralError } from '../../../contracts/errors.js';
import { factorTaskDefaults } from '../../../contracts/v1/task-defaults.js';
import { isUuidBase64 } from '../../../common/uuid.js';
import type { Resources } from '../resources/resources.js';
import type { Master } from './master.js';
import { keptTaskInfo, withLatestStatus, type AgentRecord, type FrameworkRecord, type TaskRecord } from './records.js';
import {
  isTerminal,
  nanos,
  type StatusUpdateGroup,
  type AgentEvent,
  type SchedulerEvent,
  type V1Operation,
  type V1Resource,
  type V1TaskInfo,
  type V1TaskState,
  type V1TaskStatus,
} from '../../../contracts/v1/v1.js';
import type { V1AgentAcknowledgements, V1Id } from '../../../contracts/v1/v1-schema.js';

/** An acknowledgement on its way to the agent. */
interface Ack {
  frameworkId: { value: string };
  taskId: { value: string };
  uuid: string;
}

function ackEvents(agent: AgentRecord, acks: Ack[]): AgentEvent[] {
  const events: AgentEvent[] = [];
  if (agent.capabilities.has('ACKNOWLEDGE_BATCH')) {
    // One record per framework; the acknowledgements of one call share one framework id object.
    const byFramework = new Map<string, Extract<AgentEvent, { type: 'ACKNOWLEDGE_BATCH' }>>();
    for (const ack of acks) {
      let e = byFramework.get(ack.frameworkId.value);
      if (!e) byFramework.set(ack.frameworkId.value, (e = { type: 'ACKNOWLEDGE_BATCH', acknowledge_batch: { framework_id: ack.frameworkId, acknowledgements: [] } }));
      e.acknowledge_batch.acknowledgements.push({ task_id: ack.taskId, uuid: ack.uuid });
    }
    events.push(...byFramework.values());
  } else {
    for (const ack of acks) events.push({ type: 'ACKNOWLEDGE', acknowledge: { framework_id: ack.frameworkId, task_id: ack.taskId, uuid: ack.uuid } });
  }
  return events;
}

/** A kill waiting for the task's agent; `known`: the master knew the task when it was asked (it then gets its own update if it is lost). */
interface HeldKill {
  frameworkId: string;
  taskId: string;
  agentId: string | undefined;
  killPolicy: V1TaskInfo['kill_policy'] | undefined;
  known: boolean;
}

function killEvent(frameworkId: string, taskId: string, killPolicy: V1TaskInfo['kill_policy'] | undefined): AgentEvent {
  return { type: 'KILL', kill: { framework_id: { value: frameworkId }, task_id: { value: taskId }, ...(killPolicy ? { kill_policy: killPolicy } : {}) } };
}

/** A task's resources in a compact LAUNCH: no allocation_info, no role on unreserved resources. */
function compactV1(resources: Resources): V1Resource[] {
  return resources.toV1().map((r) => {
    if (r.role !== '*' || r.reservations) return r;
    const { role: _unreserved, ...rest } = r;
    return rest;
  });
}

export class TaskManager {
  private readonly updatesTotal;

  constructor(private readonly m: Master) {
    this.updatesTotal = m.metrics.counter('status_updates_total', 'Task status updates received from agents', ['state']);
  }

  launch(f: FrameworkRecord, agent: AgentRecord, role: string, tasks: Array<{ info: V1TaskInfo; resources: Resources }>): void {
    const now = this.m.clock.now();
    const infos: V1TaskInfo[] = [];
    // A compact LAUNCH leaves out what all its tasks share (see AgentEvent LAUNCH): about a third fewer bytes to encode and parse.
    const compact = agent.capabilities.has('COMPACT_LAUNCH');
    let lastResources: Resources | undefined;
    let lastV1: V1Resource[] = [];
    for (const { info, resources } of tasks) {
      const t: TaskRecord = {
        id: info.task_id.value,
        frameworkId: f.id,
        agentId: agent.id,
        role,
        info: keptTaskInfo(info),
        resources,
        state: 'TASK_STAGING',
        statuses: [],
        pending: undefined,
        holdsResources: true,
        launchedAt: now,
      };
      f.tasks.set(t.id, t);
      agent.tasks.add(t);
      // The agent sees which role the resources were allocated to. This copy lives only until
      // the message is encoded; the record keeps `resources` and what its views show of the info.
      // Tasks sharing one parsed resource list (see planAccept) share its v1 form too.
      if (!lastResources?.sharesEntriesWith(resources)) lastV1 = compact ? compactV1(resources) : resources.toV1(role);
      lastResources = resources;
      // An undefined agent_id is left out of the JSON.
      infos.push(compact ? { ...info, agent_id: undefined as never, resources: lastV1 } : { ...info, resources: lastV1 });
      this.m.events.taskAdded(t);
    }
    // What the tasks share goes once, as task_defaults: compared by reference only, as tasks that asked for
    // the same resources share one list and tasks filled from a batch's defaults share one command.
    const { defaults, tasks: sentInfos } = compact && agent.capabilities.has('LAUNCH_DEFAULTS') ? factorTaskDefaults(infos, 'reference') : { defaults: undefined, tasks: infos };
    const launch = compact ? { framework_info: f.info, tasks: sentInfos, allocation_role: role, ...(defaults ? { task_defaults: defaults } : {}) } : { framework_info: f.info, tasks: infos };
    const sent = agent.status === 'connected' && this.m.send(agent.conn, { type: 'LAUNCH', launch } satisfies AgentEvent);
    if (!sent) {
      for (const info of infos)
        this.masterUpdate(f.tasks.get(info.task_id.value)!, f.partitionAware ? 'TASK_DROPPED' : 'TASK_LOST', 'REASON_AGENT_DISCONNECTED', 'agent disconnected before the launch reached it');
    }
  }

  /** A framework sent an invalid ACCEPT: tell event-driven schedulers too, as Mesos does with TASK_ERROR. */
  reportInvalidLaunch(f: FrameworkRecord, operations: V1Operation[], message: string): void {
    this.reportLaunchFailure(f, operations, 'TASK_ERROR', 'REASON_TASK_INVALID', message);
  }

  /** Tasks the run_tasks ACL refused (the rest of their ACCEPT went ahead): TASK_ERROR, as Mesos answers an unauthorized launch. */
  reportUnauthorizedTasks(f: FrameworkRecord, refused: ReadonlyArray<{ info: V1TaskInfo; message: string }>): void {
    for (const r of refused) this.reportLaunchFailure(f, [{ type: 'LAUNCH', launch: { task_infos: [r.info] } }], 'TASK_ERROR', 'REASON_TASK_UNAUTHORIZED', r.message);
  }

  /**
   * An ACCEPT named offers that are not (or no longer) the framework's: Mesos
   * answers each task it would have launched with TASK_DROPPED, or TASK_LOST
   * to a framework that is not partition-aware (REASON_INVALID_OFFERS). A
   * rescinded offer racing an ACCEPT is common; without an update an
   * event-driven scheduler would wait on the task for ever.
   */
  reportInvalidOffers(f: FrameworkRecord, operations: V1Operation[], message: string): void {
    this.reportLaunchFailure(f, operations, f.partitionAware ? 'TASK_DROPPED' : 'TASK_LOST', 'REASON_INVALID_OFFERS', `Task launched with invalid offers: ${message}`);
  }

  private reportLaunchFailure(f: FrameworkRecord, operations: V1Operation[], state: V1TaskState, reason: string, message: string): void {
    const events: SchedulerEvent[] = [];
    const timestamp = this.m.clock.now() / 1000;
    for (const op of operations) {
      for (const t of [...(op.launch?.task_infos ?? []), ...(op.launch_group?.task_group.tasks ?? [])]) {
        if (f.tasks.has(t.task_id.value)) continue;
        events.push({ type: 'UPDATE', update: { status: { task_id: t.task_id, state, source: 'SOURCE_MASTER', reason, message, agent_id: t.agent_id, timestamp } } });
      }
    }
    this.sendEvents(f, events);
  }

  /** Status updates from an agent, in order within each framework. */
  fromAgent(agent: AgentRecord, groups: StatusUpdateGroup[]): void {
    const byFramework = new Map<FrameworkRecord, SchedulerEvent[]>();
    // One metric increment per state and call, not per update (labelled increments hash their labels).
    const perState = new Map<string, number>();
    for (const { statuses } of groups) for (const status of statuses) perState.set(status.state, (perState.get(status.state) ?? 0) + 1);
    for (const [state, n] of perState) this.updatesTotal.inc({ state }, n);
    // The call's validated statuses are fresh objects owned by the master: completed in place, not copied.
    const agentId = { value: agent.id };
    const now = this.m.clock.now() / 1000;
    for (const { framework_id, statuses } of groups) {
      const f = this.m.frameworks.get(framework_id.value);
      let events = f && byFramework.get(f);
      for (const status of statuses) {
        status.agent_id = agentId;
        status.source ??= 'SOURCE_AGENT';
        status.timestamp ??= now;
        const t = f?.tasks.get(status.task_id.value);
        if (!f || !t) {
          // Unknown to the master (e.g. the framework was removed): acknowledge on its behalf so the agent stops retrying.
          if (status.uuid) this.m.send(agent.conn, { type: 'ACKNOWLEDGE', acknowledge: { framework_id, task_id: status.task_id, uuid: status.uuid } } satisfies AgentEvent);
          continue;
        }
        if (t.agentId !== agent.id) continue; // stale update from an agent the task no longer lives on
        this.record(t, status);
        if (!events) byFramework.set(f, (events = []));
        events.push({ type: 'UPDATE', update: { status } });
      }
    }
    for (const [f, events] of byFramework) this.m.sendAll(f.conn, events);
  }

  /** Apply a status to the task's record: state, resources, pending acknowledgement. */
  private record(t: TaskRecord, status: V1TaskStatus): void {
    t.state = status.state;
    t.statuses = withLatestStatus(t.statuses, status);
    if (status.uuid) t.pending = status;
    if (isTerminal(status.state) && t.holdsResources) {
      t.holdsResources = false;
      this.m.allocator.recover(t.frameworkId, t.agentId, t.role, t.resources);
      this.m.offerManager.requestAllocation([t.agentId]);
    }
    this.m.events.taskUpdated(t, status);
    if (isTerminal(status.state) && !status.uuid) this.complete(t);
  }

  /** A status the master itself decides (agent lost, launch dropped): no acknowledgement needed. */
  masterUpdate(t: TaskRecord, state: V1TaskState, reason: string, message: string, extra?: Partial<V1TaskStatus>): void {
    const status: V1TaskStatus = { task_id: { value: t.id }, state, source: 'SOURCE_MASTER', reason, message, agent_id: { value: t.agentId }, timestamp: this.m.clock.now() / 1000, ...extra };
    const f = this.m.frameworks.get(t.frameworkId);
    t.pending = undefined;
    this.record(t, status);
    this.m.send(f?.conn, { type: 'UPDATE', update: { status } } satisfies SchedulerEvent);
  }

  /**
   * Acknowledgements of one call, each naming its agent or grouped by agent:
   * all are checked before any is applied, so a bad one changes nothing.
   */
  acknowledge(f: FrameworkRecord, acks: ReadonlyArray<{ agent_id: V1Id; task_id: V1Id; uuid: string }>, groups: readonly V1AgentAcknowledgements[] = []): void {
    const agents: AgentRecord[] = [];
    const all: Array<{ task_id: V1Id; uuid: string }> = [];
    // Error texts are built only for the acknowledgement that fails: a batch holds thousands.
    const badUuid = (uuid: string, where: string): CorralError => new CorralError('INVALID_ARGUMENT', `${where}uuid "${uuid.slice(0, 64)}" is not a base64-encoded 16-byte UUID`);
    const unknownAgent = (id: string, where: string): CorralError => new CorralError('INVALID_ARGUMENT', `${where}unknown agent ${id}`);
    const many = acks.length + groups.length > 1;
    for (let i = 0; i < acks.length; i++) {
      const ack = acks[i]!;
      if (!isUuidBase64(ack.uuid)) throw badUuid(ack.uuid, many ? `acknowledgement ${i}: ` : '');
      const agent = this.m.agents.get(ack.agent_id.value);
      if (!agent) throw unknownAgent(ack.agent_id.value, many ? `acknowledgement ${i}: ` : '');
      agents.push(agent);
      all.push(ack);
    }
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g]!;
      const agent = this.m.agents.get(group.agent_id.value);
      if (!agent) throw unknownAgent(group.agent_id.value, `agents[${g}]: `);
      for (let j = 0; j < group.acknowledgements.length; j++) {
        const ack = group.acknowledgements[j]!;
        if (!isUuidBase64(ack.uuid)) throw badUuid(ack.uuid, `agents[${g}].acknowledgements[${j}]: `);
        agents.push(agent);
        all.push(ack);
      }
    }
    const frameworkId = { value: f.id };
    for (let i = 0; i < all.length; i++) {
      const ack = all[i]!;
      const t = f.tasks.get(ack.task_id.value);
      if (t && t.pending?.uuid === ack.uuid) {
        t.pending = undefined;
        if (isTerminal(t.state)) this.complete(t);
      }
      // The agent owns retries: tell it even if the master no longer tracks the task.
      this.forwardAck(agents[i]!, { frameworkId, taskId: ack.task_id, uuid: ack.uuid });
    }
  }

  private readonly acks = new Map<AgentRecord, Ack[]>();
  private ackBatchArmed = false;

  /**
   * Acknowledgements only stop an agent's retries (its first one comes after
   * seconds), so they travel in per-agent batches: one write per agent per
   * window instead of one per task, and to agents that take it, one
   * ACKNOWLEDGE_BATCH record per framework instead of one record per task.
   */
  private forwardAck(agent: AgentRecord, ack: Ack): void {
    const batchMs = this.m.config.agents.ackBatchMs;
    if (batchMs === 0) {
      this.m.send(agent.conn, { type: 'ACKNOWLEDGE', acknowledge: { framework_id: ack.frameworkId, task_id: ack.taskId, uuid: ack.uuid } } satisfies AgentEvent);
      return;
    }
    const list = this.acks.get(agent);
    if (list) list.push(ack);
    else this.acks.set(agent, [ack]);
    if (!this.ackBatchArmed) {
      this.ackBatchArmed = true;
      this.m.startTimer('ack-batch', batchMs);
    }
  }

  /** The acknowledgement batch window is over: each connected agent gets its batch. */
  flushAcks(): void {
    this.ackBatchArmed = false;
    for (const [a, acks] of this.acks) if (a.conn) this.m.sendAll(a.conn, ackEvents(a, acks));
    this.acks.clear();
  }

  /** The task is over and acknowledged: keep it only in the bounded completed list. */
  private complete(t: TaskRecord): void {
    const f = this.m.frameworks.get(t.frameworkId);
    this.m.agents.get(t.agentId)?.tasks.delete(t);
    if (!f) return;
    if (f.tasks.get(t.id) === t) f.tasks.delete(t.id);
    this.keepCompleted(f, t);
  }

  /** Terminal tasks stay listed for the operator API, the oldest dropped past the bound. */
  private keepCompleted(f: FrameworkRecord, t: TaskRecord): void {
    const max = this.m.config.frameworks.maxCompletedTasks;
    if (max === 0) return;
    f.completed.push(t);
    if (f.completed.length > max) f.completed.shift();
  }

  /**
   * RECONCILE as Mesos's master answers it (master.cpp, Master::reconcile):
   * every answer comes from the master (SOURCE_MASTER, REASON_RECONCILIATION)
   * and carries no uuid, so there is nothing to acknowledge. A known task gets
   * its latest state; an unknown one a state that says what the master knows
   * of its agent — TASK_LOST for frameworks that are not PARTITION_AWARE.
   * Implicit reconciliation (no tasks) answers for every task the master knows.
   */
  reconcile(f: FrameworkRecord, tasks: Array<{ task_id: { value: string }; agent_id?: { value: string } | undefined }>): void {
    const timestamp = this.m.clock.now() / 1000;
    const events: SchedulerEvent[] = [];
    const answer = (status: V1TaskStatus): void => {
      events.push({ type: 'UPDATE', update: { status } });
    };
    const known = (t: TaskRecord): void => {
      const latest = t.statuses.at(-1);
      const status: V1TaskStatus = {
        task_id: { value: t.id },
        state: t.state,
        source: 'SOURCE_MASTER',
        reason: 'REASON_RECONCILIATION',
        message: 'Reconciliation: Latest task state',
        agent_id: { value: t.agentId },
        timestamp,
      };
      // What Mesos copies from the task's latest status: its executor, health and container status.
      if (latest?.executor_id) status.executor_id = latest.executor_id;
      if (latest?.healthy !== undefined) status.healthy = latest.healthy;
      if (latest?.container_status) status.container_status = latest.container_status;
      answer(status);
    };
    if (tasks.length === 0) {
      for (const t of f.tasks.values()) known(t);
    } else {
      // Without an agent id, a task may be on any agent that has not re-registered since a master restart.
      let anyRecovering: boolean | undefined;
      const recovering = (): boolean => (anyRecovering ??= this.anyRecovering());
      for (const { task_id, agent_id } of tasks) {
        const t = f.tasks.get(task_id.value);
        if (t) {
          known(t);
          continue;
        }
        const unknown = this.unknownTaskState(f, agent_id?.value, recovering);
        if (!unknown) continue; // its agent may still report it: say nothing yet, the framework asks again
        answer({ task_id, state: unknown.state, source: 'SOURCE_MASTER', reason: 'REASON_RECONCILIATION', message: unknown.message, ...(agent_id ? { agent_id } : {}), timestamp, ...unknown.extra });
      }
    }
    this.sendEvents(f, events);
  }

  /** What explicit reconciliation says of a task the master does not know, by what it knows of the agent; undefined for "not yet". */
  private unknownTaskState(f: FrameworkRecord, agentId: string | undefined, anyRecovering: () => boolean): { state: V1TaskState; message: string; extra?: Partial<V1TaskStatus> } | undefined {
    const lost = (state: V1TaskState, message: string): { state: V1TaskState; message: string } => ({ state: f.partitionAware ? state : 'TASK_LOST', message });
    if (this.mayStillBeReported(agentId, anyRecovering)) return undefined;
    const agent = agentId === undefined ? undefined : this.m.agents.get(agentId);
    // With the time the agent was marked unreachable, whatever the state says.
    if (agent?.status === 'unreachable')
      return { ...lost('TASK_UNREACHABLE', 'Reconciliation: Task is unreachable'), ...(agent.unreachableAt !== undefined ? { extra: { unreachable_time: nanos(agent.unreachableAt) } } : {}) };
    if (agent) return lost('TASK_GONE', 'Reconciliation: Task is unknown to the agent');
    if (agentId !== undefined && this.m.agentManager.isGone(agentId)) return lost('TASK_GONE_BY_OPERATOR', 'Reconciliation: Task is gone');
    return lost('TASK_UNKNOWN', 'Reconciliation: Task is unknown');
  }

  /**
   * Whether a task the master does not know may still be reported by its
   * agent: the agent named (or, with none named, any agent) is known from the
   * registry and has not re-registered since the master restarted (Mesos's
   * "recovered" agents). Nothing final can be said of such a task yet.
   */
  private mayStillBeReported(agentId: string | undefined, anyRecovering: () => boolean = () => this.anyRecovering()): boolean {
    if (agentId === undefined) return anyRecovering();
    return this.m.agents.get(agentId)?.status === 'recovering';
  }

  private anyRecovering(): boolean {
    for (const a of this.m.agents.values()) if (a.status === 'recovering') return true;
    return false;
  }

  /** Events for one framework, in order, in one write when the stream can take several. */
  private sendEvents(f: FrameworkRecord, events: SchedulerEvent[]): void {
    this.m.sendAll(f.conn, events);
  }

  /**
   * Kills that could not reach the task's agent yet, by framework and task
   * (Mesos's Slave::killedTasks). Right after a master restart the master does
   * not know the tasks of agents that have not re-registered, and an agent
   * may be briefly disconnected: the task may well be running, so the master
   * must neither drop the kill nor invent a terminal state for it. The kill is
   * sent when the agent is back with the task (settleHeldKills), or answered
   * as reconciliation would once the agent is marked unreachable or gone.
   */
  private readonly heldKills = new Map<string, HeldKill>();

  /** KILL: Mesos's rules — an unknown task is reconciled, a kill naming another agent than the task's is ignored. */
  kill(f: FrameworkRecord, taskId: string, agentId: string | undefined, killPolicy: V1TaskInfo['kill_policy'] | undefined): void {
    const t = f.tasks.get(taskId);
    if (!t) {
      if (this.mayStillBeReported(agentId)) {
        // Reconciliation would say nothing yet (the framework is meant to retry); the kill is kept instead, so it is not lost.
        this.m.log.info({ task: taskId, agent: agentId }, 'kill of a task whose agent has not re-registered yet; held until it does');
        this.holdKill({ frameworkId: f.id, taskId, agentId, killPolicy, known: false });
        return;
      }
      this.reconcile(f, [{ task_id: { value: taskId }, ...(agentId !== undefined ? { agent_id: { value: agentId } } : {}) }]);
      return;
    }
    if (agentId !== undefined && agentId !== t.agentId) {
      this.m.log.warn({ task: taskId, agent: agentId, taskAgent: t.agentId }, "kill names another agent than the task's; ignored");
      return;
    }
    const agent = this.m.agents.get(t.agentId);
    if (!agent || agent.status === 'unreachable') {
      this.m.log.info({ task: taskId, agent: t.agentId }, 'kill requested for a task on an unreachable agent; ignored');
      return;
    }
    if (agent.status !== 'connected') {
      // As Mesos: kept and sent again if the agent re-registers with the task still running.
      this.m.log.info({ task: taskId, agent: t.agentId }, 'kill requested for a task on a disconnected agent; held until it re-registers');
      this.holdKill({ frameworkId: f.id, taskId, agentId: t.agentId, killPolicy, known: true });
      return;
    }
    this.m.send(agent.conn, killEvent(f.id, taskId, killPolicy));
  }

  private holdKill(h: HeldKill): void {
    this.heldKills.set(`${h.frameworkId}\n${h.taskId}`, h);
  }

  /**
   * An agent re-registered, or was marked unreachable or gone: the held kills
   * it decides are sent (the task is known again on a connected agent) or
   * answered as reconciliation answers them now (the task is still unknown
   * and nothing is left to wait for: TASK_GONE, TASK_UNREACHABLE, TASK_LOST…).
   * A held kill of a task the master knows needs no answer here: the task got
   * its update when its agent was marked unreachable or re-registered without it.
   */
  settleHeldKills(): void {
    if (this.heldKills.size === 0) return;
    for (const [key, h] of [...this.heldKills]) {
      const f = this.m.frameworks.get(h.frameworkId);
      const t = f?.tasks.get(h.taskId);
      const agent = t ? this.m.agents.get(t.agentId) : undefined;
      if (f && t && agent && (h.agentId === undefined || h.agentId === t.agentId)) {
        if (agent.status === 'recovering' || agent.status === 'disconnected') continue;
        this.heldKills.delete(key);
        if (agent.status === 'connected' && !isTerminal(t.state)) this.m.send(agent.conn, killEvent(f.id, t.id, h.killPolicy));
        continue;
      }
      if (f && !t && this.mayStillBeReported(h.agentId)) continue;
      this.heldKills.delete(key);
      if (f && !t && !h.known) this.reconcile(f, [{ task_id: { value: h.taskId }, ...(h.agentId !== undefined ? { agent_id: { value: h.agentId } } : {}) }]);
    }
  }

  /**
   * The framework is going away: its tasks are killed on their agents, and
   * here they end as completed tasks of the completed framework (TASK_KILLED,
   * REASON_FRAMEWORK_REMOVED, as Mesos records them).
   */
  removeFrameworkTasks(f: FrameworkRecord, why: string): void {
    const agentIds = new Set<string>();
    const timestamp = this.m.clock.now() / 1000;
    for (const t of [...f.tasks.values()]) {
      agentIds.add(t.agentId);
      if (!isTerminal(t.state)) {
        const status: V1TaskStatus = {
          task_id: { value: t.id },
          state: 'TASK_KILLED',
          source: 'SOURCE_MASTER',
          reason: 'REASON_FRAMEWORK_REMOVED',
          message: why,
          agent_id: { value: t.agentId },
          timestamp,
        };
        t.state = 'TASK_KILLED';
        t.statuses = withLatestStatus(t.statuses, status);
        this.m.events.taskUpdated(t, status);
      }
      t.pending = undefined;
      this.m.agents.get(t.agentId)?.tasks.delete(t);
      this.keepCompleted(f, t);
    }
    f.tasks.clear();
    for (const id of agentIds) this.m.send(this.m.agents.get(id)?.conn, { type: 'SHUTDOWN_FRAMEWORK', shutdown_framework: { framework_id: { value: f.id } } } satisfies AgentEvent);
  }
}
