/**
 * Client of the service framework's HTTP API, for the CLI, tests and
 * benchmarks. Errors come back as CorralErrors carrying the daemon's message.
 */
import { CorralError, type ErrorCode } from '../../../contracts/errors.js';
import { basicAuthHeader } from '../../../contracts/client/auth-header.js';
import type { RestartStrategy } from './model.js';
import type { AppSummary, AppView } from './views.js';

export const DEFAULT_SERVICES_URL = 'http://127.0.0.1:5052';

interface ServicesClientOptions {
  url: string;
  principal?: string | undefined;
  secret?: string | undefined;
  timeoutMs?: number;
}

interface ServicesInfo {
  framework: { name: string; id: string | null; connected: boolean; roles: string[]; superseded: boolean; lastError: string | null; subscribedAt: string | null };
  master: string;
  apps: number;
}

const CODES: Record<number, ErrorCode> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

export class ServicesClient {
  private readonly headers: Record<string, string> = { accept: 'application/json' };

  constructor(private readonly opts: ServicesClientOptions) {
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
  }

  /** One call; resolves with the status and parsed JSON reply, throws on transport errors only. */
  async request(method: string, path: string, body?: string, contentType = 'application/json'): Promise<{ status: number; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.opts.url), {
        method,
        headers: body === undefined ? this.headers : { ...this.headers, 'content-type': contentType },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new CorralError('UNAVAILABLE', `cannot reach the service framework at ${this.opts.url}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed };
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, body: reply } = await this.request(method, path, body === undefined ? undefined : JSON.stringify(body));
    if (status >= 300) {
      const message = typeof reply === 'object' && reply !== null && 'message' in reply ? String((reply as { message: unknown }).message) : String(reply ?? '').slice(0, 500);
      throw new CorralError(CODES[status] ?? (status >= 500 ? 'UNAVAILABLE' : 'FAILED_PRECONDITION'), message || `HTTP ${status}`, { status });
    }
    return reply as T;
  }

  list(): Promise<AppSummary[]> {
    return this.call('GET', '/v1/apps');
  }

  get(id: string): Promise<AppView> {
    return this.call('GET', `/v1/apps/${encodeURIComponent(id)}`);
  }

  /** Create or update; `app` must carry its id. */
  deploy(app: { id: string } & Record<string, unknown>): Promise<AppView> {
    return this.call('PUT', `/v1/apps/${encodeURIComponent(app.id)}`, app);
  }

  scale(id: string, instances: number): Promise<AppView> {
    return this.call('POST', `/v1/apps/${encodeURIComponent(id)}/scale`, { instances });
  }

  restart(id: string, strategy: RestartStrategy = 'rolling'): Promise<AppView> {
    return this.call('POST', `/v1/apps/${encodeURIComponent(id)}/restart`, { strategy });
  }

  remove(id: string): Promise<AppView> {
    return this.call('DELETE', `/v1/apps/${encodeURIComponent(id)}`);
  }

  info(): Promise<ServicesInfo> {
    return this.call('GET', '/v1/info');
  }
}
