/**
 * Server limits of the CNI node daemon's unix socket (docs/security.md,
 * "Server limits"), against the real daemon process in its host namespace:
 * slow-loris connections are cut at the headers timeout while the daemon
 * still answers; a flood past the connection cap is refused with 503 naming
 * the limit, and the daemon serves again once the silent connections are cut.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startTestHost, type TestHost } from './helpers.js';
import { checkFloodTotal, checkSlowLoris, TEST_SOCKET_LIMITS } from '../harness/server-limit-checks.js';

let host: TestHost;

beforeAll(async () => {
  host = await startTestHost('lim', { limits: TEST_SOCKET_LIMITS });
});

afterAll(async () => {
  await host?.dispose();
});

describe('CNI daemon socket', () => {
  it('slow-loris: attackers are answered 408 at the headers timeout and cut; the daemon answers meanwhile', async () => {
    await checkSlowLoris({ attacker: { socketPath: host.socket }, client: { socketPath: host.socket }, path: '/v1/status', count: 6 });
  });

  it('connection flood past maxConnections: the excess gets 503 naming it; served again once the silent ones are cut', async () => {
    await checkFloodTotal({ attacker: { socketPath: host.socket }, client: { socketPath: host.socket }, path: '/v1/status', total: TEST_SOCKET_LIMITS.maxConnections, extra: 4 });
  });
});
