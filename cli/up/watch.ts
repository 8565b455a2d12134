/**
 * What `corral up` prints: the cluster coming to life, narrated from the
 * master's operator event stream, then a summary once it settles.
 */
import { V1Connection } from '../../contracts/client/connection.js';
import { Resources } from '../../core-scheduler/src/index.js';
import type { OperatorEvent } from '../../contracts/v1/operator-events.js';
import type { V1AgentSummary, V1FrameworkSummary, V1Task } from '../../contracts/v1/v1.js';

/** Print events until nothing has happened for `quietMs` after some task runs (or `timeoutMs`). */
export async function narrate(master: string, cred: { principal: string; secret: string }, print: (line: string) => void, quietMs = 1500, timeoutMs = 60_000): Promise<number> {
  const conn = new V1Connection({ master, path: '/api/v1', ...cred });
  const hostnames = new Map<string, string>();
  let running = 0;
  const seenRunning = new Set<string>();
  let last = Date.now();
  await conn.subscribe({ type: 'SUBSCRIBE' }, (raw) => {
    const e = raw as unknown as OperatorEvent;
    const agentJoined = (a: V1AgentSummary): void => {
      hostnames.set(a.agent_info.id.value, a.agent_info.hostname);
      print(`agent ${a.agent_info.hostname} joined (${a.agent_info.id.value}): ${Resources.fromV1(a.total_resources).toString()}`);
    };
    const taskRunning = (taskId: string, agentId: string): void => {
      if (seenRunning.has(taskId)) return;
      seenRunning.add(taskId);
      running++;
      print(`task ${taskId} RUNNING on ${hostnames.get(agentId) ?? agentId}`);
    };
    const frameworkSubscribed = (f: V1FrameworkSummary['framework_info']): void => {
      print(`framework ${f.name} subscribed in role ${(f.roles ?? [f.role ?? '*']).join(',')}`);
    };
    switch (e.type) {
      case 'SUBSCRIBED': {
        // Whatever happened before we started listening.
        // Whatever happened before we started listening (the demo may have placed everything already).
        const state = e.subscribed.get_state as { get_agents: { agents: V1AgentSummary[] }; get_frameworks: { frameworks: V1FrameworkSummary[] }; get_tasks?: { tasks?: V1Task[] } };
        state.get_agents.agents.forEach(agentJoined);
        state.get_frameworks.frameworks.forEach((f) => frameworkSubscribed(f.framework_info));
        for (const t of state.get_tasks?.tasks ?? []) if (t.state === 'TASK_RUNNING') taskRunning(t.task_id.value, t.agent_id.value);
        break;
      }
      case 'AGENT_ADDED':
        agentJoined(e.agent_added.agent);
        break;
      case 'FRAMEWORK_ADDED':
        frameworkSubscribed(e.framework_added.framework.framework_info);
        break;
      case 'TASK_UPDATED':
        if (e.task_updated.state === 'TASK_RUNNING' && e.task_updated.status.source !== 'SOURCE_MASTER') taskRunning(e.task_updated.status.task_id.value, e.task_updated.status.agent_id?.value ?? '');
        break;
      default:
        return;
    }
    last = Date.now();
  });
  const started = Date.now();
  while (Date.now() - started < timeoutMs && !(running > 0 && Date.now() - last > quietMs)) await new Promise((r) => setTimeout(r, 100));
  await conn.close();
  return running;
}
