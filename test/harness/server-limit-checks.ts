/**
 * The server-limit checks every daemon's test runs (docs/security.md, "Server
 * limits"): a slow-loris attack and a connection flood, each while a
 * well-behaved client is served. Daemons are started with the small limits
 * below so that the checks wait on seconds, not on the defaults.
 */
import { expect } from 'vitest';
import { errorBody, flood, request, slowLoris, statusOf, type AttackConnection, type Target } from './attack.js';
import { until, untilValue } from './wait.js';

/** Limits a test daemon runs with (a daemon's `limits` config section). */
export const TEST_LIMITS = {
  headersTimeoutMs: 1500,
  requestTimeoutMs: 3000,
  keepAliveTimeoutMs: 1000,
  maxConnections: 40,
  maxConnectionsPerClient: 8,
  maxStreams: 40,
  maxStreamsPerClient: 2,
};

/** Unix sockets have no per-client count: a smaller total, so a flood can pass it. */
export const TEST_SOCKET_LIMITS = { ...TEST_LIMITS, maxConnections: 10 };

const CLOSE_DEADLINE_MS = 30_000;

async function allClosed(connections: AttackConnection[]): Promise<void> {
  await until(() => connections.every((c) => c.isClosed()), CLOSE_DEADLINE_MS, 'every attacking connection closed by the server');
}

/**
 * The attacker's address is served again: the server has counted its cut
 * connections as gone (it learns of each close after the attacker does), so
 * the next check starts with no slot still held.
 */
async function attackerServedAgain(attacker: Target, path: string): Promise<void> {
  const served = async (): Promise<boolean> => {
    const r = await request(attacker, path).catch(() => undefined);
    return r !== undefined && r.status < 400;
  };
  await until(served, CLOSE_DEADLINE_MS, "the attacker's connection slots released");
}

function expectTimedOut(c: AttackConnection, limit: 'headersTimeoutMs' | 'requestTimeoutMs', configKey: string): void {
  expect(statusOf(c.received())).toBe(408);
  const e = errorBody(c.received());
  expect(e.code).toBe('TIMEOUT');
  expect(e.details?.limit).toBe(limit);
  expect(e.details?.config).toBe(configKey);
}

/**
 * Slow-loris: `count` attackers trickle headers; the normal client is served
 * meanwhile; every attacker is answered 408 (naming headersTimeoutMs) and cut.
 */
export async function checkSlowLoris(opts: { attacker: Target; client: Target; path: string; count: number; configPath?: string }): Promise<void> {
  const attack = await slowLoris(opts.attacker, opts.count);
  try {
    const ok = await request(opts.client, opts.path);
    expect(ok.status).toBeLessThan(400);
    await allClosed(attack.connections);
    for (const c of attack.connections) expectTimedOut(c, 'headersTimeoutMs', `${opts.configPath ?? 'limits'}.headersTimeoutMs`);
    // Still serving after the attack.
    expect((await request(opts.client, opts.path)).status).toBeLessThan(400);
  } finally {
    attack.stop();
  }
  await attackerServedAgain(opts.attacker, opts.path);
}

/**
 * Connection flood from one address over the per-client cap (TCP): the
 * excess is refused with 429 naming maxConnectionsPerClient; the normal
 * client (another address) is served meanwhile; the admitted silent
 * connections are cut at the headers timeout.
 */
export async function checkFloodPerClient(opts: { attacker: Target; client: Target; path: string; perClient: number; extra: number; configPath?: string }): Promise<void> {
  const f = await flood(opts.attacker, opts.perClient + opts.extra);
  try {
    await until(() => f.connections.filter((c) => c.isClosed()).length >= opts.extra, CLOSE_DEADLINE_MS, 'the connections over the cap refused');
    const ok = await request(opts.client, opts.path);
    expect(ok.status).toBeLessThan(400);
    await allClosed(f.connections);
    const refused = f.connections.filter((c) => statusOf(c.received()) === 429);
    expect(refused).toHaveLength(opts.extra);
    const e = errorBody(refused[0]!.received());
    expect(e.code).toBe('RESOURCE_EXHAUSTED');
    expect(e.details?.limit).toBe('maxConnectionsPerClient');
    expect(e.details?.config).toBe(`${opts.configPath ?? 'limits'}.maxConnectionsPerClient`);
    expect(e.message).toMatch(/raise .*maxConnectionsPerClient \(env CORRAL_/);
    // The rest were admitted, and closed when their headers never came.
    for (const c of f.connections.filter((x) => !refused.includes(x))) expectTimedOut(c, 'headersTimeoutMs', `${opts.configPath ?? 'limits'}.headersTimeoutMs`);
  } finally {
    f.stop();
  }
  await attackerServedAgain(opts.attacker, opts.path);
}

/**
 * Connection flood over the total cap (a unix socket, whose peers are all one
 * client): the excess is refused with 503 naming maxConnections; the admitted
 * silent ones are cut at the headers timeout, and the normal client is served
 * again once they are.
 */
export async function checkFloodTotal(opts: { attacker: Target; client: Target; path: string; total: number; extra: number; configPath?: string }): Promise<void> {
  const f = await flood(opts.attacker, opts.total + opts.extra);
  try {
    await allClosed(f.connections);
    const refused = f.connections.filter((c) => statusOf(c.received()) === 503);
    expect(refused.length).toBeGreaterThanOrEqual(opts.extra);
    const e = errorBody(refused[0]!.received());
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.details?.limit).toBe('maxConnections');
    expect(e.details?.config).toBe(`${opts.configPath ?? 'limits'}.maxConnections`);
    for (const c of f.connections.filter((x) => !refused.includes(x))) expectTimedOut(c, 'headersTimeoutMs', `${opts.configPath ?? 'limits'}.headersTimeoutMs`);
    const ok = await untilValue('the normal client served after the flood', async () => (await request(opts.client, opts.path)).status < 400, CLOSE_DEADLINE_MS);
    expect(ok).toBe(true);
  } finally {
    f.stop();
  }
  await attackerServedAgain(opts.attacker, opts.path);
}
