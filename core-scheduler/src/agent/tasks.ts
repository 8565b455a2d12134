/**
 * The tasks of one agent: launch through the right containerizer, status
 * updates in order (STARTING, RUNNING with the container's IPs, health
 * changes, the terminal state with its reason), kill with a grace period,
 * and re-attaching to containers after the agent restarts.
 */
import { mkdirSync } from 'node:fs';
import { logger } from '../../../common/log.js';
import { errorMessage, isCorralError } from '../../../contracts/errors.js';
import { hasCapability, isTerminal, type V1FrameworkInfo, type V1TaskInfo, type V1TaskState, type V1TaskStatus } from '../../../contracts/v1/v1.js';
import type { Containerizer, ContainerizerType, Launched, Termination } from '../../../contracts/containerizer.js';
import type { Checkpoint, TaskCheckpoint } from './checkpoint.js';
import type { StatusUpdateManager } from './status-updates.js';
import { containerConfigFor, newContainerId, type SpecContext } from './container-spec.js';
import { HealthChecker } from './health.js';

interface LiveTask {
  cp: TaskCheckpoint;
  launched?: Launched;
  health?: HealthChecker;
  /** The containerizer is still starting it: a kill must wait for the launch. */
  launching: boolean;
  killedWhileLaunching?: boolean;
  ended: boolean;
}

interface TaskContext {
  workDir: string;
  taskUser: string;
  allowRootTasks: boolean;
  hostname: string;
  pidsLimit: number;
  logs: { maxBytes: number; maxFiles: number };
  defaultGracePeriodMs: number;
  containerizers: Map<ContainerizerType, Containerizer>;
  checkpoint: Checkpoint;
  updates: StatusUpdateManager;
  frameworkInfo(id: string): V1FrameworkInfo | undefined;
  /** A count of launches and ends, for metrics. */
  onLaunched?(type: ContainerizerType): void;
}

const key = (fw: string, task: string): string => `${fw}/${task}`;

export class AgentTasks {
  readonly live = new Map<string, LiveTask>();
  private readonly log = logger('agent-tasks');

  constructor(private readonly ctx: TaskContext) {}

  get(frameworkId: string, taskId: string): TaskCheckpoint | undefined {
    return this.live.get(key(frameworkId, taskId))?.cp;
  }

  all(): TaskCheckpoint[] {
    return [...this.live.values()].map((t) => t.cp);
  }

  /** Containers that exist on this host right now (for the CNI daemon's leak reconciliation). */
  liveContainers(): string[] {
    return [...this.live.values()].filter((t) => !t.ended).map((t) => t.cp.container.containerId);
  }

  private status(t: LiveTask, state: V1TaskState, extra: Partial<V1TaskStatus> = {}): void {
    const s: V1TaskStatus = { task_id: t.cp.task.task_id, state, source: 'SOURCE_EXECUTOR', ...extra };
    t.cp.state = state;
    t.cp.status = this.ctx.updates.add(t.cp.frameworkId, s);
    this.ctx.checkpoint.putTask(t.cp);
  }

  launch(frameworkId: string, task: V1TaskInfo): void {
    const k = key(frameworkId, task.task_id.value);
    if (this.live.has(k)) return; // a LAUNCH resent by the master
    const role = task.resources.find((r) => r.allocation_info?.role)?.allocation_info?.role ?? '*';
    const containerId = newContainerId(task.task_id.value);
    const spec: SpecContext = {
      workDir: this.ctx.workDir,
      frameworkId,
      frameworkUser: this.ctx.frameworkInfo(frameworkId)?.user,
      taskUser: this.ctx.taskUser,
      allowRootTasks: this.ctx.allowRootTasks,
      role,
      hostname: this.ctx.hostname,
      pidsLimit: this.ctx.pidsLimit,
      logs: this.ctx.logs,
    };
    let type: ContainerizerType;
    let config;
    try {
      ({ type, config } = containerConfigFor(task, containerId, spec));
    } catch (err) {
      this.reject(frameworkId, task, 'TASK_ERROR', 'REASON_TASK_INVALID', errorMessage(err));
      return;
    }
    const containerizer = this.ctx.containerizers.get(type);
    if (!containerizer) {
      this.reject(frameworkId, task, 'TASK_FAILED', 'REASON_CONTAINER_LAUNCH_FAILED', `the ${type} containerizer is not enabled on this agent`);
      return;
    }
    const t: LiveTask = {
      cp: { frameworkId, task, containerizer: type, container: config, state: 'TASK_STAGING', status: { task_id: task.task_id, state: 'TASK_STAGING' }, killRequested: false, launchedAt: Date.now() },
      launching: true,
      ended: false,
    };
    this.live.set(k, t);
    try {
      mkdirSync(config.sandbox, { recursive: true });
      for (const v of config.volumes) if (v.source.type === 'host' && v.source.path.includes('/volumes/roles/')) mkdirSync(v.source.path, { recursive: true });
    } catch (err) {
      this.finish(t, { exitCode: null, signal: null, oomKilled: false, reason: 'REASON_CONTAINER_LAUNCH_FAILED', message: `cannot create the sandbox: ${errorMessage(err)}` }, 'TASK_FAILED');
      return;
    }
    // Checkpoint before starting: if the agent dies mid-launch, recovery finds the container.
    this.status(t, 'TASK_STARTING');
    containerizer.launch(config).then(
      (launched) => {
        t.launching = false;
        t.launched = launched;
        this.ctx.onLaunched?.(type);
        this.running(t, containerizer);
        if (t.cp.killRequested) void this.kill(t.cp.frameworkId, t.cp.task.task_id.value);
      },
      (err) => {
        t.launching = false;
        const invalid = isCorralError(err, 'INVALID_ARGUMENT') || isCorralError(err, 'NOT_FOUND');
        this.finish(
          t,
          { exitCode: null, signal: null, oomKilled: false, reason: invalid ? 'REASON_TASK_INVALID' : 'REASON_CONTAINER_LAUNCH_FAILED', message: errorMessage(err) },
          invalid ? 'TASK_ERROR' : 'TASK_FAILED',
        );
      },
    );
  }

  /** A task that cannot even be prepared: report it and keep nothing but its final status. */
  private reject(frameworkId: string, task: V1TaskInfo, state: V1TaskState, reason: string, message: string): void {
    this.log.warn({ task: task.task_id.value, reason, message }, 'task rejected');
    const t: LiveTask = {
      cp: {
        frameworkId,
        task,
        containerizer: 'MESOS',
        container: {
          containerId: '',
          frameworkId,
          taskId: task.task_id.value,
          sandbox: '',
          resources: { cpus: 0, memMb: 0, diskMb: 0, gpus: 0, ports: [] },
          limits: {},
          volumes: [],
          network: { mode: 'host' },
          logs: { stdout: '', stderr: '', maxBytes: 0, maxFiles: 0 },
          labels: {},
        },
        state,
        status: { task_id: task.task_id, state },
        killRequested: false,
        launchedAt: Date.now(),
        endedAt: Date.now(),
      },
      launching: false,
      ended: true,
    };
    this.live.set(key(frameworkId, task.task_id.value), t);
    this.status(t, state, { reason, message });
  }

  /** The container runs: report RUNNING (with its addresses), start health checks, wait for the end. */
  private running(t: LiveTask, containerizer: Containerizer): void {
    const ips = t.launched?.ipAddresses ?? [];
    this.status(t, 'TASK_RUNNING', {
      message: 'task started',
      ...(ips.length
        ? {
            container_status: {
              network_infos: [
                {
                  ip_addresses: ips.map((ip_address) => ({ protocol: ip_address.includes(':') ? ('IPv6' as const) : ('IPv4' as const), ip_address })),
                  ...(t.cp.container.network.mode === 'cni' ? { name: t.cp.container.network.network } : {}),
                },
              ],
            },
          }
        : {}),
    });
    this.startHealth(t);
    containerizer.wait(t.cp.container.containerId).then(
      (term) => this.finish(t, term),
      (err) => this.finish(t, { exitCode: null, signal: null, oomKilled: false, reason: 'REASON_EXECUTOR_TERMINATED', message: `lost track of the container: ${errorMessage(err)}` }),
    );
  }

  private startHealth(t: LiveTask): void {
    const check = t.cp.task.health_check;
    if (!check) return;
    const c = t.cp.container;
    const launched = t.launched;
    const containerizer = this.ctx.containerizers.get(t.cp.containerizer);
    t.health = new HealthChecker(
      check,
      {
        ...(launched?.pid !== undefined ? { pid: launched.pid } : {}),
        ...(launched?.netns ? { netns: launched.netns } : {}),
        ...(launched?.ipAddresses?.[0] ? { ip: launched.ipAddresses[0] } : {}),
        isolated: t.cp.containerizer === 'DOCKER' || c.network.mode !== 'host' || c.image !== undefined,
        ...(containerizer?.exec ? { exec: (argv: string[], ms: number) => containerizer.exec!(c.containerId, argv, ms) } : {}),
      },
      {
        onChange: (healthy, message) => {
          if (t.ended) return;
          this.status(t, 'TASK_RUNNING', {
            healthy,
            reason: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED',
            message,
            ...(t.cp.status.container_status ? { container_status: t.cp.status.container_status } : {}),
          });
        },
        onUnhealthy: (message) => {
          this.log.warn({ task: t.cp.task.task_id.value, message }, 'killing an unhealthy task');
          t.cp.killedUnhealthy = true;
          void this.kill(t.cp.frameworkId, t.cp.task.task_id.value, undefined, message);
        },
      },
    );
    t.health.start();
  }

  /** What the end of a container means for its task. */
  private terminalState(t: LiveTask, term: Termination): { state: V1TaskState; reason?: string } {
    if (t.cp.killRequested) {
      if (t.cp.killedUnhealthy) return { state: 'TASK_KILLED', reason: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' };
      return t.killedWhileLaunching ? { state: 'TASK_KILLED', reason: 'REASON_TASK_KILLED_DURING_LAUNCH' } : { state: 'TASK_KILLED' };
    }
    if (term.oomKilled) return { state: 'TASK_FAILED', reason: 'REASON_CONTAINER_LIMITATION_MEMORY' };
    if (term.exitCode === 0) return { state: 'TASK_FINISHED' };
    return { state: 'TASK_FAILED', reason: term.reason ?? 'REASON_COMMAND_EXECUTOR_FAILED' };
  }

  /** The task is over: final status, then release what the container held (the sandbox stays for logs). */
  private finish(t: LiveTask, term: Termination, forced?: V1TaskState): void {
    if (t.ended) return;
    t.ended = true;
    t.health?.stop();
    const { state, reason } = forced ? { state: forced, reason: term.reason } : this.terminalState(t, term);
    t.cp.endedAt = Date.now();
    this.status(t, state, { message: term.message, ...(reason ? { reason } : {}), ...(t.cp.killedUnhealthy ? { healthy: false } : {}) });
    const containerizer = this.ctx.containerizers.get(t.cp.containerizer);
    if (containerizer && t.cp.container.containerId) {
      containerizer.destroy(t.cp.container.containerId).catch((err) => this.log.error({ err: errorMessage(err), container: t.cp.container.containerId }, 'container cleanup failed'));
    }
  }

  async kill(frameworkId: string, taskId: string, gracePeriodMs?: number, why = 'killed on request'): Promise<void> {
    const t = this.live.get(key(frameworkId, taskId));
    if (!t) {
      // Unknown here: say so, so the master stops waiting for it.
      this.ctx.updates.add(frameworkId, { task_id: { value: taskId }, state: 'TASK_LOST', source: 'SOURCE_AGENT', reason: 'REASON_RECONCILIATION', message: 'task is unknown to the agent' });
      return;
    }
    if (t.ended) return;
    const first = !t.cp.killRequested;
    t.cp.killRequested = true;
    t.cp.status = { ...t.cp.status, message: why };
    this.ctx.checkpoint.putTask(t.cp);
    if (t.launching) {
      t.killedWhileLaunching = true;
      return; // killed as soon as the launch completes
    }
    if (first && hasCapability(this.ctx.frameworkInfo(frameworkId), 'TASK_KILLING_STATE')) this.status(t, 'TASK_KILLING', { message: why, ...(t.cp.killedUnhealthy ? { healthy: false } : {}) });
    const grace = gracePeriodMs ?? nanosToMs(t.cp.task.kill_policy?.grace_period?.nanoseconds) ?? this.ctx.defaultGracePeriodMs;
    const containerizer = this.ctx.containerizers.get(t.cp.containerizer);
    await containerizer?.kill(t.cp.container.containerId, grace).catch((err) => this.log.error({ err: errorMessage(err) }, 'kill failed'));
  }

  async shutdownFramework(frameworkId: string): Promise<void> {
    const mine = [...this.live.values()].filter((t) => t.cp.frameworkId === frameworkId);
    await Promise.all(mine.map((t) => this.kill(frameworkId, t.cp.task.task_id.value)));
    this.ctx.updates.dropFramework(frameworkId);
    for (const t of mine) this.forget(t);
  }

  /** The framework acknowledged everything about an ended task: stop checkpointing it. */
  acknowledged(frameworkId: string, taskId: string): void {
    const t = this.live.get(key(frameworkId, taskId));
    if (t?.ended && isTerminal(t.cp.state) && !this.ctx.updates.hasPending(frameworkId, taskId)) this.forget(t);
  }

  /** Ended tasks whose sandboxes still exist, for `corral logs` and GC. */
  readonly completed = new Map<string, TaskCheckpoint>();

  private forget(t: LiveTask): void {
    const k = key(t.cp.frameworkId, t.cp.task.task_id.value);
    this.live.delete(k);
    this.ctx.checkpoint.removeTask(t.cp.frameworkId, t.cp.task.task_id.value);
    if (t.cp.container.sandbox) this.completed.set(k, t.cp);
  }

  /** After an agent restart: re-attach to what still runs, report what ended meanwhile. */
  async recover(tasks: TaskCheckpoint[]): Promise<void> {
    const byType = new Map<ContainerizerType, TaskCheckpoint[]>();
    for (const cp of tasks) {
      const list = byType.get(cp.containerizer) ?? [];
      list.push(cp);
      byType.set(cp.containerizer, list);
    }
    for (const [type, list] of byType) {
      const containerizer = this.ctx.containerizers.get(type);
      const withContainer = list.filter((cp) => cp.container.containerId);
      const recovered = containerizer ? await containerizer.recover(withContainer.filter((cp) => !isTerminal(cp.state)).map((cp) => cp.container)) : [];
      const found = new Map(recovered.map((r) => [r.containerId, r]));
      for (const cp of list) {
        const t: LiveTask = { cp, launching: false, ended: isTerminal(cp.state) };
        this.live.set(key(cp.frameworkId, cp.task.task_id.value), t);
        if (t.ended) continue; // its final update is still waiting for an acknowledgement
        const r = found.get(cp.container.containerId);
        if (r?.running && containerizer) {
          if (r.launched) t.launched = r.launched;
          if (cp.state !== 'TASK_RUNNING') this.running(t, containerizer);
          else {
            this.startHealth(t);
            containerizer.wait(cp.container.containerId).then(
              (term) => this.finish(t, term),
              (err) => this.finish(t, { exitCode: null, signal: null, oomKilled: false, reason: 'REASON_EXECUTOR_TERMINATED', message: errorMessage(err) }),
            );
          }
        } else if (r?.termination) {
          this.finish(t, r.termination);
        } else {
          this.finish(t, { exitCode: null, signal: null, oomKilled: false, reason: 'REASON_EXECUTOR_TERMINATED', message: 'the container was gone when the agent restarted' }, 'TASK_FAILED');
        }
      }
    }
  }

  stop(): void {
    for (const t of this.live.values()) t.health?.stop();
  }
}

function nanosToMs(n: number | undefined): number | undefined {
  return n === undefined ? undefined : Math.round(n / 1e6);
}
