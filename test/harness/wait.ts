/**
 * Polling until a condition holds. A probe that throws counts as "not yet"
 * (a daemon restarting answers with errors for a while); the last error is
 * in the timeout's message.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** Polls `probe` until it yields a value (anything but undefined or false) and returns it. */
export async function untilValue<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message ?? String(last)})` : ''}`);
    await sleep(everyMs);
  }
}

export async function until(pred: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition', everyMs = 25): Promise<void> {
  await untilValue(what, async () => (await pred()) || undefined, ms, everyMs);
}

/** What `promise` settles to, or `'timeout'` if it has not within `ms` (for asserting on the outcome, e.g. a process's exit). */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
