/**
 * Client of the service framework's HTTP API, for the CLI, tests and
 * benchmarks. Errors come back as CorralErrors carrying the daemon's message.
 *
 * Replicated daemons: give every daemon's URL (an array, or one string with
 * commas). Calls go to the leader as with replicated masters
 * (contracts/client/masters.ts): a standby's 307 is followed by hand (so the
 * credentials go along), a 503 or a refused connection moves on along the
 * list, within a bounded search.
 */
import { CorralError, errorMessage, type ErrorCode } from '../../../contracts/errors.js';
import { basicAuthHeader } from '../../../contracts/client/auth-header.js';
import { LeaderRedirect, LeaderTracker, redirectTarget, viaLeader, type MasterSpec } from '../../../contracts/client/masters.js';
import { tlsAgent, tlsFailure, type ClientTls } from '../../../contracts/client/tls.js';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import type { RestartStrategy } from './model.js';
import type { AppSummary, AppView } from './views.js';

export const DEFAULT_SERVICES_URL = 'http://127.0.0.1:5052';

interface ServicesClientOptions {
  /** CA to trust (and client certificate) for an https service framework. */
  tls?: ClientTls | undefined;
  /** The daemon, or several (the leader among them is used). */
  url: MasterSpec;
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

function parse(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return text; // not JSON: keep the text
  }
}

function replyMessage(reply: unknown): string {
  return typeof reply === 'object' && reply !== null && 'message' in reply ? String((reply as { message: unknown }).message) : String(reply ?? '').slice(0, 500);
}

/** A 503 from one daemon: tried on the others, and returned as the answer if none does better. */
class Unavailable503 extends CorralError {
  constructor(readonly reply: { status: number; body: unknown }) {
    super('UNAVAILABLE', replyMessage(reply.body) || 'HTTP 503', { status: 503 });
  }
}

export class ServicesClient {
  private readonly headers: Record<string, string> = { accept: 'application/json' };
  private readonly tracker: LeaderTracker;

  /** With TLS: undici's fetch with a dispatcher that trusts the cluster CA. */
  private readonly dispatcher: Dispatcher | undefined;

  constructor(private readonly opts: ServicesClientOptions) {
    this.dispatcher = opts.tls ? tlsAgent(opts.tls) : undefined;
    if (opts.principal !== undefined && opts.secret !== undefined) this.headers.authorization = basicAuthHeader(opts.principal, opts.secret);
    this.tracker = new LeaderTracker(opts.url);
  }

  /** The daemon calls go to now (the leader, once found). */
  get url(): string {
    return this.tracker.url;
  }

  /** One call at the leader; resolves with the status and parsed JSON reply, throws on transport errors only. */
  async request(method: string, path: string, body?: string, contentType = 'application/json'): Promise<{ status: number; body: unknown }> {
    try {
      // A write whose connection broke may have been applied: it is not sent again elsewhere.
      return await viaLeader(this.tracker, (base) => this.attempt(base, method, path, body, contentType), { what: 'to the service framework API', retryBroken: method === 'GET' });
    } catch (err) {
      if (err instanceof Unavailable503) return err.reply;
      if (err instanceof CorralError && err.cause instanceof Unavailable503) return err.cause.reply;
      if (err instanceof CorralError) throw err;
      throw new CorralError('UNAVAILABLE', `cannot reach the service framework at ${this.tracker.url}: ${errorMessage(err)}`, undefined, { cause: err });
    }
  }

  private async attempt(base: string, method: string, path: string, body: string | undefined, contentType: string): Promise<{ status: number; body: unknown }> {
    const init = {
      method,
      headers: body === undefined ? this.headers : { ...this.headers, 'content-type': contentType },
      ...(body === undefined ? {} : { body }),
      // Followed by hand: fetch would drop the Authorization header on the way to another origin.
      redirect: 'manual' as const,
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
    };
    let res: Response;
    try {
      res = this.dispatcher ? ((await undiciFetch(new URL(path, base), { ...init, dispatcher: this.dispatcher })) as unknown as Response) : await fetch(new URL(path, base), init);
    } catch (err) {
      throw tlsFailure(err, base) ?? err;
    }
    const leader = redirectTarget(res.status, res.headers.get('location') ?? undefined, base);
    if (leader) {
      await res.body?.cancel();
      throw new LeaderRedirect(res.status, leader, res.headers.get('location')!);
    }
    const reply = { status: res.status, body: parse(await res.text()) };
    if (res.status === 503) throw new Unavailable503(reply);
    return reply;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, body: reply } = await this.request(method, path, body === undefined ? undefined : JSON.stringify(body));
    if (status >= 300) {
      const message = replyMessage(reply);
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
