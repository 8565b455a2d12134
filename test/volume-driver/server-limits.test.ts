/**
 * Server limits of the Docker volume plugin's unix socket (docs/security.md,
 * "Server limits"): slow-loris connections are cut at the headers timeout
 * while Docker's calls are still answered; a flood past the connection cap is
 * refused with 503 naming the limit, and the plugin serves again once the
 * silent connections are cut.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startVolumeDriver } from '../../plugins/volume-driver/src/daemon.js';
import { volumeDriverConfigSchema } from '../../plugins/volume-driver/src/config.js';
import { testDir } from '../harness/resources.js';
import { request } from '../harness/attack.js';
import { checkFloodTotal, checkSlowLoris, TEST_SOCKET_LIMITS } from '../harness/server-limit-checks.js';

let dir: string;
let driver: Awaited<ReturnType<typeof startVolumeDriver>>;
let socketPath: string;

beforeAll(async () => {
  dir = testDir('volume-limits');
  socketPath = join(dir, 'corral-limits.sock');
  driver = await startVolumeDriver(volumeDriverConfigSchema.parse({ socket: socketPath, dataDir: join(dir, 'data'), defaultBackend: 'local', rbd: { enabled: false }, limits: TEST_SOCKET_LIMITS }));
});

afterAll(async () => {
  await driver?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('volume plugin socket', () => {
  it("slow-loris: attackers are answered 408 at the headers timeout and cut; Docker's calls are answered meanwhile", async () => {
    const target = { socketPath };
    await checkSlowLoris({ attacker: target, client: target, path: '/metrics', count: 6 });
    const activate = await request(target, '/Plugin.Activate', { method: 'POST', body: {} });
    expect(activate.status).toBe(200);
    expect(JSON.parse(activate.body)).toEqual({ Implements: ['VolumeDriver'] });
  });

  it('connection flood past maxConnections: the excess gets 503 naming it; served again once the silent ones are cut', async () => {
    await checkFloodTotal({ attacker: { socketPath }, client: { socketPath }, path: '/metrics', total: TEST_SOCKET_LIMITS.maxConnections, extra: 4 });
  });
});
