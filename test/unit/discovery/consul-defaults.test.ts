/**
 * Consul's defaults as its HTTP handlers and state store apply them
 * (agent/kvs_endpoint.go, agent/session_endpoint.go, state/kvs.go), checked
 * on corral's pure pieces; the same behaviour through the real `consul`
 * client is in test/discovery/consul-api.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../../common/store/index.js';
import type { RequestContext } from '../../../common/http/server.js';
import { isCorralError } from '../../../contracts/errors.js';
import { Kv, planPut, decodeEntry, KV_PREFIX, type Entry, type Header } from '../../../discovery/src/consul/kv.js';
import { blockingParams, boolParam, consistencyMode, dropNulls } from '../../../discovery/src/consul/http-util.js';
import { lockDelayMs } from '../../../discovery/src/consul/api-session.js';
import { testDir } from '../../harness/resources.js';

const entry = (header: Header, value = 'x', modifyIndex = 5): Entry => ({ key: 'k', header, value: Buffer.from(value), createIndex: 1, modifyIndex });
const written = (ops: unknown[]): Header => decodeEntry({ key: KV_PREFIX + 'k', value: (ops[0] as { value: Buffer }).value, createRevision: 1, modRevision: 6, version: 2, lease: 0 }).header;
const ctxOf = (query: string): RequestContext => ({ query: new URLSearchParams(query) }) as RequestContext;

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('KV writes', () => {
  it('a PUT without ?flags sets the flags to 0, whatever they were (set, cas, acquire, release)', () => {
    const now = 1_000;
    expect(written(planPut('k', entry({ f: 42, l: 0 }), 5, Buffer.from('y'), {}, now).ops).f).toBe(0);
    expect(written(planPut('k', entry({ f: 42, l: 0 }), 5, Buffer.from('y'), { cas: 5 }, now).ops).f).toBe(0);
    expect(written(planPut('k', entry({ f: 42, l: 0 }), 5, Buffer.from('y'), { acquire: 's1' }, now).ops).f).toBe(0);
    expect(written(planPut('k', entry({ f: 42, l: 1, s: 's1' }), 5, Buffer.from('y'), { release: 's1' }, now).ops).f).toBe(0);
    expect(written(planPut('k', entry({ f: 0, l: 0 }), 5, Buffer.from('y'), { flags: 7 }, now).ops).f).toBe(7);
    // A plain set keeps the lock holder, as Consul's kvsSetTxn does.
    expect(written(planPut('k', entry({ f: 3, l: 1, s: 's1' }), 5, Buffer.from('y'), {}, now).ops)).toEqual({ f: 0, l: 1, s: 's1' });
  });

  it('a PUT that changes nothing writes nothing (ModifyIndex stays)', () => {
    const same = planPut('k', entry({ f: 7, l: 0 }, 'v'), 5, Buffer.from('v'), { flags: 7 }, 0);
    expect(same).toMatchObject({ ok: true, unchanged: true, ops: [] });
    // Flags dropped by a PUT without ?flags are a change.
    expect(planPut('k', entry({ f: 7, l: 0 }, 'v'), 5, Buffer.from('v'), {}, 0).unchanged).toBeUndefined();
    expect(planPut('k', entry({ f: 0, l: 0 }, 'v'), 5, Buffer.from('w'), {}, 0).ops).toHaveLength(1);
    // Re-acquiring a lock one already holds, with the same value, is a no-op that succeeds.
    expect(planPut('k', entry({ f: 0, l: 1, s: 's1' }, 'v'), 5, Buffer.from('v'), { acquire: 's1' }, 0)).toMatchObject({ ok: true, unchanged: true });
  });

  it('DELETE ?cas: a missing key counts as deleted, cas=0 never deletes a key that exists', async () => {
    const dir = testDir('consul-kv');
    const store = await openStore({ backend: 'embedded', path: join(dir, 'kv.db'), sync: 'normal' });
    cleanup.push(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const kv = new Kv(store);
    expect(await kv.delete('nope', { cas: 0 })).toBe(true);
    expect(await kv.delete('nope', { cas: 12 })).toBe(true);
    expect(await kv.put('k', Buffer.from('v'), { flags: 9 })).toBe(true);
    const first = (await kv.get('k')).entry!;
    expect(first.header.f).toBe(9);
    expect(await kv.put('k', Buffer.from('v'), {})).toBe(true);
    const second = (await kv.get('k')).entry!;
    expect(second.header.f).toBe(0);
    expect(second.modifyIndex).toBeGreaterThan(first.modifyIndex);
    // Same value, same flags: no new index.
    expect(await kv.put('k', Buffer.from('v'), {})).toBe(true);
    expect((await kv.get('k')).entry!.modifyIndex).toBe(second.modifyIndex);
    expect(await kv.delete('k', { cas: 0 })).toBe(false);
    expect(await kv.delete('k', { cas: second.modifyIndex - 1 })).toBe(false);
    expect(await kv.delete('k', { cas: second.modifyIndex })).toBe(true);
    expect((await kv.get('k')).entry).toBeUndefined();
  });
});

describe('query parameters and bodies', () => {
  it('wait=0 means the default wait (5 min), longer waits are cut to 10 min', () => {
    const zero = blockingParams(ctxOf('index=5&wait=0s'));
    expect(zero.index).toBe(5);
    expect(zero.waitMs).toBeGreaterThanOrEqual(300_000);
    expect(zero.waitMs).toBeLessThanOrEqual(300_000 * (1 + 1 / 16));
    const long = blockingParams(ctxOf('index=5&wait=1h'));
    expect(long.waitMs).toBeGreaterThanOrEqual(600_000);
    expect(long.waitMs).toBeLessThanOrEqual(600_000 * (1 + 1 / 16));
    expect(blockingParams(ctxOf('index=0')).index).toBeUndefined();
  });

  it('stale and consistent together are refused; either alone is reported back', () => {
    expect(consistencyMode(ctxOf('stale'))).toBe('stale');
    expect(consistencyMode(ctxOf('consistent'))).toBe('consistent');
    expect(consistencyMode(ctxOf(''))).toBe('leader');
    let err: unknown;
    try {
      blockingParams(ctxOf('stale&consistent'));
    } catch (e) {
      err = e;
    }
    expect(isCorralError(err, 'INVALID_ARGUMENT')).toBe(true);
  });

  it('?passing reads like Go: present alone is true, ParseBool spellings, anything else refused', () => {
    expect(boolParam(ctxOf('passing'), 'passing')).toBe(true);
    expect(boolParam(ctxOf('passing=T'), 'passing')).toBe(true);
    expect(boolParam(ctxOf('passing=False'), 'passing')).toBe(false);
    expect(boolParam(ctxOf(''), 'passing')).toBe(false);
    expect(() => boolParam(ctxOf('passing=yes'), 'passing')).toThrow(/Invalid value/);
  });

  it('JSON nulls in objects read as absent, as Go decodes them', () => {
    expect(dropNulls({ Name: 'a', Tags: null, Check: { TTL: null, Notes: 'n' }, List: [null, { X: null }] })).toEqual({ Name: 'a', Check: { Notes: 'n' }, List: [null, {}] });
  });

  it('session LockDelay: numbers under 1000 ns are seconds, as Consul fixes them up', () => {
    expect(lockDelayMs(undefined)).toBe(15_000);
    expect(lockDelayMs(5)).toBe(5_000);
    expect(lockDelayMs(15_000_000_000)).toBe(15_000);
    expect(lockDelayMs('10s')).toBe(10_000);
    expect(lockDelayMs('0s')).toBe(0);
    expect(lockDelayMs(0)).toBe(0);
  });
});
