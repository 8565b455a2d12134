/**
 * Schemas of corral's agent protocol (POST /api/v1/agent): shaped like the v1
 * APIs and built from their types, but corral's own, so kept apart from the
 * Mesos schemas in v1-schema.ts.
 */
import { z } from 'zod';
import { stripNulls } from './v1-json.js';
import { attributeSchema, frameworkInfoSchema, idSchema, taskInfoSchema, taskStatusSchema, v1ResourceListSchema } from './v1-schema.js';

export const agentInfoSchema = z.object({
  hostname: z.string().min(1).max(255),
  port: z.number().int().min(0).max(65535).optional(),
  /** Where the agent's own API listens, for logs and `corral logs`. */
  url: z.string().max(1024).optional(),
  resources: v1ResourceListSchema,
  attributes: z.array(attributeSchema).max(256).default([]),
  id: idSchema.optional(),
});
export type V1AgentInfo = z.infer<typeof agentInfoSchema>;

const agentTaskSchema = z.looseObject({
  framework_id: idSchema,
  task: taskInfoSchema,
  /** Latest status the agent knows for the task. */
  status: taskStatusSchema,
  /** Updates not yet acknowledged by the framework, oldest first. */
  pending_updates: z.array(taskStatusSchema).max(1000).optional(),
});

/** Statuses in one agent UPDATE call. */
export const MAX_STATUS_UPDATES = 100000;

const agentCalls = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('REGISTER'),
    register: z.object({
      agent_info: agentInfoSchema,
      version: z.string().max(64).optional(),
      /** Agent protocol features the agent understands (see AGENT_CAPABILITIES); names it does not know are ignored. */
      capabilities: z.array(z.string().max(64)).max(32).optional(),
      tasks: z.array(agentTaskSchema).max(100000).default([]),
      frameworks: z.array(frameworkInfoSchema).max(10000).default([]),
      /** Revocable (oversubscribed) resources the agent estimates it can lend. */
      oversubscribed: v1ResourceListSchema.optional(),
    }),
  }),
  z.object({
    type: z.literal('UPDATE'),
    agent_id: idSchema,
    /**
     * Either form, not both: `updates` one entry per status; `frameworks` the statuses
     * grouped by framework, which an agent sends to a master that announces GROUPED_STATUS_UPDATES.
     */
    update: z
      .object({
        updates: z
          .array(z.object({ framework_id: idSchema, status: taskStatusSchema }))
          .min(1)
          .max(MAX_STATUS_UPDATES)
          .optional(),
        frameworks: z
          .array(z.object({ framework_id: idSchema, statuses: z.array(taskStatusSchema).min(1).max(MAX_STATUS_UPDATES) }))
          .min(1)
          .max(MAX_STATUS_UPDATES)
          .optional(),
      })
      .refine((u) => (u.updates === undefined) !== (u.frameworks === undefined), 'give either "updates" or "frameworks", not both')
      .refine((u) => (u.frameworks ?? []).reduce((n, g) => n + g.statuses.length, 0) <= MAX_STATUS_UPDATES, `at most ${MAX_STATUS_UPDATES} statuses in one call`),
  }),
  z.object({ type: z.literal('HEARTBEAT'), agent_id: idSchema }),
  z.object({ type: z.literal('UPDATE_OVERSUBSCRIBED'), agent_id: idSchema, update_oversubscribed: z.object({ resources: v1ResourceListSchema }) }),
  z.object({ type: z.literal('UNREGISTER'), agent_id: idSchema }),
  z.object({ type: z.literal('MESSAGE'), agent_id: idSchema, message: z.object({ framework_id: idSchema, executor_id: idSchema, data: z.string().max(4 * 1024 * 1024) }) }),
]);
export const agentCallSchema = z.preprocess(stripNulls, agentCalls);
export type V1AgentCall = z.infer<typeof agentCallSchema>;
export const AGENT_CALL_TYPES = agentCalls.options.map((o) => o.shape.type.value);
