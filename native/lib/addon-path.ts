/**
 * Where a native addon built in this checkout is: the first `rel` (e.g.
 * native/dns/build/Release/corral_dns.node) found walking up from this file,
 * so the same lookup works from the sources and from dist/.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findAddon(rel: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    const candidate = join(dir, rel);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
