/**
 * Authentication (HTTP Basic, principal + secret) and authorization (which
 * principal may use which role, operate the cluster, or run an agent).
 * The security file holds both, like Mesos's --credentials and --acls:
 *
 *   credentials:
 *     - { principal: marathon, secret: "..." }
 *   acls:
 *     register_frameworks:
 *       - { principals: [marathon], roles: ["*", web] }
 *     operators: [admin]
 *     agents: [agent]
 *     store: [ipam, discovery]   # store API users; default: operators and agents
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { CorralError } from '../../../contracts/errors.js';
import { readConfigFile } from '../../../common/config.js';
import { parseInput, z } from '../../../common/validate.js';

const principals = z.union([z.literal('ANY'), z.array(z.string().min(1))]);

export const securitySchema = z.object({
  credentials: z.array(z.object({ principal: z.string().min(1).max(256), secret: z.string().min(1).max(1024) })).default([]),
  acls: z
    .object({
      register_frameworks: z.array(z.object({ principals, roles: z.union([z.literal('ANY'), z.array(z.string().min(1))]) })).default([]),
      operators: principals.default([]),
      agents: principals.default([]),
      /** Who may use the store API (POST /api/v1/store); unset = operators and agents. */
      store: principals.optional(),
    })
    .default({ register_frameworks: [], operators: [], agents: [] }),
});
export type SecurityConfig = z.output<typeof securitySchema>;

export function loadSecurity(file: string): SecurityConfig {
  return parseInput(securitySchema, readConfigFile(file), `security file ${file}`);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const allows = (list: 'ANY' | string[], who: string): boolean => list === 'ANY' || list.includes(who);

export class Authority {
  private readonly secrets = new Map<string, Buffer>();

  /** `undefined` config = authentication off (only by explicit flag, for local use). */
  constructor(private readonly config: SecurityConfig | undefined) {
    for (const c of config?.credentials ?? []) this.secrets.set(c.principal, digest(c.secret));
  }

  get enabled(): boolean {
    return this.config !== undefined;
  }

  /** The authenticated principal, or undefined when authentication is off and none was given. */
  authenticate(req: IncomingMessage): string | undefined {
    const header = req.headers.authorization;
    if (!this.config) return header ? basicPrincipal(header) : undefined;
    if (!header) throw new CorralError('UNAUTHENTICATED', 'authentication required: send HTTP Basic credentials (principal and secret)');
    const [scheme, token] = header.split(' ', 2);
    if (scheme?.toLowerCase() !== 'basic' || !token) throw new CorralError('UNAUTHENTICATED', 'only HTTP Basic authentication is supported');
    const decoded = Buffer.from(token, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new CorralError('UNAUTHENTICATED', 'malformed Basic credentials');
    const principal = decoded.slice(0, colon);
    const want = this.secrets.get(principal);
    // Compare digests so the comparison takes the same time whatever the secret's length.
    if (!want || !timingSafeEqual(want, digest(decoded.slice(colon + 1)))) throw new CorralError('UNAUTHENTICATED', `invalid credentials for principal "${principal}"`);
    return principal;
  }

  authorizeRoles(principal: string | undefined, roles: string[]): void {
    if (!this.config) return;
    const rules = this.config.acls.register_frameworks.filter((r) => allows(r.principals, principal ?? ''));
    for (const role of roles) {
      if (!rules.some((r) => r.roles === 'ANY' || r.roles.includes(role))) {
        throw new CorralError('FORBIDDEN', `principal "${principal}" is not allowed to use role "${role}"`);
      }
    }
  }

  authorizeOperator(principal: string | undefined): void {
    if (!this.config) return;
    if (!allows(this.config.acls.operators, principal ?? '')) throw new CorralError('FORBIDDEN', `principal "${principal}" is not an operator`);
  }

  authorizeStore(principal: string | undefined): void {
    if (!this.config) return;
    const { store, operators, agents } = this.config.acls;
    const who = principal ?? '';
    const allowed = store ? allows(store, who) : allows(operators, who) || allows(agents, who);
    if (!allowed) throw new CorralError('FORBIDDEN', `principal "${principal}" may not use the store API (acls.store${store ? '' : ', by default operators and agents'})`);
  }

  authorizeAgent(principal: string | undefined): void {
    if (!this.config) return;
    if (!allows(this.config.acls.agents, principal ?? '')) throw new CorralError('FORBIDDEN', `principal "${principal}" may not register agents`);
  }
}

function basicPrincipal(header: string): string | undefined {
  const [scheme, token] = header.split(' ', 2);
  if (scheme?.toLowerCase() !== 'basic' || !token) return undefined;
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? decoded.slice(0, colon) : undefined;
}
