/**
 * Client of the master's v1 operator API (POST /api/v1).
 */
import { Pool } from 'undici';
import { basicAuthHeader } from './auth-header.js';
import { CallError } from './connection.js';
import { CorralError } from '../errors.js';

interface OperatorClientOptions {
  master: string;
  principal?: string | undefined;
  secret?: string | undefined;
}

export class OperatorClient {
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;

  constructor(private readonly opts: OperatorClientOptions) {
    this.pool = new Pool(opts.master, { connections: 1 });
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
  }

  /** One call; resolves with the JSON reply (undefined for 202), throws CallError with the master's message. */
  async call<T = Record<string, unknown>>(type: string, body?: Record<string, unknown>): Promise<T> {
    let res;
    try {
      res = await this.pool.request({ path: '/api/v1', method: 'POST', headers: this.headers, body: JSON.stringify({ type, ...body }) });
    } catch (err) {
      throw new CorralError('UNAVAILABLE', `cannot reach the master at ${this.opts.master}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
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

  close(): Promise<void> {
    return this.pool.close();
  }
}
