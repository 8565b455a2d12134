/**
 * The capability sets a task gets (common/capabilities.ts): none for a
 * non-root user, the reduced default for root, what the launch names (Mesos
 * LinuxInfo rules), refusals of unknown names and of an effective set outside
 * the bounding set, and the launcher's bit masks.
 */
import { describe, expect, it } from 'vitest';
import { CAPABILITY_NAMES, DEFAULT_ROOT_CAPABILITIES, capabilityMask, taskCapabilities } from '../../../plugins/isolator/src/common/capabilities.js';

describe('taskCapabilities', () => {
  it('a non-root task gets nothing; root the reduced default, without NET_RAW, MKNOD, SYS_CHROOT, SETFCAP', () => {
    expect(taskCapabilities(65534, undefined)).toEqual({ effective: [], bounding: [] });
    const root = taskCapabilities(0, undefined);
    expect(root.effective).toEqual([...DEFAULT_ROOT_CAPABILITIES]);
    expect(root.bounding).toEqual([...DEFAULT_ROOT_CAPABILITIES]);
    for (const c of ['NET_RAW', 'MKNOD', 'SYS_CHROOT', 'SETFCAP', 'SYS_ADMIN']) expect(root.bounding).not.toContain(c);
  });

  it('only effective named: bounding is the same; only bounding named: the default within it', () => {
    expect(taskCapabilities(1000, { effectiveCapabilities: ['NET_BIND_SERVICE'] })).toEqual({ effective: ['NET_BIND_SERVICE'], bounding: ['NET_BIND_SERVICE'] });
    expect(taskCapabilities(0, { boundingCapabilities: ['CHOWN', 'SYS_ADMIN'] })).toEqual({ effective: ['CHOWN'], bounding: ['CHOWN', 'SYS_ADMIN'] });
    expect(taskCapabilities(1000, { boundingCapabilities: ['CHOWN'] })).toEqual({ effective: [], bounding: ['CHOWN'] });
    expect(taskCapabilities(0, { effectiveCapabilities: [] })).toEqual({ effective: [], bounding: [] });
  });

  it('refuses unknown names and an effective set outside the bounding set', () => {
    expect(() => taskCapabilities(0, { effectiveCapabilities: ['NET_FLY'] })).toThrow(/unknown effective capability NET_FLY/);
    expect(taskCapabilities(0, { effectiveCapabilities: ['CAP_NET_RAW', 'cap_chown', 'kill'] }).effective).toEqual(['NET_RAW', 'CHOWN', 'KILL']); // the kernel's spellings are read too
    expect(() => taskCapabilities(0, { boundingCapabilities: ['FLY', 'SWIM'] })).toThrow(/unknown bounding capabilities FLY, SWIM/);
    expect(() => taskCapabilities(0, { effectiveCapabilities: ['SYS_ADMIN'], boundingCapabilities: ['CHOWN'] })).toThrow(/SYS_ADMIN are not in the bounding set/);
  });
});

describe('capabilityMask', () => {
  it('sets bit N for capability N, in kernel order', () => {
    expect(capabilityMask([])).toBe('0');
    expect(capabilityMask(['CHOWN'])).toBe('1');
    expect(capabilityMask(['NET_BIND_SERVICE', 'NET_RAW'])).toBe((2 ** 10 + 2 ** 13).toString(16));
    expect(capabilityMask(['CHECKPOINT_RESTORE'])).toBe((2n ** 40n).toString(16));
    expect(CAPABILITY_NAMES.indexOf('SYS_ADMIN')).toBe(21);
    // Docker's default set (a80425fb) minus NET_RAW, MKNOD, SYS_CHROOT and SETFCAP.
    expect(capabilityMask(DEFAULT_ROOT_CAPABILITIES)).toBe('200005fb');
  });
});
