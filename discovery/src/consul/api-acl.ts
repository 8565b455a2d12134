/**
 * /v1/acl/*: bootstrap, policies and tokens in Consul's shapes. Reads need
 * `acl = "read"`, writes `acl = "write"` (a management token has both);
 * /v1/acl/token/self needs only a valid token. SecretIDs are stored hashed,
 * so a token's SecretID is in the answer that creates it and nowhere else
 * ("<hidden>" on reads, as Consul shows to callers without acl:write).
 */
import { createHash } from 'node:crypto';
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import { CorralError } from '../../../contracts/errors.js';
import { z } from '../../../common/validate.js';
import { permissionDenied, requestToken, type Acl } from '../acl/request.js';
import { ANONYMOUS_ACCESSOR, ANONYMOUS_SECRET, isUuid, type AclState, type PolicyDoc, type TokenDoc } from '../acl/state.js';
import { jsonBody, requiredPathParam, setIndex } from './http-util.js';

const HIDDEN = '<hidden>';

const policySchema = z.looseObject({
  ID: z.string().max(64).optional(),
  Name: z.string().min(1).max(128),
  Description: z.string().max(4096).optional(),
  Rules: z
    .string()
    .max(128 * 1024)
    .optional(),
  Datacenters: z.array(z.string().max(64)).max(64).optional(),
});

const link = z.looseObject({ ID: z.string().max(64).optional(), Name: z.string().max(128).optional() });
const tokenSchema = z.looseObject({
  AccessorID: z.string().max(64).optional(),
  SecretID: z.string().max(128).optional(),
  Description: z.string().max(4096).optional(),
  Policies: z.array(link).max(64).optional(),
  Local: z.boolean().optional(),
  // Identities and roles are not kept: a token that asks for them would grant less than its caller expects.
  Roles: z.array(link).max(0, 'roles are not supported; link policies').optional(),
  ServiceIdentities: z.array(z.unknown()).max(0, 'service identities are not supported; link policies').optional(),
  NodeIdentities: z.array(z.unknown()).max(0, 'node identities are not supported; link policies').optional(),
});

const hashOf = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('base64');

function policyOut(p: PolicyDoc): Record<string, unknown> {
  return {
    ID: p.ID,
    Name: p.Name,
    Description: p.Description,
    Rules: p.Rules,
    Datacenters: p.Datacenters,
    Hash: hashOf([p.Name, p.Rules, p.Datacenters]),
    CreateIndex: p.CreateIndex,
    ModifyIndex: p.ModifyIndex,
  };
}

function policyStub(p: PolicyDoc): Record<string, unknown> {
  const { Rules: _rules, ...rest } = policyOut(p);
  return rest;
}

function tokenOut(state: AclState, t: TokenDoc, secret: string): Record<string, unknown> {
  return {
    AccessorID: t.AccessorID,
    SecretID: secret,
    Description: t.Description,
    Policies: t.Policies.map((id) => ({ ID: id, Name: state.policy(id)?.Name ?? '' })),
    Local: t.Local,
    CreateTime: t.CreateTime,
    Hash: hashOf([t.Description, t.Policies, t.Local]),
    CreateIndex: t.CreateIndex,
    ModifyIndex: t.ModifyIndex,
  };
}

function idParam(ctx: RequestContext, what: string): string {
  const id = requiredPathParam(ctx, what);
  if (!isUuid(id)) throw new CorralError('INVALID_ARGUMENT', `${what} must be a UUID`);
  return id;
}

export function mountAcl(server: HttpServer, acl: Acl): void {
  const need = async (ctx: RequestContext, want: 'read' | 'write'): Promise<AclState> => {
    const state = acl.requireEnabled();
    const authz = await acl.authorize(ctx);
    if (!authz.allowedGlobal('acl', want)) throw permissionDenied(authz, `acl:${want}`);
    return state;
  };
  const index = async (ctx: RequestContext, state: AclState, i?: number): Promise<void> => setIndex(ctx, i ?? Math.max(...state.tokenList().map((t) => t.ModifyIndex), 1));

  server.route('PUT', '/v1/acl/bootstrap', async (ctx) => {
    const state = acl.requireEnabled();
    // Consul takes an operator-made secret in the body (BootstrapSecret, a UUID).
    const b = await jsonBody(ctx, z.looseObject({ BootstrapSecret: z.string().max(64).optional() }), 'ACL bootstrap', true);
    if (b.BootstrapSecret && !isUuid(b.BootstrapSecret)) throw new CorralError('INVALID_ARGUMENT', 'BootstrapSecret must be a UUID');
    const made = await state.bootstrap(b.BootstrapSecret || undefined);
    if (!made) throw new CorralError('FORBIDDEN', `Permission denied: ACL bootstrap no longer allowed (reset index: ${await state.bootstrapIndex()})`);
    return tokenOut(state, made.doc, made.secret);
  });

  // ---- policies -------------------------------------------------------------

  server.route('PUT', '/v1/acl/policy', async (ctx) => {
    const state = await need(ctx, 'write');
    const b = await jsonBody(ctx, policySchema, 'ACL policy');
    if (b.ID) throw new CorralError('INVALID_ARGUMENT', 'Policy ID must not be set on creation; PUT /v1/acl/policy/<ID> updates');
    return policyOut(await state.putPolicy({ Name: b.Name, Description: b.Description ?? '', Rules: b.Rules ?? '', Datacenters: b.Datacenters ?? [] }));
  });

  server.route('GET', '/v1/acl/policy/name/*', async (ctx) => {
    const state = await need(ctx, 'read');
    const p = state.policyByName(requiredPathParam(ctx, 'policy name'));
    if (!p) throw new CorralError('NOT_FOUND', 'ACL policy not found');
    setIndex(ctx, p.ModifyIndex);
    return policyOut(p);
  });

  server.route('GET', '/v1/acl/policy/*', async (ctx) => {
    const state = await need(ctx, 'read');
    const p = state.policy(idParam(ctx, 'policy ID'));
    if (!p) throw new CorralError('NOT_FOUND', 'ACL policy not found');
    setIndex(ctx, p.ModifyIndex);
    return policyOut(p);
  });

  server.route('PUT', '/v1/acl/policy/*', async (ctx) => {
    const state = await need(ctx, 'write');
    const id = idParam(ctx, 'policy ID');
    const b = await jsonBody(ctx, policySchema, 'ACL policy');
    if (b.ID && b.ID !== id) throw new CorralError('INVALID_ARGUMENT', 'Policy ID in URL and payload do not match');
    return policyOut(await state.putPolicy({ ID: id, Name: b.Name, Description: b.Description ?? '', Rules: b.Rules ?? '', Datacenters: b.Datacenters ?? [] }));
  });

  server.route('DELETE', '/v1/acl/policy/*', async (ctx) => {
    const state = await need(ctx, 'write');
    await state.deletePolicy(idParam(ctx, 'policy ID'));
    return true;
  });

  server.route('GET', '/v1/acl/policies', async (ctx) => {
    const state = await need(ctx, 'read');
    const list = state.policyList();
    setIndex(ctx, Math.max(1, ...list.map((p) => p.ModifyIndex)));
    return list.map(policyStub);
  });

  // ---- tokens ---------------------------------------------------------------

  server.route('PUT', '/v1/acl/token', async (ctx) => {
    const state = await need(ctx, 'write');
    const b = await jsonBody(ctx, tokenSchema, 'ACL token');
    if (b.AccessorID !== undefined && !isUuid(b.AccessorID)) throw new CorralError('INVALID_ARGUMENT', 'Invalid Token: AccessorID is not a valid UUID');
    if (b.SecretID !== undefined && !isUuid(b.SecretID)) throw new CorralError('INVALID_ARGUMENT', 'Invalid Token: SecretID is not a valid UUID');
    const made = await state.createToken({
      ...(b.AccessorID ? { AccessorID: b.AccessorID } : {}),
      ...(b.SecretID ? { SecretID: b.SecretID } : {}),
      Description: b.Description ?? '',
      Policies: state.policyIds(b.Policies ?? []),
      Local: b.Local ?? false,
    });
    return tokenOut(state, made!.doc, made!.secret);
  });

  server.route('GET', '/v1/acl/token/self', async (ctx) => {
    const state = acl.requireEnabled();
    const secret = requestToken(ctx);
    const t = secret ? await state.tokenBySecret(secret) : state.token(ANONYMOUS_ACCESSOR);
    if (!t) throw new CorralError('FORBIDDEN', 'ACL not found');
    // The caller showed the secret, so it may see it back.
    return tokenOut(state, t, t.AccessorID === ANONYMOUS_ACCESSOR ? ANONYMOUS_SECRET : secret!);
  });

  server.route('GET', '/v1/acl/token/*', async (ctx) => {
    const state = await need(ctx, 'read');
    const t = state.token(idParam(ctx, 'AccessorID'));
    if (!t) throw new CorralError('NOT_FOUND', 'ACL token not found');
    await index(ctx, state, t.ModifyIndex);
    return tokenOut(state, t, t.AccessorID === ANONYMOUS_ACCESSOR ? ANONYMOUS_SECRET : HIDDEN);
  });

  server.route('PUT', '/v1/acl/token/*', async (ctx) => {
    const state = await need(ctx, 'write');
    const id = idParam(ctx, 'AccessorID');
    const b = await jsonBody(ctx, tokenSchema, 'ACL token');
    if (b.AccessorID && b.AccessorID !== id) throw new CorralError('INVALID_ARGUMENT', 'Token AccessorID in URL and payload do not match');
    if (b.SecretID && b.SecretID !== HIDDEN) throw new CorralError('INVALID_ARGUMENT', "Changing a token's SecretID is not permitted");
    const t = await state.updateToken(id, { Description: b.Description ?? state.token(id)?.Description ?? '', Policies: state.policyIds(b.Policies ?? []) });
    return tokenOut(state, t, t.AccessorID === ANONYMOUS_ACCESSOR ? ANONYMOUS_SECRET : HIDDEN);
  });

  server.route('DELETE', '/v1/acl/token/*', async (ctx) => {
    const state = await need(ctx, 'write');
    await state.deleteToken(idParam(ctx, 'AccessorID'));
    return true;
  });

  server.route('GET', '/v1/acl/tokens', async (ctx) => {
    const state = await need(ctx, 'read');
    await index(ctx, state);
    return state.tokenList().map((t) => tokenOut(state, t, t.AccessorID === ANONYMOUS_ACCESSOR ? ANONYMOUS_SECRET : HIDDEN));
  });
}
