/**
 * The live feed from the master: the operator API's SUBSCRIBE stream (first
 * the whole state, then every change), reconnected with capped exponential
 * backoff. While the master is away the last known state keeps being served;
 * `staleSeconds` says for how long, and the metrics export it.
 */
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { V1Connection } from '../../../contracts/client/connection.js';
import { OperatorClient } from '../../../contracts/client/operator-client.js';
import { LeaderTracker } from '../../../contracts/client/masters.js';
import type { OperatorEvent } from '../../../contracts/v1/operator-events.js';
import { errorMessage } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import { z } from '../../../common/validate.js';

interface MasterFeedOptions {
  /** The master, or several separated by commas: the feed follows the leader among them. */
  url: string;
  principal?: string | undefined;
  secret?: string | undefined;
  /** CA and client certificate for an https master. */
  tls?: import('../../../contracts/client/tls.js').ClientTls | undefined;
  initialBackoffMs: number;
  maxBackoffMs: number;
  log: Logger;
  onEvent(e: OperatorEvent): void;
  /** The leading master's address, resolved to an IP, each time we (re)connect. */
  onLeader(leader: { ip: string; port: number; hostname: string }): void;
}

/** Only the envelope is checked here; the view reads fields defensively. A malformed record is skipped, not fatal. */
const eventEnvelope = z.looseObject({ type: z.string() });

const masterInfo = z.looseObject({
  get_master: z.looseObject({ master_info: z.looseObject({ hostname: z.string(), port: z.number(), address: z.looseObject({ ip: z.string().optional() }).optional() }) }),
});

export class MasterFeed {
  connected = false;
  /** When the last record (event or heartbeat) arrived; 0 before the first. */
  lastContact = 0;
  /** When the stream was last lost; 0 while connected. */
  disconnectedAt = 0;
  reconnects = 0;
  private conn: V1Connection | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** Shared by the GET_MASTER call and the stream: both go to the leader the other found. */
  private readonly leader: LeaderTracker;

  constructor(private readonly opts: MasterFeedOptions) {
    this.leader = new LeaderTracker(opts.url);
  }

  start(): void {
    this.disconnectedAt = Date.now();
    this.loop = this.run();
  }

  /** Seconds the served state may be behind the master (0 while connected). */
  get staleSeconds(): number {
    return this.connected ? 0 : (Date.now() - this.disconnectedAt) / 1000;
  }

  private async run(): Promise<void> {
    let backoff = this.opts.initialBackoffMs;
    let failures = 0;
    while (!this.stopped) {
      try {
        await this.session();
        backoff = this.opts.initialBackoffMs;
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        // Say it once at warn level; the retries that follow are debug noise.
        const level = failures++ === 0 ? 'warn' : 'debug';
        this.opts.log[level]({ err: errorMessage(err), retryMs: backoff }, 'master event stream unavailable; serving the last known state');
      }
      if (this.connected) {
        this.connected = false;
        this.disconnectedAt = Date.now();
      }
      if (this.stopped) break;
      this.reconnects++;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, backoff);
        this.wake = () => (clearTimeout(t), resolve());
      });
      backoff = Math.min(this.opts.maxBackoffMs, backoff * 2);
    }
  }

  private async session(): Promise<void> {
    const cred = { principal: this.opts.principal, secret: this.opts.secret, tls: this.opts.tls };
    await this.resolveLeader(cred);
    this.conn = new V1Connection({ master: this.leader, path: '/api/v1', ...cred });
    try {
      const { done } = await this.conn.subscribe({ type: 'SUBSCRIBE' }, (raw) => this.onRecord(raw));
      await done;
      if (!this.stopped) this.opts.log.warn('master closed the event stream');
    } finally {
      const c = this.conn;
      this.conn = undefined;
      await c.close().catch(() => undefined);
    }
  }

  private onRecord(raw: unknown): void {
    this.lastContact = Date.now();
    const env = eventEnvelope.safeParse(raw);
    if (!env.success) {
      this.opts.log.warn('skipping a malformed record from the master');
      return;
    }
    if (env.data.type === 'SUBSCRIBED' && !this.connected) {
      this.connected = true;
      this.disconnectedAt = 0;
      this.opts.log.info({ master: this.conn?.streamMaster ?? this.opts.url }, 'following the master event stream');
    }
    try {
      this.opts.onEvent(raw as OperatorEvent);
    } catch (err) {
      this.opts.log.warn({ err: errorMessage(err), type: env.data.type }, 'could not apply a master event');
    }
  }

  private async resolveLeader(cred: { principal?: string | undefined; secret?: string | undefined }): Promise<void> {
    const client = new OperatorClient({ master: this.leader, ...cred });
    try {
      const info = masterInfo.parse(await client.call('GET_MASTER')).get_master.master_info;
      const host = info.address?.ip || info.hostname;
      const ip = isIP(host) ? host : (await lookup(host)).address;
      this.opts.onLeader({ ip, port: info.port, hostname: info.hostname });
    } finally {
      await client.close();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conn?.disconnect();
    this.wake?.();
    await this.loop;
  }
}
