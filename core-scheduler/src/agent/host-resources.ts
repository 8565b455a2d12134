/**
 * What this host offers: detected CPUs, memory, disk and a port range, or the
 * operator's `--resources` (which may carry static reservations). Some memory
 * and disk stay with the host, as Mesos leaves them.
 *
 * As in Mesos, the operator's figures are trusted: an agent may advertise
 * more than the hardware (overcommit, tests) or less (headroom), and tasks
 * are checked against what it advertises. Advertising more than the host has
 * is reported (log at start, the agent's /api/v1/resources), never refused.
 */
import { cpus, totalmem } from 'node:os';
import { statfsSync, mkdirSync } from 'node:fs';
import { Resources } from '../resources/resources.js';
import { parseResources } from '../resources/parse.js';
import { CorralError } from '../../../contracts/errors.js';
import type { V1Attribute } from '../../../contracts/v1/v1.js';

const MiB = 1024 * 1024;

/** The hardware, for comparing advertised figures with: cores, RAM, and the size of the work dir's file system. */
export interface PhysicalResources {
  cpus: number;
  memMb: number;
  diskMb: number;
}

export function physicalResources(workDir: string): PhysicalResources {
  mkdirSync(workDir, { recursive: true });
  const fs = statfsSync(workDir);
  return { cpus: cpus().length, memMb: Math.floor(totalmem() / MiB), diskMb: Math.floor((fs.blocks * fs.bsize) / MiB) };
}

function detectResources(workDir: string, physical: PhysicalResources = physicalResources(workDir)): Resources {
  const { memMb, diskMb } = physical;
  // Leave the host min(1 GiB, half) of memory and min(5 GiB, half) of disk.
  const mem = memMb - Math.min(1024, Math.floor(memMb / 2));
  const disk = diskMb - Math.min(5120, Math.floor(diskMb / 2));
  return parseResources(`cpus:${physical.cpus};mem:${mem};disk:${disk};ports:[31000-32000]`);
}

/** `--resources` replaces detected values per name; names it does not mention stay detected. */
export function hostResources(workDir: string, override: string | undefined, physical: PhysicalResources = physicalResources(workDir)): Resources {
  const detected = detectResources(workDir, physical);
  if (!override) return detected;
  const given = parseResources(override);
  const names = new Set([...given].map((e) => e.name));
  return detected.filter((e) => !names.has(e.name)).add(given);
}

/** One resource the agent advertises beyond the hardware (all roles together). */
export interface Overcommit {
  resource: 'cpus' | 'mem' | 'disk';
  advertised: number;
  physical: number;
}

export function overcommitted(advertised: Resources, physical: PhysicalResources): Overcommit[] {
  const out: Overcommit[] = [];
  const pairs: Array<[Overcommit['resource'], number]> = [
    ['cpus', physical.cpus],
    ['mem', physical.memMb],
    ['disk', physical.diskMb],
  ];
  for (const [resource, has] of pairs) {
    const a = advertised.scalar(resource);
    if (a > has) out.push({ resource, advertised: a, physical: has });
  }
  return out;
}

export interface AgentResources {
  /** What the agent registers with the master, and what tasks are checked against. */
  advertised: Resources;
  physical: PhysicalResources;
  overcommitted: Overcommit[];
}

/** The agent's resources from its configuration, with what they exceed on this host. */
export function agentResources(workDir: string, override: string | undefined): AgentResources {
  const physical = physicalResources(workDir);
  const advertised = hostResources(workDir, override, physical);
  // Offering GPUs that no isolator hands to tasks would fail every task that takes them (Mesos likewise refuses gpus without its GPU isolator).
  if (advertised.scalar('gpus') > 0) throw new CorralError('INVALID_ARGUMENT', 'the agent cannot advertise gpus: it has no GPU isolation to give them to tasks; remove gpus from --resources');
  return { advertised, physical, overcommitted: overcommitted(advertised, physical) };
}

/** The most one task may ask for on this agent: all it advertises (the containerizers check each task against it). */
export function taskCapacity(advertised: Resources): { cpus: number; memMb: number; gpus: number } {
  return { cpus: advertised.scalar('cpus'), memMb: advertised.scalar('mem'), gpus: advertised.scalar('gpus') };
}

/** "rack:r1;zone:a;cores:8" → v1 attributes (numbers become SCALAR, the rest TEXT). */
export function parseAttributes(text: string): V1Attribute[] {
  const out: V1Attribute[] = [];
  for (const part of text
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z_][A-Za-z0-9_.-]*):(.+)$/.exec(part);
    if (!m) throw new CorralError('INVALID_ARGUMENT', `invalid attribute "${part}": expected name:value`);
    const value = m[2]!.trim();
    out.push(/^-?\d+(\.\d+)?$/.test(value) ? { name: m[1]!, type: 'SCALAR', scalar: { value: Number(value) } } : { name: m[1]!, type: 'TEXT', text: { value } });
  }
  return out;
}
