/**
 * Carving one instance's resources out of what is left of an offer: cpus,
 * mem and disk (reserved-to-the-role first, then unreserved), and host ports
 * from the offer's `ports` ranges (fixed ones where asked, else the lowest
 * free). Persistent volumes, mount disks and revocable resources are never
 * taken. Pure: the planner subtracts what comes back.
 */
import { Resources, type Entry } from '../resources/resources.js';
import { fromMilli, toMilli } from '../resources/values.js';
import type { PortSpec } from './app-spec.js';

interface Needs {
  cpus: number;
  mem: number;
  disk: number;
  ports: readonly PortSpec[];
}

type Fit = { ok: true; resources: Resources; hostPorts: number[] } | { ok: false; missing: string };

function usable(e: Entry, role: string): boolean {
  if (e.revocable || e.disk !== undefined) return false;
  const owner = Resources.reservationRole(e);
  return owner === undefined || owner === role;
}

/** Entries of `name` this role may use, its own reservations first. */
function candidates(offer: Resources, name: string, role: string): Entry[] {
  return [...offer].filter((e) => e.name === name && usable(e, role)).sort((a, b) => Number(b.reserved) - Number(a.reserved));
}

function takeScalar(offer: Resources, name: string, amount: number, role: string, into: Resources): string | undefined {
  let left = toMilli(amount);
  if (left <= 0) return undefined;
  const have = candidates(offer, name, role).filter((e) => e.kind === 'SCALAR');
  for (const e of have) {
    const take = Math.min(e.scalar, left);
    if (take > 0) into.addEntry(e.withScalar(take));
    left -= take;
    if (left <= 0) return undefined;
  }
  const total = have.reduce((s, e) => s + e.scalar, 0);
  return `${name} (needs ${amount}, offer has ${fromMilli(total)})`;
}

function takePorts(offer: Resources, ports: readonly PortSpec[], role: string, into: Resources): { hostPorts: number[] } | { missing: string } {
  const entries = candidates(offer, 'ports', role).filter((e) => e.kind === 'RANGES');
  const taken = new Set<number>();
  const hostPorts: number[] = [];
  const owner = (p: number): Entry | undefined => entries.find((e) => e.ranges.some(([b, end]) => p >= b && p <= end));
  // Fixed ports first, so a dynamic one cannot take a port another definition names.
  for (const p of ports) if (p.hostPort) taken.add(p.hostPort);
  for (const p of ports) {
    const port = p.hostPort || lowestFree(entries, taken);
    if (port === undefined) return { missing: `ports (needs ${ports.length}, offer has fewer free)` };
    if (!owner(port)) return { missing: `host port ${port} (not in the offer's ports)` };
    taken.add(port);
    hostPorts.push(port);
    into.addEntry(owner(port)!.withRanges([[port, port]]));
  }
  return { hostPorts };
}

function lowestFree(entries: Entry[], taken: Set<number>): number | undefined {
  let best: number | undefined;
  for (const e of entries) {
    for (const [b, end] of e.ranges) {
      for (let p = b; p <= end && (best === undefined || p < best); p++) {
        if (!taken.has(p)) {
          best = p;
          break;
        }
      }
    }
  }
  return best;
}

/** Resources for one instance from `offer` (not modified), or what is missing. */
export function fit(offer: Resources, needs: Needs, role: string): Fit {
  const into = new Resources();
  for (const [name, amount] of [
    ['cpus', needs.cpus],
    ['mem', needs.mem],
    ['disk', needs.disk],
  ] as const) {
    const missing = takeScalar(offer, name, amount, role, into);
    if (missing) return { ok: false, missing };
  }
  const ports = takePorts(offer, needs.ports, role, into);
  if ('missing' in ports) return { ok: false, missing: ports.missing };
  return { ok: true, resources: into, hostPorts: ports.hostPorts };
}
