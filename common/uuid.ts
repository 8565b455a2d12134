/**
 * Random 16-byte UUIDs in base64, the form Mesos status updates carry. One
 * is made per status update, so they come from a cached block of entropy
 * (as crypto.randomUUID does) instead of a system call each.
 */
import { randomBytes } from 'node:crypto';

const BLOCK = 16 * 256;
let entropy = Buffer.alloc(0);
let offset = 0;

export function randomUuidBase64(): string {
  if (offset >= entropy.length) {
    entropy = randomBytes(BLOCK);
    offset = 0;
  }
  const uuid = entropy.toString('base64', offset, offset + 16);
  offset += 16;
  return uuid;
}

/**
 * Whether `s` is a uuid in that form: the canonical base64 of 16 bytes is 21
 * full characters, one that carries the last 2 bits (its low 4 bits zero),
 * and "==". Checked without decoding, as it is once per acknowledgement.
 */
export function isUuidBase64(s: string): boolean {
  return UUID_BASE64.test(s);
}

const UUID_BASE64 = /^[A-Za-z0-9+/]{21}[AQgw]==$/;
