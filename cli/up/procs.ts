/**
 * The processes of one `corral up` instance. Every process the supervisor
 * starts carries `CORRAL_UP_INSTANCE=<work dir>` in its environment, and so
 * do their children (DNS workers, task supervisors, tasks). Only processes
 * whose /proc entry shows that marker are ever signalled, each by its PID:
 * never a stranger that reused a recorded PID, never anything by name.
 */
import { readFileSync } from 'node:fs';
import { MARKER_ENV } from './plan.js';
import { hasEnvMarker, pollUntil, processAlive as alive, signalProcess } from '../../common/sys/process.js';

export const ours = (pid: number, marker: string): boolean => pid > 1 && pid !== process.pid && alive(pid) && hasEnvMarker(pid, MARKER_ENV, marker);

/** SIGTERM, then SIGKILL after `graceMs`; resolves once gone. Only signals the PID while it is still ours. */
export async function stopProcess(pid: number, marker: string, graceMs = 10_000): Promise<boolean> {
  if (!ours(pid, marker)) return false;
  if (!signalProcess(pid, 'SIGTERM')) return false;
  if (await pollUntil(() => !alive(pid), graceMs, 50)) return true;
  if (ours(pid, marker)) signalProcess(pid, 'SIGKILL');
  await pollUntil(() => !alive(pid), 5000, 50);
  return true;
}

export function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}
