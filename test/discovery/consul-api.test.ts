/**
 * The real `consul` npm client, unchanged, against a discovery daemon: KV
 * (CAS, flags, keys, recurse, raw, locks with sessions, txn), sessions,
 * catalog, health with checks corral runs (HTTP, TCP, TTL), a watch, and
 * tasks placed by the scheduler appearing in the catalog by themselves.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import Consul from 'consul';
import { startCluster, type TestCluster } from './cluster.js';
import { digShort } from './dns-client.js';
import { setTimeout as sleep } from 'node:timers/promises';

let c: TestCluster;
let consul: Consul;
let base: string;
const servers: Array<http.Server | net.Server> = [];

async function eventually<T>(fn: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await fn();
  while (!pred(v) && Date.now() < deadline) {
    await sleep(25);
    v = await fn();
  }
  return v;
}

beforeAll(async () => {
  c = await startCluster();
  const port = c.discovery.httpPort;
  base = c.discovery.httpUrl;
  consul = new Consul({ host: '127.0.0.1', port });
});

afterAll(async () => {
  consul?.destroy();
  for (const s of servers) await new Promise((r) => s.close(r));
  await c?.dispose();
});

describe('KV', () => {
  it('set/get/delete, 404 for missing keys, flags, raw and X-Consul-Index', async () => {
    expect(await consul.kv.set('app/config', 'hello')).toBe(true);
    const got = (await consul.kv.get('app/config')) as { Key: string; Value: string; Flags: number; ModifyIndex: number; CreateIndex: number };
    expect(got).toMatchObject({ Key: 'app/config', Value: 'hello', Flags: 0 });
    expect(got.ModifyIndex).toBeGreaterThan(0);
    expect(await consul.kv.get('app/missing')).toBeUndefined();
    const res = await fetch(`${base}/v1/kv/app/missing`);
    expect(res.status).toBe(404);
    expect(Number(res.headers.get('x-consul-index'))).toBeGreaterThan(0);
    expect(await consul.kv.set({ key: 'app/flagged', value: 'x', flags: 42 })).toBe(true);
    expect(((await consul.kv.get('app/flagged')) as { Flags: number }).Flags).toBe(42);
    const raw = await fetch(`${base}/v1/kv/app/config?raw`);
    expect(await raw.text()).toBe('hello');
    expect(await consul.kv.del('app/flagged')).toBe(true);
    expect(await consul.kv.get('app/flagged')).toBeUndefined();
  });

  it('CAS: 0 creates only, an index updates only if unchanged', async () => {
    expect(await consul.kv.set({ key: 'cas/k', value: 'v1', cas: 0 })).toBe(true);
    // The client reads a `false` body as undefined; the raw answer is checked below.
    expect(await consul.kv.set({ key: 'cas/k', value: 'v2', cas: 0 })).toBeFalsy();
    const raw = await fetch(`${base}/v1/kv/cas/k?cas=0`, { method: 'PUT', body: 'v2' });
    expect(await raw.text()).toBe('false');
    const cur = (await consul.kv.get('cas/k')) as { ModifyIndex: number };
    expect(await consul.kv.set({ key: 'cas/k', value: 'v3', cas: cur.ModifyIndex })).toBe(true);
    expect(await consul.kv.set({ key: 'cas/k', value: 'v4', cas: cur.ModifyIndex })).toBeFalsy();
    expect(((await consul.kv.get('cas/k')) as { Value: string }).Value).toBe('v3');
    const now = (await consul.kv.get('cas/k')) as { ModifyIndex: number };
    expect(await consul.kv.del({ key: 'cas/k', cas: now.ModifyIndex - 1 })).toBeFalsy();
    expect(await consul.kv.del({ key: 'cas/k', cas: now.ModifyIndex })).toBe(true);
  });

  it('recurse, keys and separator; delete recurse', async () => {
    for (const k of ['tree/a', 'tree/b/1', 'tree/b/2', 'tree/c/x/y']) await consul.kv.set(k, k);
    const all = (await consul.kv.get({ key: 'tree/', recurse: true })) as Array<{ Key: string; Value: string }>;
    expect(all.map((e) => e.Key)).toEqual(['tree/a', 'tree/b/1', 'tree/b/2', 'tree/c/x/y']);
    expect(all[1]!.Value).toBe('tree/b/1');
    expect(await consul.kv.keys('tree/')).toEqual(['tree/a', 'tree/b/1', 'tree/b/2', 'tree/c/x/y']);
    expect(await consul.kv.keys({ key: 'tree/', separator: '/' })).toEqual(['tree/a', 'tree/b/', 'tree/c/']);
    expect(await consul.kv.del({ key: 'tree/', recurse: true })).toBe(true);
    expect(await consul.kv.get({ key: 'tree/', recurse: true })).toBeUndefined();
  });

  it('values up to 512 KB; larger ones are refused with 413', async () => {
    const big = 'x'.repeat(512 * 1024);
    expect(await consul.kv.set('big/ok', big)).toBe(true);
    expect(((await consul.kv.get('big/ok')) as { Value: string }).Value.length).toBe(big.length);
    const res = await fetch(`${base}/v1/kv/big/too`, { method: 'PUT', body: big + 'y' });
    expect(res.status).toBe(413);
  });

  it('a lock with a session: acquire, contention, release, and release on session end with lock-delay', async () => {
    const s1 = ((await consul.session.create({ name: 'leader-election', lockdelay: '1s' })) as { ID: string }).ID;
    const s2 = ((await consul.session.create({ name: 'contender', lockdelay: '0s' })) as { ID: string }).ID;
    expect(await consul.kv.set({ key: 'locks/leader', value: 'me', acquire: s1 })).toBe(true);
    expect(await consul.kv.set({ key: 'locks/leader', value: 'you', acquire: s2 })).toBeFalsy();
    const held = (await consul.kv.get('locks/leader')) as unknown as { Session: string; LockIndex: number; Value: string };
    expect(held).toMatchObject({ Session: s1, LockIndex: 1, Value: 'me' });
    expect(await consul.kv.set({ key: 'locks/leader', value: 'x', release: s2 })).toBeFalsy();
    expect(await consul.kv.set({ key: 'locks/leader', value: 'me', release: s1 })).toBe(true);
    expect(((await consul.kv.get('locks/leader')) as { Session?: string }).Session).toBeUndefined();
    // Re-acquire, then end the session: the lock is released and lock-delay (1 s) holds off s2.
    expect(await consul.kv.set({ key: 'locks/leader', value: 'me', acquire: s1 })).toBe(true);
    await consul.session.destroy(s1);
    const released = await eventually(
      () => consul.kv.get('locks/leader') as Promise<{ Session?: string; LockIndex: number }>,
      (e) => e.Session === undefined,
    );
    expect(released.LockIndex).toBe(2);
    expect(await consul.kv.set({ key: 'locks/leader', value: 'you', acquire: s2 })).toBeFalsy();
    await sleep(1100);
    expect(await consul.kv.set({ key: 'locks/leader', value: 'you', acquire: s2 })).toBe(true);
    await consul.session.destroy(s2);
  });

  it('behavior delete removes held keys; a TTL session expires unless renewed', async () => {
    const s = ((await consul.session.create({ behavior: 'delete', ttl: '1s', lockdelay: '0s' })) as { ID: string }).ID;
    expect(await consul.kv.set({ key: 'eph/node', value: 'alive', acquire: s })).toBe(true);
    const renewed = (await consul.session.renew(s)) as Array<{ ID: string; TTL: string }>;
    expect(renewed[0]).toMatchObject({ ID: s, TTL: '1s' });
    const gone = await eventually(
      () => consul.kv.get('eph/node'),
      (e) => e === undefined,
      5000,
    );
    expect(gone).toBeUndefined();
    expect(await consul.session.info(s)).toBeUndefined();
    await expect(consul.session.renew(s)).rejects.toThrow();
    await expect(consul.kv.set({ key: 'eph/node', value: 'x', acquire: s })).rejects.toThrow();
    const bad = await fetch(`${base}/v1/kv/eph/node?acquire=${s}`, { method: 'PUT', body: 'x' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('invalid session');
  });

  it('sessions: info and list', async () => {
    const id = ((await consul.session.create({ name: 'listed' })) as { ID: string }).ID;
    const info = (await consul.session.info(id)) as { ID: string; Name: string; Behavior: string; LockDelay: number };
    expect(info).toMatchObject({ ID: id, Name: 'listed', Behavior: 'release', LockDelay: 15_000_000_000 });
    const list = (await consul.session.list()) as Array<{ ID: string }>;
    expect(list.map((x) => x.ID)).toContain(id);
    expect(((await consul.session.node('discovery-node')) as Array<{ ID: string }>).map((x) => x.ID)).toContain(id);
    await consul.session.destroy(id);
    expect((await consul.session.list()) as Array<{ ID: string }>).not.toContainEqual(expect.objectContaining({ ID: id }));
  });

  it('transactions: atomic success, and 409 with errors when a check fails', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const ok = (await consul.transaction.create(<never>[
      { KV: { Verb: 'set', Key: 'txn/a', Value: b64('1') } },
      { KV: { Verb: 'set', Key: 'txn/b', Value: b64('2'), Flags: 7 } },
      { KV: { Verb: 'get', Key: 'txn/a' } },
    ])) as { Results: Array<{ KV: { Key: string; Flags: number } }> };
    expect(ok.Results.map((r) => r.KV.Key)).toEqual(['txn/a', 'txn/b', 'txn/a']);
    expect(ok.Results[1]!.KV.Flags).toBe(7);
    const res = await fetch(`${base}/v1/txn`, {
      method: 'PUT',
      body: JSON.stringify([{ KV: { Verb: 'set', Key: 'txn/c', Value: b64('3') } }, { KV: { Verb: 'check-not-exists', Key: 'txn/a' } }]),
    });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { Errors: Array<{ OpIndex: number }> }).Errors[0]!.OpIndex).toBe(1);
    expect(await consul.kv.get('txn/c')).toBeUndefined();
    // More than 64 operations: 413, as Consul answers.
    const tooMany = Array.from({ length: 65 }, (_, i) => ({ KV: { Verb: 'get', Key: `txn/${i}` } }));
    expect((await fetch(`${base}/v1/txn`, { method: 'PUT', body: JSON.stringify(tooMany) })).status).toBe(413);
  });

  it('a watch sees changes through blocking queries, and a blocked read wakes on the write', async () => {
    await consul.kv.set('watched/key', 'v0');
    const seen: string[] = [];
    const watch = consul.watch({ method: consul.kv.get, options: { key: 'watched/key', wait: '5s' } });
    watch.on('change', (data: { Value?: string } | undefined) => seen.push(data?.Value ?? '(gone)'));
    watch.on('error', () => undefined);
    await eventually(
      async () => seen.length,
      (n) => n >= 1,
    );
    await consul.kv.set('watched/key', 'v1');
    await consul.kv.set('unrelated/key', 'noise');
    await consul.kv.set('watched/key', 'v2');
    await eventually(
      async () => seen.at(-1),
      (v) => v === 'v2',
    );
    watch.end();
    expect(seen[0]).toBe('v0');
    expect(seen.at(-1)).toBe('v2');
    expect(seen).not.toContain('noise');

    const cur = (await consul.kv.get('watched/key')) as { ModifyIndex: number };
    const started = Date.now();
    const blocked = fetch(`${base}/v1/kv/watched/key?index=${cur.ModifyIndex}&wait=10s`);
    await sleep(100);
    await consul.kv.set('watched/key', 'v3');
    const res = await blocked;
    expect(Date.now() - started).toBeLessThan(2000);
    expect(Number(res.headers.get('x-consul-index'))).toBeGreaterThan(cur.ModifyIndex);
    const timedOut = await fetch(`${base}/v1/kv/watched/key?index=${Number(res.headers.get('x-consul-index'))}&wait=200ms`);
    expect(timedOut.headers.get('x-consul-index')).toBe(res.headers.get('x-consul-index'));
  });
});

describe("Consul's defaults, through the consul client", () => {
  it('a PUT without flags sets them to 0; an unchanged PUT keeps the ModifyIndex', async () => {
    expect(await consul.kv.set({ key: 'defaults/flags', value: 'v', flags: 42 })).toBe(true);
    expect(await consul.kv.set('defaults/flags', 'v')).toBe(true);
    const e = (await consul.kv.get('defaults/flags')) as { Flags: number; ModifyIndex: number };
    expect(e.Flags).toBe(0);
    expect(await consul.kv.set('defaults/flags', 'v')).toBe(true);
    expect(((await consul.kv.get('defaults/flags')) as { ModifyIndex: number }).ModifyIndex).toBe(e.ModifyIndex);
    // A lock acquired without flags also writes flags 0.
    const s = ((await consul.session.create({ lockdelay: '0s' })) as { ID: string }).ID;
    await consul.kv.set({ key: 'defaults/lock', value: 'v', flags: 5 });
    expect(await consul.kv.set({ key: 'defaults/lock', value: 'v', acquire: s })).toBe(true);
    expect(((await consul.kv.get('defaults/lock')) as { Flags: number }).Flags).toBe(0);
    await consul.session.destroy(s);
  });

  it('conflicting flags are a 400; a cas delete of a missing key succeeds', async () => {
    await expect(consul.kv.set({ key: 'defaults/x', value: 'v', cas: 0, acquire: 'some-session' })).rejects.toMatchObject({ statusCode: 400 });
    await expect(consul.kv.del({ key: 'defaults/', recurse: true, cas: 3 })).rejects.toMatchObject({ statusCode: 400 });
    const conflict = await fetch(`${base}/v1/kv/defaults/x?cas=0&release=s`, { method: 'PUT', body: 'v' });
    expect(conflict.status).toBe(400);
    expect(((await conflict.json()) as { message: string }).message).toContain('Conflicting flags');
    expect(await consul.kv.del({ key: 'defaults/never-written', cas: 17 })).toBe(true);
    const missing = await fetch(`${base}/v1/kv/`);
    expect(missing.status).toBe(400);
    expect((await fetch(`${base}/v1/kv/defaults/none/?keys`)).status).toBe(404);
  });

  it('?raw answers text/plain with nosniff and a sandbox policy; stale with consistent is a 400', async () => {
    await consul.kv.set('defaults/raw', '<script>alert(1)</script>');
    const raw = await fetch(`${base}/v1/kv/defaults/raw?raw`);
    expect(raw.headers.get('content-type')).toBe('text/plain');
    expect(raw.headers.get('x-content-type-options')).toBe('nosniff');
    expect(raw.headers.get('content-security-policy')).toBe('sandbox');
    expect(await raw.text()).toBe('<script>alert(1)</script>');
    const stale = await fetch(`${base}/v1/kv/defaults/raw?stale`);
    expect(stale.headers.get('x-consul-effective-consistency')).toBe('stale');
    expect(stale.headers.get('x-consul-knownleader')).toBe('true');
    expect((await fetch(`${base}/v1/kv/defaults/raw?stale&consistent`)).status).toBe(400);
    expect(await consul.kv.get(<never>{ key: 'defaults/raw', consistent: true })).toMatchObject({ Key: 'defaults/raw' });
  });

  it('sessions: serfHealth unless checks are given, LockDelay 5 means 5 s, TTL kept as written, TTL 0 means none', async () => {
    const plain = ((await consul.session.create({})) as { ID: string }).ID;
    expect(await consul.session.info(plain)).toMatchObject({ Behavior: 'release', LockDelay: 15e9, TTL: '', NodeChecks: ['serfHealth'] });
    const custom = ((await consul.session.create({ checks: [], lockdelay: 5 as never, ttl: '1m' })) as { ID: string }).ID;
    expect(await consul.session.info(custom)).toMatchObject({ LockDelay: 5e9, TTL: '1m', NodeChecks: [] });
    const untimed = await fetch(`${base}/v1/session/create`, { method: 'PUT', body: JSON.stringify({ TTL: '0s', Behavior: '', Checks: null, Name: null }) });
    expect(untimed.status).toBe(200);
    const id = ((await untimed.json()) as { ID: string }).ID;
    expect(await consul.session.info(id)).toMatchObject({ TTL: '', Behavior: 'release', NodeChecks: [], Name: '' });
    for (const x of [plain, custom, id]) await consul.session.destroy(x);
  });

  it('re-registering a service keeps its other checks unless replace-existing-checks; JSON nulls read as absent', async () => {
    await consul.agent.service.register(<never>{
      name: 'keeper',
      id: 'keeper-1',
      port: 1,
      checks: [
        { checkid: 'keeper-a', ttl: '30s' },
        { checkid: 'keeper-b', ttl: '30s' },
      ],
    });
    await consul.agent.check.pass('keeper-b');
    await consul.agent.service.register(<never>{ name: 'keeper', id: 'keeper-1', port: 2, check: { checkid: 'keeper-a', ttl: '30s' } });
    const kept = (await consul.agent.check.list()) as Record<string, { Status: string }>;
    expect(
      Object.keys(kept)
        .filter((k) => k.startsWith('keeper-'))
        .sort(),
    ).toEqual(['keeper-a', 'keeper-b']);
    expect(kept['keeper-b']!.Status).toBe('passing');
    const replaced = await fetch(`${base}/v1/agent/service/register?replace-existing-checks`, {
      method: 'PUT',
      body: JSON.stringify({ Name: 'keeper', ID: 'keeper-1', Port: 3, Tags: null, Meta: null, Check: { CheckID: 'keeper-a', TTL: '30s', Notes: null }, Checks: null }),
    });
    expect(replaced.status).toBe(200);
    const after = (await consul.agent.check.list()) as Record<string, unknown>;
    expect(Object.keys(after).filter((k) => k.startsWith('keeper-'))).toEqual(['keeper-a']);
    expect(((await consul.agent.service.list()) as Record<string, { Port: number; Tags: string[] }>)['keeper-1']).toMatchObject({ Port: 3, Tags: [] });
    await consul.agent.service.deregister('keeper-1');
    expect(Object.keys((await consul.agent.check.list()) as object).filter((k) => k.startsWith('keeper-'))).toEqual([]);
  });
});

describe('catalog and health', () => {
  it('tasks placed by the scheduler appear in the catalog and health API by themselves', async () => {
    await c.launch({ id: 'api-1', name: 'api', discovery: { name: 'api', ports: { ports: [{ number: 9000, name: 'grpc' }] } } });
    const services = await eventually(
      () => consul.catalog.services() as Promise<Record<string, string[]>>,
      (s) => 'api' in s,
    );
    expect(services.api).toEqual(['grpc']);
    const inst = (await consul.catalog.service.nodes('api')) as Array<{ Node: string; ServiceAddress: string; ServicePort: number; ServiceID: string }>;
    expect(inst).toEqual([expect.objectContaining({ Node: '198.18.0.1', ServiceAddress: c.ipOf('api-1'), ServicePort: 9000, ServiceID: 'api-1' })]);
    const nodes = (await consul.catalog.node.list()) as Array<{ Node: string }>;
    expect(nodes.map((n) => n.Node)).toEqual(expect.arrayContaining(['198.18.0.1', 'discovery-node']));
    const node = (await consul.catalog.node.services('198.18.0.1')) as { Services: Record<string, { Service: string }> };
    expect(node.Services['api-1']?.Service).toBe('api');
    // Failing health hides it from ?passing and from DNS; recovery brings it back.
    c.agentOf('api-1').setHealth(c.frameworkId, 'api-1', false);
    const failing = await eventually(
      () => consul.health.service({ service: 'api', passing: true }) as Promise<unknown[]>,
      (l) => l.length === 0,
    );
    expect(failing).toHaveLength(0);
    const all = (await consul.health.service('api')) as Array<{ Checks: Array<{ Status: string }> }>;
    expect(all[0]!.Checks.map((x) => x.Status)).toEqual(['critical']);
    expect(await digShort(c.discovery.dnsPort, 'api.service.corral')).toEqual([]);
    c.agentOf('api-1').setHealth(c.frameworkId, 'api-1', true);
    await eventually(
      () => consul.health.service({ service: 'api', passing: true }) as Promise<unknown[]>,
      (l) => l.length === 1,
    );
    expect(await digShort(c.discovery.dnsPort, 'api.service.corral')).toEqual([c.ipOf('api-1')]);
  });

  it('catalog register/deregister of an external service, visible in DNS when passing', async () => {
    await consul.catalog.register({
      node: 'db-host',
      address: '198.18.5.5',
      service: { id: 'pg-1', service: 'postgres', tags: ['primary'], port: 5432 },
      check: { checkid: 'pg-alive', name: 'pg', status: 'passing', serviceid: 'pg-1' },
    } as never);
    expect(await digShort(c.discovery.dnsPort, 'primary.postgres.service.corral')).toEqual(['198.18.5.5']);
    expect(await digShort(c.discovery.dnsPort, 'db-host.node.corral')).toEqual(['198.18.5.5']);
    const byTag = (await consul.catalog.service.nodes({ service: 'postgres', tag: 'primary' })) as Array<{ ServiceID: string }>;
    expect(byTag.map((x) => x.ServiceID)).toEqual(['pg-1']);
    const critical = (await consul.health.state('critical')) as Array<{ CheckID: string }>;
    expect(critical.map((x) => x.CheckID)).not.toContain('pg-alive');
    await consul.catalog.deregister({ node: 'db-host', serviceid: 'pg-1' } as never);
    expect(await digShort(c.discovery.dnsPort, 'postgres.service.corral')).toEqual([]);
    await consul.catalog.deregister({ node: 'db-host' } as never);
    expect(await digShort(c.discovery.dnsPort, 'db-host.node.corral')).toEqual([]);
  });

  it('agent services with HTTP, TCP and TTL checks that corral runs', async () => {
    let healthy = true;
    const web = http.createServer((_, res) => {
      res.statusCode = healthy ? 200 : 500;
      res.end(healthy ? 'ok' : 'down');
    });
    const tcp = net.createServer((s) => s.end());
    servers.push(web, tcp);
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const webPort = (web.address() as net.AddressInfo).port;
    const tcpPort = (tcp.address() as net.AddressInfo).port;
    await consul.agent.service.register(<never>{
      name: 'shop',
      id: 'shop-1',
      address: '127.0.0.2',
      port: webPort,
      tags: ['blue'],
      check: { http: `http://127.0.0.1:${webPort}/health`, interval: '200ms' },
    });
    await consul.agent.service.register(<never>{ name: 'cache', id: 'cache-1', address: '127.0.0.3', port: tcpPort, check: { tcp: `127.0.0.1:${tcpPort}`, interval: '200ms' } });
    await consul.agent.service.register(<never>{ name: 'batch', id: 'batch-1', address: '127.0.0.4', port: 1, check: { ttl: '1s' } });
    const svcs = (await consul.agent.service.list()) as Record<string, { Service: string }>;
    expect(Object.keys(svcs).sort()).toEqual(['batch-1', 'cache-1', 'shop-1']);
    await eventually(
      () => digShort(c.discovery.dnsPort, 'shop.service.corral'),
      (l) => l.length === 1,
    );
    await eventually(
      () => digShort(c.discovery.dnsPort, 'cache.service.corral'),
      (l) => l.length === 1,
    );
    // TTL checks start critical until the service reports.
    expect(await digShort(c.discovery.dnsPort, 'batch.service.corral')).toEqual([]);
    await consul.agent.check.pass('service:batch-1');
    await eventually(
      () => digShort(c.discovery.dnsPort, 'batch.service.corral'),
      (l) => l.length === 1,
    );
    // HTTP failure → critical → gone from DNS; TTL silence → critical.
    healthy = false;
    await eventually(
      () => digShort(c.discovery.dnsPort, 'shop.service.corral'),
      (l) => l.length === 0,
    );
    const checks = (await consul.health.checks('shop')) as Array<{ Status: string; Output: string }>;
    expect(checks[0]).toMatchObject({ Status: 'critical' });
    expect(checks[0]!.Output).toContain('500');
    await eventually(
      () => digShort(c.discovery.dnsPort, 'batch.service.corral'),
      (l) => l.length === 0,
      4000,
    );
    tcp.close();
    await eventually(
      () => digShort(c.discovery.dnsPort, 'cache.service.corral'),
      (l) => l.length === 0,
    );
    await consul.agent.service.deregister('shop-1');
    await consul.agent.service.deregister('cache-1');
    await consul.agent.service.deregister('batch-1');
    expect(await consul.agent.check.list()).toEqual({});
  });

  it('?tag repeats (every tag must match, in any case); ?passing takes Go booleans, anything else is a 400', async () => {
    await consul.catalog.register({
      node: 'tag-host',
      address: '198.18.5.6',
      service: { id: 'tagged-1', service: 'tagged', tags: ['Primary', 'v2'], port: 1 },
      check: { checkid: 'tagged-ok', name: 'ok', status: 'passing', serviceid: 'tagged-1' },
    } as never);
    await consul.catalog.register({ node: 'tag-host', address: '198.18.5.6', service: { id: 'tagged-2', service: 'tagged', tags: ['primary'], port: 2 } } as never);
    const ids = async (path: string): Promise<string[]> =>
      ((await (await fetch(`${base}${path}`)).json()) as Array<{ ServiceID?: string; Service?: { ID: string } }>).map((e) => e.ServiceID ?? e.Service!.ID).sort();
    expect(await ids('/v1/catalog/service/tagged?tag=primary')).toEqual(['tagged-1', 'tagged-2']);
    expect(await ids('/v1/catalog/service/tagged?tag=primary&tag=V2')).toEqual(['tagged-1']);
    expect(await ids('/v1/health/service/tagged?tag=PRIMARY&tag=v2')).toEqual(['tagged-1']);
    expect(await ids('/v1/catalog/service/tagged?tag=primary&tag=v3')).toEqual([]);
    expect(((await consul.catalog.service.nodes({ service: 'tagged', tag: 'PRIMARY' })) as Array<{ ServiceID: string }>).map((x) => x.ServiceID).sort()).toEqual(['tagged-1', 'tagged-2']);
    // tagged-2's node has no check of its own here; tagged-1 has a passing one: both pass.
    expect(await ids('/v1/health/service/tagged?passing=1')).toEqual(['tagged-1', 'tagged-2']);
    expect(await ids('/v1/health/service/tagged?passing=false')).toEqual(['tagged-1', 'tagged-2']);
    expect((await fetch(`${base}/v1/health/service/tagged?passing=maybe`)).status).toBe(400);
    await consul.catalog.deregister({ node: 'tag-host' } as never);
  });

  it('status/leader answers with this server', async () => {
    expect(await consul.status.leader()).toBe(`127.0.0.1:${c.discovery.httpPort}`);
  });
});
