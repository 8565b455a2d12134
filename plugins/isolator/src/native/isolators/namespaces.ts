/**
 * Namespaces isolator: which of mount, pid, uts and ipc the task gets, its
 * host name, and the host mounts to detach inside a task that sees the host
 * filesystem. The host's mounts are private here, so a mount namespace holds
 * a copy of every host mount that existed at launch and would keep it alive
 * after the host unmounts it: another container's network namespace file or
 * an external volume (a filesystem that must really be gone before another
 * host attaches it). Those are detached in the task's namespace, after its
 * own binds are in place.
 */
import { invalid } from '../../../../../contracts/errors.js';
import type { ContainerRecord } from '../checkpoint.js';
import type { Isolator, IsolatorContext, Namespace } from './types.js';

export class NamespacesIsolator implements Isolator {
  readonly name = 'namespaces';

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
    if (this.namespaces.includes('mnt')) plan.masks = [...new Set([...this.maskedPaths, ...this.volumeMountpoints()])];
  }

  async cleanup(_record: ContainerRecord): Promise<void> {}
}
