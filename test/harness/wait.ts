/**
 * Polling until a condition holds. A predicate that throws counts as "not
 * yet" (a daemon restarting answers with errors for a while); the last error
 * is in the timeout's message.
 */
export async function until(pred: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition', everyMs = 25): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await pred()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms${last ? ` (last error: ${(last as Error).message ?? String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
