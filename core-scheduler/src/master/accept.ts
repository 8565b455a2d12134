/**
 * Validation of an ACCEPT call: offers, then each operation in order against
 * what is still unused. Produces a plan; nothing is changed here, so an
 * invalid call leaves the offers outstanding.
 */
import { CorralError } from '../../../contracts/errors.js';
import { Resources, sameV1Scalars } from '../resources/resources.js';
import { conversionFor, volumeIdsOf } from './conversions.js';
import { taskIdentity } from './auth.js';
import type { Master } from './master.js';
import type { AgentRecord, FrameworkRecord, OfferRecord } from './records.js';
import type { V1Operation, V1Resource, V1TaskInfo } from '../../../contracts/v1/v1.js';

export type PlanStep = { kind: 'launch'; tasks: Array<{ info: V1TaskInfo; resources: Resources }> } | { kind: 'convert'; op: string; consumed: Resources; converted: Resources };

export interface AcceptPlan {
  agent: AgentRecord;
  role: string;
  steps: PlanStep[];
  /** Offered but not used by any operation: goes back to the allocator. */
  remaining: Resources;
  /** Tasks the run_tasks ACL refused: answered TASK_ERROR (REASON_TASK_UNAUTHORIZED), the rest of the call goes ahead, as in Mesos. */
  unauthorized: Array<{ info: V1TaskInfo; message: string }>;
}

const bad = (msg: string): CorralError => new CorralError('INVALID_ARGUMENT', msg);
/** Where a task is in the call, for error messages: built only when one is needed. */
const taskAt = (where: string, id: string): string => `${where}: task ${id}`;

/** Operation resources must carry the offer's allocation role, if any. */
function resourcesOf(list: V1Resource[], role: string, what: string): Resources {
  for (const r of list) {
    const ar = r.allocation_info?.role;
    if (ar !== undefined && ar !== role) throw bad(`${what}: resource ${r.name} is allocated to role "${ar}" but the offers are for role "${role}"`);
  }
  return Resources.fromV1(list);
}

export function planAccept(m: Master, f: FrameworkRecord, offers: OfferRecord[], operations: V1Operation[]): AcceptPlan {
  const agentId = offers[0]!.agentId;
  const role = offers[0]!.role;
  for (const o of offers) {
    if (o.agentId !== agentId) throw bad(`offers ${offers[0]!.id} and ${o.id} are for different agents; one ACCEPT may only combine offers of one agent`);
    if (o.role !== role) throw bad(`offers ${offers[0]!.id} and ${o.id} are for different roles`);
  }
  const agent = m.agents.get(agentId);
  if (!agent || agent.status !== 'connected') throw bad(`agent ${agentId} of the offers is no longer connected`);
  const remaining = new Resources();
  for (const o of offers) remaining.add(o.resources);
  // Persistence ids already on the agent (for uniqueness per role), updated as CREATEs are planned.
  const volumeIds = volumeIdsOf(agent.total);
  const launching = new Set<string>();
  const steps: PlanStep[] = [];
  const unauthorized: AcceptPlan['unauthorized'] = [];
  const checkUsers = m.auth.enabled;

  operations.forEach((op, n) => {
    const where = `operation ${n} (${op.type})`;
    switch (op.type) {
      case 'LAUNCH': {
        // The tasks of one call mostly ask for the same resources: each distinct list is parsed
        // once and the tasks share it copy-on-write, so 100,000 tasks do not hold 100,000 copies.
        let lastList: V1Resource[] | undefined;
        let lastParsed: Resources | undefined;
        const tasks: Array<{ info: V1TaskInfo; resources: Resources }> = [];
        for (const t of op.launch!.task_infos) {
          const id = t.task_id.value;
          // Authorized first, as Mesos does: a refused task is dropped before it is validated or uses resources.
          if (checkUsers) {
            const refusal = m.auth.taskRefusal(f.principal, taskIdentity(f.info.user, t));
            if (refusal !== undefined) {
              unauthorized.push({ info: t, message: `task ${id}: ${refusal}` });
              continue;
            }
          }
          if (launching.has(id)) throw bad(`${taskAt(where, id)}: task id is used twice in this call`);
          if (f.tasks.has(id)) throw bad(`${taskAt(where, id)}: the framework already has a task with this id`);
          if (t.agent_id.value !== agentId) throw bad(`${taskAt(where, id)}: agent_id ${t.agent_id.value} is not the offers' agent ${agentId}`);
          if (t.resources.length === 0) throw bad(`${taskAt(where, id)}: a task must use some resources`);
          const res = lastList && sameV1Scalars(t.resources, lastList) ? lastParsed!.clone() : (lastParsed = resourcesOf(t.resources, role, taskAt(where, id))).clone();
          lastList = t.resources;
          if (!remaining.contains(res)) throw bad(`${taskAt(where, id)}: needs ${res} but the offers only have ${remaining} left`);
          remaining.subtract(res);
          launching.add(id);
          tasks.push({ info: t, resources: res });
        }
        if (tasks.length > 0) steps.push({ kind: 'launch', tasks });
        break;
      }
      case 'LAUNCH_GROUP':
        throw bad(`${where}: task groups (LAUNCH_GROUP) are not supported; use LAUNCH`);
      case 'RESERVE':
      case 'UNRESERVE':
      case 'CREATE':
      case 'DESTROY': {
        const list = op.type === 'RESERVE' ? op.reserve!.resources : op.type === 'UNRESERVE' ? op.unreserve!.resources : op.type === 'CREATE' ? op.create!.volumes : op.destroy!.volumes;
        const { consumed, converted } = conversionFor(op.type, resourcesOf(list, role, where), { role, principal: f.principal, volumeIds, where });
        if (!remaining.contains(consumed)) {
          throw bad(`${where}: ${consumed} is not in the offers (left: ${remaining})${op.type === 'DESTROY' ? '; a volume in use by a task is not offered' : ''}`);
        }
        remaining.subtract(consumed).add(converted);
        steps.push({ kind: 'convert', op: op.type, consumed, converted });
        break;
      }
    }
  });
  return { agent, role, steps, remaining, unauthorized };
}
