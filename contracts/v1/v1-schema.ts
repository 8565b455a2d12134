/**
 * Zod schemas for the Mesos v1 JSON messages corral accepts from outside
 * (frameworks, operators, agents). Unknown fields of calls are dropped; task
 * definitions keep them so agents see what the framework sent.
 */
import { z } from 'zod';
import { stripNulls } from './v1-json.js';

// uint64/int64 may arrive as JSON numbers or as strings (protobuf JSON mapping).
const int64 = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^-?\d+$/, 'expected an integer')
    .transform(Number),
]);
const uint = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/, 'expected a non-negative integer').transform(Number)]);

/**
 * Doubles and booleans as Mesos's JSON parser reads them: a JSON number or
 * boolean, or a string holding one ("0.5", "true"). Clients that quote every
 * value work; what the string holds is checked like a plain value.
 */
const NUMBER_TEXT = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const double = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (typeof v === 'string' && NUMBER_TEXT.test(v) ? Number(v) : v), schema);
const bool = z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());

const ROLE_PATTERN = /^(\*|[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})$/;

/** Why a role name is invalid, or undefined when it is fine. */
export function validateRoleName(role: string): string | undefined {
  if (!ROLE_PATTERN.test(role)) return `role "${role.slice(0, 80)}" must be "*" or 1-64 characters of letters, digits, "_", "." and "-", not starting with "." or "-"`;
  if (role === '.' || role === '..') return `role "${role}" is reserved`;
  return undefined;
}

export const roleSchema = z.string().superRefine((r, ctx) => {
  const why = validateRoleName(r);
  if (why) ctx.addIssue({ code: 'custom', message: why });
});

export const idSchema = z.object({ value: z.string().min(1, 'id must not be empty').max(255, 'id is too long') });
export type V1Id = z.infer<typeof idSchema>;

const labelsSchema = z.object({
  labels: z
    .array(z.object({ key: z.string().max(1024), value: z.string().max(65536).optional() }))
    .max(256)
    .optional(),
});

const reservationSchema = z.object({
  type: z.enum(['STATIC', 'DYNAMIC']).optional(),
  role: roleSchema.optional(),
  principal: z.string().max(1024).optional(),
  labels: labelsSchema.optional(),
});
export type V1Reservation = z.infer<typeof reservationSchema>;

const diskSchema = z.looseObject({
  persistence: z.object({ id: z.string().min(1).max(255), principal: z.string().max(1024).optional() }).optional(),
  volume: z.looseObject({ container_path: z.string().min(1).max(4096), mode: z.enum(['RW', 'RO']).optional() }).optional(),
  source: z.looseObject({ type: z.string() }).optional(),
});
export type V1DiskInfo = z.infer<typeof diskSchema>;

const rangeSchema = z.object({ begin: uint, end: uint }).refine((r) => r.end >= r.begin, 'range end must not be below its begin');

export const RESOURCE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export const v1ResourceSchema = z
  .object({
    name: z.string().min(1).max(128).regex(RESOURCE_NAME_PATTERN, 'resource name must be letters, digits, "_", "." or "-"'),
    type: z.enum(['SCALAR', 'RANGES', 'SET']),
    scalar: z.object({ value: double(z.number().finite().nonnegative().max(1e15)) }).optional(),
    ranges: z.object({ range: z.array(rangeSchema).max(10000) }).optional(),
    set: z.object({ item: z.array(z.string().max(1024)).max(10000) }).optional(),
    role: roleSchema.optional(),
    reservation: z.object({ principal: z.string().max(1024).optional(), labels: labelsSchema.optional() }).optional(),
    reservations: z.array(reservationSchema).max(1, 'corral roles are flat: at most one reservation per resource').optional(),
    disk: diskSchema.optional(),
    revocable: z.object({}).optional(),
    allocation_info: z.object({ role: roleSchema.optional() }).optional(),
    shared: z.object({}).optional(),
  })
  .superRefine((r, ctx) => {
    const want = r.type === 'SCALAR' ? 'scalar' : r.type === 'RANGES' ? 'ranges' : 'set';
    if (r[want] === undefined) ctx.addIssue({ code: 'custom', message: `resource "${r.name}" of type ${r.type} needs a "${want}" value` });
    if (r.shared !== undefined) ctx.addIssue({ code: 'custom', message: 'shared resources are not supported' });
  });
export type V1Resource = z.infer<typeof v1ResourceSchema>;
export const v1ResourceListSchema = z.array(v1ResourceSchema).max(1000);

export const attributeSchema = z.object({
  name: z.string().min(1).max(128),
  type: z.enum(['SCALAR', 'RANGES', 'SET', 'TEXT']),
  scalar: z.object({ value: double(z.number().finite()) }).optional(),
  ranges: z.object({ range: z.array(rangeSchema) }).optional(),
  set: z.object({ item: z.array(z.string()) }).optional(),
  text: z.object({ value: z.string().max(4096) }).optional(),
});
export type V1Attribute = z.infer<typeof attributeSchema>;

const durationSchema = z.object({ nanoseconds: int64 });
/** The longest Duration Mesos can hold, in seconds (int64 nanoseconds). */
const MAX_DURATION_SECONDS = 9_223_372_036;

const FRAMEWORK_CAPABILITIES = [
  'UNKNOWN',
  'REVOCABLE_RESOURCES',
  'TASK_KILLING_STATE',
  'GPU_RESOURCES',
  'SHARED_RESOURCES',
  'PARTITION_AWARE',
  'MULTI_ROLE',
  'RESERVATION_REFINEMENT',
  'REGION_AWARE',
] as const;
type FrameworkCapability = (typeof FRAMEWORK_CAPABILITIES)[number];
const knownCapability = new Set<string>(FRAMEWORK_CAPABILITIES);

/**
 * A capability this master does not know (a newer Mesos's) is UNKNOWN, not an
 * error: Mesos's parser turns an unrecognised value of an optional enum field
 * into an unset one, and the framework still subscribes.
 */
const frameworkCapabilitySchema = z.object({
  type: z
    .string()
    .max(128)
    .transform((t): FrameworkCapability => (knownCapability.has(t) ? (t as FrameworkCapability) : 'UNKNOWN'))
    .optional(),
});

export const frameworkInfoSchema = z.object({
  user: z.string().max(256).default(''),
  name: z.string().min(1, 'framework name must not be empty').max(256),
  id: idSchema.optional(),
  // Any duration Mesos can hold (int64 nanoseconds, ~292 years); long ones are timed in steps (frameworks.ts).
  failover_timeout: double(z.number().finite().nonnegative().max(MAX_DURATION_SECONDS)).optional(),
  checkpoint: bool.optional(),
  role: roleSchema.optional(),
  roles: z.array(roleSchema).max(100).optional(),
  hostname: z.string().max(256).optional(),
  principal: z.string().max(256).optional(),
  webui_url: z.string().max(4096).optional(),
  capabilities: z.array(frameworkCapabilitySchema).max(32).optional(),
  labels: labelsSchema.optional(),
});
export type V1FrameworkInfo = z.infer<typeof frameworkInfoSchema>;

const environmentSchema = z.looseObject({
  variables: z
    .array(z.looseObject({ name: z.string().min(1).max(1024), value: z.string().max(65536).optional(), type: z.string().optional() }))
    .max(1000)
    .optional(),
});

const commandInfoSchema = z.looseObject({
  shell: bool.optional(),
  value: z.string().max(65536).optional(),
  arguments: z.array(z.string().max(65536)).max(10000).optional(),
  user: z.string().max(256).optional(),
  environment: environmentSchema.optional(),
  uris: z.array(z.looseObject({ value: z.string() })).optional(),
});

const volumeSchema = z.looseObject({
  container_path: z.string().min(1).max(4096),
  host_path: z.string().max(4096).optional(),
  mode: z.enum(['RW', 'RO']).optional(),
  source: z
    .looseObject({
      type: z.enum(['DOCKER_VOLUME', 'SANDBOX_PATH', 'HOST_PATH', 'SECRET', 'CSI_VOLUME', 'UNKNOWN']).optional(),
      docker_volume: z.looseObject({ driver: z.string().max(256).optional(), name: z.string().min(1).max(256), driver_options: z.looseObject({}).optional() }).optional(),
      sandbox_path: z.looseObject({ type: z.string().optional(), path: z.string().max(4096) }).optional(),
    })
    .optional(),
});

const networkInfoSchema = z.looseObject({
  name: z.string().max(256).optional(),
  ip_addresses: z.array(z.looseObject({ protocol: z.enum(['IPv4', 'IPv6']).optional(), ip_address: z.string().max(64).optional() })).optional(),
  labels: labelsSchema.optional(),
  port_mappings: z.array(z.looseObject({ host_port: uint, container_port: uint, protocol: z.string().optional() })).optional(),
});

/** Mesos's CapabilityInfo: Linux capabilities by name ("NET_BIND_SERVICE", "SYS_ADMIN"…). */
const capabilityInfoSchema = z.looseObject({ capabilities: z.array(z.string().min(1).max(64)).max(64).optional() });

/** Mesos's SeccompInfo: a named profile of the agent, or none at all (`unconfined`). */
const seccompInfoSchema = z
  .looseObject({ profile_name: z.string().min(1).max(255).optional(), unconfined: z.boolean().optional() })
  .refine((s) => !(s.unconfined === true && s.profile_name !== undefined), 'seccomp: give "profile_name" or "unconfined", not both');

/** Mesos's LinuxInfo, the capability and seccomp part (the master checks both against acls.run_tasks). */
const linuxInfoSchema = z.looseObject({
  effective_capabilities: capabilityInfoSchema.optional(),
  bounding_capabilities: capabilityInfoSchema.optional(),
  /** Deprecated in Mesos in favour of effective_capabilities; read the same way. */
  capability_info: capabilityInfoSchema.optional(),
  seccomp: seccompInfoSchema.optional(),
});

const containerInfoSchema = z.looseObject({
  type: z.enum(['DOCKER', 'MESOS']),
  volumes: z.array(volumeSchema).max(100).optional(),
  hostname: z.string().max(255).optional(),
  docker: z.looseObject({ image: z.string().min(1).max(1024) }).optional(),
  mesos: z.looseObject({ image: z.looseObject({}).optional() }).optional(),
  network_infos: z.array(networkInfoSchema).max(16).optional(),
  linux_info: linuxInfoSchema.optional(),
});

const healthCheckSchema = z.looseObject({
  type: z.enum(['COMMAND', 'HTTP', 'TCP']).optional(),
  delay_seconds: double(z.number().finite().nonnegative()).optional(),
  interval_seconds: double(z.number().finite().positive()).optional(),
  timeout_seconds: double(z.number().finite().positive()).optional(),
  consecutive_failures: z.number().int().nonnegative().optional(),
  grace_period_seconds: double(z.number().finite().nonnegative()).optional(),
  command: commandInfoSchema.optional(),
  http: z.looseObject({ port: uint, path: z.string().max(4096).optional(), scheme: z.string().optional() }).optional(),
  tcp: z.looseObject({ port: uint }).optional(),
});

const discoverySchema = z.looseObject({
  visibility: z.enum(['FRAMEWORK', 'CLUSTER', 'EXTERNAL']).optional(),
  name: z.string().max(253).optional(),
  ports: z.object({ ports: z.array(z.looseObject({ number: uint, name: z.string().max(63).optional(), protocol: z.string().max(8).optional() })).max(100) }).optional(),
  labels: labelsSchema.optional(),
});

export const taskInfoSchema = z
  .looseObject({
    name: z.string().min(1, 'task name must not be empty').max(1024),
    task_id: idSchema,
    agent_id: idSchema,
    resources: v1ResourceListSchema,
    command: commandInfoSchema.optional(),
    container: containerInfoSchema.optional(),
    executor: z.looseObject({}).optional(),
    health_check: healthCheckSchema.optional(),
    kill_policy: z.looseObject({ grace_period: durationSchema.optional() }).optional(),
    data: z
      .string()
      .max(1024 * 1024)
      .optional(),
    labels: labelsSchema.optional(),
    discovery: discoverySchema.optional(),
  })
  .superRefine((t, ctx) => {
    if (!t.command && !t.executor && !t.container?.docker) ctx.addIssue({ code: 'custom', message: `task "${t.task_id.value}" needs a command, an executor or a docker image` });
  });
export type V1TaskInfo = z.infer<typeof taskInfoSchema>;

/** Mesos caps a filter at 365 days. */
export const MAX_REFUSE_SECONDS = 365 * 24 * 3600;
/**
 * As Mesos's allocator reads Filters.refuse_seconds: above 365 days it is 365
 * days, and a negative one is unset (the default, 5 s); neither is an error.
 */
const filtersSchema = z.object({
  refuse_seconds: double(
    z
      .number()
      .finite()
      .transform((s) => (s < 0 ? undefined : Math.min(s, MAX_REFUSE_SECONDS))),
  ).optional(),
});

export const operationSchema = z
  .object({
    type: z.enum(['LAUNCH', 'LAUNCH_GROUP', 'RESERVE', 'UNRESERVE', 'CREATE', 'DESTROY']),
    id: idSchema.optional(),
    launch: z.object({ task_infos: z.array(taskInfoSchema).max(10000) }).optional(),
    launch_group: z.object({ executor: z.looseObject({}), task_group: z.object({ tasks: z.array(taskInfoSchema) }) }).optional(),
    reserve: z.object({ resources: v1ResourceListSchema, source: v1ResourceListSchema.optional() }).optional(),
    unreserve: z.object({ resources: v1ResourceListSchema }).optional(),
    create: z.object({ volumes: v1ResourceListSchema }).optional(),
    destroy: z.object({ volumes: v1ResourceListSchema }).optional(),
  })
  .superRefine((op, ctx) => {
    const field = op.type.toLowerCase() as 'launch' | 'launch_group' | 'reserve' | 'unreserve' | 'create' | 'destroy';
    if (op[field] === undefined) ctx.addIssue({ code: 'custom', message: `operation ${op.type} needs a "${field}" field` });
  });
export type V1Operation = z.infer<typeof operationSchema>;

const offerIds = z.array(idSchema).min(1, 'at least one offer id is required').max(10000);

/** What an ACCEPT_BATCH's tasks share, given once (see task-defaults.ts); a field it does not know is an error, not ignored. */
export const taskDefaultsSchema = z.preprocess(stripNulls, z.strictObject({ resources: v1ResourceListSchema.optional(), command: commandInfoSchema.optional() }));

/** Most ACCEPTs one ACCEPT_BATCH call may carry. */
export const MAX_ACCEPTS = 1000;
const acceptSchema = z.object({ offer_ids: offerIds, operations: z.array(operationSchema).max(10000).default([]), filters: filtersSchema.optional() });
export type V1Accept = z.infer<typeof acceptSchema>;
/** One entry of an ACCEPT_BATCH answer, in the order of the call's entries. */
export type V1AcceptResult = { accepted: true } | { error: { code: string; message: string } };

/** Most acknowledgements one ACKNOWLEDGE_BATCH call may carry. */
export const MAX_ACKNOWLEDGEMENTS = 10_000;
const acknowledgementSchema = z.object({ agent_id: idSchema, task_id: idSchema, uuid: z.string().min(1).max(256) });
/** The acknowledgements of one agent's updates, the agent named once (GROUPED_ACKNOWLEDGEMENTS). */
const agentAcknowledgementsSchema = z.object({
  agent_id: idSchema,
  acknowledgements: z
    .array(z.object({ task_id: idSchema, uuid: z.string().min(1).max(256) }))
    .min(1, 'at least one acknowledgement is required')
    .max(MAX_ACKNOWLEDGEMENTS),
});
export type V1AgentAcknowledgements = z.infer<typeof agentAcknowledgementsSchema>;
/** ACKNOWLEDGE_BATCH's body: acknowledgements each naming its agent, or grouped by agent, or both; 1 to MAX_ACKNOWLEDGEMENTS in all. */
const acknowledgeBatchSchema = z
  .object({ acknowledgements: z.array(acknowledgementSchema).max(MAX_ACKNOWLEDGEMENTS).optional(), agents: z.array(agentAcknowledgementsSchema).max(MAX_ACKNOWLEDGEMENTS).optional() })
  .superRefine((b, ctx) => {
    const total = (b.acknowledgements?.length ?? 0) + (b.agents ?? []).reduce((n, a) => n + a.acknowledgements.length, 0);
    if (total < 1) ctx.addIssue({ code: 'custom', message: 'at least one acknowledgement is required' });
    if (total > MAX_ACKNOWLEDGEMENTS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_ACKNOWLEDGEMENTS} acknowledgements in all` });
  });

const schedulerCalls = z.discriminatedUnion('type', [
  z.object({ type: z.literal('SUBSCRIBE'), framework_id: idSchema.optional(), subscribe: z.object({ framework_info: frameworkInfoSchema, suppressed_roles: z.array(roleSchema).optional() }) }),
  z.object({ type: z.literal('TEARDOWN'), framework_id: idSchema }),
  z.object({ type: z.literal('ACCEPT'), framework_id: idSchema, accept: acceptSchema }),
  // corral extension: many ACCEPTs in one call, each applied (or refused) on its own, in order.
  z.object({ type: z.literal('ACCEPT_BATCH'), framework_id: idSchema, accept_batch: z.object({ accepts: z.array(acceptSchema).min(1, 'at least one ACCEPT is required').max(MAX_ACCEPTS) }) }),
  z.object({ type: z.literal('DECLINE'), framework_id: idSchema, decline: z.object({ offer_ids: offerIds, filters: filtersSchema.optional() }) }),
  z.object({ type: z.literal('REVIVE'), framework_id: idSchema, revive: z.object({ role: roleSchema.optional(), roles: z.array(roleSchema).optional() }).optional() }),
  z.object({ type: z.literal('SUPPRESS'), framework_id: idSchema, suppress: z.object({ roles: z.array(roleSchema).optional() }).optional() }),
  z.object({
    type: z.literal('KILL'),
    framework_id: idSchema,
    kill: z.object({ task_id: idSchema, agent_id: idSchema.optional(), kill_policy: z.looseObject({ grace_period: durationSchema.optional() }).optional() }),
  }),
  z.object({ type: z.literal('SHUTDOWN'), framework_id: idSchema, shutdown: z.object({ executor_id: idSchema, agent_id: idSchema }) }),
  z.object({ type: z.literal('ACKNOWLEDGE'), framework_id: idSchema, acknowledge: acknowledgementSchema }),
  // corral extension: many acknowledgements in one call (all valid, or none applied).
  z.object({
    type: z.literal('ACKNOWLEDGE_BATCH'),
    framework_id: idSchema,
    acknowledge_batch: acknowledgeBatchSchema,
  }),
  z.object({
    type: z.literal('RECONCILE'),
    framework_id: idSchema,
    reconcile: z
      .object({
        tasks: z
          .array(z.object({ task_id: idSchema, agent_id: idSchema.optional() }))
          .max(100000)
          .default([]),
      })
      .optional(),
  }),
  z.object({ type: z.literal('MESSAGE'), framework_id: idSchema, message: z.object({ agent_id: idSchema, executor_id: idSchema, data: z.string().max(4 * 1024 * 1024) }) }),
  z.object({ type: z.literal('REQUEST'), framework_id: idSchema, request: z.looseObject({}).optional() }),
  // corral makes no inverse offers, so every id is unknown: Mesos answers 202 and ignores those too.
  z.object({
    type: z.literal('ACCEPT_INVERSE_OFFERS'),
    framework_id: idSchema,
    accept_inverse_offers: z.object({ inverse_offer_ids: z.array(idSchema).min(1).max(10000), filters: filtersSchema.optional() }),
  }),
  z.object({
    type: z.literal('DECLINE_INVERSE_OFFERS'),
    framework_id: idSchema,
    decline_inverse_offers: z.object({ inverse_offer_ids: z.array(idSchema).min(1).max(10000), filters: filtersSchema.optional() }),
  }),
  z.object({ type: z.literal('UPDATE_FRAMEWORK'), framework_id: idSchema, update_framework: z.object({ framework_info: frameworkInfoSchema, suppressed_roles: z.array(roleSchema).optional() }) }),
]);
/**
 * A scheduler call. JSON nulls are unset fields (see v1-json.ts), here as at
 * every v1 input: the call schemas remove them from the parsed body, in place
 * (the body is the caller's own parse), before checking it.
 */
export const schedulerCallSchema = z.preprocess(stripNulls, schedulerCalls);
export type V1SchedulerCall = z.infer<typeof schedulerCallSchema>;
export const SCHEDULER_CALL_TYPES = schedulerCalls.options.map((o) => o.shape.type.value);

export const taskStateSchema = z.enum([
  'TASK_STAGING',
  'TASK_STARTING',
  'TASK_RUNNING',
  'TASK_KILLING',
  'TASK_FINISHED',
  'TASK_FAILED',
  'TASK_KILLED',
  'TASK_ERROR',
  'TASK_LOST',
  'TASK_DROPPED',
  'TASK_UNREACHABLE',
  'TASK_GONE',
  'TASK_GONE_BY_OPERATOR',
  'TASK_UNKNOWN',
]);
export type V1TaskState = z.infer<typeof taskStateSchema>;

export const taskSourceSchema = z.enum(['SOURCE_MASTER', 'SOURCE_AGENT', 'SOURCE_EXECUTOR']);

export const taskStatusSchema = z.looseObject({
  task_id: idSchema,
  state: taskStateSchema,
  message: z.string().max(65536).optional(),
  source: taskSourceSchema.optional(),
  reason: z.string().max(128).optional(),
  data: z
    .string()
    .max(1024 * 1024)
    .optional(),
  agent_id: idSchema.optional(),
  executor_id: idSchema.optional(),
  timestamp: double(z.number().finite()).optional(),
  uuid: z.string().max(256).optional(),
  healthy: bool.optional(),
  labels: labelsSchema.optional(),
  container_status: z.looseObject({ network_infos: z.array(networkInfoSchema).optional() }).optional(),
});
export type V1TaskStatus = z.infer<typeof taskStatusSchema>;

export const quotaConfigSchema = z.object({
  role: roleSchema.refine((r) => r !== '*', 'quota cannot be set on the "*" role'),
  guarantees: z.record(z.string().min(1).max(128), z.object({ value: double(z.number().finite().nonnegative()) })).optional(),
  limits: z.record(z.string().min(1).max(128), z.object({ value: double(z.number().finite().nonnegative()) })).optional(),
});
export type V1QuotaConfig = z.infer<typeof quotaConfigSchema>;

const operatorCalls = z.discriminatedUnion('type', [
  z.object({ type: z.literal('GET_HEALTH') }),
  z.object({ type: z.literal('GET_VERSION') }),
  z.object({ type: z.literal('GET_STATE') }),
  z.object({ type: z.literal('GET_AGENTS') }),
  z.object({ type: z.literal('GET_FRAMEWORKS') }),
  z.object({ type: z.literal('GET_TASKS') }),
  z.object({ type: z.literal('GET_ROLES') }),
  z.object({ type: z.literal('GET_WEIGHTS') }),
  z.object({ type: z.literal('GET_QUOTA') }),
  z.object({ type: z.literal('GET_MASTER') }),
  z.object({ type: z.literal('GET_EXECUTORS') }),
  z.object({ type: z.literal('GET_OPERATIONS') }),
  z.object({ type: z.literal('SUBSCRIBE') }),
  z.object({ type: z.literal('RESERVE_RESOURCES'), reserve_resources: z.object({ agent_id: idSchema, resources: v1ResourceListSchema.min(1), source: v1ResourceListSchema.optional() }) }),
  z.object({ type: z.literal('UNRESERVE_RESOURCES'), unreserve_resources: z.object({ agent_id: idSchema, resources: v1ResourceListSchema.min(1) }) }),
  z.object({ type: z.literal('CREATE_VOLUMES'), create_volumes: z.object({ agent_id: idSchema, volumes: v1ResourceListSchema.min(1) }) }),
  z.object({ type: z.literal('DESTROY_VOLUMES'), destroy_volumes: z.object({ agent_id: idSchema, volumes: v1ResourceListSchema.min(1) }) }),
  z.object({
    type: z.literal('UPDATE_WEIGHTS'),
    update_weights: z.object({
      weight_infos: z
        .array(z.object({ role: roleSchema, weight: double(z.number().finite().positive().max(1e6)) }))
        .min(1)
        .max(1000),
    }),
  }),
  z.object({ type: z.literal('UPDATE_QUOTA'), update_quota: z.object({ force: bool.optional(), quota_configs: z.array(quotaConfigSchema).min(1).max(1000) }) }),
  z.object({ type: z.literal('MARK_AGENT_GONE'), mark_agent_gone: z.object({ agent_id: idSchema }) }),
  z.object({ type: z.literal('TEARDOWN'), teardown: z.object({ framework_id: idSchema }) }),
]);
export const operatorCallSchema = z.preprocess(stripNulls, operatorCalls);
export type V1OperatorCall = z.infer<typeof operatorCallSchema>;
export const OPERATOR_CALL_TYPES = operatorCalls.options.map((o) => o.shape.type.value);
