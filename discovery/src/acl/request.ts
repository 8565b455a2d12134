/**
 * The ACL side of one HTTP request: which token it carries (`?token=`, then
 * `X-Consul-Token`, then `Authorization: Bearer`, Consul's order) and what
 * that token may do. With ACLs off every request may do everything.
 */
import { CorralError } from '../../../contracts/errors.js';
import type { RequestContext } from '../../../common/http/server.js';
import { Authorizer } from './authorizer.js';
import type { AclState } from './state.js';

export function requestToken(ctx: RequestContext): string | undefined {
  const q = ctx.query.get('token');
  if (q) return q;
  const h = ctx.req.headers['x-consul-token'];
  if (typeof h === 'string' && h) return h;
  const auth = ctx.req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  return undefined;
}

/** Consul's wording (acl.PermissionDeniedError), which clients and operators grep for. */
export function permissionDenied(authz: Authorizer, permission: string, segment?: string): CorralError {
  const who = authz.accessorId ? `token with AccessorID '${authz.accessorId}'` : 'anonymous token';
  return new CorralError('FORBIDDEN', `Permission denied: ${who} lacks permission '${permission}'${segment === undefined ? '' : ` on ${JSON.stringify(segment)}`}`);
}

export class Acl {
  private readonly open = Authorizer.OPEN;

  constructor(readonly state: AclState | undefined) {}

  get enabled(): boolean {
    return this.state !== undefined;
  }

  async authorize(ctx: RequestContext): Promise<Authorizer> {
    if (!this.state) return this.open;
    return this.state.resolve(requestToken(ctx));
  }

  /** What DNS answers follow: the anonymous token's rights (everything with ACLs off). */
  anonymous(): Authorizer {
    return this.state ? this.state.anonymous() : this.open;
  }

  /** Note on a read that hid entries, as Consul 1.13+ does. */
  static markFiltered(ctx: RequestContext, filtered: boolean): void {
    if (filtered) ctx.res.setHeader('X-Consul-Results-Filtered-By-ACLs', 'true');
  }

  /** ACL endpoints need ACLs on; Consul answers 401 "ACL support disabled". */
  requireEnabled(): AclState {
    if (!this.state) throw new CorralError('UNAUTHENTICATED', 'ACL support disabled');
    return this.state;
  }
}
