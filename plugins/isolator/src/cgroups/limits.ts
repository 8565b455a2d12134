/**
 * Resource figures → cgroup limits, as Mesos maps them: cpu.shares of 1024
 * per CPU (minimum 2), a CFS quota of `cpus` × the period when hard capping
 * is on, memory in bytes. Pure, so both hierarchies and the Docker mapping
 * share one source of truth.
 */
import type { CgroupLimits } from './types.js';

export const CFS_PERIOD_US = 100_000;
/** The kernel refuses quotas under 1 ms. */
export const MIN_CFS_QUOTA_US = 1_000;
export const MIN_SHARES = 2;
export const MIB = 1024 * 1024;

export interface LimitInput {
  cpus: number;
  memMb: number;
  pids?: number | undefined;
  cfsQuota: boolean;
}

export function cgroupLimits(r: LimitInput): CgroupLimits {
  const limits: CgroupLimits = { cpuShares: Math.max(MIN_SHARES, Math.round(r.cpus * 1024)) };
  if (r.cfsQuota && r.cpus > 0) limits.cpuQuota = { quotaUs: Math.max(MIN_CFS_QUOTA_US, Math.round(r.cpus * CFS_PERIOD_US)), periodUs: CFS_PERIOD_US };
  if (r.memMb > 0) limits.memoryBytes = Math.round(r.memMb * MIB);
  if (r.pids !== undefined) limits.pids = r.pids;
  return limits;
}

/** cgroup v2 cpu.weight (1–10000) from v1 shares (2–262144), the conversion runc and systemd use. */
export function sharesToWeight(shares: number): number {
  const s = Math.min(262_144, Math.max(MIN_SHARES, shares));
  return 1 + Math.floor(((s - 2) * 9999) / 262_142);
}
