/**
 * Namespaces isolator: which of mount, pid, uts and ipc the task gets, its
 * host name, and, for a task without an image, the paths its read-only view
 * of the host leaves out. Those are of two kinds, handled alike: what the task
 * must not see (corral's state and credentials, other tasks' sandboxes, the
 * container runtimes' sockets) and what it must not pin. The host's mounts are
 * private here, so a mount namespace holds a copy of every host mount that
 * existed at launch and would keep it alive after the host unmounts it:
 * another container's network namespace file or an external volume (a
 * filesystem that must really be gone before another host attaches it). The
 * shim detaches every mount under a masked path and covers the path itself.
 * Paths are made canonical here: a mask reached through a symlink
 * (/var/run → /run) would otherwise land outside the view.
 */
import { realpathSync } from 'node:fs';
import { invalid } from '../../../../../contracts/errors.js';
import type { ContainerRecord } from '../checkpoint.js';
import type { Isolator, IsolatorContext, Namespace } from './types.js';

export class NamespacesIsolator implements Isolator {
  readonly name = 'namespaces';
  private canonicalMasks: string[] | undefined;

  constructor(
    private readonly namespaces: Namespace[],
    /** Host paths whose mounts tasks must never pin (the run dir, /run/netns, volume roots…). */
    private readonly maskedPaths: string[],
    /** Mount points of external volumes in use by any container right now. */
    private readonly volumeMountpoints: () => string[],
  ) {}

  record(): void {}

  async prepare(ctx: IsolatorContext): Promise<void> {
    const { plan, config } = ctx;
    plan.namespaces = [...this.namespaces];
    if (config.hostname) {
      if (!this.namespaces.includes('uts')) throw invalid('a task host name needs the uts namespace, which this agent does not use');
      plan.hostname = config.hostname;
    }
    if (!this.namespaces.includes('mnt')) return;
    // The configured paths once (a launch must not pay a realpath per mask); volume mount points as they come.
    this.canonicalMasks ??= this.maskedPaths.map(canonical);
    plan.masks = outermost([...this.canonicalMasks, ...this.volumeMountpoints().map(canonical)]);
  }

  async cleanup(_record: ContainerRecord): Promise<void> {}
}

/**
 * The masks without those inside another: a covered path hides everything under it, and the shim
 * reuses its first cover as the source of the next ones, which a later cover of a parent would hide
 * (the agent's run directory /run/corral/containerizer, then /run/corral, then /run/docker failed so).
 */
export function outermost(paths: string[]): string[] {
  const unique = [...new Set(paths)].sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const p of unique) if (!kept.some((k) => p.startsWith(k.endsWith('/') ? k : `${k}/`))) kept.push(p);
  return kept;
}

function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path; // not there now: nothing to cover, but mounts may still appear under it
  }
}
