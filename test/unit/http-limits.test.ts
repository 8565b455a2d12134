/**
 * The `limits` config section (common/http/limits.ts): defaults per daemon,
 * the environment names an over-limit error tells an operator to set, and
 * the checks node itself would otherwise throw on.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../common/config.js';
import { HTTP_LIMIT_DEFAULTS, ServerLimiter, httpLimitsSchema, type HttpLimits } from '../../common/http/limits.js';
import { masterConfigSchema } from '../../core-scheduler/src/master/config.js';
import { discoveryConfigSchema } from '../../discovery/src/config.js';
import { isCorralError } from '../../contracts/errors.js';
import type { Socket } from 'node:net';

describe('http limits config', () => {
  it('has the kit defaults, overridden per daemon (the master fits a fleet of 10,000 agents)', () => {
    expect(httpLimitsSchema().parse(undefined)).toEqual(HTTP_LIMIT_DEFAULTS);
    const master = loadConfig(masterConfigSchema, { env: {}, envPrefix: 'CORRAL_MASTER_', flags: { noAuth: true } });
    expect(master.limits).toMatchObject({ headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, maxConnections: 16_384, maxStreams: 16_384, maxStreamsPerClient: 256 });
    // Discovery keeps them under http, present when the section is not given.
    expect(loadConfig(discoveryConfigSchema, { env: {} }).http.limits).toEqual(HTTP_LIMIT_DEFAULTS);
  });

  it('the environment name an over-limit error names is the one the config loader reads', () => {
    const limiter = new ServerLimiter({ ...HTTP_LIMIT_DEFAULTS, maxStreamsPerClient: 1 }, { configPath: 'limits', envPrefix: 'CORRAL_MASTER_' });
    const socket = { remoteAddress: '::ffff:10.0.0.9' } as Socket;
    limiter.admit(socket, 'watch');
    let env = '';
    try {
      limiter.admit(socket, 'watch');
    } catch (err) {
      expect(isCorralError(err, 'RESOURCE_EXHAUSTED')).toBe(true);
      expect((err as Error).message).toContain('10.0.0.9 has 1 event streams, watches and blocking queries open');
      env = String((err as { details: { env: string } }).details.env);
    }
    expect(env).toBe('CORRAL_MASTER_LIMITS__MAX_STREAMS_PER_CLIENT');
    const config = loadConfig(masterConfigSchema, { env: { [env]: '7' }, envPrefix: 'CORRAL_MASTER_', flags: { noAuth: true } });
    expect(config.limits.maxStreamsPerClient).toBe(7);
  });

  it('counts an authenticated principal as one client wherever it connects from, and frees slots on release', () => {
    const limiter = new ServerLimiter({ ...HTTP_LIMIT_DEFAULTS, maxStreamsPerClient: 2 }, { configPath: 'limits', envPrefix: 'CORRAL_' });
    const a = { remoteAddress: '10.0.0.1' } as Socket;
    const b = { remoteAddress: '10.0.0.2' } as Socket;
    const release = limiter.admit(a, 'watch', 'ops');
    limiter.admit(b, 'watch', 'ops');
    expect(() => limiter.admit(b, 'stream', 'ops')).toThrow(/principal ops has 2/);
    // The address itself is another client.
    limiter.admit(b, 'stream');
    release();
    release();
    limiter.admit(a, 'watch', 'ops');
    expect(limiter.counts.streams).toBe(3);
  });

  it('refuses a headers timeout longer than the request timeout, which node would throw on', () => {
    const r = httpLimitsSchema().safeParse({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 });
    expect(r.success).toBe(false);
    expect(() => loadConfig(masterConfigSchema, { env: { CORRAL_MASTER_LIMITS__HEADERS_TIMEOUT_MS: '90000' }, envPrefix: 'CORRAL_MASTER_', flags: { noAuth: true } })).toThrow(
      /limits\.headersTimeoutMs: must not exceed requestTimeoutMs \(60000\)/,
    );
    // No request timeout at all is allowed (0), as node has it.
    expect(httpLimitsSchema().parse({ requestTimeoutMs: 0 }).requestTimeoutMs).toBe(0);
  });

  it('sweeps for timeouts at a quarter of the shortest one, within 100 ms and 5 s', () => {
    const opts = (l: Partial<HttpLimits>) => new ServerLimiter({ ...HTTP_LIMIT_DEFAULTS, ...l }, { configPath: 'limits', envPrefix: 'CORRAL_' }).nodeOptions();
    expect(opts({})).toEqual({ headersTimeout: 10_000, requestTimeout: 60_000, keepAliveTimeout: 65_000, connectionsCheckingInterval: 2_500 });
    expect(opts({ headersTimeoutMs: 200, requestTimeoutMs: 300 }).connectionsCheckingInterval).toBe(100);
    expect(opts({ headersTimeoutMs: 600_000, requestTimeoutMs: 0 }).connectionsCheckingInterval).toBe(5_000);
  });
});
