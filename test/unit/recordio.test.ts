import { describe, expect, it } from 'vitest';
import { encodeRecord, RecordIODecoder } from '../../contracts/recordio.js';

/** Split `bytes` at random points into chunks of 1..max bytes. */
function split(bytes: Buffer, max: number, random: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const n = 1 + Math.floor(random() * max);
    out.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

function seeded(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('RecordIO decoder', () => {
  it('returns every record, whole and in order, however the stream is cut', () => {
    const random = seeded(7);
    const records = Array.from({ length: 300 }, (_, i) => ({ i, text: 'é✓'.repeat(Math.floor(random() * 50)), pad: 'x'.repeat(Math.floor(random() * 3000)) }));
    const stream = Buffer.from(records.map(encodeRecord).join(''));
    for (const max of [1, 7, 100, 4096, 65536]) {
      const decoder = new RecordIODecoder();
      const got: unknown[] = [];
      for (const c of split(stream, max, random)) decoder.push(c, (r) => got.push(JSON.parse(r)));
      expect(got).toEqual(records);
    }
  });

  it('joins a multi-megabyte record from many small chunks', () => {
    const big = { offers: Array.from({ length: 20_000 }, (_, i) => ({ id: { value: `offer-${i}` }, hostname: `agent-${i}.example` })) };
    const stream = Buffer.from(encodeRecord(big) + encodeRecord({ type: 'HEARTBEAT' }));
    expect(stream.length).toBeGreaterThan(1_000_000);
    const decoder = new RecordIODecoder();
    const got: unknown[] = [];
    for (let pos = 0; pos < stream.length; pos += 16 * 1024) decoder.push(stream.subarray(pos, pos + 16 * 1024), (r) => got.push(JSON.parse(r)));
    expect(got).toEqual([big, { type: 'HEARTBEAT' }]);
  });

  it('rejects a bad length prefix and a record over the limit', () => {
    expect(() => new RecordIODecoder().push(Buffer.from('12a\n{}'), () => undefined)).toThrow(/bad RecordIO length prefix/);
    expect(() => new RecordIODecoder().push(Buffer.from('1'.repeat(30)), () => undefined)).toThrow(/length prefix is too long/);
    expect(() => new RecordIODecoder(100).push(Buffer.from('101\n{'), () => undefined)).toThrow(/101 bytes is too large/);
  });

  it('hands on the good records before a corrupt one, and none of them twice', () => {
    const decoder = new RecordIODecoder();
    const got: unknown[] = [];
    expect(() => decoder.push(Buffer.from(encodeRecord({ a: 1 }) + encodeRecord({ b: 2 }) + 'x2\n{}'), (r) => got.push(JSON.parse(r)))).toThrow(/bad RecordIO length prefix "x2"/);
    expect(got).toEqual([{ a: 1 }, { b: 2 }]);
    // A consumer that throws stops the push; the next push goes on after that record.
    const again = new RecordIODecoder();
    const seen: unknown[] = [];
    const stream = Buffer.from([1, 2, 3].map((n) => encodeRecord({ n })).join(''));
    expect(() =>
      again.push(stream, (r) => {
        seen.push(JSON.parse(r));
        if (seen.length === 2) throw new Error('consumer failed');
      }),
    ).toThrow('consumer failed');
    again.push(Buffer.alloc(0), (r) => seen.push(JSON.parse(r)));
    expect(seen).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });
});
