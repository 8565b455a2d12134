/**
 * Helpers for the remote backend's tests: a real master with authentication
 * on (a security file in the test dir), and raw calls to its store API for
 * what RemoteStore itself would never send.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { basicAuthHeader } from '../../contracts/client/auth-header.js';
import { STORE_API_PATH } from '../../contracts/store/wire.js';
import { startTestMaster, type TestMaster } from '../harness/master.js';

/** Principals of the security file: one per kind of ACL entry the store API looks at. */
export const CREDS = {
  admin: { principal: 'admin', secret: 'admin-secret' },
  agent: { principal: 'agent', secret: 'agent-secret' },
  framework: { principal: 'marathon', secret: 'marathon-secret' },
  ipam: { principal: 'ipam', secret: 'ipam-secret' },
} as const;

/**
 * A master with authentication on. Without `store` the store ACL keeps its
 * default (operators and agents); with it, exactly those principals.
 */
export async function startAuthMaster(dir: string, store?: string[]): Promise<TestMaster> {
  const file = join(dir, `security-${store ? 'store' : 'default'}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      credentials: Object.values(CREDS),
      acls: {
        register_frameworks: [{ principals: [CREDS.framework.principal], roles: 'ANY' }],
        operators: [CREDS.admin.principal],
        agents: [CREDS.agent.principal],
        ...(store && { store }),
      },
    }),
  );
  return startTestMaster({ noAuth: false, credentials: file }, join(dir, store ? 'master-store-acl' : 'master-default-acl'));
}

export interface RawReply {
  status: number;
  body: Record<string, unknown>;
  text: string;
}

/** POSTs `body` (a string is sent as it is) to the store API; a stream reply is cut after its status. */
export async function rawCall(url: string, body: unknown, creds?: { principal: string; secret: string }, headers: Record<string, string> = {}): Promise<RawReply> {
  const ac = new AbortController();
  const res = await fetch(url + STORE_API_PATH, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(creds && { authorization: basicAuthHeader(creds.principal, creds.secret) }), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: ac.signal,
  });
  // Every reply but a WATCH stream has a Content-Length.
  if (res.headers.get('content-length') === null) {
    ac.abort();
    return { status: res.status, body: {}, text: '' };
  }
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the test looks at `text`
  }
  return { status: res.status, body: parsed, text };
}
