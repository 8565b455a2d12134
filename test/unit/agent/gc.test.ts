import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, existsSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { collectSandboxes } from '../../../core-scheduler/src/agent/gc.js';

let workDir: string;
const NOW = Date.now();

/** A sandbox whose directory and files were last written `ageMs` ago. */
function sandbox(fw: string, name: string, ageMs: number): string {
  const dir = join(workDir, 'sandboxes', fw, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'stdout'), 'x');
  const t = (NOW - ageMs) / 1000;
  utimesSync(join(dir, 'stdout'), t, t);
  utimesSync(dir, t, t);
  return dir;
}

beforeEach(() => {
  workDir = mkdtempSync(join(tmpdir(), 'corral-gc-'));
});
afterEach(() => rmSync(workDir, { recursive: true, force: true }));

describe('sandbox garbage collection', () => {
  it('removes sandboxes older than the max age, never one in use', () => {
    const old = sandbox('fw1', 'old', 10 * 3600_000);
    const busy = sandbox('fw1', 'busy', 10 * 3600_000);
    const fresh = sandbox('fw2', 'fresh', 60_000);
    const removed: string[] = [];
    const out = collectSandboxes({ workDir, maxAgeMs: 3600_000, diskHighWatermark: 0.9, inUse: () => new Set([busy]), onRemoved: (p) => removed.push(p) }, NOW, () => 0.1);
    expect(out).toEqual([old]);
    expect(removed).toEqual([old]);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(busy) && existsSync(fresh)).toBe(true);
  });

  it('under disk pressure removes the oldest first until usage falls below the watermark', () => {
    const a = sandbox('fw', 'a', 30 * 60_000);
    const b = sandbox('fw', 'b', 20 * 60_000);
    const c = sandbox('fw', 'c', 10 * 60_000);
    let usage = 0.97;
    const out = collectSandboxes({ workDir, maxAgeMs: 24 * 3600_000, diskHighWatermark: 0.9, inUse: () => new Set(), onRemoved: () => (usage -= 0.04) }, NOW, () => usage);
    expect(out).toEqual([a, b]);
    expect(existsSync(c)).toBe(true);
  });

  it('a task still writing its logs keeps its sandbox young', () => {
    const dir = sandbox('fw', 'writer', 10 * 3600_000);
    const t = (NOW - 1000) / 1000;
    utimesSync(join(dir, 'stdout'), t, t);
    expect(collectSandboxes({ workDir, maxAgeMs: 3600_000, diskHighWatermark: 0.9, inUse: () => new Set() }, NOW, () => 0)).toEqual([]);
  });
});
