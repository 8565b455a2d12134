/**
 * File work shared by both cgroup hierarchies: writing control files with
 * errors that name the file, reading counters, killing every member of a
 * cgroup and removing directories that the kernel may still hold busy for a
 * moment after the last process exits.
 */
import { mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CorralError, errorMessage } from '../../../../contracts/errors.js';
import type { CgroupPlacement, CgroupSetup } from './types.js';
import { setTimeout as sleep } from 'node:timers/promises';

export function writeControl(dir: string, file: string, value: string | number): void {
  try {
    writeFileSync(join(dir, file), String(value));
  } catch (err) {
    throw new CorralError('INTERNAL', `cannot write ${value} to ${join(dir, file)}: ${errorMessage(err)}`);
  }
}

export function readControl(dir: string, file: string): string | undefined {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch {
    return undefined;
  }
}

export function readNumber(dir: string, file: string): number | undefined {
  const text = readControl(dir, file)?.trim();
  if (text === undefined || text === '' || text === 'max') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** A "key value" line of a flat-keyed file (cpu.stat, memory.events, memory.oom_control). */
export function readKeyed(dir: string, file: string, key: string): number | undefined {
  const text = readControl(dir, file);
  if (text === undefined) return undefined;
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined) return Number(v);
  }
  return undefined;
}

/** Makes the directories and writes the control files of a setup, in order. */
export function applySetup(setup: CgroupSetup): CgroupPlacement {
  for (const d of setup.mkdirs) ensureDir(d);
  for (const [file, value] of setup.writes) writeControl(dirname(file), basename(file), value);
  return setup.placement;
}

export function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new CorralError('INTERNAL', `cannot create cgroup ${dir}: ${errorMessage(err)}`);
  }
}

export function readProcs(dir: string): number[] {
  const text = readControl(dir, 'cgroup.procs');
  if (!text) return [];
  return text
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((n) => n > 0);
}

/** SIGKILL every process listed in dir/cgroup.procs until none is left (forks racing the kill are caught by the next pass). */
export async function killMembers(dir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let pass = 0; ; pass++) {
    const pids = readProcs(dir);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (Date.now() > deadline) throw new CorralError('TIMEOUT', `processes ${pids.slice(0, 5).join(', ')} in ${dir} survived SIGKILL for ${timeoutMs} ms`);
    await sleep(Math.min(50, 5 * (pass + 1)));
  }
}

/** rmdir that waits out EBUSY (a cgroup is busy until its last task is fully gone). */
export async function removeDir(dir: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline) throw new CorralError('INTERNAL', `cannot remove cgroup ${dir}: ${errorMessage(err)}`);
      await sleep(20);
    }
  }
}

export function childDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}
