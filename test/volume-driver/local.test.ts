/**
 * The volume driver with its local backend, as a real process on a real
 * socket. The volume backend contract (backend-contract.ts: sized ext4/xfs
 * volumes on a loop file, data across detach and a hard restart, references
 * by ID, the size limit, growth, snapshots, removal, typed errors, scope
 * local) runs first; then what only the local backend and this driver have:
 * the Docker protocol without any prior call, plain directory volumes, its
 * Err answers, the CLI and metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { testDir } from '../harness/resources.js';
import { volumeBackendContract, type BackendHost } from './backend-contract.js';
import { dataPathUnder, REPO, startDriver, teardownHost, type DriverProcess } from './helpers.js';

volumeBackendContract('local (loop file)', { backend: 'local', scope: 'local' }, async () => {
  const root = testDir('vol-local-contract');
  const hosts: BackendHost[] = [];
  const cleanup = async () => {
    for (const h of hosts) await h.driver.kill();
    await teardownHost(root);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (const h of ['a', 'b']) {
      const driver = await startDriver({ hostId: `local-contract-${h}`, dir: join(root, h) });
      hosts.push({ driver, dataPath: (name) => dataPathUnder(join(driver.dataDir, 'local', name)) });
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { hosts: [hosts[0]!, hosts[1]!], cleanup };
});

let dir: string;
let driver: DriverProcess;

beforeAll(async () => {
  dir = testDir('vol-local');
  driver = await startDriver({ hostId: 'local-a', dir });
});

afterAll(async () => {
  await driver?.kill();
  await teardownHost(dir);
  rmSync(dir, { recursive: true, force: true });
});

describe('Docker volume plugin protocol (local backend)', () => {
  it('answers Activate and Capabilities without any prior call', async () => {
    expect((await driver.docker('Plugin.Activate')).body).toEqual({ Implements: ['VolumeDriver'] });
    expect((await driver.docker('Capabilities', {})).body).toEqual({ Capabilities: { Scope: 'local' } });
  });

  it('creates, lists, gets, paths and removes a directory volume; create is idempotent', async () => {
    expect((await driver.docker('Create', { Name: 'plain', Opts: null })).body).toEqual({});
    expect((await driver.docker('Create', { Name: 'plain', Opts: null })).body).toEqual({});
    const get = (await driver.docker('Get', { Name: 'plain' })).body as { Volume: { Name: string; Mountpoint: string; Status: Record<string, unknown> } };
    expect(get.Volume.Name).toBe('plain');
    expect(get.Volume.Mountpoint).toBe(join(driver.dataDir, 'local', 'plain', '_data'));
    expect(get.Volume.Status).toMatchObject({ backend: 'local', refs: 0 });
    expect(existsSync(get.Volume.Mountpoint)).toBe(true);
    const list = (await driver.docker('List', {})).body as { Volumes: { Name: string }[] };
    expect(list.Volumes.map((v) => v.Name)).toContain('plain');
    expect((await driver.docker('Path', { Name: 'plain' })).body).toEqual({ Mountpoint: get.Volume.Mountpoint });
    expect((await driver.docker('Remove', { Name: 'plain' })).body).toEqual({});
    const gone = await driver.docker('Get', { Name: 'plain' });
    expect(gone.status).toBe(404);
    expect(gone.body.Err).toBe('volume plain not found');
  });

  it('refuses bad input with clear Err messages and keeps serving', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['Create', { Name: '../escape', Opts: null }, /volume name "..\/escape" is invalid/],
      ['Create', { Name: 'a/b', Opts: {} }, /is invalid/],
      ['Create', { Name: 'x1', Opts: { sise: '1G' } }, /unknown option "sise"/],
      ['Create', { Name: 'x1', Opts: { size: '900P' } }, /larger than the maximum of 64T/],
      ['Create', { Name: 'x1', Opts: { size: '60T' } }, /larger than the filesystem holding local volumes/],
      ['Create', { Name: 'x1', Opts: { size: 'lots' } }, /is not a size/],
      ['Create', { Name: 'x1', Opts: { backend: 'rbd' } }, /backend rbd is unavailable: not configured/],
      ['Create', { Opts: null }, /invalid Create request: Name/],
      ['Create', '{not json', /malformed JSON/],
      ['Mount', { Name: 'missing-vol', ID: 'x' }, /volume missing-vol not found/],
      ['Get', { Name: '' }, /volume name is required/],
    ];
    for (const [method, body, msg] of cases) {
      const res = await driver.docker(method, body);
      expect(res.status, `${method} ${JSON.stringify(body)}`).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(String(res.body.Err)).toMatch(msg);
    }
    expect((await driver.client.list()).map((v) => v.name)).not.toContain('x1');
    expect((await driver.docker('Plugin.Activate')).status).toBe(200);
  });

  it('is driven by `corral volume` (tables and --json) and exports Prometheus metrics', async () => {
    const cli = (args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) =>
        execFile(process.execPath, ['--import', 'tsx', join(REPO, 'cli/corral.ts'), ...args], { cwd: REPO }, (e, out, err) => resolve({ code: e ? Number(e.code ?? 1) : 0, out, err })),
      );
    const vol = ['volume', '--socket', driver.socket];
    const created = await cli(['--json', ...vol, 'create', 'cli-vol', '--size', '32M', '-o', 'mode=0750']);
    expect(created.code, created.err).toBe(0);
    expect(JSON.parse(created.out)).toMatchObject({ name: 'cli-vol', backend: 'local', sizeBytes: 32 * 1024 * 1024 });
    const table = await cli([...vol, 'ls']);
    expect(table.out).toMatch(/NAME\s+BACKEND\s+SIZE/);
    expect(table.out).toMatch(/cli-vol\s+local\s+32M\s+ext4/);
    const [inspected] = JSON.parse((await cli([...vol, 'inspect', 'cli-vol'])).out) as { name: string }[];
    expect(inspected!.name).toBe('cli-vol');
    const bad = await cli([...vol, 'create', '../x']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/error: volume name "..\/x" is invalid/);
    expect((await cli([...vol, 'rm', 'cli-vol'])).out.trim()).toBe('cli-vol');
    const down = await cli(['volume', '--socket', join(dir, 'nobody.sock'), 'ls']);
    expect(down.err).toMatch(/no volume driver at .*nobody.sock/);
    const metrics = await new Promise<string>((resolve, reject) =>
      http
        .get({ socketPath: driver.socket, path: '/metrics' }, (res) => {
          let text = '';
          res
            .setEncoding('utf8')
            .on('data', (c: string) => (text += c))
            .on('end', () => resolve(text));
        })
        .on('error', reject),
    );
    expect(metrics).toMatch(/corral_volume_driver_volume_operations_total\{op="create",result="ok"\} \d+/);
    expect(metrics).toMatch(/corral_volume_driver_volume_operations_total\{op="create",result="INVALID_ARGUMENT"\} \d+/);
  });
});
