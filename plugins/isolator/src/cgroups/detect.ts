/**
 * Which cgroup hierarchy this host runs, found at run time from
 * /proc/self/mountinfo: v1 when the cpu and memory controllers have their own
 * hierarchies (a "hybrid" host's unified mount without controllers is
 * ignored), v2 when a cgroup2 mount offers them. Parsing is pure for tests.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../../contracts/errors.js';
import type { CgroupDriver } from './types.js';
import { CgroupV1Driver, V1_CONTROLLERS } from './v1.js';
import { CgroupV2Driver } from './v2.js';

interface CgroupMounts {
  /** v1 controller → hierarchy mount point (co-mounted controllers share one). */
  v1: Map<string, string>;
  /** The cgroup2 mount point, if any. */
  v2?: string;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseCgroupMounts(mountinfo: string): CgroupMounts {
  const out: CgroupMounts = { v1: new Map() };
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , superOpts] = line.slice(sep + 3).split(' ');
    const mountPoint = unescape(left[4] ?? '');
    if (fstype === 'cgroup2') out.v2 ??= mountPoint;
    else if (fstype === 'cgroup') {
      for (const opt of (superOpts ?? '').split(',')) {
        if (V1_CONTROLLERS.includes(opt as (typeof V1_CONTROLLERS)[number]) && !out.v1.has(opt)) out.v1.set(opt, mountPoint);
      }
    }
  }
  return out;
}

type CgroupVersionChoice = 'auto' | 'v1' | 'v2';

function v2Controllers(mount: string): string[] {
  try {
    return readFileSync(join(mount, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

export function chooseVersion(m: CgroupMounts, want: CgroupVersionChoice, controllersOfV2: (mount: string) => string[] = v2Controllers): 1 | 2 {
  const v1Ready = m.v1.has('cpu') && m.v1.has('memory');
  const v2Ready = m.v2 !== undefined && ['cpu', 'memory'].every((c) => controllersOfV2(m.v2!).includes(c));
  if (want === 'v1') {
    if (!v1Ready) throw new CorralError('FAILED_PRECONDITION', 'cgroup v1 was asked for, but the cpu and memory controllers are not mounted as v1 hierarchies');
    return 1;
  }
  if (want === 'v2') {
    if (!v2Ready) throw new CorralError('FAILED_PRECONDITION', 'cgroup v2 was asked for, but no cgroup2 mount offers the cpu and memory controllers');
    return 2;
  }
  if (v1Ready) return 1;
  if (v2Ready) return 2;
  throw new CorralError('FAILED_PRECONDITION', 'no usable cgroup hierarchy: neither v1 cpu+memory hierarchies nor a cgroup2 mount with those controllers');
}

/** The driver for this host (or for `mountinfo`, in tests). */
export function openCgroups(root: string, want: CgroupVersionChoice = 'auto', mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): CgroupDriver {
  const m = parseCgroupMounts(mountinfo);
  return chooseVersion(m, want) === 1 ? new CgroupV1Driver(m.v1, root) : new CgroupV2Driver(m.v2!, root);
}
