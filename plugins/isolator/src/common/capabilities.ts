/**
 * Linux capabilities by Mesos CapabilityInfo name, and the sets a task gets.
 *
 * A non-root task gets no capability at all unless its launch names some.
 * A root task gets DEFAULT_ROOT_CAPABILITIES: Docker's default set minus
 *  - NET_RAW (raw and packet sockets: spoofing, sniffing the node's traffic),
 *  - MKNOD (device nodes: a way around the device list),
 *  - SYS_CHROOT (chroot is a classic step of escapes and unneeded by services),
 *  - SETFCAP (file capabilities: handing privileges to binaries that outlive the task).
 * What stays is what root services commonly use: owning and changing files
 * in their own tree (CHOWN, DAC_OVERRIDE, FOWNER, FSETID), dropping to
 * another user (SETUID, SETGID, SETPCAP to shed capabilities), binding ports
 * below 1024 (NET_BIND_SERVICE), signalling their own processes (KILL) and
 * writing audit records (AUDIT_WRITE, for login-like programs).
 * A launch may name other sets (Mesos's LinuxInfo effective/bounding
 * capabilities); which ones a framework may ask for is the master's ACL.
 */
import { invalid } from '../../../../contracts/errors.js';
import type { SecuritySpec } from '../../../../contracts/containerizer.js';

/** Mesos CapabilityInfo.Capability names, in kernel order (the index is the capability number). */
export const CAPABILITY_NAMES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
] as const;

type CapabilityName = (typeof CAPABILITY_NAMES)[number];

export const DEFAULT_ROOT_CAPABILITIES: readonly CapabilityName[] = ['CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'SETGID', 'SETUID', 'SETPCAP', 'NET_BIND_SERVICE', 'KILL', 'AUDIT_WRITE'];

const isCapabilityName = (n: string): n is CapabilityName => (CAPABILITY_NAMES as readonly string[]).includes(n);

interface TaskCapabilities {
  effective: CapabilityName[];
  bounding: CapabilityName[];
}

/**
 * The sets for a task of `uid`, as Mesos reads LinuxInfo: effective is what it runs with, bounding
 * the most it can ever get; only effective given → bounding is the same; only bounding given →
 * effective is the default within it. Effective outside bounding is a bad task.
 */
export function taskCapabilities(uid: number, security: SecuritySpec | undefined): TaskCapabilities {
  const check = (raw: string[] | undefined, what: string): CapabilityName[] | undefined => {
    if (!raw) return undefined;
    // The kernel's spelling (CAP_CHOWN, cap_chown) is read as Mesos's (CHOWN), as the master's ACL reads it.
    const list = raw.map((n) => n.toUpperCase().replace(/^CAP_/, ''));
    const bad = list.filter((n) => !isCapabilityName(n));
    if (bad.length) throw invalid(`unknown ${what} capabilit${bad.length > 1 ? 'ies' : 'y'} ${bad.join(', ')} (Mesos CapabilityInfo names, e.g. NET_BIND_SERVICE)`);
    return [...new Set(list as CapabilityName[])];
  };
  const eff = check(security?.effectiveCapabilities, 'effective');
  const bnd = check(security?.boundingCapabilities, 'bounding');
  const base: CapabilityName[] = uid === 0 ? [...DEFAULT_ROOT_CAPABILITIES] : [];
  const bounding = bnd ?? eff ?? base;
  const effective = eff ?? base.filter((c) => bounding.includes(c));
  const outside = effective.filter((c) => !bounding.includes(c));
  if (outside.length) throw invalid(`effective capabilities ${outside.join(', ')} are not in the bounding set`);
  return { effective, bounding };
}

/** A set as the task launcher's hex bit mask (bit N = capability N). */
export function capabilityMask(list: readonly CapabilityName[]): string {
  let mask = 0n;
  for (const c of list) mask |= 1n << BigInt(CAPABILITY_NAMES.indexOf(c));
  return mask.toString(16);
}
