/**
 * Desired state, then reconcile: the apps as deployed, their instance slots,
 * and the loop that moves what runs toward what should run. Operations
 * (deploy, scale, restart, remove) only change the desired state and persist
 * it; `evaluate()` then derives the work — slots to create or stop, tasks to
 * kill (scale-down, rollout, removal, unhealthy), unreachable tasks to give
 * up on, instances ready to launch — and hands it to the scheduler through
 * `ManagerEffects`. Every status update and deadline runs the same loop.
 */
import { conflict, notFound } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import type { V1TaskStatus } from '../../../contracts/v1/v1.js';
import type { AppSpec } from './app-spec.js';
import type { Placement } from './constraints.js';
import { instanceKey, isLive, isReady, type AppRecord, type InstanceRecord, type RestartStrategy, type TaskRef } from './model.js';
import type { PendingInstance } from './planner.js';
import type { LoadedState, ServicesState } from './state-store.js';
import { applyStatus, dueDeadlines, endTask, replaceUnreachable, type TransitionTimes } from './transitions.js';

interface ManagerEffects {
  /** Ask the master to kill a task (again, if need be). */
  kill(taskId: string, agentId: string): void;
  /** The instances that could launch now (keys "app/index"): the scheduler revives or suppresses offers. */
  offersWanted(launchable: string[]): void;
  /** Make the framework's roles include these; throws when the master refuses. */
  ensureRoles(roles: string[]): Promise<void>;
}

interface ManagerOptions {
  state: ServicesState;
  log: Logger;
  unreachableReplaceMs: number;
  /** Roles the framework holds even without apps. */
  baseRoles: string[];
}

/** The definition without the instance count: a change here is a new version (tasks are replaced). */
const versionedPart = (s: AppSpec): string => JSON.stringify({ ...s, instances: 0 });

export class ServiceManager {
  private readonly apps = new Map<string, AppRecord>();
  private readonly slots = new Map<string, Map<number, InstanceRecord>>();
  private readonly byTask = new Map<string, InstanceRecord>();
  /** Per app: agent host → why its last offer did not fit a waiting instance. */
  readonly refusals = new Map<string, Map<string, string>>();
  private effects: ManagerEffects | undefined;
  private evaluateQueued = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly opts: ManagerOptions) {}

  attach(effects: ManagerEffects): void {
    this.effects = effects;
  }

  load(loaded: LoadedState): void {
    for (const app of loaded.apps) this.apps.set(app.spec.id, app);
    for (const inst of loaded.instances) {
      if (!this.apps.has(inst.app)) {
        this.opts.state.deleteInstance(inst.app, inst.index); // left behind by an interrupted removal
        continue;
      }
      this.slotsOf(inst.app).set(inst.index, inst);
      if (inst.task) this.byTask.set(inst.task.id, inst);
    }
  }

  private slotsOf(app: string): Map<number, InstanceRecord> {
    let m = this.slots.get(app);
    if (!m) this.slots.set(app, (m = new Map()));
    return m;
  }

  roles(extra?: string): string[] {
    return [...new Set([...this.opts.baseRoles, ...[...this.apps.values()].map((a) => a.spec.role), ...(extra ? [extra] : [])])].sort();
  }

  // ---- operations (the API) --------------------------------------------

  getApp(id: string): AppRecord {
    const app = this.apps.get(id);
    if (!app) throw notFound(`no app "${id}"`);
    return app;
  }

  listApps(): AppRecord[] {
    return [...this.apps.values()].sort((a, b) => a.spec.id.localeCompare(b.spec.id));
  }

  instancesOf(id: string): InstanceRecord[] {
    return [...(this.slots.get(id)?.values() ?? [])].sort((a, b) => a.index - b.index);
  }

  /** Create or update an app; a changed definition (beyond `instances`) rolls out as a new version. */
  async deploy(spec: AppSpec): Promise<{ created: boolean; app: AppRecord }> {
    const existing = this.apps.get(spec.id);
    if (existing?.deleting) throw conflict(`app "${spec.id}" is being removed; deploy it again once its tasks have ended`);
    await this.effects?.ensureRoles(this.roles(spec.role));
    const now = Date.now();
    let app: AppRecord;
    if (existing) {
      if (versionedPart(existing.spec) !== versionedPart(spec)) {
        existing.version += 1;
        existing.strategy = 'rolling';
      }
      existing.spec = spec;
      existing.updatedAt = now;
      app = existing;
    } else {
      app = { spec, version: 1, strategy: 'rolling', deleting: false, createdAt: now, updatedAt: now };
      this.apps.set(spec.id, app);
    }
    await this.save(app);
    this.opts.log.info({ app: spec.id, version: app.version, instances: spec.instances }, existing ? 'app updated' : 'app created');
    return { created: !existing, app };
  }

  async scale(id: string, instances: number): Promise<AppRecord> {
    const app = this.live(id);
    app.spec = { ...app.spec, instances };
    app.updatedAt = Date.now();
    await this.save(app);
    this.opts.log.info({ app: id, instances }, 'app scaled');
    return app;
  }

  async restart(id: string, strategy: RestartStrategy): Promise<AppRecord> {
    const app = this.live(id);
    app.version += 1;
    app.strategy = strategy;
    app.updatedAt = Date.now();
    await this.save(app);
    this.opts.log.info({ app: id, version: app.version, strategy }, 'app restarting');
    return app;
  }

  async remove(id: string): Promise<AppRecord> {
    const app = this.getApp(id);
    app.deleting = true;
    app.updatedAt = Date.now();
    await this.save(app);
    this.opts.log.info({ app: id }, 'app being removed');
    return app;
  }

  private live(id: string): AppRecord {
    const app = this.getApp(id);
    if (app.deleting) throw conflict(`app "${id}" is being removed`);
    return app;
  }

  private async save(app: AppRecord): Promise<void> {
    this.opts.state.putApp(app);
    await this.opts.state.flush();
    this.changed();
  }

  // ---- the scheduler's side ----------------------------------------------

  private times(): TransitionTimes {
    return { now: Date.now(), unreachableReplaceMs: this.opts.unreachableReplaceMs };
  }

  /** A status from the master: for a slot's current task, or for a task nobody wants (killed if alive). */
  onStatus(status: V1TaskStatus): void {
    const taskId = status.task_id.value;
    const inst = this.byTask.get(taskId);
    if (!inst || inst.task?.id !== taskId) {
      const agentId = status.agent_id?.value;
      if (isLive(status.state) && status.state !== 'TASK_UNREACHABLE' && agentId) {
        this.opts.log.info({ task: taskId, state: status.state }, 'killing a task no instance owns');
        this.effects?.kill(taskId, agentId);
      }
      return;
    }
    const app = this.apps.get(inst.app)!;
    const agentId = inst.task.agentId;
    const out = applyStatus(inst, app.spec, status, this.times());
    if (out.ended) this.byTask.delete(taskId);
    if (out.changed) this.opts.state.putInstance(inst);
    if (out.kill) this.effects?.kill(taskId, agentId);
    if (out.changed) this.changed();
  }

  /** Instances that may launch now, apps in creation order, then by index. */
  launchable(now = Date.now()): PendingInstance[] {
    const out: PendingInstance[] = [];
    const apps = [...this.apps.values()].filter((a) => !a.deleting).sort((a, b) => a.createdAt - b.createdAt || a.spec.id.localeCompare(b.spec.id));
    for (const app of apps) {
      for (const inst of this.instancesOf(app.spec.id)) {
        if (inst.goal === 'running' && !inst.task && !(inst.delayUntil !== undefined && inst.delayUntil > now)) out.push({ app: app.spec, index: inst.index });
      }
    }
    return out;
  }

  placements(appId: string): Placement[] {
    return this.instancesOf(appId).flatMap((i) => (i.task && isLive(i.task.state) ? [{ hostname: i.task.hostname, attributes: i.task.attributes }] : []));
  }

  /** A launch is decided: the slot holds the task from now on (persisted before the ACCEPT goes out). */
  assignTask(appId: string, index: number, task: Omit<TaskRef, 'version'>): void {
    const app = this.apps.get(appId);
    const inst = this.slots.get(appId)?.get(index);
    if (!app || !inst) return;
    inst.task = { ...task, version: app.version };
    inst.delayUntil = undefined;
    this.byTask.set(task.id, inst);
    this.opts.state.putInstance(inst);
  }

  /** The ACCEPT carrying the task failed: free the slot (as a failure of the app when it was the app's fault). */
  launchFailed(taskId: string, message: string, appsFault: boolean): void {
    const inst = this.byTask.get(taskId);
    if (!inst || inst.task?.id !== taskId) return;
    this.byTask.delete(taskId);
    const task = inst.task;
    if (appsFault) endTask(inst, this.apps.get(inst.app)!.spec, task, { state: 'TASK_ERROR', message }, Date.now());
    else inst.task = undefined;
    this.opts.state.putInstance(inst);
    this.changed();
  }

  noteRefusals(appId: string, why: ReadonlyMap<string, string>): void {
    let m = this.refusals.get(appId);
    if (!m) this.refusals.set(appId, (m = new Map()));
    for (const [host, reason] of why) m.set(host, reason);
  }

  /** Tasks to reconcile: every live one launched more than `graceMs` ago (younger ones may not have reached the master). */
  liveTasks(graceMs: number): Array<{ task_id: { value: string }; agent_id: { value: string } }> {
    const before = Date.now() - graceMs;
    const out: Array<{ task_id: { value: string }; agent_id: { value: string } }> = [];
    for (const [id, inst] of this.byTask) if (inst.task && isLive(inst.task.state) && inst.task.launchedAt <= before) out.push({ task_id: { value: id }, agent_id: { value: inst.task.agentId } });
    return out;
  }

  persist(): Promise<void> {
    return this.opts.state.flush();
  }

  // ---- the loop ----------------------------------------------------------

  /** Something changed: evaluate soon (coalesced). */
  changed(): void {
    if (this.evaluateQueued || this.closed) return;
    this.evaluateQueued = true;
    setImmediate(() => {
      this.evaluateQueued = false;
      if (!this.closed) this.evaluate();
    });
  }

  evaluate(): void {
    const times = this.times();
    let next: number | undefined;
    for (const app of [...this.apps.values()]) {
      this.syncSlots(app);
      for (const inst of this.instancesOf(app.spec.id)) {
        const d = this.handleDeadlines(app, inst, times);
        if (d !== undefined) next = next === undefined ? d : Math.min(next, d);
        if (inst.goal === 'stopped') this.stopSlot(inst);
      }
      this.rollout(app);
      if (app.deleting && this.instancesOf(app.spec.id).length === 0) {
        this.apps.delete(app.spec.id);
        this.slots.delete(app.spec.id);
        this.refusals.delete(app.spec.id);
        this.opts.state.deleteApp(app.spec.id);
        this.opts.log.info({ app: app.spec.id }, 'app removed');
      }
    }
    const launchable = this.launchable(times.now);
    const waitingApps = new Set(launchable.map((p) => p.app.id));
    for (const id of this.refusals.keys()) if (!waitingApps.has(id)) this.refusals.delete(id);
    this.effects?.offersWanted(launchable.map((p) => instanceKey(p.app.id, p.index)));
    clearTimeout(this.timer);
    this.timer = next === undefined ? undefined : setTimeout(() => this.changed(), Math.max(0, next - Date.now()) + 2);
  }

  /** Slots 0..instances-1 should run; the rest (and all of a removed app) should stop. */
  private syncSlots(app: AppRecord): void {
    const slots = this.slotsOf(app.spec.id);
    const want = app.deleting ? 0 : app.spec.instances;
    for (let i = 0; i < want; i++) {
      const inst = slots.get(i);
      if (!inst) {
        const fresh: InstanceRecord = { app: app.spec.id, index: i, goal: 'running', failures: 0 };
        slots.set(i, fresh);
        this.opts.state.putInstance(fresh);
      } else if (inst.goal === 'stopped') {
        inst.goal = 'running';
        this.opts.state.putInstance(inst);
      }
    }
    for (const inst of slots.values()) {
      if (inst.index >= want && inst.goal === 'running') {
        inst.goal = 'stopped';
        this.opts.state.putInstance(inst);
      }
    }
  }

  private handleDeadlines(app: AppRecord, inst: InstanceRecord, times: TransitionTimes): number | undefined {
    const d = dueDeadlines(inst, app.spec, times);
    if (d.action === 'replace-unreachable') {
      const task = inst.task!;
      this.byTask.delete(task.id);
      replaceUnreachable(inst, times.now, times.now - task.unreachableSince!);
      this.opts.log.warn({ app: inst.app, index: inst.index, task: task.id, host: task.hostname }, 'replacing an instance whose agent stayed unreachable');
    } else if (d.action === 'kill-unhealthy') {
      inst.task!.kill = 'unhealthy';
      this.opts.log.warn({ app: inst.app, index: inst.index, task: inst.task!.id }, 'killing an instance that stayed unhealthy');
      this.effects?.kill(inst.task!.id, inst.task!.agentId);
    }
    if (d.changed || d.action) this.opts.state.putInstance(inst);
    return d.next;
  }

  private stopSlot(inst: InstanceRecord): void {
    const task = inst.task;
    if (!task || task.state === 'TASK_UNREACHABLE') {
      // An unreachable task cannot be killed now; if it comes back it is killed as unknown.
      if (task) this.byTask.delete(task.id);
      this.slots.get(inst.app)?.delete(inst.index);
      this.opts.state.deleteInstance(inst.app, inst.index);
    } else if (!task.kill) {
      task.kill = 'stop';
      this.opts.state.putInstance(inst);
      this.effects?.kill(task.id, task.agentId);
    }
  }

  /** Replace tasks of older versions: one at a time (rolling), or all at once. */
  private rollout(app: AppRecord): void {
    if (app.deleting) return;
    const running = this.instancesOf(app.spec.id).filter((i) => i.goal === 'running');
    const stale = running.filter((i) => i.task && isLive(i.task.state) && !i.task.kill && i.task.version < app.version && i.task.state !== 'TASK_UNREACHABLE');
    if (stale.length === 0) return;
    if (app.strategy === 'rolling') {
      const hc = app.spec.healthCheck !== undefined;
      const busy = running.some((i) => !i.task || i.task.kill === 'restart' || (i.task.version === app.version && !isReady(i.task, hc)));
      if (busy) return;
      // Replace the least useful first: an instance that is not ready anyway.
      stale.sort((a, b) => Number(isReady(a.task, hc)) - Number(isReady(b.task, hc)) || a.index - b.index);
      stale.length = 1;
    }
    for (const inst of stale) {
      inst.task!.kill = 'restart';
      this.opts.state.putInstance(inst);
      this.effects?.kill(inst.task!.id, inst.task!.agentId);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.opts.state.close();
  }
}
