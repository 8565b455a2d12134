/**
 * Waiting for a condition with a bounded deadline: the one poll loop for
 * "until the daemon answers", "until the socket exists" and the like. A check
 * that throws counts as "not yet" (a daemon that is starting refuses
 * connections); running out of time is a CorralError TIMEOUT that says what
 * was awaited, for how long, and (optionally) why it may not have happened.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorralError } from '../../contracts/errors.js';

interface WaitOptions {
  timeoutMs: number;
  /** Pause between checks (default 100 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message ("etcd ready"). */
  what: string;
  /** Extra context for the timeout error, computed only then (e.g. a log tail). */
  detail?: () => string;
  /** Checked before each try: a reason (a whole sentence) means the wait is pointless, e.g. the awaited process exited; thrown as UNAVAILABLE. */
  failIf?: () => string | undefined;
}

/** Resolves once `check` returns true; throws CorralError TIMEOUT after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, o: WaitOptions): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const failed = o.failIf?.();
    if (failed) throw new CorralError('UNAVAILABLE', failed);
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() >= deadline) {
      const extra = o.detail?.();
      throw new CorralError('TIMEOUT', `timed out after ${o.timeoutMs} ms waiting for ${o.what}${extra ? `: ${extra}` : ''}`);
    }
    await sleep(o.intervalMs ?? 100);
  }
}

/** Resolves true once `child` has exited (at once if it already has), false after `timeoutMs`. */
export function childExited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    child.once('exit', onExit);
  });
}
