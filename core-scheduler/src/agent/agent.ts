/**
 * The corral agent: advertises this host's resources to the master, runs the
 * tasks placed here through its containerizers, and keeps doing so across
 * restarts — of the master (it re-registers) and of itself (it recovers from
 * its checkpoint, re-attaches to running containers, reports tasks that ended
 * meanwhile and resends unacknowledged status updates).
 */
import { join } from 'node:path';
import { logger } from '../../../common/log.js';
import { errorMessage } from '../../../contracts/errors.js';
import type { Metrics } from '../../../common/metrics.js';
import type { Resources } from '../resources/resources.js';
import type { AgentEvent, V1Attribute, V1FrameworkInfo, V1Resource } from '../../../contracts/v1/v1.js';
import { AgentSession } from './session.js';
import { StatusUpdateManager } from './status-updates.js';
import { Checkpoint } from './checkpoint.js';
import { AgentTasks } from './tasks.js';
import type { Containerizer, ContainerizerType } from '../../../contracts/containerizer.js';
import type { AgentConfig } from './config.js';

interface AgentOptions {
  config: AgentConfig;
  resources: Resources;
  attributes: V1Attribute[];
  /** The agent API's URL, announced to the master (clients fetch logs there). */
  url: string;
  hostname: string;
  credential?: { principal: string; secret: string };
  /** CA and client certificate for the master link (mutual TLS). */
  tls?: import('../../../contracts/client/tls.js').ClientTls | undefined;
  containerizers: Containerizer[];
  metrics: Metrics;
}

export class Agent {
  readonly log = logger('agent');
  readonly tasks: AgentTasks;
  readonly updates: StatusUpdateManager;
  private session!: AgentSession;
  private checkpoint!: Checkpoint;
  private readonly frameworks = new Map<string, V1FrameworkInfo>();
  checkpointedResources: V1Resource[] = [];
  private readonly launches;

  private constructor(
    private readonly opts: AgentOptions,
    checkpoint: Checkpoint,
  ) {
    this.checkpoint = checkpoint;
    this.launches = opts.metrics.counter('task_launches_total', 'Tasks launched by containerizer', ['containerizer']);
    opts.metrics.gauge('tasks', 'Tasks on this agent by state', ['state'], (g) => {
      g.reset();
      for (const t of this.tasks.all()) g.inc({ state: t.state });
    });
    opts.metrics.gauge('master_connected', 'Whether the agent is registered with the master', [], (g) => g.set(this.session?.connected ? 1 : 0));
    this.updates = new StatusUpdateManager({
      // Checkpoint first, then send: a crash in between resends it, never loses it.
      send: async (groups) => {
        await this.checkpoint.flushed();
        return this.session.sendUpdates(groups);
      },
      canSend: () => this.session?.connected ?? false,
      onQueueChanged: (fw, task, queue) => this.checkpoint.setUpdates(fw, task, queue),
      onAcknowledged: (fw, status) => this.tasks.acknowledged(fw, status.task_id.value),
    });
    const containerizers = new Map<ContainerizerType, Containerizer>(opts.containerizers.map((c) => [c.type, c]));
    this.tasks = new AgentTasks({
      workDir: opts.config.workDir,
      taskUser: opts.config.taskUser,
      allowRootTasks: opts.config.allowRootTasks,
      hostname: opts.hostname,
      pidsLimit: opts.config.tasks.pidsLimit,
      logs: opts.config.logs,
      defaultGracePeriodMs: opts.config.tasks.defaultGracePeriodMs,
      containerizers,
      checkpoint,
      updates: this.updates,
      frameworkInfo: (id) => this.frameworks.get(id),
      onLaunched: (type) => this.launches.inc({ containerizer: type }),
    });
  }

  /** Open the checkpoint, recover what ran before, and register with the master. */
  static async start(opts: AgentOptions): Promise<Agent> {
    const checkpoint = await Checkpoint.open(join(opts.config.workDir, 'agent.db'));
    const agent = new Agent(opts, checkpoint);
    await agent.recoverAndRegister();
    return agent;
  }

  get id(): string | undefined {
    return this.session.agentId;
  }

  get connected(): boolean {
    return this.session.connected;
  }

  private async recoverAndRegister(): Promise<void> {
    const state = await this.checkpoint.load();
    for (const f of state.frameworks) if (f.id) this.frameworks.set(f.id.value, f);
    this.checkpointedResources = state.checkpointedResources;
    this.updates.restore(state.updates);
    await this.tasks.recover(state.tasks);
    if (state.tasks.length) this.log.info({ tasks: state.tasks.length, updates: state.updates.length }, 'recovered from checkpoint');
    this.session = new AgentSession({
      master: this.opts.config.master,
      transport: this.opts.config.transport,
      principal: this.opts.credential?.principal,
      secret: this.opts.credential?.secret,
      tls: this.opts.tls,
      agentId: state.agentId,
      info: { hostname: this.opts.hostname, url: this.opts.url, resources: this.opts.resources.toV1(), attributes: this.opts.attributes },
      version: 'corral-agent',
      log: this.log,
      onEvent: (e) => this.onEvent(e),
      snapshot: () => ({
        tasks: this.tasks
          .all()
          .filter((t) => t.container.containerId)
          .map((t) => ({ framework_id: { value: t.frameworkId }, task: t.task, status: t.status })),
        frameworks: [...this.frameworks.values()],
      }),
      onRegistered: (id, checkpointed) => {
        this.checkpoint.setAgentId(id);
        this.checkpointedResources = checkpointed;
        this.checkpoint.setCheckpointedResources(checkpointed);
      },
    });
    await this.session.start();
    this.log.info({ agent: this.session.agentId, master: this.opts.config.master }, 'registered with the master');
  }

  private onEvent(e: AgentEvent): void {
    try {
      switch (e.type) {
        case 'REGISTERED':
          this.updates.resendAll();
          break;
        case 'LAUNCH': {
          const fw = e.launch.framework_info;
          this.frameworks.set(fw.id.value, fw);
          this.checkpoint.putFramework(fw);
          for (const t of e.launch.tasks) this.tasks.launch(fw.id.value, t);
          break;
        }
        case 'KILL': {
          const ns = e.kill.kill_policy?.grace_period?.nanoseconds;
          void this.tasks.kill(e.kill.framework_id.value, e.kill.task_id.value, ns === undefined ? undefined : Math.round(ns / 1e6));
          break;
        }
        case 'ACKNOWLEDGE':
          this.updates.acknowledge(e.acknowledge.framework_id.value, e.acknowledge.task_id.value, e.acknowledge.uuid);
          break;
        case 'ACKNOWLEDGE_BATCH':
          this.updates.acknowledgeAll(e.acknowledge_batch.framework_id.value, e.acknowledge_batch.acknowledgements);
          break;
        case 'SHUTDOWN_FRAMEWORK':
          void this.tasks.shutdownFramework(e.shutdown_framework.framework_id.value).then(() => {
            this.frameworks.delete(e.shutdown_framework.framework_id.value);
            this.checkpoint.removeFramework(e.shutdown_framework.framework_id.value);
          });
          break;
        case 'APPLY_OPERATIONS':
          this.checkpointedResources = e.apply_operations.checkpointed_resources;
          this.checkpoint.setCheckpointedResources(this.checkpointedResources);
          break;
        case 'SHUTDOWN':
          this.log.warn({ message: e.shutdown.message }, 'the master removed this agent');
          break;
        default:
          break;
      }
    } catch (err) {
      this.log.error({ err: errorMessage(err), event: e.type }, 'failed to handle a master event');
    }
  }

  /** Stop talking to the master; tasks keep running (as when the agent is killed). */
  async stop(): Promise<void> {
    this.tasks.stop();
    this.updates.stop();
    await this.session.stop();
    await this.checkpoint.close();
  }
}
