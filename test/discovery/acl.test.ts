/**
 * Discovery ACLs with the real `consul` npm client and `dig`: bootstrap once
 * to a management token; a policy on key_prefix "app/" lets its token write
 * app/ and nothing under secret/; default-deny refuses the anonymous token;
 * a task's service name cannot be hijacked without a token granting
 * service:write on it (403 "Permission denied") and DNS keeps answering the
 * task's address; a token with service:write on "ext" registers it and it
 * resolves. Two replicas on one etcd share tokens and policies, with the
 * bootstrap token read from a 0600 file.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Consul from 'consul';
import { startCluster, startReplica, type TestCluster } from './cluster.js';
import { digShort } from './dns-client.js';
import { untilValue } from '../harness/wait.js';
import { etcdForTests } from '../harness/etcd-suite.js';
import type { RunningDiscovery } from '../../discovery/src/daemon.js';

/** A Consul API call with a token, answering status and body text. */
async function call(base: string, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${path}`, { method, headers: token ? { 'X-Consul-Token': token } : {}, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, text: await res.text() };
}

async function makeToken(base: string, mgmt: string, name: string, rules: string): Promise<string> {
  const p = await call(base, 'PUT', '/v1/acl/policy', mgmt, { Name: name, Rules: rules });
  expect(p.status, p.text).toBe(200);
  const t = await call(base, 'PUT', '/v1/acl/token', mgmt, { Description: name, Policies: [{ Name: name }] });
  expect(t.status, t.text).toBe(200);
  return (JSON.parse(t.text) as { SecretID: string }).SecretID;
}

/**
 * The client's error for a refused call. The client puts a text/plain body
 * in the message only when it is under 80 characters (papi), so Consul's
 * long "Permission denied: token with AccessorID …" is read from the response.
 */
async function rejection(p: Promise<unknown>): Promise<{ statusCode: number; message: string }> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as { statusCode?: number; message?: string; response?: { body?: unknown } } | undefined;
  expect(err, 'the call was expected to be refused').toBeDefined();
  const body = err!.response?.body;
  return { statusCode: err!.statusCode ?? 0, message: typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : (err!.message ?? '') };
}

/** dig until the name answers exactly `want` (sorted). */
async function digAnswers(port: number, name: string, want: string[]): Promise<void> {
  const key = JSON.stringify([...want].sort());
  await untilValue(`${name} → ${key}`, async () => JSON.stringify((await digShort(port, name)).sort()) === key || undefined, 10_000, 50);
}

describe('discovery ACLs (default deny)', () => {
  let c: TestCluster;
  let base: string;
  let anon: Consul;
  let mgmt: string;

  beforeAll(async () => {
    c = await startCluster({ discovery: { acl: { enabled: true, defaultPolicy: 'deny' } } });
    base = c.discovery.httpUrl;
    anon = new Consul({ host: '127.0.0.1', port: c.discovery.httpPort });
    await c.launch({ id: 'web-1', name: 'web' });
  });

  afterAll(async () => {
    anon?.destroy();
    await c?.dispose();
  });

  it('bootstraps once to a management token; the second bootstrap and unknown tokens are refused', async () => {
    const boot = (await anon.acl.bootstrap()) as { SecretID: string; AccessorID: string; Policies: Array<{ Name: string }> };
    expect(boot.Policies).toEqual([{ ID: '00000000-0000-0000-0000-000000000001', Name: 'global-management' }]);
    mgmt = boot.SecretID;
    const again = await rejection(anon.acl.bootstrap({ bootstrapsecret: randomUUID() } as never));
    expect(again.statusCode).toBe(403);
    expect(again.message).toMatch(/ACL bootstrap no longer allowed/);
    const self = await call(base, 'GET', '/v1/acl/token/self', mgmt);
    expect(JSON.parse(self.text)).toMatchObject({ AccessorID: boot.AccessorID, SecretID: mgmt });
    // Read back, the secret is hidden: it is stored hashed.
    expect(JSON.parse((await call(base, 'GET', `/v1/acl/token/${boot.AccessorID}`, mgmt)).text)).toMatchObject({ SecretID: '<hidden>' });
    const unknown = await call(base, 'GET', '/v1/kv/app/x', randomUUID());
    expect(unknown).toEqual({ status: 403, text: 'ACL not found' });
    // Without acl:write nobody makes policies.
    expect((await call(base, 'PUT', '/v1/acl/policy', undefined, { Name: 'p', Rules: '' })).status).toBe(403);
  });

  it('a key_prefix "app/" write token writes and reads app/, not secret/; the anonymous token is denied', async () => {
    const appToken = await makeToken(base, mgmt, 'app-writer', 'key_prefix "app/" { policy = "write" }');
    const app = new Consul({ host: '127.0.0.1', port: c.discovery.httpPort, defaults: { token: appToken } });
    try {
      expect(await app.kv.set('app/x', 'one')).toBe(true);
      expect(((await app.kv.get('app/x')) as { Value: string }).Value).toBe('one');
      const w = await rejection(app.kv.set('secret/y', 'nope'));
      expect(w.statusCode).toBe(403);
      expect(w.message).toMatch(/Permission denied/);
      expect(await new Consul({ host: '127.0.0.1', port: c.discovery.httpPort, defaults: { token: mgmt } }).kv.set('secret/y', 'hidden')).toBe(true);
      expect((await rejection(app.kv.get('secret/y'))).statusCode).toBe(403);
      // Listing the root shows only what the token may read.
      expect(await app.kv.keys('')).toEqual(['app/x']);
      const anonSet = await rejection(anon.kv.set('app/x', 'anon'));
      expect(anonSet.statusCode).toBe(403);
      expect(anonSet.message).toMatch(/Permission denied/);
      expect((await rejection(anon.kv.get('app/x'))).statusCode).toBe(403);
      // Transactions: a refused write fails the whole transaction.
      const txn = await call(base, 'PUT', '/v1/txn', appToken, [{ KV: { Verb: 'set', Key: 'app/t', Value: '' } }, { KV: { Verb: 'set', Key: 'secret/t', Value: '' } }]);
      expect(txn.status).toBe(409);
      expect(txn.text).toMatch(/Permission denied/);
      expect((await call(base, 'GET', '/v1/kv/app/t', appToken)).status).toBe(404);
    } finally {
      app.destroy();
    }
  });

  it("hijacking a task's service name without the right token is refused and DNS keeps answering the task", async () => {
    const taskIp = c.ipOf('web-1');
    await digAnswers(c.discovery.dnsPort, 'web.service.corral', [taskIp]);
    const hijack = { node: 'evil', address: '198.18.66.6', service: { id: 'web-evil', service: 'web', address: '198.18.66.6', port: 80 } };
    const r1 = await rejection(anon.catalog.register(hijack as never));
    expect(r1.statusCode).toBe(403);
    expect(r1.message).toMatch(/Permission denied/);
    const r2 = await rejection(anon.agent.service.register({ name: 'web', id: 'web-evil', address: '198.18.66.6', port: 80 } as never));
    expect(r2.statusCode).toBe(403);
    // A token that may write every node but has no rule for "web": refused.
    const broad = await makeToken(base, mgmt, 'node-writer', 'node_prefix "" { policy = "write" } service "other" { policy = "write" }');
    const r3 = await call(base, 'PUT', '/v1/catalog/register', broad, { Node: 'evil', Address: '198.18.66.6', Service: { Service: 'web', Address: '198.18.66.6' } });
    expect(r3.status).toBe(403);
    expect(r3.text).toMatch(/^Permission denied/);
    // The agent's node is the master's: a registration may not move it.
    // startCluster names agent i 198.18.0.<i+1>.
    const agentNode = '198.18.0.1';
    const moved = await call(base, 'PUT', '/v1/catalog/register', mgmt, { Node: agentNode, Address: '198.18.66.6' });
    expect(moved.status, moved.text).toBe(409);
    expect(await digShort(c.discovery.dnsPort, 'web.service.corral')).toEqual([taskIp]);
    expect(await digShort(c.discovery.dnsPort, 'web.marathon.corral')).toEqual([taskIp]);
    // A token granted service:write on "web" may add an instance; the task's stays.
    const webWriter = await makeToken(base, mgmt, 'web-writer', 'service "web" { policy = "write" } node "web-extra" { policy = "write" }');
    expect((await call(base, 'PUT', '/v1/catalog/register', webWriter, { Node: 'web-extra', Address: '198.18.66.7', Service: { Service: 'web', Address: '198.18.66.7' } })).status).toBe(200);
    await digAnswers(c.discovery.dnsPort, 'web.service.corral', [taskIp, '198.18.66.7']);
  });

  it('a token with service:write for "ext" registers it and it resolves; other names stay refused; reads are filtered', async () => {
    const extToken = await makeToken(base, mgmt, 'ext-writer', 'service "ext" { policy = "write" } node "ext-host" { policy = "write" }');
    const ext = new Consul({ host: '127.0.0.1', port: c.discovery.httpPort, defaults: { token: extToken } });
    try {
      await ext.catalog.register({ node: 'ext-host', address: '198.18.7.7', service: { service: 'ext', port: 5432 } } as never);
      await digAnswers(c.discovery.dnsPort, 'ext.service.corral', ['198.18.7.7']);
      expect((await rejection(ext.catalog.register({ node: 'ext-host', address: '198.18.7.7', service: { service: 'db', port: 1 } } as never))).statusCode).toBe(403);
      expect((await rejection(ext.agent.service.register({ name: 'db', port: 1 } as never))).statusCode).toBe(403);
      // The anonymous token reads services (the default anonymous rules); a policy denying one hides it, in the API and DNS.
      expect(Object.keys((await anon.catalog.service.list()) as Record<string, unknown>)).toContain('ext');
      const deny = await call(base, 'PUT', '/v1/acl/policy', mgmt, { Name: 'hide-ext', Rules: 'service "ext" { policy = "deny" }' });
      expect(deny.status).toBe(200);
      const upd = await call(base, 'PUT', '/v1/acl/token/00000000-0000-0000-0000-000000000002', mgmt, { Policies: [{ Name: 'hide-ext' }] });
      expect(upd.status, upd.text).toBe(200);
      const list = await fetch(`${base}/v1/catalog/services`);
      expect(Object.keys((await list.json()) as Record<string, unknown>)).not.toContain('ext');
      expect(list.headers.get('x-consul-results-filtered-by-acls')).toBe('true');
      await digAnswers(c.discovery.dnsPort, 'ext.service.corral', []);
      expect(await ext.catalog.service.nodes('ext')).toHaveLength(1);
      await ext.catalog.deregister({ node: 'ext-host' } as never);
    } finally {
      ext.destroy();
    }
  });
});

describe('names of tasks with ACLs off', () => {
  it("come only from the master's feed: an external registration of a task's name is refused, DNS answers the task", async () => {
    const c = await startCluster();
    try {
      await c.launch({ id: 'api-1', name: 'api' });
      const ip = c.ipOf('api-1');
      await digAnswers(c.discovery.dnsPort, 'api.service.corral', [ip]);
      const r = await call(c.discovery.httpUrl, 'PUT', '/v1/catalog/register', undefined, { Node: 'elsewhere', Address: '198.18.66.8', Service: { Service: 'api', Address: '198.18.66.8' } });
      expect(r.status).toBe(403);
      expect(r.text).toMatch(/^Permission denied: service name "api" belongs to a task/);
      expect((await call(c.discovery.httpUrl, 'PUT', '/v1/agent/service/register', undefined, { Name: 'api', Address: '198.18.66.8' })).status).toBe(403);
      // Nor a name DNS would answer under the same label.
      for (const alias of ['API', 'api_'])
        expect((await call(c.discovery.httpUrl, 'PUT', '/v1/catalog/register', undefined, { Node: 'elsewhere', Address: '198.18.66.8', Service: { Service: alias } })).status, alias).toBe(403);
      // Other names register as before.
      expect((await call(c.discovery.httpUrl, 'PUT', '/v1/catalog/register', undefined, { Node: 'elsewhere', Address: '198.18.66.8', Service: { Service: 'free' } })).status).toBe(200);
      await digAnswers(c.discovery.dnsPort, 'free.service.corral', ['198.18.66.8']);
      expect(await digShort(c.discovery.dnsPort, 'api.service.corral')).toEqual([ip]);
    } finally {
      await c.dispose();
    }
  });
});

describe('discovery ACLs across replicas on one Store', () => {
  const etcd = etcdForTests();
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  it('tokens and policies made through one replica work on the other; the configured bootstrap token closes /v1/acl/bootstrap', async () => {
    const store = { backend: 'etcd' as const, etcdEndpoints: [etcd().endpoint], namespace: `acl-${Date.now()}/` };
    const bootstrap = randomUUID();
    const c = await startCluster({ discovery: { store, nodeName: 'control1', acl: { enabled: true, bootstrapToken: bootstrap } } });
    cleanup.push(() => c.dispose());
    const tokenFile = join(c.dir, 'acl-bootstrap-token');
    writeFileSync(tokenFile, `${bootstrap}\n`, { mode: 0o600 });
    chmodSync(tokenFile, 0o600);
    const b: RunningDiscovery = await startReplica(c, store, { acl: { enabled: true, bootstrapTokenFile: tokenFile } });
    cleanup.push(() => b.close());
    const a = c.discovery;
    expect((await call(a.httpUrl, 'PUT', '/v1/acl/bootstrap')).text).toMatch(/^Permission denied: ACL bootstrap no longer allowed/);
    const appToken = await makeToken(a.httpUrl, bootstrap, 'app', 'key_prefix "app/" { policy = "write" }');
    // The next request to the other replica already knows the token and its policy.
    expect(await call(b.httpUrl, 'PUT', '/v1/kv/app/shared', appToken, 'v')).toEqual({ status: 200, text: 'true' });
    expect((await call(b.httpUrl, 'PUT', '/v1/kv/secret/shared', appToken, 'v')).status).toBe(403);
    const viaB = new Consul({ host: '127.0.0.1', port: b.httpPort, defaults: { token: appToken } });
    try {
      expect(((await viaB.kv.get('app/shared')) as { Value: string }).Value).toBe('"v"');
    } finally {
      viaB.destroy();
    }
    // A token deleted through B stops working on A once A hears of it.
    const tokens = JSON.parse((await call(b.httpUrl, 'GET', '/v1/acl/tokens', bootstrap)).text) as Array<{ AccessorID: string; Description: string }>;
    const acc = tokens.find((t) => t.Description === 'app')!.AccessorID;
    expect((await call(b.httpUrl, 'DELETE', `/v1/acl/token/${acc}`, bootstrap)).text).toBe('true');
    await untilValue('token deletion reaches replica A', async () => (await call(a.httpUrl, 'GET', '/v1/kv/app/shared', appToken)).status === 403 || undefined, 10_000, 50);
  });
});
