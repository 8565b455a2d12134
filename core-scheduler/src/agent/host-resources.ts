/**
 * What this host offers: detected CPUs, memory, disk and a port range, or the
 * operator's `--resources` (which may carry static reservations). Some memory
 * and disk stay with the host, as Mesos leaves them.
 */
import { cpus, totalmem } from 'node:os';
import { statfsSync, mkdirSync } from 'node:fs';
import { Resources } from '../resources/resources.js';
import { parseResources } from '../resources/parse.js';
import { CorralError } from '../../../common/errors.js';
import type { V1Attribute } from '../protocol/v1.js';

const MiB = 1024 * 1024;

export function detectResources(workDir: string): Resources {
  mkdirSync(workDir, { recursive: true });
  const memMb = Math.floor(totalmem() / MiB);
  const fs = statfsSync(workDir);
  const diskMb = Math.floor((fs.blocks * fs.bsize) / MiB);
  // Leave the host min(1 GiB, half) of memory and min(5 GiB, half) of disk.
  const mem = memMb - Math.min(1024, Math.floor(memMb / 2));
  const disk = diskMb - Math.min(5120, Math.floor(diskMb / 2));
  return parseResources(`cpus:${cpus().length};mem:${mem};disk:${disk};ports:[31000-32000]`);
}

/** `--resources` replaces detected values per name; names it does not mention stay detected. */
export function hostResources(workDir: string, override: string | undefined): Resources {
  const detected = detectResources(workDir);
  if (!override) return detected;
  const given = parseResources(override);
  const names = new Set([...given].map((e) => e.name));
  return detected.filter((e) => !names.has(e.name)).add(given);
}

/** "rack:r1;zone:a;cores:8" → v1 attributes (numbers become SCALAR, the rest TEXT). */
export function parseAttributes(text: string): V1Attribute[] {
  const out: V1Attribute[] = [];
  for (const part of text.split(';').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z_][A-Za-z0-9_.-]*):(.+)$/.exec(part);
    if (!m) throw new CorralError('INVALID_ARGUMENT', `invalid attribute "${part}": expected name:value`);
    const value = m[2]!.trim();
    out.push(/^-?\d+(\.\d+)?$/.test(value) ? { name: m[1]!, type: 'SCALAR', scalar: { value: Number(value) } } : { name: m[1]!, type: 'TEXT', text: { value } });
  }
  return out;
}
