/** Helpers shared by the Store contract suite. */
import { expect } from 'vitest';
import { isCorralError, type ErrorCode } from '../../contracts/errors.js';
import type { KeyValue, Store, Watch, WatchEvent, WatchOptions } from '../../contracts/store/types.js';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StoreHandle {
  store: Store;
  /** Close the current store and open the same data again (the new store becomes `store` for cleanup). */
  reopen: () => Promise<Store>;
  /** Close whatever is open and delete the data. */
  cleanup: () => Promise<void>;
  /** Longest key the store accepts when not MAX_KEY_BYTES (a remote store's namespace takes its share). */
  maxKeyBytes?: number;
}

export interface ContractContext {
  readonly store: Store;
  readonly handle: StoreHandle;
  /** Swap in the reopened store so later steps and cleanup use it. */
  reopen(): Promise<Store>;
}

export const text = (kv: KeyValue | undefined): string | undefined => kv?.value.toString('utf8');

export { sleep };

/** Byte order, which is what both backends sort by (not JS's UTF-16 order). */
export const byteSort = (keys: string[]): string[] => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export async function expectCode(action: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<void> {
  let caught: unknown;
  let threw = false;
  try {
    await (typeof action === 'function' ? action() : action);
  } catch (err) {
    caught = err;
    threw = true;
  }
  expect(threw, `expected a ${code} error`).toBe(true);
  expect(isCorralError(caught) ? caught.code : caught).toBe(code);
}

/** Records what a watch delivers. */
export class Recorder {
  readonly batches: { revision: number; events: WatchEvent[] }[] = [];
  readonly errors: Error[] = [];
  watch?: Watch;

  options(prefix: string, extra: Partial<WatchOptions> = {}): WatchOptions {
    return {
      prefix,
      ...extra,
      onEvents: (events, revision) => {
        this.batches.push({ revision, events });
      },
      onError: (err) => {
        this.errors.push(err);
      },
    };
  }

  start(store: Store, prefix: string, extra: Partial<WatchOptions> = {}): this {
    this.watch = store.watch(this.options(prefix, extra));
    return this;
  }

  get events(): WatchEvent[] {
    return this.batches.flatMap((b) => b.events);
  }

  /** Compact view for assertions: "put k=v@rev" / "delete k@rev". */
  get summary(): string[] {
    return this.events.map((e) => (e.type === 'put' ? `put ${e.kv.key}=${text(e.kv)}@${e.kv.modRevision}` : `delete ${e.kv.key}@${e.kv.modRevision}`));
  }

  waitEvents(n: number, timeoutMs = 5000): Promise<void> {
    return waitFor(() => this.events.length >= n, `${n} watch events (have ${this.events.length}: ${this.summary.join(', ')})`, timeoutMs);
  }

  waitError(timeoutMs = 5000): Promise<void> {
    return waitFor(() => this.errors.length > 0, 'a watch error', timeoutMs);
  }
}

/**
 * The handle of a backend whose keys live under a namespace of their own (etcd): reopening is
 * closing and opening again, and cleanup removes the test's keys so a lease it left behind cannot
 * change the revision under a later test.
 */
export async function namespacedHandle(open: () => Promise<Store>): Promise<StoreHandle> {
  const handle: StoreHandle = {
    store: await open(),
    reopen: async () => {
      await handle.store.close();
      return open();
    },
    cleanup: async () => {
      const admin = await open();
      try {
        await admin.deletePrefix('');
      } finally {
        await admin.close();
        await handle.store.close();
      }
    },
  };
  return handle;
}
