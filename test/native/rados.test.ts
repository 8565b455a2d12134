/**
 * corral_rados.node against a real single-node Ceph cluster: objects, omap
 * compare-and-swap, xattrs, advisory locks, watch/notify, blocklisting
 * (fencing), rbd images with snapshots and locks — every failure a typed
 * RadosError carrying errno — and the event loop staying free while calls
 * block on the thread pool.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCeph, type CephCluster } from '../harness/ceph.js';
import { connectCluster, isRadosError, RadosError, RBD_FEATURES, type Cluster, type IoCtx } from '../../native/lib/rados.js';

let ceph: CephCluster;
let cluster: Cluster;
let io: IoCtx;

const connect = () => connectCluster({ confFile: ceph.confFile, options: { keyring: ceph.keyring }, timeoutSeconds: 5 });
const rejection = async (p: Promise<unknown>): Promise<RadosError> => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RadosError);
  return err as RadosError;
};

beforeAll(async () => {
  ceph = await startCeph({ pools: ['nat'] });
  cluster = await connect();
  io = await cluster.openIoCtx('nat');
});

afterAll(async () => {
  await cluster?.shutdown();
  await ceph?.stop();
});

describe('cluster', () => {
  it('connects, names itself and lists pools', async () => {
    expect(cluster.instanceId()).toBeGreaterThan(0);
    expect(cluster.addrs()).toMatch(/127\.0\.0\.1:\d+\/\d+/);
    expect(cluster.fsid()).toMatch(/^[0-9a-f-]{36}$/);
    expect(await cluster.poolList()).toContain('nat');
    expect(await cluster.poolLookup('nat')).toBeGreaterThan(0);
    const err = await rejection(cluster.poolLookup('no-such-pool'));
    expect(err).toMatchObject({ errno: 2, errnoName: 'ENOENT', op: 'rados_pool_lookup', code: 'NOT_FOUND' });
    const out = await cluster.monCommand(JSON.stringify({ prefix: 'osd pool ls', format: 'json' }));
    expect(JSON.parse(out.outbuf.toString())).toContain('nat');
  });

  it('reports a bad configuration as a typed error', async () => {
    const err = await rejection(connectCluster({ confFile: '/nonexistent/ceph.conf' }));
    expect(err.op).toBe('rados_connect');
    expect(err.errnoName).toBe('ENOENT');
    expect(err.message).toMatch(/reading \/nonexistent\/ceph.conf/);
  });
});

describe('objects, omap and xattrs', () => {
  it('writes, reads, stats and removes objects; a missing one is ENOENT', async () => {
    await io.writeFull('obj', Buffer.from('hello world'));
    await io.write('obj', 'HELLO', 0);
    expect((await io.read('obj', 100)).toString()).toBe('HELLO world');
    expect((await io.read('obj', 5, 6)).toString()).toBe('world');
    expect((await io.stat('obj')).size).toBe(11);
    await io.remove('obj');
    const err = await rejection(io.read('obj', 1));
    expect(err).toMatchObject({ errno: 2, code: 'NOT_FOUND', op: 'rados_read' });
  });

  it('does compare-and-swap on omap in one atomic write op', async () => {
    const put = (k: string, expect_: string, v: string) => io.writeOp('reg', [{ op: 'create' }, { op: 'omapCmp', key: k, value: expect_ }, { op: 'omapSet', entries: { [k]: v } }]);
    await put('a', '', 'one');
    const clash = await rejection(put('a', '', 'other'));
    expect(clash).toMatchObject({ errnoName: 'ECANCELED', code: 'CONFLICT' });
    await put('a', 'one', 'two');
    for (let i = 0; i < 7; i++) await put(`k${i}`, '', `v${i}`);
    const first = await io.omapGet('reg', { max: 3 });
    expect(first.entries.map((e) => e.key)).toEqual(['a', 'k0', 'k1']);
    expect(first.more).toBe(true);
    const rest = await io.omapGet('reg', { startAfter: 'k1', max: 100 });
    expect(rest.entries.map((e) => e.key)).toEqual(['k2', 'k3', 'k4', 'k5', 'k6']);
    expect((await io.omapGet('reg', { prefix: 'k5' })).entries.map((e) => e.value.toString())).toEqual(['v5']);
    expect((await io.omapGetKeys('reg', ['a', 'zz'])).map((e) => [e.key, e.value.toString()])).toEqual([['a', 'two']]);
    await io.writeOp('reg', [{ op: 'omapRm', keys: ['a'] }]);
    expect(await io.omapGetKeys('reg', ['a'])).toEqual([]);
  });

  it('sets, reads, lists and removes xattrs', async () => {
    await io.writeOp('xo', [{ op: 'create', exclusive: true }]);
    expect((await rejection(io.writeOp('xo', [{ op: 'create', exclusive: true }]))).errnoName).toBe('EEXIST');
    await io.setXattr('xo', 'colour', 'blue');
    await io.setXattr('xo', 'big', Buffer.alloc(10_000, 7));
    expect((await io.getXattr('xo', 'colour')).toString()).toBe('blue');
    expect((await io.getXattr('xo', 'big')).length).toBe(10_000);
    expect(Object.keys(await io.listXattrs('xo')).sort()).toEqual(['big', 'colour']);
    await io.rmXattr('xo', 'colour');
    expect((await rejection(io.getXattr('xo', 'colour'))).errnoName).toBe('ENODATA');
  });
});

describe('locks, fencing and liveness', () => {
  it('holds an exclusive lock with a cookie against another client, lists it with its address, breaks it', async () => {
    const other = await connect();
    try {
      const io2 = await other.openIoCtx('nat');
      await io.lockExclusive('lk', 'L', 'cookie-1', { description: 'held by test' });
      const busy = await rejection(io2.lockExclusive('lk', 'L', 'cookie-2'));
      expect(busy).toMatchObject({ errnoName: 'EBUSY', code: 'CONFLICT' });
      const info = await io2.listLockers('lk', 'L');
      expect(info.exclusive).toBe(true);
      expect(info.lockers).toEqual([{ client: `client.${cluster.instanceId()}`, cookie: 'cookie-1', addr: expect.stringContaining('127.0.0.1') }]);
      await io2.breakLock('lk', 'L', `client.${cluster.instanceId()}`, 'cookie-1');
      await io2.lockExclusive('lk', 'L', 'cookie-2');
      expect((await rejection(io.unlock('lk', 'L', 'cookie-1'))).errnoName).toBe('ENOENT');
      await io2.unlock('lk', 'L', 'cookie-2');
    } finally {
      await other.shutdown();
    }
  });

  it('lets a lock with a duration expire', async () => {
    await io.lockExclusive('lk-d', 'L', 'c', { durationMs: 1000 });
    const other = await connect();
    try {
      const io2 = await other.openIoCtx('nat');
      expect((await rejection(io2.lockExclusive('lk-d', 'L', 'c2'))).errnoName).toBe('EBUSY');
      await new Promise((r) => setTimeout(r, 1300));
      await io2.lockExclusive('lk-d', 'L', 'c2');
    } finally {
      await other.shutdown();
    }
  });

  it('fences a client by blocklisting its address: its next call fails with ESHUTDOWN', async () => {
    const victim = await connect();
    const vio = await victim.openIoCtx('nat');
    await vio.writeFull('victim-obj', 'before');
    await cluster.blocklistAdd(victim.addrs().replace(/^v\d:/, ''), 600);
    const err = await rejection(vio.writeFull('victim-obj', 'after the fence'));
    expect(err.errnoName).toBe('ESHUTDOWN');
    expect((await io.read('victim-obj', 100)).toString()).toBe('before');
    await victim.shutdown();
  });

  it('acknowledges notifies natively with the watch payload; an unwatched object gets none', async () => {
    await io.writeOp('beacon', [{ op: 'create' }]);
    const handle = await io.watch('beacon', JSON.stringify({ host: 'me' }), 5);
    expect(io.watchCheck(handle)).toBeGreaterThanOrEqual(0);
    const other = await connect();
    try {
      const io2 = await other.openIoCtx('nat');
      const res = await io2.notify('beacon', 'probe', 1000);
      expect(res.timedOut).toBe(false);
      expect(res.acks.map((a) => JSON.parse(a.payload.toString()))).toEqual([{ host: 'me' }]);
      await io.unwatch(handle);
      expect((await io2.notify('beacon', 'probe', 1000)).acks).toEqual([]);
    } finally {
      await other.shutdown();
    }
  });

  it('keeps the event loop free while a call waits on Ceph, and times the call out when Ceph is gone', async () => {
    const c = await connectCluster({ confFile: ceph.confFile, options: { keyring: ceph.keyring }, timeoutSeconds: 2 });
    const cio = await c.openIoCtx('nat');
    await cio.writeFull('slow', 'x');
    await ceph.pause();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const t0 = Date.now();
    try {
      const err = await rejection(cio.read('slow', 1));
      const ms = Date.now() - t0;
      expect(err).toMatchObject({ errnoName: 'ETIMEDOUT', code: 'TIMEOUT' });
      expect(ms).toBeGreaterThanOrEqual(1900);
      expect(ms).toBeLessThan(6000);
      // The JS thread kept running timers the whole time.
      expect(ticks).toBeGreaterThanOrEqual(Math.floor(ms / 20) * 0.7);
    } finally {
      clearInterval(timer);
      await ceph.resume();
    }
    expect((await cio.read('slow', 1)).toString()).toBe('x');
    await c.shutdown();
  });
});

describe('rbd images', () => {
  it('creates with features, lists, resizes, snapshots, rolls back and removes', async () => {
    const features = RBD_FEATURES.layering | RBD_FEATURES['exclusive-lock'];
    await io.rbdCreate('img', 32 * 1024 * 1024, { features });
    expect((await rejection(io.rbdCreate('img', 1 << 20))).errnoName).toBe('EEXIST');
    expect(await io.rbdList()).toContain('img');
    const img = await io.rbdOpen('img');
    const info = await img.info();
    expect(info).toMatchObject({ size: 32 * 1024 * 1024, order: 22, features });
    await img.writeAt(0, Buffer.from('version-1'));
    await img.flush();
    await img.snapCreate('s1');
    await img.writeAt(0, Buffer.from('version-2'));
    expect((await img.snapList()).map((s) => s.name)).toEqual(['s1']);
    await img.snapRollback('s1');
    expect((await img.readAt(0, 9)).toString()).toBe('version-1');
    await img.resize(64 * 1024 * 1024);
    expect((await img.info()).size).toBe(64 * 1024 * 1024);
    await img.snapRemove('s1');
    expect(await img.snapList()).toEqual([]);
    // Writing took librbd's exclusive lock: its owner is visible and breakable (with fencing).
    expect((await img.lockGetOwners()).owners).toHaveLength(1);
    expect((await img.watchers()).length).toBeGreaterThanOrEqual(1);
    await img.close();
    expect((await rejection(img.info())).errnoName).toBe('EBADF');
    await io.rbdRemove('img');
    expect(await io.rbdList()).not.toContain('img');
    expect((await rejection(io.rbdOpen('img'))).errnoName).toBe('ENOENT');
  });

  it('takes, lists and breaks advisory image locks', async () => {
    await io.rbdCreate('limg', 16 * 1024 * 1024, { features: RBD_FEATURES.layering });
    const img = await io.rbdOpen('limg');
    await img.lockExclusive('mine');
    const l = await img.listLockers();
    expect(l.lockers.map((x) => x.cookie)).toEqual(['mine']);
    expect((await rejection(img.lockExclusive('again'))).code).toBe('CONFLICT');
    await img.unlock('mine');
    expect((await img.listLockers()).lockers).toEqual([]);
    await img.close();
    await io.rbdRemove('limg');
  });
});

describe('after shutdown and without the addon', () => {
  it('refuses calls on a shut-down cluster with ENOTCONN', async () => {
    const c = await connect();
    const i = await c.openIoCtx('nat');
    await c.shutdown();
    expect((await rejection(i.stat('anything'))).errnoName).toBe('ENOTCONN');
  });

  it('explains why rbd is unavailable when the addon cannot be loaded', async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const script = `import('${join(here, '../../native/lib/rados.ts')}').then((m) => console.log(m.radosUnavailableReason()))`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '-e', script], { env: { ...process.env, CORRAL_RADOS_ADDON: '/nonexistent/corral_rados.node' } }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    expect(out).toMatch(/Ceph RADOS\/RBD support is unavailable: the addon \/nonexistent\/corral_rados.node is not built: run `npx node-gyp rebuild --directory native`/);
  });
});

it('isRadosError narrows by errno name', async () => {
  const err = await io.read('never-written', 1).catch((e: unknown) => e);
  expect(isRadosError(err, 'ENOENT')).toBe(true);
  expect(isRadosError(err, 'EBUSY')).toBe(false);
});
