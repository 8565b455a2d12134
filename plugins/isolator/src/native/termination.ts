/**
 * The supervisor's termination file → the contract's Termination. An OOM
 * kill in the container's memory cgroup makes it a memory limitation
 * (REASON_CONTAINER_LIMITATION_MEMORY), whatever signal the task died of.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from '../../../../common/validate.js';
import type { Termination } from '../../../../contracts/containerizer.js';

const statusSchema = z.object({
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  oomKills: z.number().int(),
  finishedAt: z.number(),
  pid: z.number().int(),
  error: z.string().nullable(),
  /** The supervisor removed the container's cgroups (absent from supervisors of older builds). */
  cgroupsRemoved: z.boolean().optional(),
});

type SupervisorStatus = z.output<typeof statusSchema>;

export const REASON_MEMORY = 'REASON_CONTAINER_LIMITATION_MEMORY';
const REASON_EXECUTOR_TERMINATED = 'REASON_EXECUTOR_TERMINATED';

export function readStatus(file: string): SupervisorStatus | undefined {
  // Mostly asked while the task still runs: a missing file is answered without an exception.
  if (!existsSync(file)) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = statusSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function toTermination(s: SupervisorStatus, memLimitMb?: number): Termination {
  const oomKilled = s.oomKills > 0;
  const how = s.signal ? `killed by ${s.signal}` : s.exitCode !== null ? `exited with status ${s.exitCode}` : 'ended';
  if (oomKilled) {
    const limit = memLimitMb ? ` of ${memLimitMb} MB` : '';
    return { exitCode: s.exitCode, signal: s.signal, oomKilled, reason: REASON_MEMORY, message: `memory limit${limit} reached: the kernel's OOM killer ended the task (${how})` };
  }
  if (s.error) return { exitCode: s.exitCode, signal: s.signal, oomKilled, message: `the task did not start: ${s.error}` };
  return { exitCode: s.exitCode, signal: s.signal, oomKilled, message: `the task ${how}` };
}

/** A container whose supervisor vanished without a word (host reboot, someone killed it). */
export function lostTermination(why: string): Termination {
  return { exitCode: null, signal: null, oomKilled: false, reason: REASON_EXECUTOR_TERMINATED, message: why };
}
