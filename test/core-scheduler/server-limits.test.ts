/**
 * Server limits of the master, the services daemon and the agent API
 * (docs/security.md, "Server limits"): slow-loris and connection floods leave
 * other clients served; event streams and watches over a client's cap get a
 * 429 naming the limit while other clients still subscribe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { testDir } from '../harness/resources.js';
import { connect, errorBody, flood, hold, request, statusOf, targetOf } from '../harness/attack.js';
import { checkFloodPerClient, checkSlowLoris, TEST_LIMITS } from '../harness/server-limit-checks.js';
import { until, untilValue } from '../harness/wait.js';
import { startServices, type RunningServices } from '../../core-scheduler/src/services/daemon.js';
import { startAgent } from '../../core-scheduler/src/agent/daemon.js';
import { agentConfigSchema } from '../../core-scheduler/src/agent/config.js';

const ATTACKER = '127.0.0.2';
const CLIENT = '127.0.0.1';

let dir: string;
let master: TestMaster;

beforeAll(async () => {
  dir = testDir('server-limits');
  master = await startTestMaster({ limits: TEST_LIMITS }, join(dir, 'master'));
});

afterAll(async () => {
  await master?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('master', () => {
  it('slow-loris: attackers are answered 408 at the headers timeout and cut; others are served meanwhile', async () => {
    await checkSlowLoris({ attacker: targetOf(master.url, ATTACKER), client: targetOf(master.url, CLIENT), path: '/health', count: 6 });
  });

  it('connection flood from one address: the excess gets 429 naming maxConnectionsPerClient; others are served', async () => {
    await checkFloodPerClient({ attacker: targetOf(master.url, ATTACKER), client: targetOf(master.url, CLIENT), path: '/health', perClient: TEST_LIMITS.maxConnectionsPerClient, extra: 4 });
  });

  it('a request body sent too slowly is answered 408 naming requestTimeoutMs, and the handler waiting for it gives up quietly', async () => {
    const c = connect(targetOf(master.url, ATTACKER));
    c.socket.write('POST /api/v1/store HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"type":');
    await c.closed;
    expect(statusOf(c.received())).toBe(408);
    const e = errorBody(c.received());
    expect(e.details).toMatchObject({ limit: 'requestTimeoutMs', value: TEST_LIMITS.requestTimeoutMs, config: 'limits.requestTimeoutMs' });
    expect((await request(targetOf(master.url, CLIENT), '/health')).status).toBe(200);
    expect((await request(targetOf(master.url, CLIENT), '/metrics')).body).toMatch(/corral_master_http_refused_total\{reason="request_timeout"\} 1/);
  });

  it('connection flood from many addresses: past maxConnections new connections get 503 naming it, and are closed', async () => {
    const addresses = Array.from({ length: 6 }, (_, i) => `127.0.1.${i + 1}`);
    const floods = [];
    try {
      for (const a of addresses) floods.push(await flood(targetOf(master.url, a), TEST_LIMITS.maxConnectionsPerClient));
      const all = floods.flatMap((f) => f.connections);
      // 48 connections against a total of 40: at least 8 refused with 503.
      await until(() => all.filter((c) => statusOf(c.received()) === 503).length >= all.length - TEST_LIMITS.maxConnections, 30_000, 'connections over the total refused');
      const refused = all.find((c) => statusOf(c.received()) === 503)!;
      const e = errorBody(refused.received());
      expect(e.code).toBe('UNAVAILABLE');
      expect(e.details).toMatchObject({ limit: 'maxConnections', value: TEST_LIMITS.maxConnections, config: 'limits.maxConnections', env: 'CORRAL_MASTER_LIMITS__MAX_CONNECTIONS' });
      // The daemon goes on: once the silent connections are cut at the headers timeout, it serves again
      // (it learns of each close after the attacker does, so the client may find the last slots still held for a moment).
      await until(() => all.every((c) => c.isClosed()), 30_000, 'flood connections closed');
      const served = await untilValue('the client served after the flood', async () => (await request(targetOf(master.url, CLIENT), '/health')).status === 200, 30_000);
      expect(served).toBe(true);
      const metrics = (await request(targetOf(master.url, CLIENT), '/metrics')).body;
      expect(metrics).toMatch(/corral_master_http_refused_total\{reason="max_connections"\} \d+/);
      expect(metrics).toMatch(/corral_master_http_refused_total\{reason="headers_timeout"\} \d+/);
      expect(metrics).toMatch(/corral_master_http_connections_open \d+/);
    } finally {
      for (const f of floods) f.stop();
    }
  });

  it('event streams and watches over a client cap get 429 naming maxStreamsPerClient; other clients still subscribe', async () => {
    const attacker = targetOf(master.url, ATTACKER);
    const other = targetOf(master.url, CLIENT);
    const watch = { type: 'WATCH', watch: { prefix: 'apps/' } };
    const held = [];
    try {
      for (let i = 0; i < TEST_LIMITS.maxStreamsPerClient; i++) {
        const w = await hold(attacker, '/api/v1/store', { method: 'POST', body: watch });
        expect(w.status).toBe(200);
        held.push(w);
      }
      // A third watch, and an operator event stream (the same per-client count), are refused.
      const third = await request(attacker, '/api/v1/store', { method: 'POST', body: watch });
      expect(third.status).toBe(429);
      expect(third.headers['retry-after']).toBe('1');
      const e = errorBody(third.body);
      expect(e.code).toBe('RESOURCE_EXHAUSTED');
      expect(e.message).toContain('watches');
      expect(e.details).toMatchObject({ limit: 'maxStreamsPerClient', value: TEST_LIMITS.maxStreamsPerClient, env: 'CORRAL_MASTER_LIMITS__MAX_STREAMS_PER_CLIENT' });
      const sub = await request(attacker, '/api/v1', { method: 'POST', body: { type: 'SUBSCRIBE' } });
      expect(sub.status).toBe(429);
      expect(errorBody(sub.body).details?.limit).toBe('maxStreamsPerClient');
      // A framework refused its event stream is left as one whose stream closed at once: registered, not connected.
      const framework_info = { user: 'test', name: 'over-the-cap', roles: ['*'] };
      const fsub = await request(attacker, '/api/v1/scheduler', { method: 'POST', body: { type: 'SUBSCRIBE', subscribe: { framework_info } } });
      expect(fsub.status).toBe(429);
      expect(errorBody(fsub.body).details?.limit).toBe('maxStreamsPerClient');
      await until(
        async () => {
          const r = await request(other, '/api/v1', { method: 'POST', body: { type: 'GET_FRAMEWORKS' } });
          type Summary = { framework_info: { name: string }; connected: boolean };
          const g = (JSON.parse(r.body) as { get_frameworks: { frameworks?: Summary[]; completed_frameworks?: Summary[] } }).get_frameworks;
          // With no failover_timeout a disconnected framework is removed at once, to completed_frameworks.
          const f = [...(g.frameworks ?? []), ...(g.completed_frameworks ?? [])].find((x) => x.framework_info.name === 'over-the-cap');
          return f !== undefined && !f.connected;
        },
        20_000,
        'the refused framework registered and disconnected',
      );
      // Another client subscribes.
      const theirs = await hold(other, '/api/v1', { method: 'POST', body: { type: 'SUBSCRIBE' } });
      expect(theirs.status).toBe(200);
      held.push(theirs);
      const metrics = (await request(other, '/metrics')).body;
      expect(metrics).toMatch(/corral_master_http_streams_open\{kind="watch"\} 2/);
      expect(metrics).toMatch(/corral_master_http_refused_total\{reason="max_streams_per_client"\} [2-9]/);
      // A slot freed is a slot usable again.
      held.shift()!.close();
      await until(async () => (await hold(attacker, '/api/v1/store', { method: 'POST', body: watch }).then((w) => (held.push(w), w.status))) === 200, 20_000, 'a watch admitted again');
    } finally {
      for (const h of held) h.close();
    }
  });

  it('watches and streams abandoned at once, even before they open, give their slots back', async () => {
    const attacker = targetOf(master.url, ATTACKER);
    const watch = JSON.stringify({ type: 'WATCH', watch: { prefix: 'apps/' } });
    const subscribe = JSON.stringify({ type: 'SUBSCRIBE' });
    // Each is sent whole and dropped right away: the server sees the request and a client already gone.
    const abandoned = Array.from({ length: 10 }, (_, i) => {
      const c = connect(attacker);
      const body = i % 2 ? watch : subscribe;
      const path = i % 2 ? '/api/v1/store' : '/api/v1';
      c.socket.end(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      c.socket.once('data', () => c.socket.destroy());
      setImmediate(() => c.socket.destroy());
      return c.closed;
    });
    await Promise.all(abandoned);
    const held = [];
    try {
      await until(async () => !/corral_master_http_streams_open\{kind="(watch|stream)"\} [1-9]/.test((await request(targetOf(master.url, CLIENT), '/metrics')).body), 20_000, 'no watch left counted');
      for (let i = 0; i < TEST_LIMITS.maxStreamsPerClient; i++) {
        const w = await hold(attacker, '/api/v1/store', { method: 'POST', body: JSON.parse(watch) as unknown });
        held.push(w);
        expect(w.status).toBe(200);
      }
    } finally {
      for (const h of held) h.close();
    }
  });
});

describe('services daemon', () => {
  let services: RunningServices;
  beforeAll(async () => {
    services = await startServices({
      host: '127.0.0.1',
      port: 0,
      workDir: join(dir, 'services'),
      noAuth: true,
      insecure: true,
      store: { backend: 'embedded', path: join(dir, 'services', 'services.db'), sync: 'normal' },
      master: { url: master.url, reconnectInitialMs: 50, reconnectMaxMs: 500 },
      limits: TEST_LIMITS,
    });
  });
  afterAll(async () => {
    await services?.close();
  });

  it('slow-loris: attackers are cut at the headers timeout; others are served meanwhile', async () => {
    await checkSlowLoris({ attacker: targetOf(services.url, ATTACKER), client: targetOf(services.url, CLIENT), path: '/health', count: 6 });
  });

  it('connection flood: the excess gets 429 naming maxConnectionsPerClient; others are served', async () => {
    await checkFloodPerClient({ attacker: targetOf(services.url, ATTACKER), client: targetOf(services.url, CLIENT), path: '/health', perClient: TEST_LIMITS.maxConnectionsPerClient, extra: 4 });
  });
});

describe('agent API', () => {
  let agent: Awaited<ReturnType<typeof startAgent>>;
  beforeAll(async () => {
    const config = agentConfigSchema.parse({
      master: master.url,
      host: '127.0.0.1',
      port: 0,
      noAuth: true,
      insecure: true,
      workDir: join(dir, 'agent'),
      resources: 'cpus:1;mem:512',
      limits: TEST_LIMITS,
    });
    agent = await startAgent(config, []);
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('slow-loris: attackers are cut at the headers timeout; others are served meanwhile', async () => {
    await checkSlowLoris({ attacker: targetOf(agent.url, ATTACKER), client: targetOf(agent.url, CLIENT), path: '/health', count: 6 });
  });

  it('connection flood: the excess gets 429 naming maxConnectionsPerClient; others are served', async () => {
    await checkFloodPerClient({ attacker: targetOf(agent.url, ATTACKER), client: targetOf(agent.url, CLIENT), path: '/health', perClient: TEST_LIMITS.maxConnectionsPerClient, extra: 4 });
  });
});
