/**
 * Per-key mutual exclusion for async work: operations on one key (a CNI
 * handle, a pool's block claims, a volume, a container) run one after
 * another, different keys in parallel.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      done();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Whether some operation on `key` is running or waiting. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }
}
