/** The operator API's event stream (SUBSCRIBE on /api/v1), as corral sends it. */
import type { V1AgentSummary, V1FrameworkInfo, V1FrameworkSummary, V1Task, V1TaskStatus } from './v1.js';

export type OperatorEvent =
  | { type: 'SUBSCRIBED'; subscribed: { get_state: Record<string, unknown>; heartbeat_interval_seconds: number } }
  | { type: 'TASK_ADDED'; task_added: { task: V1Task } }
  | { type: 'TASK_UPDATED'; task_updated: { framework_id: { value: string }; status: V1TaskStatus; state: string } }
  | { type: 'AGENT_ADDED'; agent_added: { agent: V1AgentSummary } }
  | { type: 'AGENT_REMOVED'; agent_removed: { agent_id: { value: string } } }
  | { type: 'FRAMEWORK_ADDED'; framework_added: { framework: V1FrameworkSummary } }
  | { type: 'FRAMEWORK_UPDATED'; framework_updated: { framework: V1FrameworkSummary } }
  | { type: 'FRAMEWORK_REMOVED'; framework_removed: { framework_info: V1FrameworkInfo & { id: { value: string } } } }
  | { type: 'HEARTBEAT' };
