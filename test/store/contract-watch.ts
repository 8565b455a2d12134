/** Watch, compaction and lease cases of the Store contract (registered by contract.ts). */
import { describe, expect, it } from 'vitest';
import { expectCode, Recorder, sleep, text, type ContractContext } from './contract-util.js';

export function registerWatchTests(ctx: ContractContext): void {
  describe('watch', () => {
    it('replays history from a past revision in order, including deletes, then streams live changes', async () => {
      const s = ctx.store;
      const r1 = (await s.put('w/a', '1')).revision;
      const r2 = (await s.put('w/b', '1')).revision;
      await s.put('x/other', '1');
      const r3 = (await s.delete('w/a')).revision;
      const w = new Recorder().start(s, 'w/', { fromRevision: r1 });
      await w.waitEvents(3);
      expect(w.summary).toEqual([`put w/a=1@${r1}`, `put w/b=1@${r2}`, `delete w/a@${r3}`]);
      const del = w.events[2]!;
      expect(del.kv).toMatchObject({ key: 'w/a', modRevision: r3 });
      expect(del.kv.value.length).toBe(0);
      const r4 = (await s.put('w/c', '2')).revision;
      await w.waitEvents(4);
      expect(w.summary[3]).toBe(`put w/c=2@${r4}`);
      expect(w.batches.map((b) => b.revision)).toEqual([r1, r2, r3, r4]);
      expect(w.errors).toEqual([]);
    });

    it('delivers all events of one revision in a single call, live and replayed', async () => {
      const s = ctx.store;
      await s.put('g/0', 'x');
      await s.put('g/9', 'x');
      const live = new Recorder().start(s, 'g/');
      const res = await s.txn({
        compare: [],
        success: [
          { type: 'put', key: 'g/1', value: 'a' },
          { type: 'put', key: 'g/2', value: 'b' },
          { type: 'delete', key: 'g/0' },
        ],
      });
      await live.waitEvents(3);
      expect(live.batches).toHaveLength(1);
      expect(live.batches[0]!.revision).toBe(res.revision);
      expect(live.events.every((e) => e.kv.modRevision === res.revision)).toBe(true);
      expect([...live.summary].sort()).toEqual([`delete g/0@${res.revision}`, `put g/1=a@${res.revision}`, `put g/2=b@${res.revision}`]);

      const dp = await s.deletePrefix('g/');
      await live.waitEvents(6);
      expect(live.batches).toHaveLength(2);
      expect(live.batches[1]!.revision).toBe(dp.revision);
      expect(live.batches[1]!.events.map((e) => `${e.type} ${e.kv.key}`).sort()).toEqual(['delete g/1', 'delete g/2', 'delete g/9']);

      const past = new Recorder().start(s, 'g/', { fromRevision: res.revision });
      await past.waitEvents(6);
      expect(past.batches.map((b) => [b.revision, b.events.length])).toEqual([
        [res.revision, 3],
        [dp.revision, 3],
      ]);
    });

    it('fills prevKv only when asked, for replayed and live events', async () => {
      const s = ctx.store;
      const r1 = (await s.put('pk', 'v1')).revision;
      const r2 = (await s.put('pk', 'v2')).revision;
      const withPrev = new Recorder().start(s, 'pk', { fromRevision: r1, prevKv: true });
      const without = new Recorder().start(s, 'pk', { fromRevision: r1 });
      await withPrev.waitEvents(2);
      await without.waitEvents(2);
      const r3 = (await s.delete('pk')).revision;
      await withPrev.waitEvents(3);
      await without.waitEvents(3);
      const [e1, e2, e3] = withPrev.events;
      expect(e1!.prevKv).toBeUndefined();
      expect(e2!.prevKv).toMatchObject({ key: 'pk', modRevision: r1, version: 1 });
      expect(text(e2!.prevKv)).toBe('v1');
      expect(e3!.type).toBe('delete');
      expect(e3!.kv.modRevision).toBe(r3);
      expect(e3!.prevKv).toMatchObject({ key: 'pk', modRevision: r2, version: 2 });
      expect(text(e3!.prevKv)).toBe('v2');
      expect(without.events.map((e) => e.prevKv)).toEqual([undefined, undefined, undefined]);
    });

    it('without fromRevision sees only later changes, never from inside the writer', async () => {
      const s = ctx.store;
      await s.put('n/old', '1');
      const w = new Recorder().start(s, 'n/');
      const pending = s.put('n/new', '1');
      expect(w.batches).toHaveLength(0);
      const { revision } = await pending;
      await w.waitEvents(1);
      await sleep(50);
      expect(w.summary).toEqual([`put n/new=1@${revision}`]);
    });

    it('starts at a future fromRevision', async () => {
      const s = ctx.store;
      const now = await s.currentRevision();
      const w = new Recorder().start(s, 'fut/', { fromRevision: now + 2 });
      await s.put('fut/a', 'skipped');
      const r = (await s.put('fut/b', 'seen')).revision;
      await w.waitEvents(1);
      expect(w.summary).toEqual([`put fut/b=seen@${r}`]);
    });

    it('matches keys by prefix only, for several watchers at once', async () => {
      const s = ctx.store;
      const a = new Recorder().start(s, 'pm/a');
      const b = new Recorder().start(s, 'pm/b');
      const all = new Recorder().start(s, '');
      const keys = ['pm/a', 'pm/ab', 'pm/b', 'pm/', 'pm/ba', 'other', 'pm/a~end', 'pm/b~end'];
      for (const k of keys) await s.put(k, 'x');
      await a.waitEvents(3);
      await b.waitEvents(3);
      await all.waitEvents(keys.length);
      const keysOf = (r: Recorder) => r.events.map((e) => e.kv.key);
      expect(keysOf(a)).toEqual(['pm/a', 'pm/ab', 'pm/a~end']);
      expect(keysOf(b)).toEqual(['pm/b', 'pm/ba', 'pm/b~end']);
      expect(keysOf(all)).toEqual(keys);
    });

    it('stops delivering after cancel', async () => {
      const s = ctx.store;
      const w = new Recorder().start(s, 'cx/');
      await s.put('cx/1', 'x');
      await w.waitEvents(1);
      w.watch!.cancel();
      const probe = new Recorder().start(s, 'cx/');
      await s.put('cx/2', 'x');
      await probe.waitEvents(1);
      await sleep(100);
      expect(w.events.map((e) => e.kv.key)).toEqual(['cx/1']);
      expect(w.errors).toEqual([]);
      w.watch!.cancel();
    });

    it('lets callbacks write to the store', async () => {
      const s = ctx.store;
      const echo = s.watch({
        prefix: 'ping',
        onEvents: (events) => {
          for (const e of events) if (e.type === 'put') void s.put('pong', e.kv.value);
        },
      });
      const pong = new Recorder().start(s, 'pong');
      await s.put('ping', 'hello');
      await pong.waitEvents(1);
      expect(text(pong.events[0]!.kv)).toBe('hello');
      echo.cancel();
    });
  });

  describe('compaction', () => {
    it('a watch from before the compaction point fails with STORE_COMPACTED; from it on works', async () => {
      const s = ctx.store;
      const r1 = (await s.put('c/k', '1')).revision;
      const r2 = (await s.put('c/k', '2')).revision;
      const r3 = (await s.put('c/k', '3')).revision;
      await s.compact(r2);
      const old = new Recorder().start(s, 'c/', { fromRevision: r1 });
      await old.waitError();
      expect((old.errors[0] as { code?: string }).code).toBe('STORE_COMPACTED');
      expect(old.events).toEqual([]);
      const ok = new Recorder().start(s, 'c/', { fromRevision: r2 });
      await ok.waitEvents(2);
      expect(ok.summary).toEqual([`put c/k=2@${r2}`, `put c/k=3@${r3}`]);
      expect(ok.errors).toEqual([]);
      // Current data is untouched, and compacting at or below the compaction point is a no-op.
      expect(await s.get('c/k')).toMatchObject({ createRevision: r1, modRevision: r3, version: 3 });
      await s.compact(r1);
      await s.compact(r2);
      await expectCode(s.compact(r3 + 1000), 'INVALID_ARGUMENT');
      ok.watch!.cancel();
    });
  });
}

export function registerLeaseTests(ctx: ContractContext): void {
  describe('leases', () => {
    it('keys attached to a lease carry its id and are listed by leaseInfo', async () => {
      const s = ctx.store;
      const id = await s.grantLease(30);
      expect(Number.isSafeInteger(id) && id > 0).toBe(true);
      await s.put('l/a', 'a', { lease: id });
      await s.txn({ compare: [], success: [{ type: 'put', key: 'l/b', value: 'b', lease: id }] });
      await s.put('l/free', 'f');
      expect((await s.get('l/a'))?.lease).toBe(id);
      expect((await s.get('l/free'))?.lease).toBe(0);
      const info = await s.leaseInfo(id);
      expect(info?.keys).toEqual(['l/a', 'l/b']);
      expect(info!.grantedTtl).toBeGreaterThanOrEqual(30);
      expect(info!.ttl).toBeGreaterThan(20);
      expect(info!.ttl).toBeLessThanOrEqual(info!.grantedTtl);
      // A put without a lease detaches the key.
      await s.put('l/b', 'b2');
      expect((await s.get('l/b'))?.lease).toBe(0);
      expect((await s.leaseInfo(id))?.keys).toEqual(['l/a']);
    });

    it('revoking deletes the attached keys in one revision with delete events', async () => {
      const s = ctx.store;
      const id = await s.grantLease(30);
      await s.put('lr/a', 'a', { lease: id });
      await s.put('lr/b', 'b', { lease: id });
      await s.put('lr/keep', 'k');
      const w = new Recorder().start(s, 'lr/', { prevKv: true });
      await s.revokeLease(id);
      await w.waitEvents(2);
      expect(w.batches).toHaveLength(1);
      expect(w.events.map((e) => `${e.type} ${e.kv.key} was ${text(e.prevKv)}`).sort()).toEqual(['delete lr/a was a', 'delete lr/b was b']);
      expect(w.events.every((e) => e.kv.modRevision === w.batches[0]!.revision)).toBe(true);
      expect((await s.range('lr/')).kvs.map((kv) => kv.key)).toEqual(['lr/keep']);
      expect(await s.leaseInfo(id)).toBeUndefined();
      await expectCode(s.revokeLease(id), 'LEASE_NOT_FOUND');
      await expectCode(s.keepAlive(id), 'LEASE_NOT_FOUND');
    });

    it('put or txn with an unknown lease fails with LEASE_NOT_FOUND and writes nothing', async () => {
      const s = ctx.store;
      const r0 = await s.currentRevision();
      const id = await s.grantLease(30);
      await s.revokeLease(id);
      await expectCode(s.put('ln', 'x', { lease: id }), 'LEASE_NOT_FOUND');
      await expectCode(s.txn({ compare: [], success: [{ type: 'put', key: 'ln', value: 'x', lease: id }] }), 'LEASE_NOT_FOUND');
      await expectCode(s.revokeLease(id), 'LEASE_NOT_FOUND');
      expect(await s.get('ln')).toBeUndefined();
      expect(await s.currentRevision()).toBe(r0);
    });

    it('keepAlive holds a lease past its TTL; on expiry its keys go in one revision', { timeout: 30_000 }, async () => {
      const s = ctx.store;
      const id = await s.grantLease(2);
      await s.put('le/a', 'a', { lease: id });
      await s.put('le/b', 'b', { lease: id });
      await s.put('le/other', 'o');
      const w = new Recorder().start(s, 'le/', { prevKv: true });
      const start = Date.now();
      while (Date.now() - start < 4000) {
        await sleep(500);
        expect(await s.keepAlive(id)).toBeGreaterThanOrEqual(2);
        expect(await s.get('le/a')).toBeDefined();
      }
      expect(w.events).toEqual([]);
      await w.waitEvents(2, 15_000);
      expect(Date.now() - start).toBeGreaterThan(4000 + 1000);
      expect(w.batches).toHaveLength(1);
      expect(w.events.map((e) => `${e.type} ${e.kv.key} was ${text(e.prevKv)}`).sort()).toEqual(['delete le/a was a', 'delete le/b was b']);
      expect((await s.range('le/')).kvs.map((kv) => kv.key)).toEqual(['le/other']);
      expect(await s.leaseInfo(id)).toBeUndefined();
      await expectCode(s.keepAlive(id), 'LEASE_NOT_FOUND');
    });
  });
}
