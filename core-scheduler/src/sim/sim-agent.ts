/**
 * A simulated agent: speaks the real agent protocol over HTTP, but "runs"
 * tasks by reporting them RUNNING (and FINISHED after an optional duration).
 * Used by tests, the `corral up` demo before real agents exist, and benchmarks.
 */
import { AgentSession, type AgentTaskReport } from '../agent/session.js';
import { StatusUpdateManager } from '../agent/status-updates.js';
import { parseResources } from '../resources/parse.js';
import { isTerminal, type AgentCapability, type AgentEvent, type V1Attribute, type V1FrameworkInfo, type V1TaskInfo, type V1TaskState, type V1TaskStatus } from '../../../contracts/v1/v1.js';

export interface SimAgentOptions {
  /** The master, or several (the session registers with the leader among them). */
  master: import('../../../contracts/client/masters.js').MasterSpec;
  principal?: string | undefined;
  secret?: string | undefined;
  hostname: string;
  /** Mesos text form, e.g. "cpus:4;mem:4096;ports:[31000-32000]". */
  resources: string;
  attributes?: V1Attribute[];
  /** How long a task runs before FINISHED; undefined = until killed. */
  taskDurationMs?: (task: V1TaskInfo) => number | undefined;
  /** Report TASK_STARTING before TASK_RUNNING. */
  reportStarting?: boolean;
  reconnect?: boolean;
  agentId?: string;
  /** First resend of an unacknowledged status update (default 10 s, as Mesos). */
  updateRetryMs?: number;
  /** Shared HTTP dispatcher (thousands of simulated agents in one process). */
  dispatcher?: import('undici').Dispatcher;
  streamDispatcher?: import('undici').Dispatcher;
  /** Keep every event in `received` (default true, for tests; a large fleet turns it off to save memory). */
  keepEvents?: boolean;
  /** Agent protocol features to announce (default: all this release has); tests pass [] to act as an older agent. */
  capabilities?: readonly AgentCapability[];
  /** CA to trust and client certificate (an https master); the channel's connections use it (the HTTP transport's come from the dispatchers). */
  tls?: import('../../../contracts/client/tls.js').ClientTls;
  /** See AgentSessionOptions.onChannelSocket. */
  onChannelSocket?: (socket: import('node:net').Socket) => void;
  /** How the session speaks to the master (default: the agent channel where the master serves one). */
  transport?: import('../agent/session.js').AgentTransport;
  /** Extra fields for a task's status updates, e.g. container_status with the task's IP. */
  statusExtras?: (task: V1TaskInfo, state: V1TaskState) => Partial<V1TaskStatus>;
}

interface SimTask {
  frameworkId: string;
  info: V1TaskInfo;
  state: V1TaskState;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class SimAgent {
  readonly session: AgentSession;
  readonly updates: StatusUpdateManager;
  readonly tasks = new Map<string, SimTask>();
  private readonly frameworks = new Map<string, V1FrameworkInfo>();
  /** Every event received, for tests (empty with keepEvents: false). */
  readonly received: AgentEvent[] = [];
  private readonly listeners = new Set<(e: AgentEvent) => void>();

  constructor(private readonly opts: SimAgentOptions) {
    this.updates = new StatusUpdateManager({
      send: (groups) => this.session.sendUpdates(groups),
      canSend: () => this.session.connected,
      ...(opts.updateRetryMs !== undefined ? { initialRetryMs: opts.updateRetryMs, maxRetryMs: opts.updateRetryMs * 8 } : {}),
      onAcknowledged: (fw, status) => {
        // Only a terminal status ends a task here; most acknowledgements are of TASK_RUNNING.
        if (!isTerminal(status.state) || this.updates.latestPending(fw, status.task_id.value)) return;
        this.tasks.delete(StatusUpdateManager.key(fw, status.task_id.value));
      },
    });
    this.session = new AgentSession({
      master: opts.master,
      principal: opts.principal,
      secret: opts.secret,
      agentId: opts.agentId,
      info: { hostname: opts.hostname, resources: parseResources(opts.resources).toV1(), attributes: opts.attributes ?? [] },
      version: 'corral-sim',
      ...(opts.capabilities ? { capabilities: opts.capabilities } : {}),
      ...(opts.transport ? { transport: opts.transport } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...(opts.onChannelSocket ? { onChannelSocket: opts.onChannelSocket } : {}),
      reconnect: opts.reconnect ?? true,
      ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      ...(opts.streamDispatcher ? { streamDispatcher: opts.streamDispatcher } : {}),
      onEvent: (e) => this.onEvent(e),
      snapshot: () => this.snapshot(),
    });
  }

  get id(): string | undefined {
    return this.session.agentId;
  }

  start(): Promise<string> {
    return this.session.start();
  }

  /** Drop off the network without a word, like a crashed host (tasks stay "running" here). */
  async crash(): Promise<void> {
    for (const t of this.tasks.values()) clearTimeout(t.timer);
    this.updates.stop();
    await this.session.stop();
  }

  async stop(): Promise<void> {
    await this.crash();
  }

  on(fn: (e: AgentEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private snapshot(): { tasks: AgentTaskReport[]; frameworks: V1FrameworkInfo[] } {
    const tasks: AgentTaskReport[] = [];
    for (const t of this.tasks.values()) {
      const status = this.updates.latestPending(t.frameworkId, t.info.task_id.value) ?? { task_id: t.info.task_id, state: t.state, source: 'SOURCE_AGENT' as const };
      tasks.push({ framework_id: { value: t.frameworkId }, task: t.info, status });
    }
    return { tasks, frameworks: [...this.frameworks.values()] };
  }

  private onEvent(e: AgentEvent): void {
    if (this.opts.keepEvents !== false) this.received.push(e);
    switch (e.type) {
      case 'REGISTERED':
        this.updates.resendAll();
        break;
      case 'LAUNCH':
        this.frameworks.set(e.launch.framework_info.id.value, e.launch.framework_info);
        for (const info of e.launch.tasks) this.launch(e.launch.framework_info.id.value, info);
        break;
      case 'KILL':
        this.finish(e.kill.framework_id.value, e.kill.task_id.value, 'TASK_KILLED', 'killed on request');
        break;
      case 'ACKNOWLEDGE':
        this.updates.acknowledge(e.acknowledge.framework_id.value, e.acknowledge.task_id.value, e.acknowledge.uuid);
        break;
      case 'ACKNOWLEDGE_BATCH':
        this.updates.acknowledgeAll(e.acknowledge_batch.framework_id.value, e.acknowledge_batch.acknowledgements);
        break;
      case 'SHUTDOWN_FRAMEWORK': {
        const fw = e.shutdown_framework.framework_id.value;
        for (const [key, t] of this.tasks)
          if (t.frameworkId === fw) {
            clearTimeout(t.timer);
            this.tasks.delete(key);
          }
        this.updates.dropFramework(fw);
        break;
      }
      default:
        break;
    }
    for (const l of this.listeners) l(e);
  }

  private report(t: SimTask, state: V1TaskState, message?: string, extra?: Partial<V1TaskStatus>): void {
    t.state = state;
    // Built field by field: a fleet reports 100,000 of these, and spreading empty objects is not free.
    const status: V1TaskStatus = { task_id: t.info.task_id, state, source: 'SOURCE_EXECUTOR' };
    if (message) status.message = message;
    const extras = this.opts.statusExtras?.(t.info, state);
    if (extras) Object.assign(status, extras);
    if (extra) Object.assign(status, extra);
    this.updates.add(t.frameworkId, status);
  }

  /** A health check result changed: report it in a TASK_RUNNING update with `healthy` set. */
  setHealth(frameworkId: string, taskId: string, healthy: boolean): void {
    const t = this.tasks.get(StatusUpdateManager.key(frameworkId, taskId));
    if (!t || t.state !== 'TASK_RUNNING') throw new Error(`task ${taskId} is not running here`);
    this.report(t, 'TASK_RUNNING', healthy ? 'health check passed' : 'health check failed', { healthy, reason: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' });
  }

  /** End a running task with the given state (e.g. TASK_FAILED), as if it exited. */
  end(frameworkId: string, taskId: string, state: V1TaskState = 'TASK_FINISHED', message = 'exited'): void {
    this.finish(frameworkId, taskId, state, message);
  }

  private launch(frameworkId: string, info: V1TaskInfo): void {
    const key = StatusUpdateManager.key(frameworkId, info.task_id.value);
    if (this.tasks.has(key)) return; // a resent launch
    const t: SimTask = { frameworkId, info, state: 'TASK_STAGING', timer: undefined };
    this.tasks.set(key, t);
    if (this.opts.reportStarting) this.report(t, 'TASK_STARTING');
    this.report(t, 'TASK_RUNNING');
    const ms = this.opts.taskDurationMs?.(info);
    if (ms !== undefined) t.timer = setTimeout(() => this.finish(frameworkId, info.task_id.value, 'TASK_FINISHED', 'done'), ms);
  }

  private finish(frameworkId: string, taskId: string, state: V1TaskState, message: string): void {
    const t = this.tasks.get(StatusUpdateManager.key(frameworkId, taskId));
    if (!t || isTerminal(t.state)) return;
    clearTimeout(t.timer);
    this.report(t, state, message);
  }
}
