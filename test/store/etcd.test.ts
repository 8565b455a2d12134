/**
 * The Store contract against a real etcd (no mocks). Each test gets its own
 * key namespace on one etcd started for this file. A missing etcd binary fails
 * the suite with the install hint instead of skipping it.
 */
import { randomUUID } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureLogging } from '../../common/log.js';
import { EtcdStore } from '../../common/store/etcd.js';
import { openStore } from '../../common/store/json.js';
import { startEtcd, type EtcdHandle } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { storeContract } from './contract.js';
import { expectCode, namespacedHandle, Recorder, sleep } from './contract-util.js';

if (!process.env.CORRAL_LOG_LEVEL) configureLogging({ level: 'warn' });

let etcd: EtcdHandle | undefined;

beforeAll(async () => {
  etcd = await startEtcd();
}, 60_000);

afterAll(async () => {
  await etcd?.stop();
});

/** A TCP forwarder whose connections can be cut, to take one client off etcd while others keep writing. */
async function tcpProxy(targetPort: number) {
  const sockets = new Set<Socket>();
  const port = await freePort();
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const srv = createServer((client) => {
        const upstream = connect(targetPort, '127.0.0.1');
        sockets.add(client).add(upstream);
        const done = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        for (const s of [client, upstream]) s.on('error', done).on('close', done);
        client.pipe(upstream).pipe(client);
      });
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
      server = srv;
    });
  const cut = async () => {
    const srv = server;
    server = undefined;
    for (const s of sockets) s.destroy();
    if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
  };
  await listen();
  return { port, listen, cut, close: cut };
}

async function retryUnavailable<T>(fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code !== 'UNAVAILABLE' || Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

function endpoint(): string {
  if (!etcd) throw new Error('etcd did not start (see the beforeAll error above)');
  return etcd.endpoint;
}

storeContract('etcd', async () => {
  const namespace = `corral-test/${randomUUID()}/`;
  const open = () => EtcdStore.open({ endpoints: [endpoint()], namespace });
  return namespacedHandle(open);
});

describe('EtcdStore', () => {
  it('reports an unreachable etcd as UNAVAILABLE', async () => {
    const port = await freePort();
    const started = Date.now();
    await expectCode(EtcdStore.open({ endpoints: [`http://127.0.0.1:${port}`], dialTimeoutMs: 1000 }), 'UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('keeps namespaces apart and opens through openStore', async () => {
    const a = await openStore({ backend: 'etcd', etcdEndpoints: [endpoint()], namespace: 'ns-a/' });
    const b = await openStore({ backend: 'etcd', etcdEndpoints: [endpoint()], namespace: 'ns-b/' });
    try {
      expect(a.backend).toBe('etcd');
      const wb = new Recorder().start(b, '');
      await a.put('k', 'from-a');
      await b.put('k', 'from-b');
      expect((await a.get('k'))?.value.toString()).toBe('from-a');
      expect((await a.range('')).kvs.map((kv) => kv.key)).toEqual(['k']);
      await wb.waitEvents(1);
      expect(wb.summary).toEqual([expect.stringMatching(/^put k=from-b@/)]);
      await a.deletePrefix('');
      expect((await b.get('k'))?.value.toString()).toBe('from-b');
      await b.deletePrefix('');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a watch survives an etcd restart without losing or repeating a revision', { timeout: 60_000 }, async () => {
    const opts = { endpoints: [endpoint()], namespace: `restart/${randomUUID()}/`, dialTimeoutMs: 1000 };
    const watcher = await EtcdStore.open(opts);
    const w = new Recorder().start(watcher, '');
    let writer: EtcdStore | undefined;
    try {
      const r1 = (await watcher.put('a', '1')).revision;
      await w.waitEvents(1);
      await etcd!.kill();
      await expectCode(watcher.get('a'), 'UNAVAILABLE');
      await etcd!.restart();
      writer = await retryUnavailable(() => EtcdStore.open(opts));
      const r2 = (await writer.put('b', '2')).revision;
      const r3 = (await writer.put('c', '3')).revision;
      await w.waitEvents(3, 30_000);
      await sleep(200);
      expect(w.summary).toEqual([`put a=1@${r1}`, `put b=2@${r2}`, `put c=3@${r3}`]);
      expect(w.errors).toEqual([]);
      await writer.deletePrefix('');
    } finally {
      await writer?.close();
      await watcher.close();
    }
  });

  it('a watch cut off from etcd resumes from the next undelivered revision', { timeout: 60_000 }, async () => {
    const target = new URL(endpoint());
    const proxy = await tcpProxy(Number(target.port));
    const namespace = `cut/${randomUUID()}/`;
    const watcher = await EtcdStore.open({ endpoints: [`http://127.0.0.1:${proxy.port}`], namespace, dialTimeoutMs: 1000 });
    const writer = await EtcdStore.open({ endpoints: [endpoint()], namespace });
    try {
      const w = new Recorder().start(watcher, '');
      const r1 = (await writer.put('a', '1')).revision;
      await w.waitEvents(1);
      await proxy.cut();
      // Written while the watcher cannot reach etcd: only a resume from r1 + 1 can deliver these.
      const r2 = (await writer.put('b', '2')).revision;
      const r3 = (await writer.delete('a')).revision;
      await expectCode(watcher.get('a'), 'UNAVAILABLE');
      await proxy.listen();
      await w.waitEvents(3, 30_000);
      await sleep(200);
      expect(w.summary).toEqual([`put a=1@${r1}`, `put b=2@${r2}`, `delete a@${r3}`]);
      expect(w.errors).toEqual([]);
      await writer.deletePrefix('');
    } finally {
      await watcher.close();
      await writer.close();
      await proxy.close();
    }
  });

  it('validates its options', async () => {
    await expectCode(() => new EtcdStore({ endpoints: [] }), 'INVALID_ARGUMENT');
    await expectCode(openStore({ backend: 'etcd' }), 'INVALID_ARGUMENT');
  });
});
