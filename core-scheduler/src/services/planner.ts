/**
 * Matching pending instances to a batch of offers. Pure: given the offers,
 * the instances waiting for a place (in priority order) and where each app's
 * instances already run, it returns which instance goes on which offer with
 * which resources, and — for every instance left over — why each agent was
 * unsuitable (the words `corral app show` prints).
 */
import type { Resources } from '../resources/resources.js';
import type { AppSpec } from './app-spec.js';
import { describeConstraint, firstViolation, type Placement } from './constraints.js';
import { fit } from './fit.js';

export interface OfferView extends Placement {
  id: string;
  agentId: string;
  role: string;
  /** What is still free in this offer; the plan subtracts what it uses. */
  remaining: Resources;
}

export interface PendingInstance {
  app: AppSpec;
  index: number;
}

export interface PlannedLaunch extends PendingInstance {
  offer: OfferView;
  resources: Resources;
  hostPorts: number[];
}

interface Plan {
  launches: PlannedLaunch[];
  /** For instances not placed: agent host name → why that agent's offer did not do. */
  refusals: Map<PendingInstance, Map<string, string>>;
}

/**
 * Place `pending` on `offers`. `placed(appId)` gives where the app's live
 * tasks are (launches planned here are added as the plan goes).
 */
export function planLaunches(offers: OfferView[], pending: PendingInstance[], placed: (appId: string) => Placement[]): Plan {
  const launches: PlannedLaunch[] = [];
  const refusals = new Map<PendingInstance, Map<string, string>>();
  const others = new Map<string, Placement[]>();
  // Once an instance of an app fits nowhere, the next ones (same needs, same offers) would not either.
  const hopeless = new Map<string, Map<string, string>>();
  for (const inst of pending) {
    const { app } = inst;
    const known = hopeless.get(app.id);
    if (known) {
      refusals.set(inst, known);
      continue;
    }
    let around = others.get(app.id);
    if (!around) others.set(app.id, (around = [...placed(app.id)]));
    const why = new Map<string, string>();
    let chosen: PlannedLaunch | undefined;
    for (const offer of offers) {
      if (offer.role !== app.role) {
        why.set(offer.hostname, `offered to role "${offer.role}"`);
        continue;
      }
      const f = fit(offer.remaining, { cpus: app.cpus, mem: app.mem, disk: app.disk, ports: app.ports }, app.role);
      if (!f.ok) {
        why.set(offer.hostname, `not enough ${f.missing}`);
        continue;
      }
      const broken = firstViolation(app.constraints, offer, around);
      if (broken) {
        why.set(offer.hostname, broken.reason);
        continue;
      }
      chosen = { ...inst, offer, resources: f.resources, hostPorts: f.hostPorts };
      break;
    }
    if (chosen) {
      chosen.offer.remaining.subtract(chosen.resources);
      around.push({ hostname: chosen.offer.hostname, attributes: chosen.offer.attributes });
      launches.push(chosen);
    } else {
      refusals.set(inst, why);
      hopeless.set(app.id, why);
    }
  }
  return { launches, refusals };
}

/** "waiting for a suitable offer: hostname UNIQUE ruled out 4 agents (h1, h2, …); not enough cpus on 1 (h5)". */
export function summarizeRefusals(app: AppSpec, why: ReadonlyMap<string, string>): string {
  if (why.size === 0) return app.role === '*' ? 'waiting for offers' : `waiting for offers of role "${app.role}"`;
  const groups = new Map<string, string[]>();
  for (const [host, reason] of [...why].sort(([a], [b]) => a.localeCompare(b))) {
    const c = app.constraints.find((x) => reason.startsWith(`${describeConstraint(x)}:`));
    const key = c ? `constraint [${describeConstraint(c)}] ruled out` : reason.startsWith('not enough ') ? `${reason.split(' (')[0]} on` : 'offers for another role from';
    const hosts = groups.get(key) ?? [];
    hosts.push(host);
    groups.set(key, hosts);
  }
  const parts = [...groups].map(([key, hosts]) => {
    const shown = hosts.slice(0, 3).join(', ') + (hosts.length > 3 ? ', …' : '');
    return `${key} ${hosts.length} agent${hosts.length === 1 ? '' : 's'} (${shown})`;
  });
  return `no offer fits: ${parts.join('; ')}`;
}
