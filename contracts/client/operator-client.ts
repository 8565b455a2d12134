/**
 * Client of the master's v1 operator API (POST /api/v1), at the leading
 * master of a list (see masters.ts).
 */
import { Pool } from 'undici';
import { basicAuthHeader } from './auth-header.js';
import { CallError } from './connection.js';
import { LeaderRedirect, MasterUnreachable, redirectTarget, trackerFor, transportFailure, viaLeader, type LeaderTracker, type MasterSpec } from './masters.js';
import { CorralError } from '../errors.js';
import { tlsConnect, tlsFailure, type ClientTls } from './tls.js';

interface OperatorClientOptions {
  /** One master URL, several (array or comma-separated), or a tracker shared with other clients. */
  master: MasterSpec | LeaderTracker;
  principal?: string | undefined;
  secret?: string | undefined;
  /** CA to trust and client certificate to present (https masters). */
  tls?: ClientTls | undefined;
}

export class OperatorClient {
  readonly leader: LeaderTracker;
  /** Pools by master URL. */
  private readonly pools = new Map<string, Pool>();
  private readonly headers: Record<string, string>;
  private closed = false;
  private readonly tls: ClientTls | undefined;

  constructor(opts: OperatorClientOptions) {
    this.tls = opts.tls;
    this.leader = trackerFor(opts.master);
    this.poolFor(this.leader.url);
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
  }

  private poolFor(url: string): Pool {
    let pool = this.pools.get(url);
    if (!pool) {
      if (this.closed) throw new CorralError('UNAVAILABLE', 'the operator client is closed');
      pool = new Pool(url, { connections: 1, ...tlsConnect(this.tls) });
      this.pools.set(url, pool);
    }
    return pool;
  }

  /** One call; resolves with the JSON reply (undefined for 202), throws CallError with the master's message. */
  call<T = Record<string, unknown>>(type: string, body?: Record<string, unknown>): Promise<T> {
    const payload = JSON.stringify({ type, ...body });
    return viaLeader(this.leader, (url) => this.callAt<T>(url, payload), { what: 'to /api/v1' });
  }

  private async callAt<T>(url: string, payload: string): Promise<T> {
    let res;
    try {
      res = await this.poolFor(url).request({ path: '/api/v1', method: 'POST', headers: this.headers, body: payload });
    } catch (err) {
      if (err instanceof CorralError) throw err;
      const tls = tlsFailure(err, url);
      if (tls) throw tls;
      throw new MasterUnreachable(`cannot reach the master at ${url}: ${(err as Error).message}`, transportFailure(err) !== 'refused', err);
    }
    const text = await res.body.text();
    const leader = redirectTarget(res.statusCode, res.headers.location, url);
    if (leader !== undefined) throw new LeaderRedirect(res.statusCode, leader, String(res.headers.location));
    if (res.statusCode >= 300) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // plain text error
      }
      throw new CallError(res.statusCode, message);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}
