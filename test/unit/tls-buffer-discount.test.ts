/**
 * The pure core of common/http/tls-buffers.ts: what it takes out of V8's
 * external-memory count follows the count's growth since the first
 * connection, never more than the bound per open connection, and is given
 * back as connections close.
 */
import { describe, expect, it } from 'vitest';
import { TlsBufferDiscount } from '../../common/http/tls-buffers.js';

const KB = 1024;
const MB = 1024 * KB;

/** V8's count as the process sees it: what node reports plus our adjustments. */
class FakeCount {
  constructor(public value: number) {}
  apply(delta: number): void {
    this.value += delta;
  }
}

describe('TlsBufferDiscount', () => {
  it('takes out all the growth while it is within the bound, so V8 sees the baseline', () => {
    const count = new FakeCount(10 * MB);
    const d = new TlsBufferDiscount(count.value, 160 * KB);
    count.apply(100 * 114 * KB); // 100 handshakes
    count.apply(d.next(count.value, 100));
    expect(count.value).toBe(10 * MB);
    expect(d.discounted).toBe(100 * 114 * KB);
    count.apply(100 * 26 * KB); // events flowed
    count.apply(d.next(count.value, 100));
    expect(count.value).toBe(10 * MB);
    expect(d.discounted).toBe(100 * 140 * KB);
  });

  it('takes out at most the bound per open connection: growth beyond it stays in the count', () => {
    const count = new FakeCount(0);
    const d = new TlsBufferDiscount(0, 160 * KB);
    count.apply(10 * 160 * KB + 50 * MB); // 10 connections and 50 MB of Buffers
    count.apply(d.next(count.value, 10));
    expect(d.discounted).toBe(10 * 160 * KB);
    expect(count.value).toBe(50 * MB);
  });

  it('gives back as connections close and their buffers are freed', () => {
    const count = new FakeCount(0);
    const d = new TlsBufferDiscount(0, 160 * KB);
    count.apply(10 * 140 * KB);
    count.apply(d.next(count.value, 10));
    expect(count.value).toBe(0);
    // Four connections close: node frees their buffers (the count drops), we give back what we took for them.
    count.apply(-4 * 140 * KB);
    const delta = d.next(count.value, 6);
    expect(delta).toBe(4 * 140 * KB);
    count.apply(delta);
    expect(count.value).toBe(0);
    expect(d.discounted).toBe(6 * 140 * KB);
    count.apply(-6 * 140 * KB);
    count.apply(d.next(count.value, 0));
    expect(d.discounted).toBe(0);
    expect(count.value).toBe(0);
  });

  it('takes nothing while the count is at or below where it started', () => {
    const count = new FakeCount(20 * MB);
    const d = new TlsBufferDiscount(count.value);
    count.apply(-5 * MB);
    expect(d.next(count.value, 50)).toBe(0);
    expect(d.discounted).toBe(0);
  });

  it('asks for no change when nothing changed', () => {
    const count = new FakeCount(0);
    const d = new TlsBufferDiscount(0);
    count.apply(3 * MB);
    count.apply(d.next(count.value, 100));
    expect(d.next(count.value, 100)).toBe(0);
  });
});
