/**
 * VolumeHook over the volume library: an external volume `{driver, name,
 * options}` is mounted through the `Volumes` client registered for its
 * driver (normally a VolumeClient talking to the host's running `corral
 * volume-driver`), counted by the container's reference id, and bound into
 * the task by the containerizer. Like Docker with a volume driver, a volume
 * that does not exist yet is created with the task's options first. A
 * CONFLICT (the volume is attached on another live host) fails the launch
 * with the driver's own message. An unmount the driver could not be reached
 * for (restarting, overloaded) is retried a few times: dropping a reference
 * is idempotent, and one that never arrives leaves the volume attached
 * until the driver's reconciler finds the container gone.
 */
import { CorralError, errorMessage, isCorralError } from '../../../contracts/errors.js';
import type { VolumeHook, VolumeSource } from '../../../contracts/containerizer.js';
import { VolumeClient } from './client.js';
import { DEFAULT_SOCKET } from './config.js';
import type { Volumes } from './types.js';

type External = Extract<VolumeSource, { type: 'external' }>;

interface VolumeHookOptions {
  /** Driver name → the volume library for it. Default: `corral` through the daemon at its default socket. */
  drivers?: Record<string, Volumes>;
  /** Create a missing volume with the task's options before mounting (default true, as Docker does). */
  createMissing?: boolean;
  /** Waits between attempts of an unmount the driver did not answer (default 250 ms, then 1 s). */
  unmountRetryMs?: number[];
}

/** The driver did not get or did not answer the call: asking again is safe for an unmount. */
const unanswered = (err: unknown): boolean => isCorralError(err, 'UNAVAILABLE') || isCorralError(err, 'TIMEOUT');

export class VolumeLibraryHook implements VolumeHook {
  private readonly drivers: Record<string, Volumes>;
  private readonly createMissing: boolean;
  private readonly unmountRetryMs: number[];

  constructor(opts: VolumeHookOptions = {}) {
    this.drivers = opts.drivers ?? { corral: new VolumeClient(process.env.CORRAL_VOLUME_SOCKET ?? DEFAULT_SOCKET) };
    this.createMissing = opts.createMissing ?? true;
    this.unmountRetryMs = opts.unmountRetryMs ?? [250, 1000];
  }

  private driver(source: External): Volumes {
    const d = this.drivers[source.driver];
    if (!d) throw new CorralError('INVALID_ARGUMENT', `unknown volume driver "${source.driver}" for volume ${source.name} (this agent knows: ${Object.keys(this.drivers).join(', ') || 'none'})`);
    return d;
  }

  async mount(source: External, referenceId: string): Promise<string> {
    const volumes = this.driver(source);
    try {
      return await volumes.mount(source.name, referenceId);
    } catch (err) {
      if (!(this.createMissing && isCorralError(err, 'NOT_FOUND'))) throw wrap(source, 'mount', err);
    }
    try {
      await volumes.create(source.name, Object.keys(source.options).length ? source.options : null);
      return await volumes.mount(source.name, referenceId);
    } catch (err) {
      throw wrap(source, 'create and mount', err);
    }
  }

  async unmount(source: External, referenceId: string): Promise<void> {
    const volumes = this.driver(source);
    for (let attempt = 0; ; attempt++) {
      try {
        await volumes.unmount(source.name, referenceId);
        return;
      } catch (err) {
        const wait = this.unmountRetryMs[attempt];
        if (wait === undefined || !unanswered(err)) throw wrap(source, 'unmount', err);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
}

/** Keeps the library's code (CONFLICT, NOT_FOUND, UNAVAILABLE…) and says which volume and step failed. */
function wrap(source: External, step: string, err: unknown): CorralError {
  const code = err instanceof CorralError ? err.code : 'INTERNAL';
  return new CorralError(code, `volume ${source.name} (driver ${source.driver}): ${step} failed: ${errorMessage(err)}`, undefined, { cause: err });
}
