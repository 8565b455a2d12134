/**
 * Garbage collection of sandboxes of ended tasks: by age, and — oldest first
 * — while the work directory's disk is fuller than the high watermark.
 */
import { readdirSync, rmSync, statSync, statfsSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../../../common/log.js';

interface GcOptions {
  workDir: string;
  maxAgeMs: number;
  diskHighWatermark: number;
  /** Sandboxes in use (must not be touched). */
  inUse(): Set<string>;
  /** A sandbox was removed (forget its task's logs). */
  onRemoved?(sandbox: string): void;
}

function diskUsage(path: string): number {
  const s = statfsSync(path);
  return s.blocks === 0 ? 0 : 1 - s.bavail / s.blocks;
}

/** One pass; returns the sandboxes removed. */
export function collectSandboxes(o: GcOptions, now = Date.now(), usage: (p: string) => number = diskUsage): string[] {
  const root = join(o.workDir, 'sandboxes');
  if (!existsSync(root)) return [];
  const inUse = o.inUse();
  const candidates: Array<{ path: string; mtime: number }> = [];
  for (const fw of readdirSync(root)) {
    for (const c of readdirSync(join(root, fw))) {
      const path = join(root, fw, c);
      if (inUse.has(path)) continue;
      // The newest of the directory and its files: logs keep a sandbox young while its task writes.
      let mtime = statSync(path).mtimeMs;
      for (const f of readdirSync(path)) mtime = Math.max(mtime, statSync(join(path, f)).mtimeMs);
      candidates.push({ path, mtime });
    }
  }
  candidates.sort((a, b) => a.mtime - b.mtime);
  const removed: string[] = [];
  const remove = (path: string): void => {
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
    o.onRemoved?.(path);
  };
  for (const c of candidates) {
    if (now - c.mtime >= o.maxAgeMs || usage(o.workDir) > o.diskHighWatermark) remove(c.path);
  }
  if (removed.length) logger('agent-gc').info({ removed: removed.length }, 'removed old sandboxes');
  return removed;
}
