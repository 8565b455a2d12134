/**
 * Teardown after each test of a file: the stops a test queued run newest
 * first (one that fails does not keep the others from running), then `last`
 * (for example disposing the test's master).
 */
import { afterEach } from 'vitest';

export function stopsAfterEach(last?: () => Promise<unknown>): Array<() => Promise<unknown>> {
  const stops: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
    await last?.();
  });
  return stops;
}
