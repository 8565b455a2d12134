/**
 * Agent lifecycle over the agent protocol: registration and re-registration
 * (with the tasks the agent runs), heartbeats, disconnection, unreachability,
 * removal, and the dynamic reservations/volumes checkpointed per agent.
 */
import { CorralError } from '../../../contracts/errors.js';
import { Resources } from '../resources/resources.js';
import type { Master } from './master.js';
import { keptTaskInfo, withLatestStatus, type AgentRecord, type TaskRecord } from './records.js';
import type { PersistedAgent } from './registry.js';
import { isTerminal, nanos, type AgentEvent, type V1FrameworkInfo } from '../../../contracts/v1/v1.js';
import type { V1AgentCall } from '../../../contracts/v1/agent-schema.js';
import { agentUrl } from './addresses.js';

type RegisterCall = Extract<V1AgentCall, { type: 'REGISTER' }>['register'];

/** What the master itself added to an agent: dynamic reservations and persistent volumes. */
function checkpointedPart(total: Resources): Resources {
  return total.filter((e) => e.reservations.some((r) => r.type === 'DYNAMIC') || e.disk?.persistence !== undefined);
}

/** The agent's own resources with the master's checkpointed operations re-applied; what does not fit is dropped. */
function applyCheckpointed(staticResources: Resources, checkpointed: Resources): { total: Resources; dropped: Resources } {
  const total = staticResources.clone();
  const dropped = new Resources();
  for (const e of checkpointed) {
    const one = new Resources([e]);
    const source = one.map((x) => ({ reservations: x.reservations.filter((r) => r.type !== 'DYNAMIC'), disk: x.disk?.source ? { source: x.disk.source } : undefined }));
    if (total.contains(source)) total.subtract(source).add(one);
    else dropped.add(one);
  }
  return { total, dropped };
}

export class AgentManager {
  /** Agents an operator marked gone: they may never come back under the same id. */
  private readonly goneIds = new Set<string>();
  /** Events decided while an agent re-registers, sent once its stream is open. */
  private readonly afterAttach = new Map<string, AgentEvent[]>();
  /** Hostnames of known agents and the principal each registered with: another agent credential may not claim them. */
  private readonly hostOwners = new Map<string, string>();

  constructor(private readonly m: Master) {}

  /** Whether an operator marked the agent gone (it may never come back). */
  isGone(agentId: string): boolean {
    return this.goneIds.has(agentId);
  }

  /** `peerIp`: where the registration came from, the agent's IP unless its own URL names one. */
  register(reg: RegisterCall, principal: string | undefined, peerIp?: string): AgentRecord {
    this.m.auth.authorizeAgent(principal);
    const staticResources = Resources.fromV1(reg.agent_info.resources);
    for (const e of staticResources) {
      if (e.reservations.some((r) => r.type === 'DYNAMIC')) throw new CorralError('INVALID_ARGUMENT', `agent resource ${e.name} has a dynamic reservation; agents may only declare static ones`);
      if (e.disk?.persistence) throw new CorralError('INVALID_ARGUMENT', 'agents cannot declare persistent volumes; create them through the master');
      if (e.revocable) throw new CorralError('INVALID_ARGUMENT', 'revocable resources are announced with UPDATE_OVERSUBSCRIBED, not at registration');
    }
    const now = this.m.clock.now();
    const wantId = reg.agent_info.id?.value;
    if (wantId && this.goneIds.has(wantId)) throw new CorralError('FORBIDDEN', `agent ${wantId} was marked gone; start it with a fresh work directory to register anew`);
    let a = wantId ? this.m.agents.get(wantId) : undefined;
    this.checkBinding(a, reg.agent_info.hostname, principal);
    if (a?.status === 'connected' && a.conn) {
      this.m.close(a.conn, { type: 'SHUTDOWN', shutdown: { message: 'replaced by a newer connection of the same agent' } } satisfies AgentEvent);
      Object.assign(a, { conn: undefined, status: 'disconnected', disconnectedAt: now });
    }
    const id = a?.id ?? wantId ?? this.m.nextAgentId();
    const checkpointed = a?.checkpointed ?? new Resources();
    const { total, dropped } = applyCheckpointed(staticResources, checkpointed);
    if (!dropped.isEmpty()) this.m.log.warn({ agent: id, dropped: dropped.toString() }, "checkpointed reservations no longer fit the agent's resources");
    const info = { ...reg.agent_info, id: { value: id } };
    const owner = this.m.auth.enabled ? principal : undefined;
    if (owner !== undefined) {
      if (a && a.info.hostname !== info.hostname && this.hostOwners.get(a.info.hostname) === owner) this.hostOwners.delete(a.info.hostname);
      this.hostOwners.set(info.hostname, owner);
    }
    const persisted: PersistedAgent = { id, info, checkpointed: checkpointedPart(total).toV1(), status: 'admitted', ...(owner !== undefined && { principal: owner }) };
    this.m.persist({ type: 'put-agent', agent: persisted, cluster: this.m.clusterRecord() });

    const wasUnreachable = a?.status === 'unreachable';
    const capabilities: ReadonlySet<string> = new Set(reg.capabilities ?? []);
    const url = agentUrl(info, peerIp);
    if (a) {
      this.m.offerManager.rescindAgentOffers(id);
      if (this.m.allocator.hasAgent(id)) this.m.allocator.removeAgent(id);
      for (const t of a.tasks.values()) t.holdsResources = false;
      Object.assign(a, {
        info,
        staticResources,
        checkpointed: checkpointedPart(total),
        total,
        attributes: reg.agent_info.attributes,
        url,
        reregisteredAt: now,
        unreachableAt: undefined,
        version: reg.version ?? a.version,
        capabilities,
        principal: owner,
      });
    } else {
      a = {
        id,
        info,
        staticResources,
        checkpointed: checkpointedPart(total),
        total,
        attributes: reg.agent_info.attributes,
        url,
        status: 'disconnected',
        conn: undefined,
        registeredAt: now,
        reregisteredAt: wantId ? now : undefined,
        lastSeen: now,
        disconnectedAt: now,
        unreachableAt: undefined,
        tasks: new Set(),
        version: reg.version ?? 'unknown',
        capabilities,
        principal: owner,
      };
      this.m.agents.set(id, a);
    }
    this.m.allocator.addAgent(id, total, { active: false, ...(reg.oversubscribed ? { revocable: Resources.fromV1(reg.oversubscribed) } : {}) });
    this.adoptTasks(a, reg, wasUnreachable);
    this.m.log.info({ agent: id, hostname: info.hostname, resources: total.toString(), tasks: a.tasks.size, reregistered: wantId !== undefined }, 'agent registered');
    return a;
  }

  /**
   * An agent credential speaks only for the agents it registered: an agent id
   * or hostname the master knows under another principal is refused, so one
   * host's credential cannot take over another host's agent (its tasks, its
   * offers, its name). Released when the agent unregisters or is marked gone.
   */
  private checkBinding(a: AgentRecord | undefined, hostname: string, principal: string | undefined): void {
    if (!this.m.auth.enabled) return;
    if (a?.principal !== undefined && a.principal !== principal) {
      throw new CorralError('FORBIDDEN', `agent ${a.id} registered with principal "${a.principal}"; principal "${principal}" may not re-register it`);
    }
    const owner = this.hostOwners.get(hostname);
    if (owner !== undefined && owner !== principal) {
      throw new CorralError('FORBIDDEN', `hostname "${hostname}" belongs to an agent registered with principal "${owner}"; principal "${principal}" may not register an agent under it`);
    }
  }

  /** Reconcile the tasks an agent reports with what the master knows about it. */
  private adoptTasks(a: AgentRecord, reg: RegisterCall, wasUnreachable: boolean): void {
    const reported = new Set<TaskRecord>();
    const infos = new Map(reg.frameworks.filter((f) => f.id).map((f) => [f.id!.value, f]));
    const completed = new Set<string>();
    for (const rt of reg.tasks) {
      const fwId = rt.framework_id.value;
      if (this.m.frameworkManager.isRemoved(fwId)) {
        // Torn down while the agent was away (e.g. before it re-registered after a master restart): as Mesos,
        // its tasks are not re-added (adopting them would bring the framework back) and the agent shuts it down.
        completed.add(fwId);
        continue;
      }
      let f = this.m.frameworks.get(fwId);
      if (!f) {
        const info: V1FrameworkInfo & { id: { value: string } } = { ...(infos.get(fwId) ?? { user: '', name: `unknown-${fwId}` }), id: { value: fwId } };
        f = this.m.frameworkManager.adopt(info);
      }
      let t = f.tasks.get(rt.task.task_id.value);
      if (t) reported.add(t);
      if (wasUnreachable && !f.partitionAware) {
        // Already reported LOST to a framework that cannot handle tasks coming back: kill it.
        this.later(a.id, { type: 'KILL', kill: { framework_id: rt.framework_id, task_id: rt.task.task_id } });
        continue;
      }
      const resources = Resources.fromV1(rt.task.resources);
      const role = rt.task.resources.find((r) => r.allocation_info?.role)?.allocation_info?.role ?? f.roles[0]!;
      let cameBack = wasUnreachable;
      if (!t) {
        t = {
          id: rt.task.task_id.value,
          frameworkId: fwId,
          agentId: a.id,
          role,
          info: keptTaskInfo(rt.task),
          resources,
          state: rt.status.state,
          statuses: [rt.status],
          pending: rt.status.uuid ? rt.status : undefined,
          holdsResources: false,
          launchedAt: this.m.clock.now(),
        };
        f.tasks.set(t.id, t);
        this.m.events.taskAdded(t);
      } else {
        cameBack ||= t.state === 'TASK_UNREACHABLE';
        t.state = rt.status.state;
        t.statuses = withLatestStatus(t.statuses, rt.status);
      }
      if (cameBack && !isTerminal(t.state)) {
        // As Mesos (REASON_SLAVE_REREGISTERED): the partition-aware framework learns its task is back, also when the
        // master that marked the agent unreachable has failed over since and this one knew the task only from the agent.
        this.m.send(f.conn, {
          type: 'UPDATE',
          update: { status: { ...rt.status, uuid: undefined, agent_id: { value: a.id }, source: 'SOURCE_MASTER', reason: 'REASON_AGENT_REREGISTERED', message: 'agent re-registered' } },
        });
      }
      reported.add(t);
      a.tasks.add(t);
      if (!isTerminal(t.state)) this.holdTaskResources(t);
    }
    for (const fwId of completed) this.later(a.id, { type: 'SHUTDOWN_FRAMEWORK', shutdown_framework: { framework_id: { value: fwId } } });
    for (const t of [...a.tasks]) {
      if (reported.has(t) || isTerminal(t.state)) continue;
      a.tasks.delete(t);
      this.m.taskManager.masterUpdate(t, t.state === 'TASK_STAGING' ? 'TASK_DROPPED' : 'TASK_LOST', 'REASON_RECONCILIATION', 'task was not found on its agent when the agent re-registered');
    }
  }

  private later(agentId: string, e: AgentEvent): void {
    const list = this.afterAttach.get(agentId) ?? [];
    list.push(e);
    this.afterAttach.set(agentId, list);
  }

  private holdTaskResources(t: TaskRecord): void {
    const f = this.m.frameworks.get(t.frameworkId)!;
    try {
      if (!f.roles.includes(t.role)) {
        // The framework left the task's role: keep counting the task there, offer nothing new in it.
        this.m.allocator.updateFramework(f.id, { roles: [...f.roles, t.role], suppressedRoles: [t.role] });
      }
      this.m.allocator.allocateExisting(t.frameworkId, t.agentId, t.role, t.resources);
      t.holdsResources = true;
    } catch (err) {
      this.m.log.error({ err, task: t.id, agent: t.agentId }, 'task resources do not fit the agent; not counted');
    }
  }

  /** The agent's stream is open: confirm and start offering its resources. */
  attach(a: AgentRecord, conn: string): void {
    a.conn = conn;
    a.status = 'connected';
    a.lastSeen = this.m.clock.now();
    a.disconnectedAt = undefined;
    this.m.send(conn, {
      type: 'REGISTERED',
      registered: { agent_id: { value: a.id }, heartbeat_interval_seconds: this.m.config.agents.heartbeatIntervalMs / 1000, master_info: this.m.info, checkpointed_resources: a.checkpointed.toV1() },
    } satisfies AgentEvent);
    this.m.sendAll(conn, this.afterAttach.get(a.id) ?? []);
    this.afterAttach.delete(a.id);
    // Kills asked for while the agent was away reach its tasks now (or are answered, if it did not bring them back).
    this.m.taskManager.settleHeldKills();
    this.m.allocator.setAgentActive(a.id, true);
    this.m.events.agentAdded(a);
    this.m.offerManager.requestAllocation([a.id]);
  }

  disconnected(a: AgentRecord, conn: string, why: string): void {
    if (a.conn !== conn || a.status !== 'connected') return;
    a.conn = undefined;
    a.status = 'disconnected';
    a.disconnectedAt = this.m.clock.now();
    if (this.m.isStopped) return;
    this.m.log.warn({ agent: a.id, why }, 'agent disconnected');
    this.m.allocator.setAgentActive(a.id, false);
    this.m.offerManager.rescindAgentOffers(a.id);
  }

  seen(a: AgentRecord): void {
    a.lastSeen = this.m.clock.now();
  }

  heartbeat(): void {
    for (const a of this.m.agents.values()) if (a.status === 'connected') this.m.send(a.conn, { type: 'HEARTBEAT' } satisfies AgentEvent);
  }

  checkLiveness(): void {
    const now = this.m.clock.now();
    const { heartbeatIntervalMs, maxMissedHeartbeats, unreachableTimeoutMs, reregisterTimeoutMs } = this.m.config.agents;
    for (const a of this.m.agents.values()) {
      if (a.status === 'connected' && now - a.lastSeen > heartbeatIntervalMs * maxMissedHeartbeats) {
        const conn = a.conn;
        this.m.close(conn);
        if (conn) this.disconnected(a, conn, `no heartbeat for ${now - a.lastSeen} ms`);
      } else if (a.status === 'disconnected' && now - (a.disconnectedAt ?? now) >= unreachableTimeoutMs) {
        this.markUnreachable(a, 'agent did not come back after disconnecting');
      } else if (a.status === 'recovering' && now - this.m.startedAt >= reregisterTimeoutMs) {
        this.markUnreachable(a, 'agent did not re-register after the master restarted');
      }
    }
  }

  /** The agent is gone for now: its tasks are UNREACHABLE (or LOST) and its resources leave the cluster. */
  markUnreachable(a: AgentRecord, why: string): void {
    if (a.status === 'unreachable') return;
    a.status = 'unreachable';
    a.unreachableAt = this.m.clock.now();
    this.m.log.warn({ agent: a.id, why }, 'agent unreachable');
    this.m.offerManager.rescindAgentOffers(a.id);
    this.failTasks(a, (partitionAware) => (partitionAware ? 'TASK_UNREACHABLE' : 'TASK_LOST'), `agent ${a.id} is unreachable: ${why}`);
    if (this.m.allocator.hasAgent(a.id)) this.m.allocator.removeAgent(a.id);
    this.m.events.agentRemoved(a);
    // Kills held for tasks of this agent get the usual answer for an unreachable agent (LOST, or UNREACHABLE).
    this.m.taskManager.settleHeldKills();
    this.m.persist({
      type: 'put-agent',
      agent: { id: a.id, info: a.info, checkpointed: a.checkpointed.toV1(), status: 'unreachable', unreachableAt: a.unreachableAt, ...(a.principal !== undefined && { principal: a.principal }) },
      cluster: this.m.clusterRecord(),
    });
  }

  /** UNREGISTER from a shutting-down agent, or MARK_AGENT_GONE by an operator. */
  remove(a: AgentRecord, byOperator: boolean): void {
    this.m.offerManager.rescindAgentOffers(a.id);
    this.failTasks(a, (partitionAware) => (byOperator ? 'TASK_GONE_BY_OPERATOR' : partitionAware ? 'TASK_GONE' : 'TASK_LOST'), byOperator ? 'agent marked gone by an operator' : 'agent shut down');
    if (this.m.allocator.hasAgent(a.id)) this.m.allocator.removeAgent(a.id);
    this.m.close(a.conn, { type: 'SHUTDOWN', shutdown: { message: byOperator ? 'marked gone by an operator' : 'unregistered' } } satisfies AgentEvent);
    a.conn = undefined;
    this.m.agents.delete(a.id);
    if (a.principal !== undefined && this.hostOwners.get(a.info.hostname) === a.principal) this.hostOwners.delete(a.info.hostname);
    if (byOperator) this.goneIds.add(a.id);
    this.m.events.agentRemoved(a);
    this.m.taskManager.settleHeldKills();
    if (byOperator) this.m.persist({ type: 'put-agent', agent: { id: a.id, info: a.info, checkpointed: [], status: 'gone' }, cluster: this.m.clusterRecord() });
    else this.m.persist({ type: 'remove-agent', id: a.id });
  }

  private failTasks(a: AgentRecord, state: (partitionAware: boolean) => 'TASK_UNREACHABLE' | 'TASK_LOST' | 'TASK_GONE' | 'TASK_GONE_BY_OPERATOR', message: string): void {
    for (const t of [...a.tasks.values()]) {
      if (isTerminal(t.state)) continue;
      const f = this.m.frameworks.get(t.frameworkId);
      const s = state(f?.partitionAware ?? false);
      if (s === 'TASK_UNREACHABLE') {
        // The task may come back with its agent; the allocator stops counting it with the agent.
        this.m.allocator.recover(t.frameworkId, t.agentId, t.role, t.resources);
        t.holdsResources = false;
      }
      // As Mesos, an UNREACHABLE task says since when (partition-aware frameworks time their replacements by it).
      this.m.taskManager.masterUpdate(t, s, 'REASON_AGENT_REMOVED', message, s === 'TASK_UNREACHABLE' && a.unreachableAt !== undefined ? { unreachable_time: nanos(a.unreachableAt) } : undefined);
      if (s !== 'TASK_UNREACHABLE') a.tasks.delete(t);
    }
  }

  /** After a master restart: known, waiting to re-register (tasks come back with it). */
  recoverFromRegistry(p: PersistedAgent): void {
    if (p.status === 'gone') {
      this.goneIds.add(p.id);
      return;
    }
    const staticResources = Resources.fromV1(p.info.resources);
    const checkpointed = Resources.fromV1(p.checkpointed);
    const now = this.m.clock.now();
    this.m.agents.set(p.id, {
      id: p.id,
      info: { ...p.info, id: { value: p.id } },
      staticResources,
      checkpointed,
      total: applyCheckpointed(staticResources, checkpointed).total,
      attributes: p.info.attributes ?? [],
      url: agentUrl(p.info, undefined),
      status: p.status === 'admitted' ? 'recovering' : 'unreachable',
      conn: undefined,
      registeredAt: now,
      reregisteredAt: undefined,
      lastSeen: now,
      disconnectedAt: now,
      unreachableAt: p.status === 'unreachable' ? (p.unreachableAt ?? now) : undefined,
      tasks: new Set(),
      version: 'unknown',
      capabilities: new Set(),
      principal: p.principal,
    });
    if (p.principal !== undefined) this.hostOwners.set(p.info.hostname, p.principal);
  }

  /** RESERVE/UNRESERVE/CREATE/DESTROY changed the agent's total: persist, then tell the agent. */
  applyConversion(a: AgentRecord, consumed: Resources, converted: Resources): void {
    a.total.subtract(consumed).add(converted);
    a.checkpointed = checkpointedPart(a.total);
    this.m.persist({
      type: 'put-agent',
      agent: { id: a.id, info: a.info, checkpointed: a.checkpointed.toV1(), status: 'admitted', ...(a.principal !== undefined && { principal: a.principal }) },
      cluster: this.m.clusterRecord(),
    });
    this.m.send(a.conn, { type: 'APPLY_OPERATIONS', apply_operations: { checkpointed_resources: a.checkpointed.toV1() } } satisfies AgentEvent);
  }

  updateOversubscribed(a: AgentRecord, resources: Resources): void {
    if (!this.m.allocator.hasAgent(a.id)) return;
    this.m.allocator.setRevocable(a.id, resources);
    this.m.offerManager.requestAllocation([a.id]);
  }
}
