/**
 * What discovery knows of the cluster, rebuilt from the master's operator
 * event stream: tasks (state, health, addresses, ports), agents and
 * frameworks. Pure state: no I/O. Each change is reported by key so the
 * projector can recompute just that task's or agent's records.
 */
import { isIP } from 'node:net';
import type { OperatorEvent } from '../../../contracts/v1/operator-events.js';
import { TERMINAL_STATES, type V1AgentSummary, type V1FrameworkSummary, type V1Task, type V1TaskState, type V1TaskStatus } from '../../../contracts/v1/v1.js';

export interface TaskPort {
  number: number;
  name?: string;
  protocol: 'tcp' | 'udp';
}

export interface TaskView {
  key: string;
  id: string;
  frameworkId: string;
  agentId: string;
  name: string;
  /** DiscoveryInfo.name when the framework gave one. */
  serviceName: string | undefined;
  state: string;
  /** Latest health check verdict; undefined while the task has none. */
  healthy: boolean | undefined;
  /** The task's own addresses (from CNI), newest status first; empty for host networking. */
  ips: string[];
  ports: TaskPort[];
  labels: Array<{ key: string; value?: string | undefined }>;
  /** When the task last became RUNNING here (ms, this process's clock), for freshness figures. */
  runningSince: number | undefined;
}

export interface AgentView {
  id: string;
  hostname: string;
}

interface ViewListener {
  task(key: string): void;
  agent(id: string): void;
  framework(id: string): void;
}

const taskKey = (frameworkId: string, taskId: string): string => `${frameworkId}/${taskId}`;

/** Addresses a status reports for the task (Mesos-DNS reads the same place). */
function statusIps(status: V1TaskStatus | undefined): string[] {
  const out: string[] = [];
  for (const ni of status?.container_status?.network_infos ?? []) {
    for (const a of ni.ip_addresses ?? []) if (a.ip_address && isIP(a.ip_address)) out.push(a.ip_address);
  }
  return out;
}

function taskPorts(t: V1Task): TaskPort[] {
  const declared = t.discovery?.ports?.ports ?? [];
  if (declared.length) {
    return declared.map((p) => ({ number: p.number, ...(p.name ? { name: p.name } : {}), protocol: p.protocol?.toLowerCase() === 'udp' ? ('udp' as const) : ('tcp' as const) }));
  }
  // No DiscoveryInfo ports: every port the task holds, served as TCP.
  const out: TaskPort[] = [];
  for (const r of t.resources ?? []) {
    if (r.name !== 'ports' || !r.ranges) continue;
    for (const range of r.ranges.range) for (let p = range.begin; p <= range.end && out.length < 100; p++) out.push({ number: p, protocol: 'tcp' });
  }
  return out;
}

export class ClusterView {
  readonly tasks = new Map<string, TaskView>();
  readonly agents = new Map<string, AgentView>();
  readonly frameworks = new Map<string, string>();

  constructor(
    private readonly listener: ViewListener,
    private readonly now: () => number = Date.now,
  ) {}

  apply(e: OperatorEvent): void {
    switch (e.type) {
      case 'SUBSCRIBED':
        this.reset(e.subscribed.get_state as StateSnapshot);
        break;
      case 'TASK_ADDED':
        this.putTask(e.task_added.task);
        break;
      case 'TASK_UPDATED':
        this.updateTask(e.task_updated.framework_id.value, e.task_updated.status, e.task_updated.state);
        break;
      case 'AGENT_ADDED':
        this.putAgent(e.agent_added.agent);
        break;
      case 'AGENT_REMOVED':
        if (this.agents.delete(e.agent_removed.agent_id.value)) this.listener.agent(e.agent_removed.agent_id.value);
        break;
      case 'FRAMEWORK_ADDED':
        this.putFramework(e.framework_added.framework.framework_info);
        break;
      case 'FRAMEWORK_UPDATED':
        this.putFramework(e.framework_updated.framework.framework_info);
        break;
      case 'FRAMEWORK_REMOVED': {
        const id = e.framework_removed.framework_info.id?.value;
        if (id && this.frameworks.delete(id)) this.listener.framework(id);
        break;
      }
      default:
        break;
    }
  }

  /**
   * A fresh SUBSCRIBED: the whole state replaces ours; whatever vanished meanwhile is withdrawn.
   * After a master restart, agents it knows from its registry but that have not re-registered yet
   * are listed as recovered: their tasks are still running, so they keep their names until the
   * agent is back (or is declared gone).
   */
  private reset(state: StateSnapshot): void {
    const seenTasks = new Set<string>();
    const recovering = new Set((state.get_agents?.recovered_agents ?? []).map((a) => a.id?.value).filter((id): id is string => !!id));
    const seenAgents = new Set<string>(recovering);
    const seenFrameworks = new Set<string>();
    for (const f of [...(state.get_frameworks?.frameworks ?? []).map((x) => x.framework_info), ...(state.get_frameworks?.recovered_frameworks ?? [])]) {
      if (f.id) seenFrameworks.add(f.id.value);
      this.putFramework(f);
    }
    for (const a of state.get_agents?.agents ?? []) {
      seenAgents.add(a.agent_info.id.value);
      this.putAgent(a);
    }
    for (const t of [...(state.get_tasks?.tasks ?? []), ...(state.get_tasks?.unreachable_tasks ?? [])]) {
      seenTasks.add(taskKey(t.framework_id.value, t.task_id.value));
      this.putTask(t);
    }
    for (const [key, t] of [...this.tasks])
      if (!seenTasks.has(key) && !recovering.has(t.agentId)) {
        this.tasks.delete(key);
        this.listener.task(key);
      }
    for (const id of [...this.agents.keys()])
      if (!seenAgents.has(id)) {
        this.agents.delete(id);
        this.listener.agent(id);
      }
    for (const id of [...this.frameworks.keys()])
      if (!seenFrameworks.has(id)) {
        this.frameworks.delete(id);
        this.listener.framework(id);
      }
  }

  private putFramework(info: V1FrameworkSummary['framework_info'] | { id?: { value: string }; name: string }): void {
    const id = info.id?.value;
    if (!id || this.frameworks.get(id) === info.name) return;
    this.frameworks.set(id, info.name);
    this.listener.framework(id);
  }

  private putAgent(a: V1AgentSummary): void {
    const id = a.agent_info.id.value;
    const prev = this.agents.get(id);
    if (prev?.hostname === a.agent_info.hostname) return;
    this.agents.set(id, { id, hostname: a.agent_info.hostname });
    this.listener.agent(id);
  }

  private putTask(t: V1Task): void {
    const key = taskKey(t.framework_id.value, t.task_id.value);
    if (isTerminalState(t.state)) {
      if (this.tasks.delete(key)) this.listener.task(key);
      return;
    }
    const statuses = t.statuses ?? [];
    const withHealth = [...statuses].reverse().find((s) => s.healthy !== undefined);
    const withIps = [...statuses].reverse().find((s) => statusIps(s).length > 0);
    const prev = this.tasks.get(key);
    const view: TaskView = {
      key,
      id: t.task_id.value,
      frameworkId: t.framework_id.value,
      agentId: t.agent_id.value,
      name: t.name,
      serviceName: t.discovery?.name || undefined,
      state: t.state,
      healthy: withHealth?.healthy ?? prev?.healthy,
      ips: withIps ? statusIps(withIps) : (prev?.ips ?? []),
      ports: taskPorts(t),
      labels: [...(t.labels?.labels ?? []), ...(t.discovery?.labels?.labels ?? [])],
      runningSince: t.state === 'TASK_RUNNING' ? (prev?.runningSince ?? this.now()) : undefined,
    };
    this.tasks.set(key, view);
    this.listener.task(key);
  }

  private updateTask(frameworkId: string, status: V1TaskStatus, state: string): void {
    const key = taskKey(frameworkId, status.task_id.value);
    const t = this.tasks.get(key);
    if (!t) return;
    if (isTerminalState(state)) {
      this.tasks.delete(key);
      this.listener.task(key);
      return;
    }
    if (state === 'TASK_RUNNING' && t.state !== 'TASK_RUNNING') t.runningSince = this.now();
    if (state !== 'TASK_RUNNING') t.runningSince = undefined;
    t.state = state;
    if (status.healthy !== undefined) t.healthy = status.healthy;
    const ips = statusIps(status);
    if (ips.length) t.ips = ips;
    if (status.agent_id?.value) t.agentId = status.agent_id.value;
    this.listener.task(key);
  }
}

interface StateSnapshot {
  get_tasks?: { tasks?: V1Task[]; unreachable_tasks?: V1Task[] };
  get_agents?: { agents?: V1AgentSummary[]; recovered_agents?: Array<{ id?: { value: string } }> };
  get_frameworks?: { frameworks?: V1FrameworkSummary[]; recovered_frameworks?: Array<V1FrameworkSummary['framework_info']> };
}

const isTerminalState = (s: string): boolean => TERMINAL_STATES.has(s as V1TaskState);
