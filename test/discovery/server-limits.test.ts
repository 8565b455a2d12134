/**
 * Server limits of discovery's Consul-compatible HTTP API (docs/security.md,
 * "Server limits"): slow-loris and connection floods leave other clients
 * served; blocking queries over a client's cap get 429 naming the limit
 * while other clients still block.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startDiscovery, type RunningDiscovery } from '../../discovery/src/daemon.js';
import { testDir } from '../harness/resources.js';
import { errorBody, pending, request, targetOf } from '../harness/attack.js';
import { checkFloodPerClient, checkSlowLoris, TEST_LIMITS } from '../harness/server-limit-checks.js';
import { until } from '../harness/wait.js';

const ATTACKER = '127.0.0.2';
const CLIENT = '127.0.0.1';

let dir: string;
let discovery: RunningDiscovery;
let url: string;

beforeAll(async () => {
  dir = testDir('discovery-limits');
  discovery = await startDiscovery({
    insecure: true,
    workDir: join(dir, 'discovery'),
    store: { backend: 'embedded', path: join(dir, 'discovery', 'kv.db'), sync: 'normal' },
    nodeName: 'limits-node',
    http: { port: 0, limits: TEST_LIMITS },
    dns: { port: 0, workers: 0 },
  });
  url = `http://127.0.0.1:${discovery.httpPort}`;
});

afterAll(async () => {
  await discovery?.close();
  rmSync(dir, { recursive: true, force: true });
});

const blockingOpen = async (): Promise<number> => {
  const m = /corral_discovery_http_streams_open\{kind="blocking"\} (\d+)/.exec((await request(targetOf(url, CLIENT), '/metrics')).body);
  return Number(m?.[1] ?? 0);
};

describe('discovery HTTP API', () => {
  it('slow-loris: attackers are answered 408 at the headers timeout and cut; others are served meanwhile', async () => {
    await checkSlowLoris({ attacker: targetOf(url, ATTACKER), client: targetOf(url, CLIENT), path: '/v1/catalog/services', count: 6, configPath: 'http.limits' });
  });

  it('connection flood from one address: the excess gets 429 naming maxConnectionsPerClient; others are served', async () => {
    await checkFloodPerClient({
      attacker: targetOf(url, ATTACKER),
      client: targetOf(url, CLIENT),
      path: '/v1/catalog/services',
      perClient: TEST_LIMITS.maxConnectionsPerClient,
      extra: 4,
      configPath: 'http.limits',
    });
  });

  it('blocking queries over a client cap get 429 naming maxStreamsPerClient; other clients still block', async () => {
    const attacker = targetOf(url, ATTACKER);
    const blocking = ['/v1/catalog/services?index=1000000&wait=60s', '/v1/kv/limits/a?index=1000000&wait=60s', '/v1/catalog/nodes?index=1000000&wait=60s'];
    const held = blocking.slice(0, TEST_LIMITS.maxStreamsPerClient).map((p) => pending(attacker, p));
    try {
      await until(async () => (await blockingOpen()) === TEST_LIMITS.maxStreamsPerClient, 20_000, "the attacker's blocking queries waiting");
      const over = await request(attacker, blocking[2]!);
      expect(over.status).toBe(429);
      const e = errorBody(over.body);
      expect(e.code).toBe('RESOURCE_EXHAUSTED');
      expect(e.message).toContain('blocking queries');
      expect(e.details).toMatchObject({ limit: 'maxStreamsPerClient', config: 'http.limits.maxStreamsPerClient', env: 'CORRAL_HTTP__LIMITS__MAX_STREAMS_PER_CLIENT' });
      // A query that does not block is still answered for the same client, and another client still blocks.
      expect((await request(attacker, '/v1/catalog/services')).status).toBe(200);
      const theirs = pending(targetOf(url, CLIENT), blocking[2]!);
      held.push(theirs);
      await until(async () => (await blockingOpen()) === TEST_LIMITS.maxStreamsPerClient + 1, 20_000, "the other client's blocking query waiting");
      // An abandoned query frees its slot.
      held.shift()!.abort();
      await until(async () => (await blockingOpen()) === TEST_LIMITS.maxStreamsPerClient, 20_000, 'the abandoned query released');
    } finally {
      for (const h of held) h.abort();
    }
  });
});
