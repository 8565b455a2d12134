/**
 * The HTTP edge of a replicated master. Only the leader serves the scheduler,
 * operator, agent and store APIs; on any other master they answer as a Mesos
 * master does when it is not elected:
 *
 *   307 Temporary Redirect, `Location: <leader url><same path and query>`,
 *   503 with a JSON error while no leader is known (or the leader is still
 *   recovering its registry).
 *
 * `GET /master/redirect` answers 307 to the leader's base URL on every master,
 * the leader included, and `GET /health` answers everywhere with who leads.
 */
import type { RequestContext } from '../../../../common/http/server.js';
import { HttpServer } from '../../../../common/http/server.js';
import { CorralError } from '../../../../contracts/errors.js';
import { notLeading, type Leadership } from '../leadership.js';

type Handler = Parameters<HttpServer['route']>[2];
type RouteOptions = Parameters<HttpServer['route']>[3];

/** Paths only the leader serves. */
const isGated = (path: string): boolean => path.startsWith('/api/') || path.startsWith('/master/');

/**
 * An HttpServer whose leader-only routes pass through the gate: the API
 * modules mount on it unchanged, and serve only while this master leads.
 */
export class LeaderGatedServer extends HttpServer {
  constructor(
    opts: ConstructorParameters<typeof HttpServer>[0],
    private readonly leadership: () => Leadership | undefined,
  ) {
    super(opts);
  }

  override route(method: string, path: string, handler: Handler, opts?: RouteOptions): this {
    const gated: Handler = (ctx) => (this.leadership()?.serving ? handler(ctx) : this.refer(ctx));
    return super.route(method, path, isGated(path) ? gated : handler, opts);
  }

  /** Mount the routes every replicated master answers: /master/redirect and the /master/* catch-all. */
  mountLeaderRoutes(health: () => Record<string, unknown>): void {
    super.route('GET', '/master/redirect', (ctx) => {
      const l = this.leadership();
      const leader = l?.leader;
      if (!leader) throw l ? notLeading(undefined, l.self, false, l.cutOff()) : new CorralError('UNAVAILABLE', 'no leading master is known yet (election in progress); retry shortly');
      // The leader's base URL, not this path: following it must not loop back here.
      redirect(ctx, leader.url);
    });
    // Anything else under /master/ belongs to the leader (Mesos serves its endpoints there too).
    super.route('*', '/master/*', (ctx) => {
      if (this.leadership()?.serving) throw new CorralError('NOT_FOUND', `no such endpoint: ${ctx.method} ${ctx.path}`);
      return this.refer(ctx);
    });
    super.route('GET', '/health', () => ({ healthy: true, ...health(), ...(this.leadership()?.status() ?? { leading: false, state: 'starting', leader: null }) }));
  }

  private refer(ctx: RequestContext): void {
    const l = this.leadership();
    const leader = l?.leader;
    if (l && leader && !l.leading) {
      // The request target as sent (path and query); an absolute-form target keeps only its path.
      const target = ctx.req.url?.startsWith('/') ? ctx.req.url : ctx.path;
      redirect(ctx, leader.url + target);
      return;
    }
    if (!l) throw new CorralError('UNAVAILABLE', 'this master is starting; no leading master is known yet');
    throw notLeading(leader, l.self, l.leading, l.cutOff());
  }
}

function redirect(ctx: RequestContext, location: string): void {
  const body = JSON.stringify({ code: 'TEMPORARY_REDIRECT', message: `served by the leading master: ${location}`, location });
  ctx.res.writeHead(307, { Location: location, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  ctx.res.end(body);
  // Leave a keep-alive connection usable: the unread request body is drained, not parsed.
  if (!ctx.req.readableEnded) ctx.req.resume();
}
