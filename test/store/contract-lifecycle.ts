/** Input validation, close and durability cases of the Store contract (registered by contract.ts). */
import { describe, expect, it } from 'vitest';
import { MAX_KEY_BYTES, MAX_TXN_OPS, MAX_VALUE_BYTES } from '../../contracts/store/check.js';
import type { Op, Txn } from '../../contracts/store/types.js';
import { expectCode, Recorder, type ContractContext } from './contract-util.js';

export function registerValidationTests(ctx: ContractContext): void {
  describe('input validation', () => {
    it('rejects bad keys, values and options with INVALID_ARGUMENT and writes nothing', async () => {
      const s = ctx.store;
      const r0 = await s.currentRevision();
      const bad = (v: unknown) => v as never;
      const calls: (() => Promise<unknown>)[] = [
        () => s.get(''),
        () => s.put('', 'x'),
        () => s.put('a\0b', 'x'),
        () => s.put('k'.repeat(MAX_KEY_BYTES + 1), 'x'),
        () => s.put('é'.repeat(MAX_KEY_BYTES / 2 + 1), 'x'),
        () => s.put('lone\uD800', 'x'),
        () => s.put(bad(42), 'x'),
        () => s.put('k', Buffer.alloc(MAX_VALUE_BYTES + 1)),
        () => s.put('k', bad(42)),
        () => s.put('k', bad(null)),
        () => s.put('k', 'v', { lease: -1 }),
        () => s.put('k', 'v', { ifModRevision: 1.5 }),
        () => s.delete('k', { ifModRevision: -2 }),
        () => s.range('p', { limit: -1 }),
        () => s.range(bad(undefined)),
        () => s.deletePrefix(bad(7)),
        () => s.grantLease(0),
        () => s.grantLease(1.5),
        () => s.keepAlive(0),
        () => s.revokeLease(bad('x')),
        () => s.leaseInfo(-1),
        () => s.compact(-1),
        () => s.txn(bad(null)),
        () => s.txn({ compare: [{ key: 'k', target: 'value', op: bad('<'), value: 'x' }], success: [] }),
        () => s.txn({ compare: [{ key: 'k', target: bad('lease'), op: '=', value: 1 }], success: [] }),
        () => s.txn({ compare: [], success: [bad({ type: 'increment', key: 'k' })] }),
        () => s.txn({ compare: [], success: [{ type: 'put', key: '', value: 'x' }] }),
        () => s.txn({ compare: [], success: Array.from({ length: MAX_TXN_OPS + 1 }, (_, i): Op => ({ type: 'get', key: `k${i}` })) }),
        () => s.txn(bad({ compare: [], success: 'nope' }) as Txn),
      ];
      for (const [i, call] of calls.entries()) {
        await expectCode(call, 'INVALID_ARGUMENT').catch((err: Error) => {
          throw new Error(`call #${i}: ${err.message}`);
        });
      }
      const w = new Recorder();
      expect(() => s.watch(bad({ prefix: 'x' }))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => s.watch(w.options('x', { fromRevision: -1 }))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => s.watch(w.options('a\0'))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(await s.currentRevision()).toBe(r0);
      expect((await s.range('')).kvs).toEqual([]);
    });
  });
}

export function registerLifecycleTests(ctx: ContractContext): void {
  describe('close', () => {
    it('after close every call fails with STORE_CLOSED and open watches end with STORE_CLOSED', async () => {
      const s = ctx.store;
      await s.put('c', 'x');
      const w = new Recorder().start(s, 'c');
      await s.close();
      await w.waitError();
      expect(w.errors.map((e) => (e as { code?: string }).code)).toEqual(['STORE_CLOSED']);
      const calls: (() => unknown)[] = [
        () => s.get('c'),
        () => s.range(''),
        () => s.put('c', 'y'),
        () => s.delete('c'),
        () => s.deletePrefix(''),
        () => s.txn({ compare: [], success: [] }),
        () => s.watch(new Recorder().options('c')),
        () => s.grantLease(5),
        () => s.keepAlive(1),
        () => s.revokeLease(1),
        () => s.leaseInfo(1),
        () => s.currentRevision(),
        () => s.compact(1),
      ];
      for (const call of calls) await expectCode(call, 'STORE_CLOSED');
      await expect(s.close()).resolves.toBeUndefined();
    });
  });

  describe('durability', () => {
    it('data, metadata, leases and the revision survive a reopen', async () => {
      let s = ctx.store;
      const a1 = await s.put('dur/a', 'a1');
      const a2 = await s.put('dur/a', Buffer.from([0, 1, 2]));
      await s.put('dur/b', 'b');
      await s.delete('dur/b');
      const lease = await s.grantLease(60);
      await s.put('dur/leased', 'l', { lease });
      const rev = await s.currentRevision();
      const before = await s.range('dur/');

      s = await ctx.reopen();
      expect(await s.currentRevision()).toBe(rev);
      expect(await s.range('dur/')).toEqual(before);
      expect(await s.get('dur/a')).toMatchObject({ createRevision: a1.revision, modRevision: a2.revision, version: 2 });
      expect((await s.leaseInfo(lease))?.keys).toEqual(['dur/leased']);
      expect(await s.keepAlive(lease)).toBeGreaterThanOrEqual(60);

      const next = await s.put('dur/a', 'a3');
      expect(next.revision).toBe(rev + 1);
      expect(await s.get('dur/a')).toMatchObject({ createRevision: a1.revision, version: 3 });
      // History survives too: a watch from the first write replays it.
      const w = new Recorder().start(s, 'dur/', { fromRevision: a1.revision });
      await w.waitEvents(6);
      expect(w.summary.slice(0, 2)).toEqual([`put dur/a=a1@${a1.revision}`, `put dur/a=\0\x01\x02@${a2.revision}`]);
      expect(w.events.map((e) => e.type)).toEqual(['put', 'put', 'put', 'delete', 'put', 'put']);
      w.watch?.cancel();
      await s.revokeLease(lease);
      expect(await s.get('dur/leased')).toBeUndefined();
    });
  });
}
