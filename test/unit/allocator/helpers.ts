import { Resources } from '../../../core-scheduler/src/resources/resources.js';
import { parseResources } from '../../../core-scheduler/src/resources/parse.js';
import type { Allocator, OfferDecision } from '../../../core-scheduler/src/allocator/allocator.js';

export const R = (text: string): Resources => parseResources(text);

/** The allocator's books balance on every agent: total + revocable = available + Σ allocated. */
export function assertBalanced(alloc: Allocator): void {
  for (const id of alloc.agentIds()) {
    const v = alloc.agentView(id)!;
    const sum = v.available.clone();
    for (const byRole of v.allocated.values()) for (const res of byRole.values()) sum.add(res);
    const want = v.total.plus(v.revocable);
    if (!sum.equals(want)) throw new Error(`agent ${id}: available+allocated ${sum} != total ${want}`);
    // Reserved resources are only ever held by frameworks of their role.
    for (const byRole of v.allocated.values()) {
      for (const [role, res] of byRole) {
        for (const e of res) {
          const owner = Resources.reservationRole(e);
          if (owner && owner !== role) throw new Error(`agent ${id}: ${e.name} reserved to ${owner} allocated in role ${role}`);
        }
      }
    }
  }
}

export function byFramework(ds: OfferDecision[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of ds) out[d.frameworkId] = (out[d.frameworkId] ?? 0) + 1;
  return out;
}
