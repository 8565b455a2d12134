/**
 * Filesystems of native tasks: host-path and sandbox-path volumes (RW and
 * RO), external volumes through the VolumeHook and a real `corral
 * volume-driver` (local backend) — data written by one task is read by the
 * next, and a task launched meanwhile does not pin the volume's filesystem
 * after its user is gone — persistent volumes handed to the task's user
 * unless shared, and a root filesystem from a busybox tarball.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VolumeLibraryHook } from '../../plugins/volume-driver/src/hook.js';
import { buildBusyboxRootfs } from '../harness/dockerd.js';
import { run, testDir } from '../harness/resources.js';
import { startDriver, teardownHost, type DriverProcess } from '../volume-driver/helpers.js';
import { NONE, eventually, forceCleanup, leftovers, nativeEnv, removeCgroupRoot, shell, task, type NativeEnv } from './helpers.js';

let env: NativeEnv;
let driver: DriverProcess;
let driverDir: string;
let image: string;

beforeAll(async () => {
  driverDir = testDir('iso-voldrv');
  driver = await startDriver({ hostId: 'iso-vols', dir: driverDir });
  // The driver's mount root is masked in tasks, as the product default masks /var/lib/corral/volumes.
  env = await nativeEnv('vols', { maskedPaths: [driver.dataDir] }, { volumeHook: new VolumeLibraryHook({ drivers: { corral: driver.client } }) });
  const rootfs = await buildBusyboxRootfs(env.dir, ['data']);
  image = join(env.dir, 'busybox-rootfs.tar');
  await run('tar', ['-C', rootfs, '-cf', image, '.']);
});

afterAll(async () => {
  if (env) {
    for (const id of readdirSync(join(env.dir, 'run', 'containers'))) await env.z.destroy(id).catch(() => undefined);
    await env.z.close();
    await removeCgroupRoot(env.cgroupRoot);
  }
  await driver?.kill();
  if (driverDir) {
    await teardownHost(driverDir);
    rmSync(driverDir, { recursive: true, force: true });
  }
  if (!env) return;
  const left = leftovers(env);
  await forceCleanup(env);
  expect(left).toEqual(NONE);
});

async function runTask(id: string, o: Parameters<typeof task>[2]) {
  const sandbox = env.sandbox(id);
  await env.z.launch(task(id, sandbox, o));
  const t = await env.z.wait(id);
  const out = readFileSync(join(sandbox, 'stdout'), 'utf8');
  const err = readFileSync(join(sandbox, 'stderr'), 'utf8');
  await env.z.destroy(id);
  return { t, out, err, sandbox };
}

const loopsBacking = (file: string): string[] =>
  readdirSync('/sys/block')
    .filter((d) => d.startsWith('loop'))
    .filter((d) => {
      try {
        return readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim() === file;
      } catch {
        return false;
      }
    });

describe('host and sandbox volumes', () => {
  it('binds a host directory read-write; the task writes into it', async () => {
    const hostDir = join(env.dir, 'host-data');
    mkdirSync(hostDir, { recursive: true });
    const r = await runTask('host-rw', {
      volumes: [{ containerPath: 'data', mode: 'RW', source: { type: 'host', path: hostDir } }],
      command: { ...shell('echo hello > data/f && ls data'), user: 'root' },
    }); // a root-owned host directory: root writes
    expect(r.t.exitCode).toBe(0);
    expect(readFileSync(join(hostDir, 'f'), 'utf8')).toBe('hello\n');
    // The bind lived in the task's mount namespace only.
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(join(r.sandbox, 'data'));
  });

  it('a read-only volume refuses writes', async () => {
    const hostDir = join(env.dir, 'host-ro');
    mkdirSync(hostDir, { recursive: true });
    writeFileSync(join(hostDir, 'keep'), 'original');
    const r = await runTask('host-ro', { volumes: [{ containerPath: 'ro', mode: 'RO', source: { type: 'host', path: hostDir } }], command: shell('cat ro/keep; echo changed > ro/keep') });
    expect(r.out).toBe('original');
    expect(r.t.exitCode).not.toBe(0);
    expect(r.err).toMatch(/Read-only file system/);
    expect(readFileSync(join(hostDir, 'keep'), 'utf8')).toBe('original');
  });

  it('binds a sandbox path (created on demand) at another path', async () => {
    const r = await runTask('sbx', { volumes: [{ containerPath: 'work/out', mode: 'RW', source: { type: 'sandbox', path: 'shared/out' } }], command: shell('echo from-task > work/out/result') });
    expect(r.t.exitCode).toBe(0);
    expect(readFileSync(join(r.sandbox, 'shared', 'out', 'result'), 'utf8')).toBe('from-task\n');
  });
});

describe('external volumes through the volume driver', () => {
  const pgdata = { type: 'external' as const, driver: 'corral', name: 'isovol', options: { size: '16M' } };

  it('data written by one task is read by the next', async () => {
    const w = await runTask('writer', { volumes: [{ containerPath: 'vol', mode: 'RW', source: pgdata }], command: { ...shell('echo persisted > vol/data && df -k vol | tail -1'), user: 'root' } }); // the volume's root is root's
    expect(w.t.exitCode, w.err).toBe(0);
    const r = await runTask('reader', { volumes: [{ containerPath: 'vol', mode: 'RO', source: pgdata }], command: shell('cat vol/data') });
    expect(r.out).toBe('persisted\n');
    // Both references were given back: the driver detached the volume.
    expect((await driver.client.get('isovol')).mountpoint ?? '').toBe('');
    const img = join(driver.dataDir, 'local', 'isovol', 'disk.img');
    expect(existsSync(img)).toBe(true);
    expect(loopsBacking(img)).toEqual([]);
  });

  it('a task launched while a volume is mounted does not pin it after its user is gone', async () => {
    const userBox = env.sandbox('user');
    await env.z.launch(task('user', userBox, { volumes: [{ containerPath: 'vol', mode: 'RW', source: pgdata }], command: shell('cat vol/data; sleep 30') }));
    await eventually(() => expect(readFileSync(join(userBox, 'stdout'), 'utf8')).toBe('persisted\n'));
    const bystander = env.sandbox('bystander');
    await env.z.launch(task('bystander', bystander, { command: shell('sleep 30') }));
    await env.z.destroy('user');
    const img = join(driver.dataDir, 'local', 'isovol', 'disk.img');
    // The filesystem is really gone although the bystander's mount namespace was made while it was mounted.
    await eventually(() => expect(loopsBacking(img)).toEqual([]));
    await env.z.destroy('bystander');
  });

  it('an unknown volume driver is refused before anything is created', async () => {
    const sandbox = env.sandbox('nodriver');
    await expect(env.z.launch(task('nodriver', sandbox, { volumes: [{ containerPath: 'v', mode: 'RW', source: { type: 'external', driver: 'nope', name: 'x', options: {} } }] }))).rejects.toThrow(
      /unknown volume driver "nope"/,
    );
    expect(env.z.cgroups.exists('nodriver')).toBe(false);
  });
});

describe('persistent volumes belong to the task user', () => {
  it('a persistent volume is chowned to the task user, unless another running container uses it', async () => {
    const pv = join(env.dir, 'persistent');
    mkdirSync(pv, { recursive: true });
    const volume = { containerPath: 'data', mode: 'RW' as const, source: { type: 'host' as const, path: pv, owned: true } };
    const a = env.sandbox('pv-a');
    await env.z.launch(task('pv-a', a, { volumes: [volume], command: { ...shell('touch data/from-a && echo written; sleep 30'), user: 'daemon' } }));
    await eventually(() => expect(readFileSync(join(a, 'stdout'), 'utf8')).toBe('written\n'));
    expect(statSync(pv).uid).toBe(1);
    // A second container while the first still uses it: the owner stays, so the newcomer cannot take it over.
    const b = await runTask('pv-b', { volumes: [volume], command: { ...shell('touch data/from-b && echo written || echo refused'), user: 'nobody' } });
    expect(b.out).toBe('refused\n');
    expect(statSync(pv).uid).toBe(1);
    await env.z.destroy('pv-a');
    // A plain host path is never chowned.
    const plain = await runTask('pv-c', { volumes: [{ ...volume, source: { type: 'host', path: pv } }], command: { ...shell('true'), user: 'nobody' } });
    expect(plain.t.exitCode).toBe(0);
    expect(statSync(pv).uid).toBe(1);
  });
});

describe('root filesystem from an image tarball', () => {
  it('runs the task inside the image, with the sandbox and volumes mounted', async () => {
    const hostDir = join(env.dir, 'img-vol');
    mkdirSync(hostDir, { recursive: true });
    writeFileSync(join(hostDir, 'hello'), 'from host');
    const r = await runTask('img', {
      image: { kind: 'tarball', path: image },
      volumes: [{ containerPath: '/data', mode: 'RO', source: { type: 'host', path: hostDir } }],
      command: {
        shell: true,
        value: 'pwd; cat /data/hello; echo; ls /bin/busybox; test -e /usr/bin/node && echo host-visible; echo scratch > /tmp/x; id -u; echo sandboxed > out',
        environment: {},
        user: 'root',
      },
    });
    expect(r.t.exitCode, r.err).toBe(0);
    expect(r.out.split('\n')).toEqual(['/mnt/mesos/sandbox', 'from host', '/bin/busybox', '0', '']);
    expect(readFileSync(join(r.sandbox, 'out'), 'utf8')).toBe('sandboxed\n');
  });

  it('writes go to the container own layer: the next container sees the pristine image', async () => {
    const r = await runTask('img2', { image: { kind: 'tarball', path: image }, command: shell('test -e /tmp/x && echo leaked || echo clean; cat /proc/1/comm; ls /dev') });
    expect(r.out.split('\n').slice(0, 2)).toEqual(['clean', 'corral-init']);
    expect(r.out).toContain('null');
    expect(existsSync(join(env.dir, 'work', 'rootfs', 'img2'))).toBe(false);
  });

  it('a file that is not a tarball is a clear error', async () => {
    const bad = join(env.dir, 'not-a.tar');
    writeFileSync(bad, 'garbage');
    await expect(env.z.launch(task('badimg', env.sandbox('badimg'), { image: { kind: 'tarball', path: bad } }))).rejects.toThrow(/cannot be extracted/);
  });
});
