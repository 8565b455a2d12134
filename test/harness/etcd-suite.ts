/** A real etcd per test file or describe block (kept apart from etcd.ts, which benchmarks use outside vitest). */
import { afterAll, beforeAll } from 'vitest';
import { startEtcd, type EtcdHandle } from './etcd.js';

/** One etcd for the enclosing describe (or file): started before its tests, stopped after; the getter is valid inside tests. */
export function etcdForTests(): () => EtcdHandle {
  let etcd: EtcdHandle | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  return () => {
    if (!etcd) throw new Error('etcd is not started (etcdForTests is used outside a test)');
    return etcd;
  };
}
