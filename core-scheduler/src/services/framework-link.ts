/**
 * The service framework's subscription to the master, kept alive: subscribe
 * (re-subscribing with the stored framework id is a failover that keeps the
 * tasks), notice a dead stream (ended, or no heartbeat for three intervals),
 * reconnect with capped exponential backoff, and re-subscribe with a new role
 * list when an app brings a role the framework does not have yet.
 *
 * Each attempt is its own SchedulerClient; the one whose SUBSCRIBED arrived
 * last is current and only its events are passed on (the replaced stream's
 * "failed over" error is our own doing).
 */
import { CorralError, errorMessage, unavailable } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import { SchedulerClient } from '../../../contracts/client/scheduler-client.js';
import { LeaderTracker, type MasterSpec } from '../../../contracts/client/masters.js';
import type { SchedulerEvent, V1FrameworkInfo } from '../../../contracts/v1/v1.js';

interface FrameworkLinkOptions {
  /** The master, or several: every attempt subscribes at the leader among them. */
  master: MasterSpec;
  principal?: string | undefined;
  secret?: string | undefined;
  /** CA and client certificate for an https master. */
  tls?: import('../../../contracts/client/tls.js').ClientTls | undefined;
  /** Everything but id and roles, which the link manages. */
  info: Omit<V1FrameworkInfo, 'id' | 'roles' | 'role'>;
  roles: string[];
  frameworkId: string | undefined;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  subscribeTimeoutMs: number;
  log: Logger;
  onSubscribed(frameworkId: string, isNew: boolean): void;
  onEvent(e: SchedulerEvent): void;
  onDisconnected(why: string): void;
  /** The framework id to remember for the next failover (undefined: forget it, register anew). */
  saveFrameworkId(id: string | undefined): Promise<void>;
}

export class FrameworkLink {
  private current: SchedulerClient | undefined;
  private stopped = false;
  private superseded = false;
  private delayMs: number;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private lastEventAt = 0;
  private heartbeatMs = 15_000;
  private connecting: Promise<void> | undefined;
  frameworkId: string | undefined;
  roles: string[];
  lastError: string | undefined;
  /** Shared by every attempt's client: a re-subscription starts at the leader the last one found. */
  private readonly leader: LeaderTracker;
  subscribedAt: number | undefined;

  constructor(private readonly opts: FrameworkLinkOptions) {
    this.frameworkId = opts.frameworkId;
    this.leader = new LeaderTracker(opts.master);
    this.roles = [...opts.roles];
    this.delayMs = opts.reconnectInitialMs;
  }

  get connected(): boolean {
    return this.current !== undefined;
  }

  start(): void {
    this.watchdog = setInterval(() => this.checkHeartbeat(), 500);
    this.watchdog.unref();
    void this.connect();
  }

  /** One connection attempt at a time; failures schedule the next with backoff. */
  private connect(): Promise<void> {
    this.connecting ??= this.subscribeWith(this.roles)
      .then(() => {
        this.delayMs = this.opts.reconnectInitialMs;
        this.lastError = undefined;
      })
      .catch(async (err: unknown) => {
        this.lastError = errorMessage(err);
        if (this.isForgotten(err)) {
          this.opts.log.warn({ framework: this.frameworkId }, 'the master no longer knows this framework; registering anew: %s', this.lastError);
          this.frameworkId = undefined;
          await this.opts.saveFrameworkId(undefined).catch((e: unknown) => this.opts.log.error({ err: e }, 'cannot forget the framework id'));
          this.scheduleRetry(0);
          return;
        }
        this.opts.log.warn({ retryMs: this.delayMs }, 'subscribing to the master failed: %s', this.lastError);
        this.scheduleRetry(this.delayMs);
        this.delayMs = Math.min(this.delayMs * 2, this.opts.reconnectMaxMs);
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private isForgotten(err: unknown): boolean {
    if (this.frameworkId === undefined || !(err instanceof CorralError)) return false;
    return (err.code === 'NOT_FOUND' && /unknown framework/.test(err.message)) || (err.code === 'FORBIDDEN' && /has been removed/.test(err.message));
  }

  private scheduleRetry(ms: number): void {
    if (this.stopped || this.superseded || this.current) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), ms);
  }

  private async subscribeWith(roles: string[]): Promise<void> {
    const info: V1FrameworkInfo = { ...this.opts.info, roles, ...(this.frameworkId ? { id: { value: this.frameworkId } } : {}) };
    const client: SchedulerClient = new SchedulerClient({
      master: this.leader,
      principal: this.opts.principal,
      secret: this.opts.secret,
      tls: this.opts.tls,
      framework: info,
      onEvent: (e) => this.onClientEvent(client, roles, e),
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        client.subscribe(),
        new Promise((_, reject) => (timer = setTimeout(() => reject(unavailable(`no SUBSCRIBED from the master within ${this.opts.subscribeTimeoutMs} ms`)), this.opts.subscribeTimeoutMs))),
      ]);
    } catch (err) {
      if (this.current === client) this.current = undefined;
      await client.close().catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const ended = (why: string): void => this.lost(client, why);
    client.done?.then(
      () => ended('the master closed the event stream'),
      (err: unknown) => ended(`event stream failed: ${errorMessage(err)}`),
    );
  }

  private onClientEvent(client: SchedulerClient, roles: string[], e: SchedulerEvent): void {
    if (e.type === 'SUBSCRIBED') {
      const old = this.current;
      this.current = client;
      this.roles = roles;
      this.lastEventAt = Date.now();
      this.subscribedAt = Date.now();
      this.heartbeatMs = Math.max(100, e.subscribed.heartbeat_interval_seconds * 1000);
      if (old && old !== client) void old.close().catch(() => undefined);
      const id = e.subscribed.framework_id.value;
      const isNew = id !== this.frameworkId;
      this.frameworkId = id;
      if (isNew) void this.opts.saveFrameworkId(id).catch((err: unknown) => this.opts.log.error({ err }, 'cannot store the framework id'));
      this.opts.log.info({ framework: id, roles, failover: !isNew }, isNew ? 'registered with the master' : 're-subscribed to the master (failover)');
      this.opts.onSubscribed(id, isNew);
      return;
    }
    if (client !== this.current) return;
    this.lastEventAt = Date.now();
    if (e.type === 'ERROR') {
      this.lastError = e.error.message;
      this.opts.log.error({ framework: this.frameworkId }, 'master sent an error: %s', e.error.message);
      // Someone else subscribed with our id: do not fight over it.
      if (/failed over/i.test(e.error.message)) this.superseded = true;
      this.lost(client, e.error.message);
      return;
    }
    this.opts.onEvent(e);
  }

  private lost(client: SchedulerClient, why: string): void {
    if (client !== this.current) return;
    this.current = undefined;
    this.lastError = why;
    void client.close().catch(() => undefined);
    this.opts.log.warn({ framework: this.frameworkId }, 'disconnected from the master: %s', why);
    this.opts.onDisconnected(why);
    this.scheduleRetry(this.delayMs);
  }

  private checkHeartbeat(): void {
    if (this.current && Date.now() - this.lastEventAt > 3 * this.heartbeatMs) this.lost(this.current, 'no heartbeat from the master for 3 intervals');
  }

  /**
   * Make the framework's roles `roles` (a superset of the current ones): a
   * re-subscription, which the master checks against its ACLs. On refusal the
   * current subscription stays and the error is thrown.
   */
  async setRoles(roles: string[]): Promise<void> {
    if (roles.length === this.roles.length && roles.every((r) => this.roles.includes(r))) return;
    if (!this.current) throw unavailable('not subscribed to the master; new roles can only be added while connected');
    await this.subscribeWith(roles);
  }

  /** A call on the current subscription. */
  async call<T>(fn: (c: SchedulerClient) => Promise<T>): Promise<T> {
    const c = this.current;
    if (!c) throw unavailable('not subscribed to the master');
    return fn(c);
  }

  get isSuperseded(): boolean {
    return this.superseded;
  }

  /** Drop the subscription without tearing the framework down: its tasks keep running for the failover timeout. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    const c = this.current;
    this.current = undefined;
    await this.connecting?.catch(() => undefined);
    await c?.close().catch(() => undefined);
  }
}
