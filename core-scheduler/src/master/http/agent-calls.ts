/**
 * What an agent's calls do, whichever transport brought them (a POST of its
 * own, agent-api.ts, or a message on the agent's channel, agent-channel.ts).
 */
import { CorralError } from '../../../../contracts/errors.js';
import { Resources } from '../../resources/resources.js';
import type { MasterShell } from '../shell.js';
import type { SchedulerEvent } from '../../../../contracts/v1/v1.js';
import type { V1AgentCall } from '../../../../contracts/v1/agent-schema.js';
import type { AgentRecord } from '../records.js';

/** The agent a call speaks for, once the caller may speak for it. */
export function speakerFor(shell: MasterShell, agentId: string, principal: string | undefined): AgentRecord {
  shell.core.auth.authorizeAgent(principal);
  const a = shell.core.agents.get(agentId);
  if (!a || a.status !== 'connected') throw new CorralError('FORBIDDEN', `agent ${agentId} is not registered; REGISTER first`);
  if (a.principal !== undefined && a.principal !== principal)
    throw new CorralError('FORBIDDEN', `agent ${a.id} registered with principal "${a.principal}"; principal "${principal}" may not speak for it`);
  return a;
}

/** Carry out an agent's call other than REGISTER, from either transport; resolves once its effects are durable. */
export async function handleAgentCall(shell: MasterShell, a: AgentRecord, call: Exclude<V1AgentCall, { type: 'REGISTER' }>): Promise<void> {
  shell.fire((m) => m.agentManager.seen(a));
  switch (call.type) {
    case 'UPDATE':
      // The per-status form becomes groups of one: the master handles one shape.
      await shell.run((m) => m.taskManager.fromAgent(a, call.update.frameworks ?? call.update.updates!.map((u) => ({ framework_id: u.framework_id, statuses: [u.status] }))));
      break;
    case 'HEARTBEAT':
      break;
    case 'UPDATE_OVERSUBSCRIBED': {
      const rev = Resources.fromV1(call.update_oversubscribed.resources);
      for (const e of rev) if (!e.revocable) throw new CorralError('INVALID_ARGUMENT', `oversubscribed resource ${e.name} must be marked revocable`);
      await shell.run((m) => m.agentManager.updateOversubscribed(a, rev));
      break;
    }
    case 'UNREGISTER':
      await shell.run((m) => m.agentManager.remove(a, false));
      break;
    case 'MESSAGE': {
      const f = shell.core.frameworks.get(call.message.framework_id.value);
      await shell.run((m) => m.send(f?.conn, { type: 'MESSAGE', message: { agent_id: { value: a.id }, executor_id: call.message.executor_id, data: call.message.data } } satisfies SchedulerEvent));
      break;
    }
  }
}
