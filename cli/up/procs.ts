/**
 * The processes of one `corral up` instance. Every process the supervisor
 * starts carries `CORRAL_UP_INSTANCE=<work dir>` in its environment, and so
 * do their children (DNS workers, task supervisors, tasks). Only processes
 * whose /proc entry shows that marker are ever signalled, each by its PID:
 * never a stranger that reused a recorded PID, never anything by name.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MARKER_ENV } from './plan.js';
import { hasEnvMarker, pollUntil, processAlive as alive, signalProcess } from '../../common/sys/process.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const ours = (pid: number, marker: string): boolean => pid > 1 && pid !== process.pid && alive(pid) && hasEnvMarker(pid, MARKER_ENV, marker);

/** Every live process of the instance (descendants included), found by the marker. */
export function markedProcesses(marker: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (ours(pid, marker)) out.push(pid);
  }
  return out;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once gone. Only signals the PID while it is still ours. */
export async function stopProcess(pid: number, marker: string, graceMs = 10_000): Promise<boolean> {
  if (!ours(pid, marker)) return false;
  if (!signalProcess(pid, 'SIGTERM')) return false;
  if (await pollUntil(() => !alive(pid), graceMs, 50)) return true;
  if (ours(pid, marker)) signalProcess(pid, 'SIGKILL');
  await pollUntil(() => !alive(pid), 5000, 50);
  return true;
}

/** SIGKILL every marked process, by PID, until none is left (or the time is up). */
export async function killMarked(marker: string, timeoutMs = 10_000): Promise<number[]> {
  const killed = new Set<number>();
  const end = Date.now() + timeoutMs;
  for (;;) {
    const left = markedProcesses(marker);
    if (left.length === 0 || Date.now() > end) return [...killed];
    for (const pid of left) if (signalProcess(pid, 'SIGKILL')) killed.add(pid);
    await sleep(100);
  }
}

export function writePid(dir: string, name: string, pid: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.pid`), `${pid}\n`);
}

export function forgetPid(dir: string, name: string): void {
  rmSync(join(dir, `${name}.pid`), { force: true });
}

export function readPids(dir: string): Array<{ name: string; pid: number }> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.pid'));
  } catch {
    return [];
  }
  const out: Array<{ name: string; pid: number }> = [];
  for (const f of files) {
    const pid = Number(readFileSync(join(dir, f), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1) out.push({ name: f.slice(0, -4), pid });
  }
  return out;
}

export function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}
