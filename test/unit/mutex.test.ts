/**
 * Per-volume serialisation: one volume's operations never interleave, other
 * volumes' operations do not wait for them.
 */
import { describe, expect, it } from 'vitest';
import { KeyedMutex } from '../../common/mutex.js';
import { setTimeout as sleep } from 'node:timers/promises';

describe('KeyedMutex', () => {
  it('runs operations on one key one at a time, in order', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const op = (id: string, ms: number) =>
      m.run('v', async () => {
        log.push(`start ${id}`);
        await sleep(ms);
        log.push(`end ${id}`);
      });
    await Promise.all([op('a', 20), op('b', 1), op('c', 5)]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('lets different keys run concurrently and survives a failure', async () => {
    const m = new KeyedMutex();
    let concurrent = 0;
    let peak = 0;
    const op = (k: string) =>
      m.run(k, async () => {
        peak = Math.max(peak, ++concurrent);
        await sleep(10);
        concurrent--;
      });
    await Promise.all([op('x'), op('y'), op('z')]);
    expect(peak).toBe(3);
    await expect(m.run('x', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(m.run('x', async () => 42)).resolves.toBe(42);
  });
});
