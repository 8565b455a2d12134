/**
 * The Store contract on RemoteStore, against a real master in this process
 * (its store API over loopback HTTP, its embedded store in a temp dir). A
 * reopen restarts the master on the same work dir and port and connects a new
 * RemoteStore, so the durability case proves data, leases and history survive
 * a master restart. Plus what only the remote backend has to prove: a watch
 * that lives through a master restart, openStore's config checks, and a real
 * consumer (discovery's Consul KV, driven by the `consul` client) on it.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Consul from 'consul';
import { afterEach, describe, expect, it } from 'vitest';
import { EventStream } from '../../common/http/stream.js';
import { HttpServer } from '../../common/http/server.js';
import { configureLogging } from '../../common/log.js';
import { MAX_KEY_BYTES } from '../../contracts/store/check.js';
import { openStore } from '../../common/store/json.js';
import { RemoteStore } from '../../common/store/remote.js';
import { eventsToWire, STORE_API_PATH } from '../../contracts/store/wire.js';
import { startDiscovery, type RunningDiscovery } from '../../discovery/src/daemon.js';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { freePort } from '../harness/ports.js';
import { testDir } from '../harness/resources.js';
import { storeContract, type StoreHandle } from './contract.js';
import { expectCode, Recorder, sleep, waitFor } from './contract-util.js';
import { CREDS, startAuthMaster } from './remote-util.js';

if (!process.env.CORRAL_LOG_LEVEL) configureLogging({ level: 'warn' });

storeContract('remote', async () => {
  const dir = testDir('store-remote');
  let master = await startTestMaster({}, join(dir, 'master'));
  // The contract uses "" as a prefix; a namespace keeps that clear of the master's registry.
  const namespace = 'contract/';
  const open = () => RemoteStore.open({ url: master.url, namespace });
  const dispose = async () => {
    await master.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  let store: RemoteStore;
  try {
    store = await open();
  } catch (err) {
    await dispose();
    throw err;
  }
  const handle: StoreHandle = {
    store,
    maxKeyBytes: MAX_KEY_BYTES - namespace.length,
    reopen: async () => {
      await handle.store.close();
      master = await master.restart();
      return open();
    },
    cleanup: async () => {
      try {
        await handle.store.close();
      } finally {
        await dispose();
      }
    },
  };
  return handle;
});

describe('RemoteStore', () => {
  // Everything a test starts is undone here, whether it passed or not.
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  });
  const scratch = (): string => {
    const dir = testDir('store-remote');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const open = async (url: string, extra: Partial<Parameters<typeof RemoteStore.open>[0]> = {}): Promise<RemoteStore> => {
    const s = await RemoteStore.open({ url, ...extra });
    cleanups.push(() => s.close());
    return s;
  };

  it('a watch lives through a master restart and resumes without losing or repeating a revision', { timeout: 60_000 }, async () => {
    const dir = scratch();
    let master: TestMaster = await startTestMaster({}, join(dir, 'master'));
    cleanups.push(() => master.dispose());
    const watcher = await open(master.url, { namespace: 'rs/' });
    const writer = await open(master.url, { namespace: 'rs/' });
    const w = new Recorder().start(watcher, '', { prevKv: true });
    const r1 = (await writer.put('a', '1')).revision;
    await w.waitEvents(1);

    const { port } = master;
    await master.close();
    await expectCode(writer.put('b', 'lost'), 'UNAVAILABLE');
    await expectCode(writer.get('a'), 'UNAVAILABLE');
    master = await startTestMaster({ port }, join(dir, 'master'));
    // Written before the watcher is back: only a resume from r1 + 1 can deliver these.
    const r2 = (await writer.put('b', '2')).revision;
    const r3 = (await writer.delete('a')).revision;
    await w.waitEvents(3, 20_000);
    const r4 = (await writer.put('c', '3')).revision;
    await w.waitEvents(4);
    await sleep(300);
    expect(w.summary).toEqual([`put a=1@${r1}`, `put b=2@${r2}`, `delete a@${r3}`, `put c=3@${r4}`]);
    expect(w.batches.map((b) => b.revision)).toEqual([r1, r2, r3, r4]);
    expect(w.events[2]!.prevKv?.value.toString()).toBe('1');
    expect(w.errors).toEqual([]);
    // What the watch saw is what the restarted master holds.
    expect((await master.store.range('rs/')).kvs.map((kv) => kv.key)).toEqual(['rs/b', 'rs/c']);
  });

  it('notices a stream gone silent by its missing heartbeats and resumes where it left off', { timeout: 30_000 }, async () => {
    // A stand-in master whose streams go quiet after their first records, as a dead peer's would.
    const watchCalls: unknown[] = [];
    const server = new HttpServer({ name: 'silent-master' });
    server.route('POST', STORE_API_PATH, async (ctx) => {
      watchCalls.push(((await ctx.json()) as { watch?: unknown }).watch);
      const stream = new EventStream(ctx.res);
      stream.send({ type: 'CREATED', created: { start_revision: 42, heartbeat_interval_ms: 100 } });
      const kv = { key: 'q/a', value: Buffer.from('v'), createRevision: 42, modRevision: 42, version: 1, lease: 0 };
      if (watchCalls.length === 2) stream.send(eventsToWire(42, [{ type: 'put', kv }]));
      return undefined;
    });
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => server.close());
    const s = new RemoteStore({ url, namespace: 'q/' });
    cleanups.push(() => s.close());
    const w = new Recorder().start(s, '');
    await waitFor(() => watchCalls.length >= 3, 'two reconnects', 10_000);
    // First "from now" (this client had seen no revision), then from the pinned start, then after the delivered event.
    expect(watchCalls.slice(0, 3)).toEqual([{ prefix: 'q/' }, { prefix: 'q/', from_revision: 42 }, { prefix: 'q/', from_revision: 43 }]);
    expect(w.summary).toEqual(['put a=v@42']);
    expect(w.errors).toEqual([]);
  });

  it('two clients on different connections see one store: CAS increments are never lost', { timeout: 30_000 }, async () => {
    const dir = scratch();
    const master = await startTestMaster({}, join(dir, 'master'));
    cleanups.push(() => master.dispose());
    const clients = [await open(master.url), await open(master.url)];
    await clients[0]!.put('shared/counter', '0');
    const increment = async (s: RemoteStore): Promise<number> => {
      for (let conflicts = 0; ; conflicts++) {
        const kv = (await s.get('shared/counter'))!;
        try {
          await s.put('shared/counter', String(Number(kv.value.toString()) + 1), { ifModRevision: kv.modRevision });
          return conflicts;
        } catch (err) {
          if ((err as { code?: string }).code !== 'STORE_CONFLICT') throw err;
        }
      }
    };
    const perClient = 25;
    const conflicts = await Promise.all(
      clients.flatMap((s) =>
        Array.from({ length: 4 }, async () => {
          let n = 0;
          for (let i = 0; i < perClient; i++) n += await increment(s);
          return n;
        }),
      ),
    );
    expect((await clients[1]!.get('shared/counter'))!.value.toString()).toBe(String(2 * 4 * perClient));
    // The increments did race, so the CAS path was exercised.
    expect(conflicts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('openStore opens the remote backend and validates its config', async () => {
    const dir = scratch();
    const master = await startAuthMaster(dir);
    cleanups.push(() => master.dispose());
    const s = await openStore({ backend: 'remote', url: master.url, ...CREDS.agent, namespace: 'os/' });
    cleanups.push(() => s.close());
    expect(s.backend).toBe('remote');
    await s.put('k', 'v');
    expect((await master.store.get('os/k'))?.value.toString()).toBe('v');

    await expectCode(openStore({ backend: 'remote' }), 'INVALID_ARGUMENT');
    await expectCode(openStore({ backend: 'remote', url: 'not a url' }), 'INVALID_ARGUMENT');
    await expectCode(openStore({ backend: 'remote', url: master.url, principal: 'agent' }), 'INVALID_ARGUMENT');
    for (const url of ['ftp://127.0.0.1:1', 'http://[bad', 'not a url', `${master.url}/api`, `${master.url}/?x=1`]) {
      await expectCode(() => new RemoteStore({ url }), 'INVALID_ARGUMENT');
    }
    await expectCode(() => new RemoteStore({ url: master.url, namespace: 'a\0' }), 'INVALID_ARGUMENT');
    const dead = await freePort();
    const started = Date.now();
    await expectCode(openStore({ backend: 'remote', url: `http://127.0.0.1:${dead}`, dialTimeoutMs: 1000 }), 'UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("runs discovery: Consul KV from two daemons shares the master's store, blocking queries included", { timeout: 60_000 }, async () => {
    const dir = scratch();
    const master = await startAuthMaster(dir);
    cleanups.push(() => master.dispose());
    const startOne = async (name: string): Promise<{ d: RunningDiscovery; consul: Consul }> => {
      const d = await startDiscovery({
        insecure: true,
        workDir: join(dir, name),
        store: { backend: 'remote', url: master.url, ...CREDS.agent },
        nodeName: name,
        http: { port: 0 },
        dns: { port: 0, workers: 0 },
        sessions: { ttlMinSeconds: 1 },
      });
      cleanups.push(() => d.close());
      const consul = new Consul({ host: '127.0.0.1', port: d.httpPort });
      cleanups.push(() => consul.destroy());
      return { d, consul };
    };
    const one = await startOne('host-1');
    const two = await startOne('host-2');
    expect(one.d.store.backend).toBe('remote');

    expect(await one.consul.kv.set('app/config', 'hello')).toBe(true);
    const got = (await two.consul.kv.get('app/config')) as { Key: string; Value: string; ModifyIndex: number };
    expect(got).toMatchObject({ Key: 'app/config', Value: 'hello' });
    // It lives in the master's store, next to (not inside) the registry.
    expect((await master.store.get('corral/discovery/kv/app/config'))?.modRevision).toBe(got.ModifyIndex);

    // A blocking read on host 2 wakes up for a write made on host 1 (a watch through the store API).
    const blocked = fetch(`${two.d.httpUrl}/v1/kv/app/config?index=${got.ModifyIndex}&wait=20s`);
    await sleep(200);
    expect(await one.consul.kv.set({ key: 'app/config', value: 'v2', cas: got.ModifyIndex })).toBe(true);
    const woke = await blocked;
    const [entry] = (await woke.json()) as Array<{ Value: string; ModifyIndex: number }>;
    expect(Buffer.from(entry!.Value, 'base64').toString()).toBe('v2');
    expect(entry!.ModifyIndex).toBeGreaterThan(got.ModifyIndex);
    expect(await two.consul.kv.set({ key: 'app/config', value: 'stale', cas: got.ModifyIndex })).toBeFalsy();
    expect(await two.consul.kv.del('app/config')).toBe(true);
    expect(await one.consul.kv.get('app/config')).toBeUndefined();
  });
});
