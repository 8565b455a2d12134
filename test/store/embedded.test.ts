/**
 * The Store contract on EmbeddedStore, plus what only a local database has to
 * prove: acknowledged writes survive SIGKILL, one process per file, automatic
 * compaction, long replays and lease TTLs restarting after a reopen.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCorralError } from '../../contracts/errors.js';
import { configureLogging } from '../../common/log.js';
import { EmbeddedStore, type EmbeddedStoreOptions } from '../../common/store/embedded.js';
import { getJson, openStore, putJson, rangeJson } from '../../common/store/json.js';
import { z } from '../../common/validate.js';
import type { Store } from '../../contracts/store/types.js';
import { storeContract } from './contract.js';
import { expectCode, Recorder, sleep, waitFor } from './contract-util.js';

if (!process.env.CORRAL_LOG_LEVEL) configureLogging({ level: 'warn' });

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

storeContract('embedded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-store-'));
  const path = join(dir, 'state.db');
  const open = () => new EmbeddedStore({ path, leaseCheckIntervalMs: 100 });
  const handle = {
    store: open() as Store,
    reopen: async () => {
      await handle.store.close();
      return open();
    },
    cleanup: async () => {
      try {
        await handle.store.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return handle;
});

describe('EmbeddedStore', () => {
  let dir: string;
  const stores: EmbeddedStore[] = [];
  const open = (opts: Partial<EmbeddedStoreOptions> = {}) => {
    const s = new EmbeddedStore({ path: join(dir, 'state.db'), leaseCheckIntervalMs: 100, ...opts });
    stores.push(s);
    return s;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'corral-store-'));
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A child node process running the embedded store from source. */
  function child(args: string[]) {
    const script = join(dir, 'child.mjs');
    writeFileSync(
      script,
      `import { EmbeddedStore } from ${JSON.stringify(pathToFileURL(join(repoRoot, 'common/store/embedded.ts')).href)};
const [mode, path, round] = process.argv.slice(2);
if (mode === 'open') {
  try { const s = new EmbeddedStore({ path }); console.log('OPENED'); await s.close(); }
  catch (e) { console.log('ERROR ' + e.code + ' ' + e.message); }
} else {
  const store = new EmbeddedStore({ path, sync: 'full' });
  console.log('READY');
  for (let i = 0; ; i++) {
    const key = 'crash/' + round + '/' + i;
    const value = 'v' + i + '-' + 'x'.repeat(i % 300);
    let revision;
    if (i % 5 === 4) {
      revision = (await store.txn({ compare: [], success: [
        { type: 'put', key, value },
        { type: 'put', key: 'crash/last/' + round, value: String(i) },
      ] })).revision;
    } else {
      revision = (await store.put(key, value)).revision;
    }
    process.stdout.write(i + ' ' + revision + '\\n');
  }
}
`,
    );
    const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CORRAL_LOG_LEVEL: 'warn' },
    });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    return { proc, exited, out: () => out, err: () => err };
  }

  it('keeps every acknowledged write when the process is SIGKILLed mid-write', { timeout: 120_000 }, async () => {
    const path = join(dir, 'state.db');
    const acked = new Map<string, { revision: number; value: string }>();
    for (let round = 0; round < 3; round++) {
      const c = child(['write', path, String(round)]);
      const target = 150 + round * 100;
      try {
        await waitFor(() => c.out().split('\n').length > target, `${target} acknowledged writes (stderr: ${c.err()})`, 60_000);
        await sleep(Math.floor(Math.random() * 20));
      } finally {
        // Kill by the PID we spawned.
        if (c.proc.pid) process.kill(c.proc.pid, 'SIGKILL');
      }
      await c.exited;
      const lines = c
        .out()
        .split('\n')
        .filter((l) => /^\d+ \d+$/.test(l));
      expect(lines.length).toBeGreaterThanOrEqual(target);
      for (const line of lines) {
        const [i, rev] = line.split(' ').map(Number) as [number, number];
        acked.set(`crash/${round}/${i}`, { revision: rev, value: `v${i}-${'x'.repeat(i % 300)}` });
      }

      const s = open();
      expect(s.checkIntegrity()).toEqual([]);
      for (const [key, want] of acked) {
        const kv = await s.get(key);
        expect(kv, key).toBeDefined();
        expect(kv!.modRevision, key).toBe(want.revision);
        expect(kv!.value.toString(), key).toBe(want.value);
      }
      // At most the one write in flight at the kill may have committed without being acknowledged.
      const written = (await s.range(`crash/${round}/`, { keysOnly: true })).kvs.length;
      expect(written - lines.length).toBeGreaterThanOrEqual(0);
      expect(written - lines.length).toBeLessThanOrEqual(1);
      const lastAcked = Math.max(...lines.map((l) => Number(l.split(' ')[1])));
      const rev = await s.currentRevision();
      expect(rev - lastAcked).toBe(written - lines.length);
      // Writing continues from there.
      expect((await s.put('after-crash', String(round))).revision).toBe(rev + 1);
      acked.set('after-crash', { revision: rev + 1, value: String(round) });
      await s.close();
    }
  });

  it('refuses a second open of the same database, in this process and in another', async () => {
    const path = join(dir, 'state.db');
    const first = open();
    await first.put('k', 'v');
    let caught: unknown;
    try {
      new EmbeddedStore({ path });
    } catch (err) {
      caught = err;
    }
    expect(isCorralError(caught, 'UNAVAILABLE')).toBe(true);
    expect((caught as Error).message).toMatch(/already open/);

    const other = child(['open', path]);
    expect(await other.exited).toBe(0);
    expect(other.out()).toMatch(/^ERROR UNAVAILABLE .*already open/m);
    expect(other.out()).not.toMatch(/OPENED/);

    // The holder is unaffected, and once it closes the file opens normally.
    expect((await first.get('k'))?.value.toString()).toBe('v');
    await first.close();
    const again = open();
    expect((await again.get('k'))?.value.toString()).toBe('v');
    expect(again.checkIntegrity()).toEqual([]);
  });

  it('compacts automatically, keeping the last historyRevisions revisions', async () => {
    const s = open({ historyRevisions: 20, sync: 'normal' });
    const first = (await s.put('ac/k', '0')).revision;
    for (let i = 1; i < 60; i++) await s.put(`ac/${i % 3}`, String(i));
    await sleep(20);
    const rev = await s.currentRevision();
    const old = new Recorder().start(s, 'ac/', { fromRevision: first });
    await old.waitError();
    expect((old.errors[0] as { code?: string }).code).toBe('STORE_COMPACTED');
    const recent = new Recorder().start(s, 'ac/', { fromRevision: rev - 19 });
    await recent.waitEvents(20);
    expect(recent.batches.map((b) => b.revision)).toEqual(Array.from({ length: 20 }, (_, i) => rev - 19 + i));
    expect(s.checkIntegrity()).toEqual([]);
  });

  it('replays a long history in order without gaps while writes continue', { timeout: 60_000 }, async () => {
    const s = open({ sync: 'normal' });
    const first = (await s.put('long/0', '0')).revision;
    for (let i = 1; i < 2500; i++) await s.put(`long/${i % 7}`, String(i));
    const w = new Recorder().start(s, 'long/', { fromRevision: first, prevKv: true });
    // Writes racing with the catch-up must appear exactly once, after the replayed ones.
    for (let i = 2500; i < 2600; i++) {
      await s.put(`long/${i % 7}`, String(i));
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    await w.waitEvents(2600, 20_000);
    expect(w.batches.map((b) => b.revision)).toEqual(Array.from({ length: 2600 }, (_, i) => first + i));
    expect(w.events.map((e) => e.kv.value.toString())).toEqual(Array.from({ length: 2600 }, (_, i) => String(i)));
    expect(w.events.slice(7).every((e) => e.prevKv !== undefined)).toBe(true);
  });

  it('gives leases their full TTL again after a reopen', { timeout: 20_000 }, async () => {
    const s = open();
    const id = await s.grantLease(3);
    await s.put('lt', 'x', { lease: id });
    await sleep(1500);
    expect((await s.leaseInfo(id))!.ttl).toBeLessThanOrEqual(2);
    await s.close();
    const s2 = open();
    expect(await s2.leaseInfo(id)).toEqual({ ttl: 3, grantedTtl: 3, keys: ['lt'] });
    const w = new Recorder().start(s2, 'lt');
    await w.waitEvents(1, 10_000);
    expect(w.events[0]!.type).toBe('delete');
    expect(await s2.get('lt')).toBeUndefined();
    // Ids are never reused, even for the newest lease after it is gone.
    expect(await s2.grantLease(5)).toBeGreaterThan(id);
  });

  it('json helpers and openStore round-trip typed documents', async () => {
    const store = await openStore({ path: join(dir, 'json.db'), sync: 'normal' });
    try {
      expect(store.backend).toBe('embedded');
      const schema = z.object({ host: z.string(), cpus: z.number() });
      await putJson(store, 'agents/a1', { host: 'n1', cpus: 4 }, { ifModRevision: 0 });
      await putJson(store, 'agents/a2', { host: 'n2', cpus: 8 });
      const a1 = await getJson(store, 'agents/a1', schema);
      expect(a1).toMatchObject({ key: 'agents/a1', value: { host: 'n1', cpus: 4 }, version: 1 });
      await putJson(store, 'agents/a1', { ...a1!.value, cpus: 2 }, { ifModRevision: a1!.modRevision });
      await expectCode(putJson(store, 'agents/a1', { host: 'stale', cpus: 0 }, { ifModRevision: a1!.modRevision }), 'STORE_CONFLICT');
      const all = await rangeJson(store, 'agents/', { schema });
      expect(all.entries.map((e) => [e.key, e.value.cpus])).toEqual([
        ['agents/a1', 2],
        ['agents/a2', 8],
      ]);
      expect(await getJson(store, 'agents/none')).toBeUndefined();
      await store.put('agents/bad', '{not json');
      await expectCode(getJson(store, 'agents/bad'), 'INTERNAL');
      await putJson(store, 'agents/wrong', { host: 1 });
      await expectCode(getJson(store, 'agents/wrong', schema), 'INTERNAL');
      await expectCode(
        putJson(store, 'agents/fn', () => 1),
        'INVALID_ARGUMENT',
      );
    } finally {
      await store.close();
    }
  });

  it('validates its options', async () => {
    const path = join(dir, 'x.db');
    await expectCode(() => new EmbeddedStore({ path, sync: 'sometimes' as never }), 'INVALID_ARGUMENT');
    await expectCode(() => new EmbeddedStore({ path: '' }), 'INVALID_ARGUMENT');
    await expectCode(() => new EmbeddedStore({ path, historyRevisions: -1 }), 'INVALID_ARGUMENT');
    const s = open({ sync: 'normal' });
    await s.put('ok', '1');
    expect(s.checkIntegrity()).toEqual([]);
  });
});
