/**
 * The node network namespace `corral up` sets up on the host (what `corral
 * down` removes again is the instance's scope: see upScope and provision's
 * scope.ts). The root network namespace's routes and firewall are never
 * touched.
 */
import { createNamedNetns } from '../../common/netkit/netns.js';
import { ip } from '../../common/sys/ip.js';
import { NODE_ADDRESS, type UpPlan } from './plan.js';

/** The node namespace: loopback up, owning the containers' gateway address (see NODE_ADDRESS). */
export async function prepareNodeNetns(plan: UpPlan): Promise<void> {
  if (plan.hostNetwork) return;
  await createNamedNetns(plan.netns.node);
  const addrs = await ip(['-n', plan.netns.node, '-4', '-o', 'addr', 'show', 'dev', 'lo']);
  if (!addrs.includes(`${NODE_ADDRESS}/32`)) await ip(['-n', plan.netns.node, 'addr', 'add', `${NODE_ADDRESS}/32`, 'dev', 'lo']);
}
