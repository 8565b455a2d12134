/**
 * The master's store API at its HTTP edge, against real masters: who may call
 * it (401 / 403 from the security file's `store` ACL and its default), the
 * master's registry refused for every kind of call, and bad input answered
 * with a 4xx and a clear message — never a 500 — checked case by case and
 * with fast-check over every call type.
 */
import { rmSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureLogging } from '../../common/log.js';
import { MAX_TXN_OPS, MAX_VALUE_BYTES } from '../../contracts/store/check.js';
import { RemoteStore } from '../../common/store/remote.js';
import { STORE_API_PATH, STORE_CALL_TYPES } from '../../contracts/store/wire.js';
import type { Op } from '../../contracts/store/types.js';
import { REGISTRY_PREFIX } from '../../core-scheduler/src/master/http/store-api.js';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { testDir } from '../harness/resources.js';
import { expectCode, Recorder } from './contract-util.js';
import { CREDS, rawCall, startAuthMaster } from './remote-util.js';

if (!process.env.CORRAL_LOG_LEVEL) configureLogging({ level: 'warn' });

describe('store API: authentication and the store ACL', () => {
  let dir: string;
  let byDefault: TestMaster | undefined;
  let explicit: TestMaster | undefined;
  beforeAll(async () => {
    dir = testDir('store-api-auth');
    byDefault = await startAuthMaster(dir);
    explicit = await startAuthMaster(dir, [CREDS.ipam.principal]);
  });
  afterAll(async () => {
    await byDefault?.dispose();
    await explicit?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = { type: 'CURRENT_REVISION' };

  it('answers 401 without credentials or with a wrong secret, before reading the body', async () => {
    const url = byDefault!.url;
    const none = await rawCall(url, call);
    expect([none.status, none.body.code]).toEqual([401, 'UNAUTHENTICATED']);
    expect(none.body.message).toMatch(/authentication required/);
    expect((await rawCall(url, call, { principal: 'admin', secret: 'wrong' })).status).toBe(401);
    expect((await rawCall(url, call, { principal: 'nobody', secret: 'x' })).status).toBe(401);
    expect((await rawCall(url, '{ not json')).status).toBe(401);
    await expectCode(RemoteStore.open({ url }), 'UNAUTHENTICATED');
    await expectCode(RemoteStore.open({ url, principal: 'admin', secret: 'wrong' }), 'UNAUTHENTICATED');
  });

  it('by default admits operators and agents and answers 403 to anyone else', async () => {
    const url = byDefault!.url;
    expect((await rawCall(url, call, CREDS.admin)).status).toBe(200);
    expect((await rawCall(url, call, CREDS.agent)).status).toBe(200);
    for (const creds of [CREDS.framework, CREDS.ipam]) {
      const r = await rawCall(url, call, creds);
      expect([r.status, r.body.code]).toEqual([403, 'FORBIDDEN']);
      expect(r.body.message).toBe(`principal "${creds.principal}" may not use the store API (acls.store, by default operators and agents)`);
    }
    await expectCode(RemoteStore.open({ url, ...CREDS.framework }), 'FORBIDDEN');
    // A watch is refused the same way, through onError.
    const unopened = new RemoteStore({ url, ...CREDS.framework });
    try {
      const w = new Recorder().start(unopened, 'x/');
      await w.waitError();
      expect((w.errors[0] as { code?: string }).code).toBe('FORBIDDEN');
    } finally {
      await unopened.close();
    }
    const s = await RemoteStore.open({ url, ...CREDS.agent });
    try {
      await s.put('acl/k', 'v');
      expect((await s.get('acl/k'))?.value.toString()).toBe('v');
    } finally {
      await s.close();
    }
  });

  it('with acls.store set, admits exactly those principals', async () => {
    const url = explicit!.url;
    expect((await rawCall(url, call, CREDS.ipam)).status).toBe(200);
    for (const creds of [CREDS.admin, CREDS.agent, CREDS.framework]) {
      const r = await rawCall(url, call, creds);
      expect(r.status).toBe(403);
      expect(r.body.message).toBe(`principal "${creds.principal}" may not use the store API (acls.store)`);
    }
    const s = await RemoteStore.open({ url, ...CREDS.ipam });
    await s.close();
  });
});

describe('store API: the registry and bad input', () => {
  let dir: string;
  let master: TestMaster | undefined;
  let store: RemoteStore | undefined;
  beforeAll(async () => {
    dir = testDir('store-api');
    master = await startTestMaster({}, dir);
    store = await RemoteStore.open({ url: master.url });
  });
  afterAll(async () => {
    await store?.close();
    await master?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  const registry = () => master!.store.range(REGISTRY_PREFIX).then((r) => r.kvs);

  it("guards the prefix the master's registry really uses", async () => {
    const all = (await master!.store.range('')).kvs.map((kv) => kv.key);
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((k) => !k.startsWith(REGISTRY_PREFIX))).toEqual([]);
  });

  it('refuses registry keys and overlapping prefixes with FORBIDDEN for every kind of call', async () => {
    const s = store!;
    const before = await registry();
    const key = `${REGISTRY_PREFIX}cluster`;
    const overlapping = ['', 'c', 'corral/', 'corral/registry', REGISTRY_PREFIX, `${REGISTRY_PREFIX}agents/`];
    const ops: Op[] = [
      { type: 'put', key, value: 'x' },
      { type: 'delete', key },
      { type: 'get', key },
      ...overlapping.flatMap((prefix): Op[] => [
        { type: 'deletePrefix', prefix },
        { type: 'range', prefix },
      ]),
    ];
    const calls: Array<() => Promise<unknown>> = [
      () => s.get(key),
      () => s.put(key, 'x'),
      () => s.put(`${REGISTRY_PREFIX}new`, 'x', { ifModRevision: 0 }),
      () => s.delete(key),
      () => s.delete(key, { ifModRevision: 1 }),
      ...overlapping.flatMap((p) => [() => s.range(p), () => s.range(p, { keysOnly: true, limit: 1 }), () => s.deletePrefix(p)]),
      () => s.txn({ compare: [{ key, target: 'version', op: '>', value: 0 }], success: [] }),
      () => s.txn({ compare: [{ key, target: 'value', op: '=', value: 'x' }], success: [] }),
      ...ops.map((op) => () => s.txn({ compare: [], success: [op] })),
      ...ops.map((op) => () => s.txn({ compare: [], success: [{ type: 'get', key: 'fine' }], failure: [op] })),
    ];
    for (const [i, c] of calls.entries()) {
      await expectCode(c, 'FORBIDDEN').catch((err: Error) => {
        throw new Error(`call #${i}: ${err.message}`);
      });
    }
    for (const prefix of overlapping) {
      const w = new Recorder().start(s, prefix);
      await w.waitError();
      expect((w.errors[0] as { code?: string }).code).toBe('FORBIDDEN');
    }
    expect(await registry()).toEqual(before);

    const raw = await rawCall(master!.url, { type: 'RANGE', range: { prefix: 'corral/' } });
    expect(raw.status).toBe(403);
    expect(raw.body.message).toMatch(/^prefix "corral\/" overlaps the master's registry \(corral\/registry\/\)/);
    const inTxn = await rawCall(master!.url, {
      type: 'TXN',
      txn: {
        compare: [],
        success: [
          { type: 'GET', get: { key: 'ok' } },
          { type: 'PUT', put: { key, value: '' } },
        ],
      },
    });
    expect(inTxn.body.message).toMatch(/^txn success\[1\] PUT key "corral\/registry\/cluster" is in the master's registry/);
  });

  it('neither lists nor revokes registry keys held by a lease', async () => {
    const s = store!;
    const held = await master!.store.grantLease(60);
    await master!.store.put(`${REGISTRY_PREFIX}leased`, 'x', { lease: held });
    await master!.store.put('elsewhere/leased', 'y', { lease: held });
    try {
      expect((await s.leaseInfo(held))?.keys).toEqual(['elsewhere/leased']);
      await expectCode(s.revokeLease(held), 'FORBIDDEN');
      expect(await master!.store.get(`${REGISTRY_PREFIX}leased`)).toBeDefined();
    } finally {
      await master!.store.revokeLease(held);
    }
  });

  it('allows everything next to the registry, including keys that merely share its first letters', async () => {
    const s = store!;
    await s.put('corral/registry', 'not under corral/registry/');
    await s.put('corral/registryX/a', 'x');
    await s.put('corral/discovery/kv/a', 'x');
    expect((await s.range('corral/registryX')).kvs.map((kv) => kv.key)).toEqual(['corral/registryX/a']);
    expect((await s.range('corral/d')).kvs.map((kv) => kv.key)).toEqual(['corral/discovery/kv/a']);
    expect((await s.get('corral/registry'))?.value.toString()).toBe('not under corral/registry/');
    await s.txn({
      compare: [],
      success: [
        { type: 'deletePrefix', prefix: 'corral/registryX' },
        { type: 'delete', key: 'corral/registry' },
      ],
    });
    expect((await s.deletePrefix('corral/discovery/')).deleted).toBe(1);
  });

  it('answers bad input with a 4xx and a message that says what is wrong', async () => {
    await store!.put('bad/exists', 'x');
    const tooMany = Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => ({ type: 'GET', get: { key: `k${i}` } }));
    const cases: Array<[string, unknown, number, RegExp]> = [
      ['not JSON', '{"type":', 400, /^malformed JSON body/],
      ['an empty body', '', 400, /request body is empty/],
      ['an array', [], 400, /the call must be a JSON object/],
      ['no type', {}, 400, /the call needs a "type" field/],
      ['an unknown type', { type: 'SCAN' }, 400, /unknown call type "SCAN"; expected one of GET, RANGE/],
      ['missing arguments', { type: 'GET' }, 400, /^invalid GET call: get: /],
      ['a misspelt field', { type: 'PUT', put: { key: 'k', value: '', if_mod_revisoin: 3 } }, 400, /put: Unrecognized key: "if_mod_revisoin"/],
      ['a value that is not base64', { type: 'PUT', put: { key: 'k', value: 'not base64!' } }, 400, /put\.value: Invalid base64/],
      ['an empty key', { type: 'GET', get: { key: '' } }, 400, /key must not be empty/],
      ['NUL in a key', { type: 'PUT', put: { key: 'a\0b', value: '' } }, 400, /key must not contain NUL/],
      ['a lone surrogate', '{"type":"GET","get":{"key":"\\ud800"}}', 400, /key is not well-formed Unicode/],
      ['a value too large', { type: 'PUT', put: { key: 'k', value: Buffer.alloc(MAX_VALUE_BYTES + 1).toString('base64') } }, 400, /value is larger than/],
      ['a negative lease', { type: 'PUT', put: { key: 'k', value: '', lease: -1 } }, 400, /lease id must be an integer/],
      ['a fractional revision', { type: 'DELETE', delete: { key: 'k', if_mod_revision: 1.5 } }, 400, /ifModRevision must be an integer/],
      ['a huge limit', { type: 'RANGE', range: { prefix: 'k', limit: 1e300 } }, 400, /limit must be an integer/],
      ['"<" on a value', { type: 'TXN', txn: { compare: [{ key: 'k', target: 'value', op: '<', value: '' }], success: [] } }, 400, /txn\.compare\.0\.op/],
      ['too many ops', { type: 'TXN', txn: { compare: [], success: tooMany } }, 400, /at most 128/],
      [
        'one key twice',
        {
          type: 'TXN',
          txn: {
            compare: [],
            success: [
              { type: 'PUT', put: { key: 'k', value: '' } },
              { type: 'DELETE', delete: { key: 'k' } },
            ],
          },
        },
        400,
        /written more than once/,
      ],
      ['a future compaction', { type: 'COMPACT', compact: { revision: 1e9 } }, 400, /future revision/],
      ['a watch from -1', { type: 'WATCH', watch: { prefix: 'w/', from_revision: -1 } }, 400, /from_revision must be an integer/],
      ['a TTL of 0', { type: 'GRANT_LEASE', grant_lease: { ttl: 0 } }, 400, /lease TTL must be an integer between 1/],
      ['an unknown lease', { type: 'KEEP_ALIVE', keep_alive: { id: 987654 } }, 404, /lease 987654 not found/],
      ['a stale CAS', { type: 'PUT', put: { key: 'bad/exists', value: '', if_mod_revision: 0 } }, 409, /modRevision of "bad\/exists" is \d+, expected 0/],
    ];
    for (const [what, body, status, message] of cases) {
      const r = await rawCall(master!.url, body);
      expect([what, r.status], r.text.slice(0, 300)).toEqual([what, status]);
      expect(String(r.body.message), what).toMatch(message);
    }
    const proto = await rawCall(master!.url, { type: 'CURRENT_REVISION' }, undefined, { 'content-type': 'application/x-protobuf' });
    expect(proto.status).toBe(415);
    const big = await rawCall(master!.url, `{"type":"PUT","put":{"key":"k","value":"${'A'.repeat(5 * 1024 * 1024)}"}}`);
    expect([big.status, big.body.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const get = await fetch(master!.url + STORE_API_PATH);
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
    await get.body?.cancel();
  });

  it('answers random and malformed calls of every type with a 4xx (or success), never a 5xx, and keeps the registry', { timeout: 120_000 }, async () => {
    const before = await registry();
    const keys = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('fz/a', 'fz/b', 'fz/') },
      { weight: 1, arbitrary: fc.constantFrom('', 'corral/', `${REGISTRY_PREFIX}cluster`, 'a\0b', 'é', 'x'.repeat(5000)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
    );
    const anything = fc.oneof(fc.jsonValue(), fc.double(), fc.constantFrom(-1, 1.5, 1e300, null, true, '!!'));
    const num = fc.oneof({ weight: 3, arbitrary: fc.nat({ max: 50 }) }, { weight: 1, arbitrary: anything });
    const bool = fc.oneof({ weight: 3, arbitrary: fc.boolean() }, { weight: 1, arbitrary: anything });
    const gen: Record<string, fc.Arbitrary<unknown>> = {
      key: keys,
      prefix: keys,
      value: fc.oneof({ weight: 3, arbitrary: fc.base64String({ maxLength: 40 }) }, { weight: 1, arbitrary: anything }),
      lease: num,
      if_mod_revision: num,
      limit: num,
      keys_only: bool,
      from_revision: num,
      prev_kv: bool,
      ttl: num,
      id: num,
      revision: num,
    };
    // The fields each call (or txn op) takes, optional ones marked "?"; the generator mostly sticks to
    // them so calls get past the schema and into the store's own checks.
    const fieldsOf: Record<string, string[]> = {
      GET: ['key'],
      RANGE: ['prefix', 'limit?', 'keys_only?'],
      PUT: ['key', 'value', 'lease?', 'if_mod_revision?'],
      DELETE: ['key', 'if_mod_revision?'],
      DELETE_PREFIX: ['prefix'],
      WATCH: ['prefix', 'from_revision?', 'prev_kv?'],
      GRANT_LEASE: ['ttl'],
      KEEP_ALIVE: ['id'],
      REVOKE_LEASE: ['id'],
      LEASE_INFO: ['id'],
      COMPACT: ['revision'],
      CURRENT_REVISION: [],
      TXN: [],
    };
    const stray = fc.dictionary(fc.constantFrom(...Object.keys(gen), 'extra'), anything, { maxKeys: 3 });
    const args = (type: string) =>
      fc.oneof(
        {
          weight: 5,
          arbitrary: fc.record(Object.fromEntries((fieldsOf[type] ?? []).map((f) => [f.replace('?', ''), gen[f.replace('?', '')]!])), {
            requiredKeys: (fieldsOf[type] ?? []).filter((f) => !f.endsWith('?')),
          }),
        },
        { weight: 1, arbitrary: stray },
      );
    const field = (type: string): string => type.toLowerCase();
    const op = fc.constantFrom('PUT', 'DELETE', 'DELETE_PREFIX', 'GET', 'RANGE', 'MERGE').chain((t) => fc.record({ type: fc.constant(t), [field(t)]: args(t) }));
    const compare = fc.record({
      key: keys,
      target: fc.constantFrom('mod_revision', 'create_revision', 'version', 'value', 'lease'),
      op: fc.constantFrom('=', '!=', '<', '>', '~'),
      value: fc.oneof(num, gen.value!),
    });
    const txnArgs = fc.record(
      { compare: fc.array(compare, { maxLength: 3 }), success: fc.array(op, { maxLength: 4 }), failure: fc.array(op, { maxLength: 3 }) },
      { requiredKeys: ['compare', 'success'] },
    );
    const call = fc
      .constantFrom(...STORE_CALL_TYPES, 'NOPE')
      .chain((t) => fc.record({ type: fc.constant(t), [field(t)]: t === 'TXN' ? fc.oneof({ weight: 5, arbitrary: txnArgs }, { weight: 1, arbitrary: stray }) : args(t) }, { requiredKeys: ['type'] }));
    const body = fc.oneof({ weight: 6, arbitrary: call.map((c) => JSON.stringify(c)) }, { weight: 1, arbitrary: fc.json() }, { weight: 1, arbitrary: fc.string({ maxLength: 200 }) });
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const r = await rawCall(master!.url, text);
        expect(r.status, text.slice(0, 300)).toBeLessThan(500);
        if (r.status >= 400) expect(String(r.body.message ?? '').length, text.slice(0, 300)).toBeGreaterThan(0);
      }),
      { numRuns: 1500 },
    );
    expect((await fetch(`${master!.url}/health`)).status).toBe(200);
    expect(await registry()).toEqual(before);
  });
});
