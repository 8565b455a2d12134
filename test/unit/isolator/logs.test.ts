/**
 * Log plumbing of the Docker containerizer: size rotation with the same
 * rules as the native shim, Docker's multiplexed stream framing, and the
 * timestamps that let a restarted agent resume following.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RotatingFile } from '../../../plugins/isolator/src/common/rotating-file.js';
import { FrameParser, timestampNs } from '../../../plugins/isolator/src/docker/log-follower.js';
import { tempDirsRemovedAfterAll } from '../../harness/temp-dirs.js';

const tempDir = tempDirsRemovedAfterAll();

describe('RotatingFile', () => {
  it('rotates at maxBytes, splits chunks, keeps maxFiles files', () => {
    const dir = tempDir('corral-rot-');
    const f = new RotatingFile(join(dir, 'out'), 10, 3);
    for (let i = 0; i < 5; i++) f.write(Buffer.from('0123456789'.slice(0, 7)));
    f.close();
    // 35 bytes: out.2 (oldest kept) ... out (newest); the first 10 bytes were dropped with out.3.
    expect(readdirSync(dir).sort()).toEqual(['out', 'out.1', 'out.2']);
    const all = ['out.2', 'out.1', 'out'].map((n) => readFileSync(join(dir, n), 'utf8')).join('');
    expect(all).toBe('0123456'.repeat(5).slice(10));
    expect(readFileSync(join(dir, 'out.1')).length).toBe(10);
  });

  it('appends to an existing file and truncates when only one file is kept', () => {
    const dir = tempDir('corral-rot-');
    writeFileSync(join(dir, 'out'), 'abc');
    const f = new RotatingFile(join(dir, 'out'), 5, 1);
    f.write(Buffer.from('defgh'));
    f.close();
    expect(readFileSync(join(dir, 'out'), 'utf8')).toBe('fgh');
    expect(existsSync(join(dir, 'out.1'))).toBe(false);
  });
});

describe('RotatingFile in a sandbox subdirectory', () => {
  it('makes the directory a task names for its logs (logs/out), as the native shim does', () => {
    const dir = tempDir('corral-rot-');
    const f = new RotatingFile(join(dir, 'logs', 'deep', 'out'), 1024, 2);
    f.write(Buffer.from('hello\n'));
    f.close();
    expect(readFileSync(join(dir, 'logs', 'deep', 'out'), 'utf8')).toBe('hello\n');
  });
});

describe('Docker log frames', () => {
  const frame = (stream: number, text: string) => {
    const payload = Buffer.from(text);
    const h = Buffer.alloc(8);
    h[0] = stream;
    h.writeUInt32BE(payload.length, 4);
    return Buffer.concat([h, payload]);
  };

  it('splits a multiplexed stream into frames, across chunk boundaries', () => {
    const got: Array<[number, string]> = [];
    const p = new FrameParser((s, b) => got.push([s, b.toString()]));
    const bytes = Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err\n'), frame(1, 'out 2\n')]);
    for (let i = 0; i < bytes.length; i += 5) p.push(bytes.subarray(i, i + 5));
    expect(got).toEqual([
      [1, 'out 1\n'],
      [2, 'err\n'],
      [1, 'out 2\n'],
    ]);
  });

  it('reads Docker timestamps (trimmed fractions) as nanoseconds', () => {
    expect(timestampNs('2024-01-02T03:04:05.123456789Z')).toBe(1704164645123456789n);
    expect(timestampNs('2024-01-02T03:04:05.5Z')).toBe(1704164645500000000n);
    expect(timestampNs('2024-01-02T03:04:05Z')).toBe(1704164645000000000n);
    expect(timestampNs('not a time')).toBeUndefined();
  });
});
