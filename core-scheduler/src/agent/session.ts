/**
 * An agent's session with the master: REGISTER (re-register with its id and
 * tasks after any break), the event stream, heartbeats, reconnect with backoff.
 * With several masters, every registration looks for the leader among them
 * (redirects followed, unreachable masters skipped: contracts/client/masters.ts).
 *
 * Calls and events go over the agent channel (one WebSocket, calls one-way)
 * where the master serves one, else over the POST transport: an event stream
 * and a request per call. Each registration tries the channel first.
 */
import { logger, type Logger } from '../../../common/log.js';
import { errorMessage } from '../../../contracts/errors.js';
import { V1Connection } from '../../../contracts/client/connection.js';
import { AgentChannelClient, ChannelUnavailable } from '../../../contracts/client/agent-channel.js';
import type { LeaderTracker, MasterSpec } from '../../../contracts/client/masters.js';
import {
  AGENT_CAPABILITIES,
  agentUpdateCall,
  expandCompactLaunch,
  hasCapability,
  type StatusUpdateGroup,
  type AgentCapability,
  type AgentEvent,
  type V1AgentInfo,
  type V1FrameworkInfo,
  type V1Resource,
  type V1TaskInfo,
  type V1TaskStatus,
} from '../../../contracts/v1/v1.js';

export interface AgentTaskReport {
  framework_id: { value: string };
  task: V1TaskInfo;
  status: V1TaskStatus;
}

interface AgentSessionOptions {
  /** The master, or several: each (re-)registration goes to the leader among them. */
  master: MasterSpec | LeaderTracker;
  principal?: string | undefined;
  secret?: string | undefined;
  info: Omit<V1AgentInfo, 'id'>;
  version?: string;
  /** Agent protocol features to announce (default: all this release has, AGENT_CAPABILITIES). */
  capabilities?: readonly AgentCapability[];
  /** Known id (from the agent's checkpoint) to re-register with. */
  agentId?: string | undefined;
  onEvent(event: AgentEvent): void;
  /** What the agent runs right now, sent with every (re-)registration. */
  snapshot(): { tasks: AgentTaskReport[]; frameworks: V1FrameworkInfo[] };
  onRegistered?(agentId: string, checkpointed: V1Resource[]): void;
  log?: Logger;
  /** Shared HTTP dispatcher (many agents in one process). */
  dispatcher?: import('undici').Dispatcher;
  /** Shared dispatcher for the event streams, apart from the calls' (see ConnectionOptions). */
  streamDispatcher?: import('undici').Dispatcher;
  /** CA to trust and this agent's client certificate (mutual TLS with an https master). */
  tls?: import('../../../contracts/client/tls.js').ClientTls | undefined;
  /** Called with each agent channel's connection once open (many simulated agents in one process adjust theirs). */
  onChannelSocket?: (socket: import('node:net').Socket) => void;
  /** "channel" (default): the agent channel where the master serves one; "http": always the POST transport. */
  transport?: AgentTransport;
  /** Reconnect after the stream breaks (default true). */
  reconnect?: boolean;
  maxBackoffMs?: number;
}

export type AgentTransport = 'channel' | 'http';

export class AgentSession {
  private conn: V1Connection;
  private readonly channel: AgentChannelClient | undefined;
  /** The current registration went over the channel: calls go there too. */
  private onChannel = false;
  agentId: string | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private running = false;
  private readonly log: Logger;
  connected = false;
  /** The master takes UPDATE calls grouped by framework (it said so in REGISTERED). */
  private groupedUpdates = false;

  constructor(private readonly opts: AgentSessionOptions) {
    this.agentId = opts.agentId;
    this.log = opts.log ?? logger('agent-session');
    this.conn = new V1Connection({
      master: opts.master,
      path: '/api/v1/agent',
      principal: opts.principal,
      secret: opts.secret,
      pipelining: 4,
      ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      ...(opts.streamDispatcher ? { streamDispatcher: opts.streamDispatcher } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
    if ((opts.transport ?? 'channel') === 'channel') {
      this.channel = new AgentChannelClient({ leader: this.conn.leader, path: '/api/v1/agent', principal: opts.principal, secret: opts.secret, tls: opts.tls, onSocket: opts.onChannelSocket });
    }
  }

  /** Which transport the current registration uses. */
  get transport(): AgentTransport {
    return this.onChannel ? 'channel' : 'http';
  }

  /** Register and keep the session up; resolves after the first successful registration. */
  start(): Promise<string> {
    this.running = true;
    return new Promise((resolve, reject) => {
      this.firstRegistration = resolve;
      const loop = async (): Promise<void> => {
        let backoff = 100;
        while (this.running) {
          try {
            const { done } = await this.register();
            backoff = 100;
            await done;
          } catch (err) {
            if (this.firstRegistration && this.opts.reconnect === false) {
              reject(err);
              return;
            }
            this.log.warn({ err: errorMessage(err), backoffMs: backoff }, 'cannot reach the master; retrying');
          }
          this.connected = false;
          this.stopHeartbeat();
          if (!this.running || this.opts.reconnect === false) break;
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, this.opts.maxBackoffMs ?? 5000);
        }
        if (this.firstRegistration) reject(new Error('agent session stopped before registering'));
      };
      void loop();
    });
  }

  private firstRegistration: ((id: string) => void) | undefined;

  private async register(): Promise<{ done: Promise<void> }> {
    const snap = this.opts.snapshot();
    const call = {
      type: 'REGISTER',
      register: {
        agent_info: { ...this.opts.info, ...(this.agentId ? { id: { value: this.agentId } } : {}) },
        version: this.opts.version ?? 'corral',
        capabilities: this.opts.capabilities ?? AGENT_CAPABILITIES,
        tasks: snap.tasks,
        frameworks: snap.frameworks,
      },
    };
    const onEvent = (raw: Record<string, unknown>): void => {
      const e = raw as unknown as AgentEvent;
      if (e.type === 'REGISTERED') {
        this.agentId = e.registered.agent_id.value;
        this.groupedUpdates = hasCapability(e.registered.master_info, 'GROUPED_STATUS_UPDATES');
        this.connected = true;
        this.startHeartbeat(e.registered.heartbeat_interval_seconds * 1000);
        this.opts.onRegistered?.(this.agentId, e.registered.checkpointed_resources);
        this.firstRegistration?.(this.agentId);
        this.firstRegistration = undefined;
      }
      if (e.type === 'LAUNCH' && this.agentId) expandCompactLaunch(e.launch, { value: this.agentId });
      if (e.type === 'SHUTDOWN') {
        this.log.warn({ message: e.shutdown.message }, 'master asked this agent to shut down');
      }
      if (e.type === 'ERROR') this.log.warn({ code: e.error.code }, 'the master refused a call: %s', e.error.message);
      this.opts.onEvent(e);
    };
    if (this.channel) {
      try {
        const opened = await this.channel.subscribe(call, onEvent);
        this.onChannel = true;
        return opened;
      } catch (err) {
        if (!(err instanceof ChannelUnavailable)) throw err;
        this.log.info({ reason: err.message }, 'the master serves no agent channel; registering over POST');
      }
    }
    this.onChannel = false;
    return this.conn.subscribe(call, onEvent);
  }

  private startHeartbeat(ms: number): void {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      this.call({ type: 'HEARTBEAT' }).catch((err) => this.log.debug({ err: errorMessage(err) }, 'heartbeat failed'));
    }, ms);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Status updates, in the form the master announced it takes. */
  sendUpdates(groups: StatusUpdateGroup[]): Promise<unknown> {
    return this.call(agentUpdateCall(groups, this.groupedUpdates));
  }

  call(body: Record<string, unknown>): Promise<unknown> {
    const call = Object.assign({}, body); // not { ...body, agent_id }: see StatusUpdateManager.add
    call.agent_id = { value: this.agentId };
    return this.onChannel && this.channel ? this.channel.send(call) : this.conn.call(call);
  }

  /** Break the connection to the master as a network failure would; a session that reconnects comes back. */
  disconnect(): void {
    this.channel?.disconnect();
    this.conn.disconnect();
  }

  /** Leave without telling the master (as a crash would). */
  async stop(): Promise<void> {
    this.running = false;
    this.stopHeartbeat();
    this.connected = false;
    this.channel?.close();
    await this.conn.close();
  }

  /** Leave for good: the master forgets this agent. */
  async unregister(): Promise<void> {
    if (this.connected) await this.call({ type: 'UNREGISTER' }).catch(() => undefined);
    // The channel's last call leaves before it closes.
    this.channel?.close(true);
    await this.stop();
  }
}
