/**
 * The HTTP edge of a replicated master. Only the leader serves the scheduler,
 * operator, agent and store APIs; on any other master they answer as a Mesos
 * master does when it is not elected:
 *
 *   307 Temporary Redirect, `Location: //<leader host>:<port><same path and query>`,
 *   503 with a JSON error while no leader is known (or the leader is still
 *   recovering its registry).
 *
 * The Location is scheme-relative, exactly the form a Mesos master sends
 * (src/master/http.cpp, Master::Http::redirect: "//" + hostname + ":" + port),
 * so the client keeps the scheme it used. Clients written against Mesos rely
 * on that form: some prefix the scheme themselves (`scheme + ":" + location`)
 * or match `^//host:port`, and would break on an absolute URL.
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
      redirect(ctx, schemeRelative(leader.url, l.self.url));
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
      redirect(ctx, schemeRelative(leader.url, l.self.url) + target);
      return;
    }
    if (!l) throw new CorralError('UNAVAILABLE', 'this master is starting; no leading master is known yet');
    throw notLeading(leader, l.self, l.leading, l.cutOff());
  }
}

/**
 * `//host:port[/base]` of the leader's URL, as Mesos forms its Location; the
 * absolute URL when its scheme is not the one this master serves (a client
 * that came in over http must not be sent to an https leader as http).
 */
export function schemeRelative(leaderUrl: string, ownUrl: string): string {
  let leader: URL;
  let own: URL;
  try {
    leader = new URL(leaderUrl);
    own = new URL(ownUrl);
  } catch {
    return leaderUrl;
  }
  if (leader.protocol !== own.protocol || (leader.protocol !== 'http:' && leader.protocol !== 'https:')) return leaderUrl;
  const port = leader.port || (leader.protocol === 'https:' ? '443' : '80');
  const base = leader.pathname.replace(/\/+$/, '');
  return `//${leader.hostname}:${port}${base}`;
}

function redirect(ctx: RequestContext, location: string): void {
  const body = JSON.stringify({ code: 'TEMPORARY_REDIRECT', message: `served by the leading master: ${location}`, location });
  ctx.res.writeHead(307, { Location: location, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  ctx.res.end(body);
  // Leave a keep-alive connection usable: the unread request body is drained, not parsed.
  if (!ctx.req.readableEnded) ctx.req.resume();
}
