/**
 * Which other mount namespaces still hold a volume's filesystem. On a host
 * whose mounts are private, every mount namespace made while a volume is
 * mounted keeps its own copy of that mount after the host unmounts it: a
 * task's, but also any short-lived one (`ip -n NETNS …` and `ip netns exec`
 * make one per call). While a copy exists the filesystem stays alive under
 * it — for an rbd volume its loop device keeps the rbd-fuse file open and
 * the fuse unmount fails with "target is busy".
 *
 * The detach reconciler asks this before releasing a reference on the
 * agent's word alone: a filesystem still mounted in another namespace may
 * have a task behind it that the agent's list missed.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

interface NamespaceHolder {
  pid: number;
  /** Where the namespace has it mounted. */
  target: string;
}

/** Mount paths in mountinfo escape space, tab, newline and backslash as octal. */
const unescapeField = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Device (major:minor) of the filesystem mounted at `mountpoint` in this process's namespace; undefined when nothing is mounted there. */
function mountedDevice(mountpoint: string): { dev: string; peerGroup?: string } | undefined {
  let found: { dev: string; peerGroup?: string } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (unescapeField(f[4] ?? '') !== mountpoint) continue;
    // The last entry is the one on top (what a path lookup sees).
    const shared = f.slice(6, f.indexOf('-')).find((o) => o.startsWith('shared:'));
    found = { dev: f[2]!, ...(shared ? { peerGroup: shared.slice('shared:'.length) } : {}) };
  }
  return found;
}

/**
 * Other mount namespaces holding the filesystem mounted at `mountpoint`,
 * one entry per namespace. A propagated copy at the same path (a slave of
 * this mount's peer group) is not counted: it goes with the host's unmount.
 */
export function namespaceHolders(mountpoint: string): NamespaceHolder[] {
  const mine = mountedDevice(mountpoint);
  if (!mine) return [];
  let ownNs = '';
  try {
    ownNs = readlinkSync('/proc/self/ns/mnt');
  } catch {
    return [];
  }
  const seen = new Set<string>([ownNs]);
  const out: NamespaceHolder[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let ns: string;
    let info: string;
    try {
      ns = readlinkSync(`/proc/${entry}/ns/mnt`);
      if (seen.has(ns)) continue;
      info = readFileSync(`/proc/${entry}/mountinfo`, 'utf8');
    } catch {
      continue; // gone meanwhile, or a kernel thread
    }
    seen.add(ns);
    for (const line of info.split('\n')) {
      const f = line.split(' ');
      if (f[2] !== mine.dev) continue;
      const target = unescapeField(f[4] ?? '');
      const optional = f.slice(6, f.indexOf('-'));
      const propagated = target === mountpoint && mine.peerGroup !== undefined && optional.includes(`master:${mine.peerGroup}`);
      if (propagated) continue;
      out.push({ pid: Number(entry), target });
      break;
    }
  }
  return out;
}

/**
 * Processes (one per mount namespace, with its command name) that have
 * `device` mounted somewhere — who keeps a filesystem alive after the host
 * unmounted it, for the log of a detach that found it busy.
 */
export function namespacesMounting(device: string): Array<{ pid: number; comm: string; target: string }> {
  const out: Array<{ pid: number; comm: string; target: string }> = [];
  const seen = new Set<string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ns = readlinkSync(`/proc/${entry}/ns/mnt`);
      if (seen.has(ns)) continue;
      seen.add(ns);
      for (const line of readFileSync(`/proc/${entry}/mountinfo`, 'utf8').split('\n')) {
        const f = line.split(' ');
        const dash = f.indexOf('-');
        if (dash < 0 || unescapeField(f[dash + 2] ?? '') !== device) continue;
        out.push({ pid: Number(entry), comm: readFileSync(`/proc/${entry}/comm`, 'utf8').trim(), target: unescapeField(f[4] ?? '') });
        break;
      }
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
  return out;
}
