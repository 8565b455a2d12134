/**
 * The result cache of a CNI runtime, laid out as libcni lays it out:
 * `<cacheDir>/results/<network>-<containerId>-<ifname>`, one JSON document
 * of kind `cniCacheV1` holding the ADD's final result and what the ADD was
 * called with (netns, CNI_ARGS, capability args). DEL and CHECK hand the
 * cached result to the plugins as prevResult, GC finds stale attachments
 * in it, and it survives a restart of the runtime (the agent), which is
 * why it is on disk.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CorralError } from '../../contracts/errors.js';

export const CACHE_KIND = 'cniCacheV1';

export interface CachedAttachment {
  kind: typeof CACHE_KIND;
  containerId: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  /** The network configuration the ADD ran with. */
  config?: unknown;
  result?: unknown;
}

interface AttachmentKey {
  network: string;
  containerId: string;
  ifname: string;
}

export class ResultCache {
  constructor(readonly dir: string) {}

  /** The cache file of one attachment; the three parts must be set (libcni's rule), and none may leave the directory. */
  file(k: AttachmentKey): string {
    for (const [what, v] of [
      ['network name', k.network],
      ['container id', k.containerId],
      ['interface name', k.ifname],
    ] as const) {
      if (!v) throw new CorralError('INVALID_ARGUMENT', `a CNI cache entry needs a ${what}`);
      if (v.includes('/') || v === '.' || v === '..') throw new CorralError('INVALID_ARGUMENT', `bad ${what} "${v}" for the CNI cache`);
    }
    return join(this.dir, 'results', `${k.network}-${k.containerId}-${k.ifname}`);
  }

  /** Writes the entry atomically (a crash leaves the old entry or the new one, never half of one). */
  put(entry: Omit<CachedAttachment, 'kind'>): void {
    const file = this.file({ network: entry.networkName, containerId: entry.containerId, ifname: entry.ifName });
    mkdirSync(join(this.dir, 'results'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify({ kind: CACHE_KIND, ...entry }), { mode: 0o600 });
    renameSync(tmp, file);
  }

  /**
   * The cached entry, undefined when there is none. A file that is not a
   * cniCacheV1 document but is JSON is taken as a bare result (libcni reads
   * its older format so too); an unreadable one is an INTERNAL error.
   */
  get(k: AttachmentKey): CachedAttachment | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(k), 'utf8');
    } catch {
      return undefined;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new CorralError('INTERNAL', `cached CNI result ${this.file(k)} is not JSON: ${(err as Error).message}`);
    }
    if (typeof raw === 'object' && raw !== null && (raw as { kind?: unknown }).kind === CACHE_KIND) return raw as CachedAttachment;
    return { kind: CACHE_KIND, networkName: k.network, containerId: k.containerId, ifName: k.ifname, result: raw };
  }

  remove(k: AttachmentKey): void {
    rmSync(this.file(k), { force: true });
  }

  /** Every readable cniCacheV1 entry (of one container when given), in file-name order, as libcni's GetCachedAttachments. */
  list(containerId?: string): CachedAttachment[] {
    let names: string[];
    try {
      names = readdirSync(join(this.dir, 'results'))
        .filter((n) => !n.endsWith('.tmp'))
        .sort();
    } catch {
      return [];
    }
    const out: CachedAttachment[] = [];
    for (const n of names) {
      if (containerId && !n.includes(`-${containerId}-`)) continue;
      try {
        const e = JSON.parse(readFileSync(join(this.dir, 'results', n), 'utf8')) as CachedAttachment;
        if (e.kind !== CACHE_KIND || !e.ifName || !e.networkName) continue;
        if (containerId && e.containerId !== containerId) continue;
        out.push(e);
      } catch {
        // unreadable entries are skipped, as libcni skips them
      }
    }
    return out;
  }
}
