/**
 * Boundary validation of the volume driver: names by Docker's rules (nothing
 * escapes a directory), whitelisted and typed options, sane sizes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkName, formatSize, parseOptions, parseSize, MAX_SIZE_BYTES, MIN_SIZE_BYTES } from '../../../plugins/volume-driver/src/options.js';

describe('volume names', () => {
  it('accepts Docker-style names', () => {
    for (const n of ['db', 'pg-data_1', 'a.b', 'X9', 'elasticsearch-0']) expect(checkName(n)).toBe(n);
  });

  it.each(['', 'a', '../x', 'a/b', '.hidden', '-x', 'a b', 'x\0y', 'ü-name', 'a'.repeat(97)])('rejects %j', (n) => {
    expect(() => checkName(n)).toThrow(/volume name/);
  });

  it('never lets a path separator or dot-dot through (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        let ok = true;
        try {
          checkName(s);
        } catch {
          ok = false;
        }
        if (ok) expect(s.includes('/') || s === '..' || s.startsWith('.') || s.includes('\0')).toBe(false);
      }),
    );
  });
});

describe('sizes', () => {
  it('parses binary units', () => {
    expect(parseSize('16M')).toBe(16 * 1024 ** 2);
    expect(parseSize('1G')).toBe(1024 ** 3);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('2t')).toBe(2 * 1024 ** 4);
    expect(parseSize(String(64 * 1024 ** 2))).toBe(64 * 1024 ** 2);
  });

  it.each([
    ['abc', /not a size/],
    ['-5G', /not a size/],
    ['1E', /maximum of 64T/],
    ['99999999999999999999', /maximum/],
    ['1K', /minimum of 16M/],
    ['0', /minimum/],
  ])('rejects %s', (raw, msg) => {
    expect(() => parseSize(raw)).toThrow(msg);
  });

  it('round-trips through formatSize for whole units', () => {
    fc.assert(
      fc.property(fc.integer({ min: 16, max: 4096 }), (mib) => {
        const bytes = mib * 1024 * 1024;
        expect(parseSize(formatSize(bytes))).toBe(bytes);
      }),
    );
    expect(MIN_SIZE_BYTES).toBeLessThan(MAX_SIZE_BYTES);
  });
});

describe('options', () => {
  it('refuses an xfs volume under 300M at create, with the reason, instead of a failing mkfs later', () => {
    expect(() => parseOptions('vol', { size: '200M', fs: 'xfs' }, 'local')).toThrow(/fs=xfs needs a size of at least 300M/);
    expect(() => parseOptions('vol', { backend: 'rbd', size: '64M', fs: 'xfs' }, 'local')).toThrow(/at least 300M/);
    expect(parseOptions('vol', { size: '300M', fs: 'xfs' }, 'local')).toMatchObject({ fsType: 'xfs', sizeBytes: 300 * 1024 * 1024 });
  });

  it('treats null options (docker volume create without -o) as defaults', () => {
    expect(parseOptions('vol', null, 'local')).toEqual({ name: 'vol', backend: 'local', fsType: 'ext4' });
  });

  it('types every known option', () => {
    expect(parseOptions('vol', { backend: 'rbd', size: '1G', fs: 'xfs', pool: 'fast', features: 'layering,exclusive-lock', uid: '1000', gid: '1000', mode: '0750' }, 'local')).toEqual({
      name: 'vol',
      backend: 'rbd',
      sizeBytes: 1024 ** 3,
      fsType: 'xfs',
      pool: 'fast',
      features: ['layering', 'exclusive-lock'],
      uid: 1000,
      gid: 1000,
      mode: 0o750,
    });
  });

  it.each([
    [{ foo: 'bar' }, /unknown option "foo"/],
    [{ backend: 'nfs' }, /backend="nfs" is not supported/],
    [{ pool: 'p' }, /pool applies only to backend rbd/],
    [{ size: '1G', fs: 'btrfs' }, /fs="btrfs" is not supported/],
    [{ fs: 'ext4' }, /fs needs option size/],
    [{ backend: 'rbd', features: 'journaling' }, /unknown rbd feature/],
    [{ uid: '-1' }, /uid/],
    [{ mode: '999' }, /octal/],
    [{ size: 5 }, /must be a string/],
  ])('rejects %j', (opts, msg) => {
    expect(() => parseOptions('vol', opts as Record<string, unknown>, 'local')).toThrow(msg);
  });
});
