/**
 * The volume driver with its local backend, as a real process on a real
 * socket: the Docker protocol (reference counting by ID, idempotent create,
 * Err answers), the size limit enforced by the kernel (ENOSPC), a hard
 * restart while a volume is mounted, snapshots and online growth.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { run, testDir } from '../harness/resources.js';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { isMounted, REPO, startDriver, teardownHost, type DriverProcess } from './helpers.js';

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

const loopsUnder = async (path: string): Promise<string[]> => (await run('losetup', ['-a'])).split('\n').filter((l) => l.includes(path));

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

  it('counts mount references by ID: attached once, detached after the last Unmount', async () => {
    await driver.docker('Create', { Name: 'sized', Opts: { size: '32M' } });
    const img = join(driver.dataDir, 'local', 'sized', 'disk.img');
    const m1 = (await driver.docker('Mount', { Name: 'sized', ID: 'c1' })).body.Mountpoint as string;
    const m2 = (await driver.docker('Mount', { Name: 'sized', ID: 'c2' })).body.Mountpoint as string;
    expect(m2).toBe(m1);
    expect(isMounted(m1)).toBe(true);
    expect(await loopsUnder(img)).toHaveLength(1);
    expect((await driver.docker('Remove', { Name: 'sized' })).body.Err).toMatch(/in use on this host \(2 mount reference/);
    await driver.docker('Unmount', { Name: 'sized', ID: 'c1' });
    expect(isMounted(m1)).toBe(true);
    // An unknown ID must not detach what c2 still uses.
    await driver.docker('Unmount', { Name: 'sized', ID: 'nope' });
    expect(isMounted(m1)).toBe(true);
    await driver.docker('Unmount', { Name: 'sized', ID: 'c2' });
    expect(isMounted(m1)).toBe(false);
    expect(await loopsUnder(img)).toHaveLength(0);
    expect((await driver.docker('Path', { Name: 'sized' })).body).toEqual({ Mountpoint: '' });
  });

  it('enforces the size limit: writes past it fail with ENOSPC', async () => {
    await driver.docker('Create', { Name: 'limited', Opts: { size: '32M' } });
    const mp = (await driver.docker('Mount', { Name: 'limited', ID: 'w' })).body.Mountpoint as string;
    const fs = statfsSync(mp);
    expect(fs.blocks * fs.bsize).toBeLessThanOrEqual(32 * 1024 * 1024);
    const err = await run('dd', ['if=/dev/zero', `of=${mp}/fill`, 'bs=1M', 'count=64', 'conv=fsync']).then(() => '', (e: Error) => e.message);
    expect(err).toMatch(/No space left on device/);
    await driver.docker('Unmount', { Name: 'limited', ID: 'w' });
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

  it('keeps a mounted volume and its references across a hard restart; a later Unmount detaches it', async () => {
    await driver.docker('Create', { Name: 'survivor', Opts: { size: '32M' } });
    const mp = (await driver.docker('Mount', { Name: 'survivor', ID: 'ctr-1' })).body.Mountpoint as string;
    writeFileSync(join(mp, 'before'), 'written before the crash');
    await driver.kill('SIGKILL');
    expect(isMounted(mp)).toBe(true);
    writeFileSync(join(mp, 'during'), 'written while the plugin was down');
    await driver.restart();
    const get = (await driver.docker('Get', { Name: 'survivor' })).body as { Volume: { Mountpoint: string; Status: { refs: number } } };
    expect(get.Volume.Mountpoint).toBe(mp);
    expect(get.Volume.Status.refs).toBe(1);
    expect(isMounted(mp)).toBe(true);
    expect(readFileSync(join(mp, 'before'), 'utf8')).toBe('written before the crash');
    expect((await driver.docker('Mount', { Name: 'survivor', ID: 'ctr-2' })).body.Mountpoint).toBe(mp);
    await driver.docker('Unmount', { Name: 'survivor', ID: 'ctr-1' });
    expect(isMounted(mp)).toBe(true);
    await driver.docker('Unmount', { Name: 'survivor', ID: 'ctr-2' });
    expect(isMounted(mp)).toBe(false);
    const again = (await driver.docker('Mount', { Name: 'survivor', ID: 'ctr-3' })).body.Mountpoint as string;
    expect(readFileSync(join(again, 'during'), 'utf8')).toBe('written while the plugin was down');
    await driver.docker('Unmount', { Name: 'survivor', ID: 'ctr-3' });
  });

  it('snapshots, rolls back and grows a sized volume through the admin API', async () => {
    const c = driver.client;
    await c.create('snappy', { size: '32M' });
    const mp = await c.mount('snappy', 'task-1');
    writeFileSync(join(mp, 'f'), 'v1');
    const snap = await c.snapshot('snappy', 's1');
    expect(snap.name).toBe('s1');
    writeFileSync(join(mp, 'f'), 'v2');
    await expect(c.rollback('snappy', 's1')).rejects.toThrow(/mounted on this host/);
    const grown = await c.resize('snappy', '64M');
    expect(grown.sizeBytes).toBe(64 * 1024 * 1024);
    const fsBytes = (p: string) => statfsSync(p).blocks * statfsSync(p).bsize;
    // Online ext4 growth needs CAP_SYS_RESOURCE; without it the filesystem grows at the next attach.
    expect(fsBytes(mp) > 40 * 1024 * 1024).toBe(grown.pendingGrow !== true);
    await expect(c.resize('snappy', '32M')).rejects.toThrow(/shrinking is not supported/);
    await c.unmount('snappy', 'task-1');
    await c.rollback('snappy', 's1');
    expect((await c.listSnapshots('snappy')).map((s) => s.name)).toEqual(['s1']);
    const mp2 = await c.mount('snappy', 'task-2');
    expect(readFileSync(join(mp2, 'f'), 'utf8')).toBe('v1');
    expect(fsBytes(mp2)).toBeGreaterThan(40 * 1024 * 1024);
    expect((await c.get('snappy')).pendingGrow).toBeUndefined();
    await c.unmount('snappy', 'task-2');
    await c.removeSnapshot('snappy', 's1');
    await c.remove('snappy');
    await expect(c.get('snappy')).rejects.toThrow(/not found/);
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
      http.get({ socketPath: driver.socket, path: '/metrics' }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text));
      }).on('error', reject),
    );
    expect(metrics).toMatch(/corral_volume_driver_volume_operations_total\{op="create",result="ok"\} \d+/);
    expect(metrics).toMatch(/corral_volume_driver_volume_operations_total\{op="create",result="INVALID_ARGUMENT"\} \d+/);
  });
});
