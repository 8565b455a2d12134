/**
 * Operator-API views of master state, in the Mesos v1 operator JSON shapes.
 */
import { Resources } from '../resources/resources.js';
import type { Master } from './master.js';
import type { AgentRecord, FrameworkRecord, TaskRecord } from './records.js';
import { nanos, type V1AgentSummary, type V1FrameworkSummary, type V1Task } from '../../../contracts/v1/v1.js';

export function taskView(t: TaskRecord): V1Task {
  const latest = t.statuses.at(-1);
  return {
    name: t.info.name,
    task_id: { value: t.id },
    framework_id: { value: t.frameworkId },
    agent_id: { value: t.agentId },
    state: t.state,
    resources: t.resources.toV1(t.role),
    statuses: t.statuses,
    ...(latest ? { status_update_state: latest.state } : {}),
    ...(t.pending?.uuid ? { status_update_uuid: t.pending.uuid } : {}),
    ...(t.info.labels ? { labels: t.info.labels } : {}),
    ...(t.info.discovery ? { discovery: t.info.discovery } : {}),
    ...(t.info.container ? { container: t.info.container } : {}),
    ...(t.info.health_check ? { health_check: t.info.health_check } : {}),
    ...(t.info.kill_policy ? { kill_policy: t.info.kill_policy } : {}),
    role: t.role,
  };
}

export function agentView(m: Master, a: AgentRecord): V1AgentSummary {
  const allocated = new Resources();
  for (const t of a.tasks.values()) if (t.holdsResources) allocated.add(t.resources);
  const offered = new Resources();
  for (const o of m.offers.values()) if (o.agentId === a.id) offered.add(o.resources);
  return {
    agent_info: a.info,
    active: a.status === 'connected',
    deactivated: false,
    version: a.version,
    registered_time: nanos(a.registeredAt),
    ...(a.reregisteredAt ? { reregistered_time: nanos(a.reregisteredAt) } : {}),
    total_resources: a.total.toV1(),
    allocated_resources: allocated.toV1(),
    offered_resources: offered.toV1(),
  };
}

export function frameworkView(m: Master, f: FrameworkRecord): V1FrameworkSummary {
  const allocated = new Resources();
  for (const t of f.tasks.values()) if (t.holdsResources) allocated.add(t.resources);
  const offers = [...f.offers].map((id) => m.offers.get(id)).filter((o) => o !== undefined);
  const offered = new Resources();
  for (const o of offers) offered.add(o.resources);
  return {
    framework_info: f.info,
    active: f.connected,
    connected: f.connected,
    recovered: f.recovered,
    registered_time: nanos(f.registeredAt),
    ...(f.reregisteredAt ? { reregistered_time: nanos(f.reregisteredAt) } : {}),
    ...(f.disconnectedAt && !f.connected ? { unregistered_time: nanos(f.disconnectedAt) } : {}),
    offers: offers.map((o) => m.offerManager.toV1(o)),
    allocated_resources: allocated.toV1(),
    offered_resources: offered.toV1(),
  };
}

export function getTasks(m: Master): { pending_tasks: []; tasks: V1Task[]; unreachable_tasks: V1Task[]; completed_tasks: V1Task[]; orphan_tasks: [] } {
  const tasks: V1Task[] = [];
  const unreachable: V1Task[] = [];
  const completed: V1Task[] = [];
  for (const f of m.frameworks.values()) {
    for (const t of f.tasks.values()) (t.state === 'TASK_UNREACHABLE' ? unreachable : tasks).push(taskView(t));
    for (const t of f.completed) completed.push(taskView(t));
  }
  // As Mesos, the completed tasks of completed frameworks too.
  for (const f of m.completedFrameworks) for (const t of f.completed) completed.push(taskView(t));
  return { pending_tasks: [], tasks, unreachable_tasks: unreachable, completed_tasks: completed, orphan_tasks: [] };
}

export function getAgents(m: Master): { agents: V1AgentSummary[]; recovered_agents: Array<V1AgentSummary['agent_info']> } {
  const agents: V1AgentSummary[] = [];
  const recovered: Array<V1AgentSummary['agent_info']> = [];
  for (const a of m.agents.values()) {
    if (a.status === 'recovering') recovered.push(a.info);
    else if (a.status !== 'unreachable') agents.push(agentView(m, a));
  }
  return { agents, recovered_agents: recovered };
}

export function getFrameworks(m: Master): { frameworks: V1FrameworkSummary[]; completed_frameworks: V1FrameworkSummary[]; recovered_frameworks: Array<V1FrameworkSummary['framework_info']> } {
  const frameworks: V1FrameworkSummary[] = [];
  const recovered: Array<V1FrameworkSummary['framework_info']> = [];
  for (const f of m.frameworks.values()) f.recovered ? recovered.push(f.info) : frameworks.push(frameworkView(m, f));
  // Removed frameworks, oldest first (bounded by frameworks.maxCompletedFrameworks): inactive, no offers, nothing allocated.
  const completed = m.completedFrameworks.map((f) => frameworkView(m, f));
  return { frameworks, completed_frameworks: completed, recovered_frameworks: recovered };
}

export function getState(m: Master): Record<string, unknown> {
  return { get_tasks: getTasks(m), get_executors: { executors: [], orphan_executors: [] }, get_frameworks: getFrameworks(m), get_agents: getAgents(m) };
}

export function getRoles(m: Master): { roles: Array<Record<string, unknown>> } {
  const views = m.allocator.roleView();
  const byRole = new Map(views.map((v) => [v.role, v]));
  const names = new Set<string>([...byRole.keys(), ...m.weights.keys(), ...m.quota.keys()]);
  const roles = [...names].sort().map((name) => {
    const v = byRole.get(name);
    const allocated = new Resources();
    const frameworks = new Set<string>();
    for (const f of m.frameworks.values()) {
      if (f.roles.includes(name)) frameworks.add(f.id);
      for (const t of f.tasks.values()) if (t.role === name && t.holdsResources) allocated.add(t.resources);
    }
    const q = m.quota.get(name);
    return {
      name,
      weight: m.weights.get(name) ?? 1,
      frameworks: [...frameworks].map((value) => ({ value })),
      resources: allocated.toV1(),
      allocated: allocated.toV1(),
      share: v?.share ?? 0,
      consumed: v?.consumed ?? {},
      ...(q ? { quota: { role: name, ...q } } : {}),
    };
  });
  return { roles };
}
