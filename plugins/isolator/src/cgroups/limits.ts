/**
 * Resource figures → cgroup limits, as Mesos maps them: cpu.shares of 1024
 * per CPU (minimum 2), a CFS quota of `cpus` × the period when hard capping
 * is on, memory in bytes. Pure, so both hierarchies and the Docker mapping
 * share one source of truth.
 *
 * The figures come from the task's request, not from what the host has: an
 * agent whose operator advertises more than the hardware (overcommit) runs a
 * 3-CPU task under a 300 ms/100 ms quota on a 2-core host, which the kernel
 * accepts (the quota only caps; it does not reserve cores). Only the
 * kernel's own bounds are applied.
 */
import type { CgroupLimits } from './types.js';

export const CFS_PERIOD_US = 100_000;
/** The kernel refuses quotas under 1 ms. */
const MIN_CFS_QUOTA_US = 1_000;
const MIN_SHARES = 2;
/** cgroup v1 clamps cpu.shares to this silently; clamping here keeps what is written equal to what is read back. */
export const MAX_SHARES = 262_144;
/** The largest cpu.cfs_quota_us the kernel takes (2^44 - 1 µs, ~176 million CPUs at the 100 ms period); above it, EINVAL. */
export const MAX_CFS_QUOTA_US = 2 ** 44 - 1;
/**
 * Memory limits are capped at 2^53 bytes (8 PiB): still "no real limit", page-aligned, and an exact
 * integer in a JS number, so String() never writes an exponent or an overflowing value to the kernel.
 */
export const MAX_MEMORY_BYTES = 2 ** 53;
export const MIB = 1024 * 1024;

interface LimitInput {
  cpus: number;
  memMb: number;
  pids?: number | undefined;
  cfsQuota: boolean;
}

export function cgroupLimits(r: LimitInput): CgroupLimits {
  const limits: CgroupLimits = { cpuShares: clamp(Math.round(r.cpus * 1024), MIN_SHARES, MAX_SHARES) };
  if (r.cfsQuota && r.cpus > 0) limits.cpuQuota = { quotaUs: clamp(Math.round(r.cpus * CFS_PERIOD_US), MIN_CFS_QUOTA_US, MAX_CFS_QUOTA_US), periodUs: CFS_PERIOD_US };
  if (r.memMb > 0) limits.memoryBytes = Math.min(MAX_MEMORY_BYTES, Math.round(r.memMb * MIB));
  if (r.pids !== undefined) limits.pids = r.pids;
  return limits;
}

function clamp(v: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, v));
}

/** cgroup v2 cpu.weight (1–10000) from v1 shares (2–262144), the conversion runc and systemd use. */
export function sharesToWeight(shares: number): number {
  const s = Math.min(262_144, Math.max(MIN_SHARES, shares));
  return 1 + Math.floor(((s - 2) * 9999) / 262_142);
}
