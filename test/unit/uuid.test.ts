/**
 * Status update uuids: what randomUuidBase64 makes, isUuidBase64 accepts, and
 * its regex agrees with decoding and re-encoding on random and mutated input.
 */
import { describe, it, expect } from 'vitest';
import { randomBytes } from 'node:crypto';
import { isUuidBase64, randomUuidBase64 } from '../../common/uuid.js';

const byDecoding = (s: string): boolean => {
  const raw = Buffer.from(s, 'base64');
  return raw.length === 16 && raw.toString('base64') === s;
};

describe('status update uuids', () => {
  it('accepts every uuid randomUuidBase64 makes', () => {
    for (let i = 0; i < 5000; i++) expect(isUuidBase64(randomUuidBase64())).toBe(true);
  });

  it('agrees with decoding and re-encoding on random and mutated strings', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ ';
    const pick = (): string => alphabet[Math.floor(Math.random() * alphabet.length)]!;
    let rejected = 0;
    for (let i = 0; i < 50_000; i++) {
      let s: string;
      if (i % 2) {
        // Near misses: a real uuid with one character replaced.
        const chars = randomBytes(16).toString('base64').split('');
        chars[Math.floor(Math.random() * chars.length)] = pick();
        s = chars.join('');
      } else {
        s = Array.from({ length: 20 + Math.floor(Math.random() * 8) }, pick).join('');
      }
      expect(isUuidBase64(s), s).toBe(byDecoding(s));
      if (!byDecoding(s)) rejected++;
    }
    expect(rejected).toBeGreaterThan(1000);
  });
});
