/**
 * The Store contract suite: every backend runs exactly these tests, so code
 * written against the embedded store behaves the same on etcd. Watch, lease
 * and compaction cases live in contract-watch.ts, input validation, close and
 * durability in contract-lifecycle.ts; this file is the entry point.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../../contracts/store/check.js';
import type { Compare, Op, Store } from '../../contracts/store/types.js';
import { registerLifecycleTests, registerValidationTests } from './contract-lifecycle.js';
import { registerLeaseTests, registerWatchTests } from './contract-watch.js';
import { byteSort, expectCode, text, type ContractContext, type StoreHandle } from './contract-util.js';

export type { StoreHandle } from './contract-util.js';

export function storeContract(name: string, makeStore: () => Promise<StoreHandle>): void {
  describe(`Store contract: ${name}`, () => {
    let handle: StoreHandle | undefined;
    const ctx: ContractContext = {
      get store() {
        return handle!.store;
      },
      get handle() {
        return handle!;
      },
      reopen: async () => {
        handle!.store = await handle!.reopen();
        return handle!.store;
      },
    };

    beforeEach(async () => {
      handle = await makeStore();
    });
    afterEach(async () => {
      await handle?.cleanup();
      handle = undefined;
    });

    registerKvTests(ctx);
    registerRangeTests(ctx);
    registerTxnTests(ctx);
    registerWatchTests(ctx);
    registerLeaseTests(ctx);
    registerValidationTests(ctx);
    registerLifecycleTests(ctx);
  });
}

function registerKvTests(ctx: ContractContext): void {
  describe('get / put / delete', () => {
    it('put then get returns the value with create/mod revision, version 1 and no lease', async () => {
      const s = ctx.store;
      expect(await s.get('a')).toBeUndefined();
      const r = await s.put('a', 'one');
      expect(r.prev).toBeUndefined();
      expect(await s.get('a')).toEqual({ key: 'a', value: Buffer.from('one'), createRevision: r.revision, modRevision: r.revision, version: 1, lease: 0 });
    });

    it('keeps binary values byte for byte and accepts an empty value', async () => {
      const s = ctx.store;
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await s.put('bin', bytes);
      await s.put('empty', '');
      expect((await s.get('bin'))!.value.equals(bytes)).toBe(true);
      expect((await s.get('empty'))!.value.length).toBe(0);
    });

    it('overwriting bumps version and modRevision, keeps createRevision and returns the previous kv', async () => {
      const s = ctx.store;
      const r1 = await s.put('k', 'v1');
      const r2 = await s.put('k', 'v2');
      expect(r2.revision).toBe(r1.revision + 1);
      expect(r2.prev).toMatchObject({ key: 'k', createRevision: r1.revision, modRevision: r1.revision, version: 1 });
      expect(text(r2.prev)).toBe('v1');
      const kv = await s.get('k');
      expect(kv).toMatchObject({ createRevision: r1.revision, modRevision: r2.revision, version: 2 });
      expect(text(kv)).toBe('v2');
    });

    it('delete removes the key; deleting a missing key changes nothing', async () => {
      const s = ctx.store;
      await s.put('d', 'x');
      const del = await s.delete('d');
      expect(del.deleted).toBe(1);
      expect(await s.get('d')).toBeUndefined();
      expect(await s.currentRevision()).toBe(del.revision);
      expect(await s.delete('d')).toEqual({ revision: del.revision, deleted: 0 });
    });

    it('a key re-created after a delete starts over at version 1 with a new createRevision', async () => {
      const s = ctx.store;
      const first = await s.put('re', 'a');
      await s.put('re', 'b');
      await s.delete('re');
      const again = await s.put('re', 'c');
      expect(again.prev).toBeUndefined();
      expect(await s.get('re')).toMatchObject({ createRevision: again.revision, modRevision: again.revision, version: 1 });
      expect(again.revision).toBeGreaterThan(first.revision + 2);
    });

    it('every write bumps the store revision by exactly one; reads and no-op deletes do not', async () => {
      const s = ctx.store;
      const r0 = await s.currentRevision();
      expect((await s.put('r/a', '1')).revision).toBe(r0 + 1);
      expect((await s.put('r/b', '1')).revision).toBe(r0 + 2);
      await s.get('r/a');
      await s.range('r/');
      expect(await s.delete('r/none')).toEqual({ revision: r0 + 2, deleted: 0 });
      expect(await s.deletePrefix('r/none/')).toEqual({ revision: r0 + 2, deleted: 0 });
      expect((await s.range('r/')).revision).toBe(r0 + 2);
      expect(await s.currentRevision()).toBe(r0 + 2);
    });

    it('deletePrefix removes exactly the keys under the prefix in a single revision', async () => {
      const s = ctx.store;
      for (const k of ['dp/a', 'dp/b/c', 'dp', 'dq/a', 'dp0']) await s.put(k, 'x');
      const r0 = await s.currentRevision();
      const res = await s.deletePrefix('dp/');
      expect(res).toEqual({ revision: r0 + 1, deleted: 2 });
      expect((await s.range('d')).kvs.map((kv) => kv.key)).toEqual(['dp', 'dp0', 'dq/a']);
    });

    it('accepts a key and a value of the maximum size', async () => {
      const s = ctx.store;
      const key = 'max/' + 'k'.repeat((ctx.handle.maxKeyBytes ?? MAX_KEY_BYTES) - 4);
      const value = Buffer.alloc(MAX_VALUE_BYTES, 7);
      await expectCode(s.put(key + 'k', 'x'), 'INVALID_ARGUMENT');
      await s.put(key, value);
      const kv = await s.get(key);
      expect(kv?.key).toBe(key);
      expect(kv?.value.equals(value)).toBe(true);
    });
  });

  describe('compare-and-set', () => {
    it('put with ifModRevision succeeds on the current modRevision and fails with STORE_CONFLICT on a stale one', async () => {
      const s = ctx.store;
      const r1 = await s.put('cas', 'v1');
      const r2 = await s.put('cas', 'v2', { ifModRevision: r1.revision });
      expect(text(r2.prev)).toBe('v1');
      await expectCode(s.put('cas', 'v3', { ifModRevision: r1.revision }), 'STORE_CONFLICT');
      expect(text(await s.get('cas'))).toBe('v2');
      expect(await s.currentRevision()).toBe(r2.revision);
    });

    it('ifModRevision 0 creates only when the key is absent', async () => {
      const s = ctx.store;
      const created = await s.put('once', 'a', { ifModRevision: 0 });
      expect(created.prev).toBeUndefined();
      await expectCode(s.put('once', 'b', { ifModRevision: 0 }), 'STORE_CONFLICT');
      expect(text(await s.get('once'))).toBe('a');
      await expectCode(s.put('absent', 'x', { ifModRevision: created.revision }), 'STORE_CONFLICT');
      expect(await s.get('absent')).toBeUndefined();
    });

    it('delete with ifModRevision deletes only the expected version', async () => {
      const s = ctx.store;
      const r1 = await s.put('cd', 'v1');
      const r2 = await s.put('cd', 'v2');
      await expectCode(s.delete('cd', { ifModRevision: r1.revision }), 'STORE_CONFLICT');
      expect(text(await s.get('cd'))).toBe('v2');
      expect((await s.delete('cd', { ifModRevision: r2.revision })).deleted).toBe(1);
      expect(await s.get('cd')).toBeUndefined();
    });
  });
}

function registerRangeTests(ctx: ContractContext): void {
  const put = async (s: Store, keys: string[]) => {
    for (const k of keys) await s.put(k, `v:${k}`);
  };
  const keysOf = async (s: Store, prefix: string) => (await s.range(prefix)).kvs.map((kv) => kv.key);

  describe('range', () => {
    it('returns exactly the keys under the prefix, in UTF-8 byte order', async () => {
      const s = ctx.store;
      const under = ['p/', 'p/a', 'p/b/c', 'p/z', 'p/é', 'p/日本', 'p/\uFF01', 'p/😀'];
      await put(s, [...under, 'p0', 'p', 'o/x', 'q/a', 'P/a']);
      // JS sorts 'p/😀' (UTF-16 D83D) before 'p/！' (FF01); in bytes F0.. comes after EF..
      expect(await keysOf(s, 'p/')).toEqual(byteSort(under));
      expect(byteSort(under).at(-1)).toBe('p/😀');
      const { kvs } = await s.range('p/a');
      expect(kvs).toHaveLength(1);
      expect(text(kvs[0])).toBe('v:p/a');
    });

    it('treats % _ and \\ in prefixes as ordinary characters', async () => {
      const s = ctx.store;
      await put(s, ['pct%', 'pct%/a', 'pctX/a', 'pct', 'und_', 'und_/a', 'undX/a', 'bs\\', 'bs\\x', 'bsx', 'star*', 'starX']);
      expect(await keysOf(s, 'pct%')).toEqual(['pct%', 'pct%/a']);
      expect(await keysOf(s, 'und_')).toEqual(['und_', 'und_/a']);
      expect(await keysOf(s, 'bs\\')).toEqual(['bs\\', 'bs\\x']);
      expect(await keysOf(s, 'star*')).toEqual(['star*']);
    });

    it('handles prefixes that end at encoding boundaries', async () => {
      const s = ctx.store;
      await put(s, ['y\x7f', 'y\x7fa', 'y\x80', 'e\uD7FF', 'e\uD7FFz', 'e\uE000', 'e\u{10000}', 'm\u{10FFFF}', 'm\u{10FFFF}a', 'm\u{10FFFE}', 'n']);
      expect(await keysOf(s, 'y\x7f')).toEqual(['y\x7f', 'y\x7fa']);
      expect(await keysOf(s, 'e\uD7FF')).toEqual(['e\uD7FF', 'e\uD7FFz']);
      expect(await keysOf(s, 'm\u{10FFFF}')).toEqual(['m\u{10FFFF}', 'm\u{10FFFF}a']);
      expect(await keysOf(s, 'e')).toEqual(byteSort(['e\uD7FF', 'e\uD7FFz', 'e\uE000', 'e\u{10000}']));
    });

    it('an empty prefix covers every key', async () => {
      const s = ctx.store;
      await put(s, ['b', 'a/x', '\u00e9t\u00e9']);
      expect(await keysOf(s, '')).toEqual(byteSort(['b', 'a/x', '\u00e9t\u00e9']));
    });

    it('limit returns the first keys and reports more', async () => {
      const s = ctx.store;
      await put(s, ['l/1', 'l/2', 'l/3', 'l/4', 'l/5']);
      const two = await s.range('l/', { limit: 2 });
      expect(two.kvs.map((kv) => kv.key)).toEqual(['l/1', 'l/2']);
      expect(two.more).toBe(true);
      expect((await s.range('l/', { limit: 5 })).more).toBe(false);
      const ten = await s.range('l/', { limit: 10 });
      expect([ten.kvs.length, ten.more]).toEqual([5, false]);
      expect((await s.range('l/', { limit: 0 })).kvs).toHaveLength(5);
      expect(two.revision).toBe(await s.currentRevision());
    });

    it('keysOnly returns metadata without values', async () => {
      const s = ctx.store;
      const r = await s.put('ko/a', 'value');
      const { kvs } = await s.range('ko/', { keysOnly: true });
      expect(kvs).toHaveLength(1);
      expect(kvs[0]).toMatchObject({ key: 'ko/a', modRevision: r.revision, version: 1 });
      expect(kvs[0]!.value.length).toBe(0);
    });
  });
}

function registerTxnTests(ctx: ContractContext): void {
  describe('transactions', () => {
    it('evaluates every compare target with every operator', async () => {
      const s = ctx.store;
      const c = (await s.put('t', 'v1')).revision;
      const m = (await s.put('t', 'v2')).revision;
      const cases: [Compare, boolean][] = [];
      for (const [target, actual] of [
        ['modRevision', m],
        ['createRevision', c],
        ['version', 2],
      ] as const) {
        cases.push(
          [{ key: 't', target, op: '=', value: actual }, true],
          [{ key: 't', target, op: '=', value: actual + 1 }, false],
          [{ key: 't', target, op: '!=', value: actual }, false],
          [{ key: 't', target, op: '!=', value: actual + 1 }, true],
          [{ key: 't', target, op: '<', value: actual + 1 }, true],
          [{ key: 't', target, op: '<', value: actual }, false],
          [{ key: 't', target, op: '>', value: actual - 1 }, true],
          [{ key: 't', target, op: '>', value: actual }, false],
        );
      }
      cases.push(
        [{ key: 't', target: 'value', op: '=', value: 'v2' }, true],
        [{ key: 't', target: 'value', op: '=', value: Buffer.from('v1') }, false],
        [{ key: 't', target: 'value', op: '!=', value: 'v1' }, true],
        [{ key: 't', target: 'value', op: '!=', value: 'v2' }, false],
        // A missing key compares as revision/version 0...
        [{ key: 'none', target: 'createRevision', op: '=', value: 0 }, true],
        [{ key: 'none', target: 'modRevision', op: '<', value: 1 }, true],
        [{ key: 'none', target: 'version', op: '>', value: 0 }, false],
        // ...and a value compare on it is false whatever the operator (etcd semantics).
        [{ key: 'none', target: 'value', op: '=', value: '' }, false],
        [{ key: 'none', target: 'value', op: '!=', value: 'x' }, false],
      );
      const got = [];
      for (const [cmp] of cases) got.push((await s.txn({ compare: [cmp], success: [] })).succeeded);
      expect(got).toEqual(cases.map(([, want]) => want));
      expect(await s.currentRevision()).toBe(m);
    });

    it('succeeds only when all compares hold', async () => {
      const s = ctx.store;
      const r = (await s.put('all', 'x')).revision;
      const ok: Compare = { key: 'all', target: 'modRevision', op: '=', value: r };
      const bad: Compare = { key: 'all', target: 'version', op: '=', value: 5 };
      expect((await s.txn({ compare: [ok, ok], success: [] })).succeeded).toBe(true);
      expect((await s.txn({ compare: [ok, bad], success: [] })).succeeded).toBe(false);
    });

    it('runs the success branch in one revision; later ops see earlier writes', async () => {
      const s = ctx.store;
      for (const k of ['t/a', 't/b', 't/c/1', 't/c/2']) await s.put(k, '1');
      const keepRev = (await s.put('t/keep', '1')).revision;
      const r0 = await s.currentRevision();
      const res = await s.txn({
        compare: [{ key: 't/a', target: 'version', op: '=', value: 1 }],
        success: [
          { type: 'put', key: 't/new', value: 'n' },
          { type: 'put', key: 't/a', value: '2' },
          { type: 'delete', key: 't/b' },
          { type: 'deletePrefix', prefix: 't/c/' },
          { type: 'get', key: 't/a' },
          { type: 'range', prefix: 't/', limit: 2 },
        ],
        failure: [{ type: 'put', key: 't/failed', value: 'x' }],
      });
      expect(res.succeeded).toBe(true);
      expect(res.revision).toBe(r0 + 1);
      expect(await s.currentRevision()).toBe(r0 + 1);
      const [put1, put2, del, delp, get, range] = res.results;
      expect(put1).toEqual({ type: 'put' });
      expect(put2?.type === 'put' && text(put2.prev)).toBe('1');
      expect(del).toEqual({ type: 'delete', deleted: 1 });
      expect(delp).toEqual({ type: 'deletePrefix', deleted: 2 });
      expect(get?.type === 'get' && [text(get.kv), get.kv?.modRevision]).toEqual(['2', r0 + 1]);
      expect(range?.type === 'range' && [range.kvs.map((kv) => kv.key), range.more]).toEqual([['t/a', 't/keep'], true]);
      expect((await s.range('t/')).kvs.map((kv) => [kv.key, kv.modRevision])).toEqual([
        ['t/a', r0 + 1],
        ['t/keep', keepRev],
        ['t/new', r0 + 1],
      ]);
      expect(await s.get('t/failed')).toBeUndefined();
    });

    it('runs the failure branch when a compare fails, and none of the success ops', async () => {
      const s = ctx.store;
      await s.put('f/a', 'old');
      const r0 = await s.currentRevision();
      const res = await s.txn({
        compare: [{ key: 'f/a', target: 'value', op: '=', value: 'other' }],
        success: [{ type: 'put', key: 'f/a', value: 'success' }],
        failure: [
          { type: 'get', key: 'f/a' },
          { type: 'put', key: 'f/failed', value: 'yes' },
        ],
      });
      expect(res.succeeded).toBe(false);
      expect(res.revision).toBe(r0 + 1);
      expect(res.results[0]?.type === 'get' && text(res.results[0].kv)).toBe('old');
      expect(text(await s.get('f/a'))).toBe('old');
      expect(text(await s.get('f/failed'))).toBe('yes');
    });

    it('a txn that writes nothing does not bump the revision', async () => {
      const s = ctx.store;
      await s.put('ro', 'x');
      const r0 = await s.currentRevision();
      const reads = await s.txn({
        compare: [],
        success: [
          { type: 'get', key: 'ro' },
          { type: 'range', prefix: '' },
          { type: 'delete', key: 'nope' },
        ],
      });
      expect(reads.revision).toBe(r0);
      const failed = await s.txn({ compare: [{ key: 'ro', target: 'version', op: '=', value: 9 }], success: [{ type: 'put', key: 'ro', value: 'y' }] });
      expect([failed.succeeded, failed.revision, failed.results]).toEqual([false, r0, []]);
      expect(await s.currentRevision()).toBe(r0);
    });

    it('rejects a branch that writes one key twice with INVALID_ARGUMENT', async () => {
      const s = ctx.store;
      const twice: Op[][] = [
        [
          { type: 'put', key: 'dup', value: '1' },
          { type: 'put', key: 'dup', value: '2' },
        ],
        [
          { type: 'put', key: 'dup', value: '1' },
          { type: 'delete', key: 'dup' },
        ],
        [
          { type: 'deletePrefix', prefix: 'du' },
          { type: 'put', key: 'dup', value: '1' },
        ],
      ];
      for (const success of twice) await expectCode(s.txn({ compare: [], success }), 'INVALID_ARGUMENT');
      expect(await s.get('dup')).toBeUndefined();
    });
  });
}
