/**
 * The typed face of corral_memory.node (native/memory): V8's count of memory
 * held outside its heap on behalf of JS objects, which decides when V8 starts
 * a full collection. Optional: when the addon is not built or fails to load,
 * `externalMemory()` says why and callers carry on without it.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { findAddon } from './addon-path.js';
import { errorMessage } from '../../contracts/errors.js';

export interface ExternalMemory {
  /** Adds delta bytes to V8's count (negative takes away) and returns the count afterwards; 0 only reads it. */
  adjust(delta: number): number;
}

const ADDON_REL = join('native', 'memory', 'build', 'Release', 'corral_memory.node');

let loaded: { memory: ExternalMemory } | { reason: string } | undefined;

/** The binding, or why not. Looked up under the checkout from the sources and from dist/ alike. */
export function externalMemory(): { memory: ExternalMemory } | { reason: string } {
  if (loaded) return loaded;
  const file = findAddon(ADDON_REL);
  if (!file) return (loaded = { reason: 'corral_memory.node is not built (scripts/setup.sh builds it)' });
  try {
    const addon = createRequire(import.meta.url)(file) as { adjustExternalMemory(delta: number): number };
    return (loaded = { memory: { adjust: (delta) => addon.adjustExternalMemory(delta) } });
  } catch (err) {
    return (loaded = { reason: `corral_memory.node failed to load: ${errorMessage(err)}` });
  }
}
