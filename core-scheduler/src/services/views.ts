/**
 * What the API (and so `corral app ls|show`) reports about an app: its
 * definition, one status word with a sentence explaining it, counts, and
 * every instance with its task, state, host, addresses, ports, volumes,
 * health, backoff and last error — or why it is still waiting.
 */
import { instanceVolumeNames } from './app-spec.js';
import { instancePhase, isReady, type AppRecord, type InstancePhase, type InstanceRecord } from './model.js';
import { summarizeRefusals } from './planner.js';

export interface InstanceView {
  index: number;
  phase: InstancePhase;
  taskId?: string;
  state?: string;
  agentId?: string;
  host?: string;
  ips: string[];
  ports: number[];
  healthy?: boolean;
  volumes: string[];
  version?: number;
  startedAt?: string;
  failures: number;
  retryAt?: string;
  waiting?: string;
  message?: string;
  lastError?: { taskId: string; state: string; message: string; at: string };
}

export type AppStatus = 'running' | 'deploying' | 'waiting' | 'backoff' | 'removing' | 'suspended';

export interface AppSummary {
  id: string;
  role: string;
  status: AppStatus;
  message: string;
  instances: number;
  running: number;
  healthy: number;
  version: number;
}

export interface AppView extends AppSummary {
  app: AppRecord['spec'];
  strategy: AppRecord['strategy'];
  createdAt: string;
  updatedAt: string;
  counts: Record<InstancePhase | 'stale', number>;
  tasks: InstanceView[];
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

function instanceView(app: AppRecord, inst: InstanceRecord, refusals: ReadonlyMap<string, string> | undefined, now: number): InstanceView {
  const t = inst.task;
  const phase = instancePhase(inst, now);
  const view: InstanceView = { index: inst.index, phase, ips: t?.ips ?? [], ports: t?.hostPorts ?? [], volumes: instanceVolumeNames(app.spec, inst.index), failures: inst.failures };
  if (t) {
    Object.assign(view, { taskId: t.id, state: t.state, agentId: t.agentId, host: t.hostname, version: t.version });
    if (t.healthy !== undefined) view.healthy = t.healthy;
    if (t.runningSince !== undefined) view.startedAt = iso(t.runningSince);
    if (t.message) view.message = t.message;
  }
  if (phase === 'backoff') view.retryAt = iso(inst.delayUntil);
  if (phase === 'waiting') view.waiting = summarizeRefusals(app.spec, refusals ?? new Map());
  if (inst.lastError) view.lastError = { ...inst.lastError, at: iso(inst.lastError.at)! };
  return view;
}

function statusOf(app: AppRecord, tasks: InstanceView[], ready: number, stale: number): { status: AppStatus; message: string } {
  const want = app.spec.instances;
  const first = (phase: InstancePhase): InstanceView | undefined => tasks.find((t) => t.phase === phase);
  if (app.deleting) return { status: 'removing', message: `killing ${tasks.filter((t) => t.taskId).length} task(s)` };
  if (want === 0 && tasks.length === 0) return { status: 'suspended', message: 'scaled to 0 instances' };
  const waiting = first('waiting');
  const backoff = first('backoff');
  if (backoff) return { status: 'backoff', message: `instance ${backoff.index} failed ${backoff.failures} time(s), retrying at ${backoff.retryAt}: ${backoff.lastError?.message ?? ''}`.trim() };
  if (waiting && waiting.waiting?.startsWith('no offer fits')) return { status: 'waiting', message: `instance ${waiting.index}: ${waiting.waiting}` };
  if (ready === want && stale === 0 && tasks.length === want) return { status: 'running', message: `${ready} of ${want} running` };
  const rollout = stale > 0 ? `, restarting (${stale} of the old version left)` : '';
  return { status: 'deploying', message: `${ready} of ${want} running${rollout}${waiting ? `; instance ${waiting.index}: ${waiting.waiting}` : ''}` };
}

function build(app: AppRecord, instances: InstanceRecord[], refusals: ReadonlyMap<string, string> | undefined, now: number): { summary: AppSummary; tasks: InstanceView[]; counts: AppView['counts'] } {
  const tasks = instances.map((i) => instanceView(app, i, refusals, now));
  const counts: AppView['counts'] = { running: 0, starting: 0, unhealthy: 0, unreachable: 0, killing: 0, backoff: 0, waiting: 0, stopping: 0, stale: 0 };
  for (const t of tasks) counts[t.phase] += 1;
  const hc = app.spec.healthCheck !== undefined;
  const live = instances.filter((i) => i.goal === 'running');
  counts.stale = live.filter((i) => i.task && i.task.version < app.version).length;
  const ready = live.filter((i) => isReady(i.task, hc)).length;
  const healthy = live.filter((i) => i.task?.state === 'TASK_RUNNING' && i.task.healthy === true).length;
  const { status, message } = statusOf(app, tasks, ready, counts.stale);
  return {
    summary: { id: app.spec.id, role: app.spec.role, status, message, instances: app.spec.instances, running: counts.running, healthy, version: app.version },
    tasks,
    counts,
  };
}

export function appSummary(app: AppRecord, instances: InstanceRecord[], refusals: ReadonlyMap<string, string> | undefined, now = Date.now()): AppSummary {
  return build(app, instances, refusals, now).summary;
}

export function appView(app: AppRecord, instances: InstanceRecord[], refusals: ReadonlyMap<string, string> | undefined, now = Date.now()): AppView {
  const { summary, tasks, counts } = build(app, instances, refusals, now);
  return { ...summary, app: app.spec, strategy: app.strategy, createdAt: iso(app.createdAt)!, updatedAt: iso(app.updatedAt)!, counts, tasks };
}
