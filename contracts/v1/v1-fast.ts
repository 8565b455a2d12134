/**
 * Quick acceptance of the three calls that carry every placed task: ACCEPT
 * with LAUNCH operations, the agent's UPDATE, and ACKNOWLEDGE_BATCH. zod
 * checks them exactly but took ~15% of the master's CPU in the placement
 * benchmark. These checks accept only bodies in the plain, common shape,
 * for which zod's output would equal the input, and say "not sure" to
 * anything else (an unusual field, a string-encoded number, any doubt): zod
 * then decides and words the error. test/unit/v1-fast.test.ts holds them to
 * zod's verdict on valid bodies and on thousands of mutated ones.
 *
 * Bodies come here without nulls (the master strips them first, see
 * v1-json.ts, as zod's call schemas do): a null is an unset field to both.
 */
import { MAX_ACCEPTS, MAX_REFUSE_SECONDS, MAX_ACKNOWLEDGEMENTS, RESOURCE_NAME_PATTERN, taskSourceSchema, taskStateSchema, validateRoleName } from './v1-schema.js';
import { MAX_STATUS_UPDATES } from './agent-schema.js';

type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown, min: number, max: number): boolean => typeof v === 'string' && v.length >= min && v.length <= max;
const isArr = (v: unknown, min: number, max: number): v is unknown[] => Array.isArray(v) && v.length >= min && v.length <= max;

/** Every own key of `o` is in `allowed` (zod's plain objects drop other keys, which would change the output). */
function keysWithin(o: Obj, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false;
  return true;
}

const ID_KEYS = new Set(['value']);
export const isId = (v: unknown): boolean => isObj(v) && keysWithin(v, ID_KEYS) && isStr(v.value, 1, 255);

const RESOURCE_KEYS = new Set(['name', 'type', 'scalar', 'ranges', 'role', 'allocation_info']);
const SCALAR_KEYS = new Set(['value']);
const RANGES_KEYS = new Set(['range']);
const RANGE_KEYS = new Set(['begin', 'end']);
const ALLOCATION_KEYS = new Set(['role']);

const isRole = (v: unknown): boolean => typeof v === 'string' && validateRoleName(v) === undefined;
const isUint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function isRange(v: unknown): boolean {
  return isObj(v) && keysWithin(v, RANGE_KEYS) && isUint(v.begin) && isUint(v.end) && v.end >= v.begin;
}

function isResource(r: unknown): boolean {
  if (!isObj(r) || !keysWithin(r, RESOURCE_KEYS)) return false;
  if (!isStr(r.name, 1, 128) || !RESOURCE_NAME_PATTERN.test(r.name as string)) return false;
  if (r.role !== undefined && !isRole(r.role)) return false;
  if (r.allocation_info !== undefined) {
    const a = r.allocation_info;
    if (!isObj(a) || !keysWithin(a, ALLOCATION_KEYS) || (a.role !== undefined && !isRole(a.role))) return false;
  }
  if (r.type === 'SCALAR') {
    const s = r.scalar;
    const value = isObj(s) ? s.value : undefined;
    return r.ranges === undefined && isObj(s) && keysWithin(s, SCALAR_KEYS) && typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 1e15;
  }
  if (r.type === 'RANGES') {
    const rs = r.ranges;
    return r.scalar === undefined && isObj(rs) && keysWithin(rs, RANGES_KEYS) && isArr(rs.range, 0, 10000) && rs.range.every(isRange);
  }
  return false;
}

/**
 * The resource list last found good in the call being checked: the tasks of
 * a call filled from its task_defaults share one list, checked once. Reset
 * for each call, so nothing outlives the body it was found in.
 */
let checkedList: unknown;

function isResourceList(v: unknown): boolean {
  if (checkedList !== undefined && v === checkedList) return true;
  if (!(isArr(v, 0, 1000) && v.every(isResource))) return false;
  checkedList = v;
  return true;
}

/** Known fields of a task info that only zod checks; their presence means "not sure". */
const TASK_SLOW_KEYS = new Set(['container', 'executor', 'health_check', 'kill_policy', 'labels', 'discovery']);
const COMMAND_SLOW_KEYS = new Set(['environment', 'uris']);

function isCommand(c: unknown): boolean {
  if (!isObj(c)) return false;
  for (const k in c) if (COMMAND_SLOW_KEYS.has(k)) return false;
  if (c.shell !== undefined && typeof c.shell !== 'boolean') return false;
  if (c.value !== undefined && !isStr(c.value, 0, 65536)) return false;
  if (c.user !== undefined && !isStr(c.user, 0, 256)) return false;
  if (c.arguments !== undefined && !(isArr(c.arguments, 0, 10000) && c.arguments.every((a) => isStr(a, 0, 65536)))) return false;
  return true;
}

function isTaskInfo(t: unknown): boolean {
  if (!isObj(t)) return false;
  // Unknown fields pass through as zod's loose objects let them; known complex ones go to zod.
  for (const k in t) if (TASK_SLOW_KEYS.has(k)) return false;
  if (!isStr(t.name, 1, 1024) || !isId(t.task_id) || !isId(t.agent_id) || !isResourceList(t.resources)) return false;
  if (t.data !== undefined && !isStr(t.data, 0, 1024 * 1024)) return false;
  // zod's rule: a command, an executor or a docker image; only the command is quick.
  return t.command !== undefined && isCommand(t.command);
}

const ACCEPT_CALL_KEYS = new Set(['type', 'framework_id', 'accept']);
const ACCEPT_KEYS = new Set(['offer_ids', 'operations', 'filters']);
const FILTERS_KEYS = new Set(['refuse_seconds']);
const OPERATION_KEYS = new Set(['type', 'launch']);
const LAUNCH_KEYS = new Set(['task_infos']);

function isLaunch(op: unknown): boolean {
  if (!isObj(op) || !keysWithin(op, OPERATION_KEYS) || op.type !== 'LAUNCH') return false;
  const l = op.launch;
  return isObj(l) && keysWithin(l, LAUNCH_KEYS) && isArr(l.task_infos, 0, 10000) && l.task_infos.every(isTaskInfo);
}

function isAcceptBody(a: unknown): boolean {
  if (!isObj(a) || !keysWithin(a, ACCEPT_KEYS)) return false;
  if (!isArr(a.offer_ids, 1, 10000) || !a.offer_ids.every(isId)) return false;
  // A missing operations list gets zod's default ([]), so it is not "output equals input".
  if (!isArr(a.operations, 0, 10000) || !a.operations.every(isLaunch)) return false;
  if (a.filters !== undefined) {
    const f = a.filters;
    if (!isObj(f) || !keysWithin(f, FILTERS_KEYS)) return false;
    const s = f.refuse_seconds;
    // Out of range is not an error (zod caps it), but no longer "output equals input".
    if (s !== undefined && !(typeof s === 'number' && Number.isFinite(s) && s >= 0 && s <= MAX_REFUSE_SECONDS)) return false;
  }
  return true;
}

const isAccept = (c: Obj): boolean => keysWithin(c, ACCEPT_CALL_KEYS) && isId(c.framework_id) && isAcceptBody(c.accept);

const ACCEPT_BATCH_CALL_KEYS = new Set(['type', 'framework_id', 'accept_batch']);
const ACCEPT_BATCH_KEYS = new Set(['accepts']);

function isAcceptBatch(c: Obj): boolean {
  if (!keysWithin(c, ACCEPT_BATCH_CALL_KEYS) || !isId(c.framework_id)) return false;
  const b = c.accept_batch;
  return isObj(b) && keysWithin(b, ACCEPT_BATCH_KEYS) && isArr(b.accepts, 1, MAX_ACCEPTS) && b.accepts.every(isAcceptBody);
}

const ACK_BATCH_CALL_KEYS = new Set(['type', 'framework_id', 'acknowledge_batch']);
const ACK_BATCH_KEYS = new Set(['acknowledgements', 'agents']);
const ACK_KEYS = new Set(['agent_id', 'task_id', 'uuid']);
const AGENT_ACKS_KEYS = new Set(['agent_id', 'acknowledgements']);
const AGENT_ACK_KEYS = new Set(['task_id', 'uuid']);

const isAck = (a: unknown): boolean => isObj(a) && keysWithin(a, ACK_KEYS) && isId(a.agent_id) && isId(a.task_id) && isStr(a.uuid, 1, 256);
const isAgentAck = (a: unknown): boolean => isObj(a) && keysWithin(a, AGENT_ACK_KEYS) && isId(a.task_id) && isStr(a.uuid, 1, 256);

function isAckBatch(c: Obj): boolean {
  if (!keysWithin(c, ACK_BATCH_CALL_KEYS) || !isId(c.framework_id)) return false;
  const b = c.acknowledge_batch;
  if (!isObj(b) || !keysWithin(b, ACK_BATCH_KEYS)) return false;
  let total = 0;
  if (b.acknowledgements !== undefined) {
    if (!isArr(b.acknowledgements, 0, MAX_ACKNOWLEDGEMENTS) || !b.acknowledgements.every(isAck)) return false;
    total += b.acknowledgements.length;
  }
  if (b.agents !== undefined) {
    if (!isArr(b.agents, 0, MAX_ACKNOWLEDGEMENTS)) return false;
    for (const g of b.agents) {
      if (!isObj(g) || !keysWithin(g, AGENT_ACKS_KEYS) || !isId(g.agent_id) || !isArr(g.acknowledgements, 1, MAX_ACKNOWLEDGEMENTS) || !g.acknowledgements.every(isAgentAck)) return false;
      total += g.acknowledgements.length;
    }
  }
  return total >= 1 && total <= MAX_ACKNOWLEDGEMENTS;
}

const STATES = new Set<string>(taskStateSchema.options);
const SOURCES = new Set<string>(taskSourceSchema.options);
const STATUS_SLOW_KEYS = new Set(['labels', 'container_status']);

function isStatus(s: unknown): boolean {
  if (!isObj(s)) return false;
  for (const k in s) if (STATUS_SLOW_KEYS.has(k)) return false;
  if (!isId(s.task_id) || !STATES.has(s.state as string)) return false;
  if (s.source !== undefined && !SOURCES.has(s.source as string)) return false;
  if (s.message !== undefined && !isStr(s.message, 0, 65536)) return false;
  if (s.reason !== undefined && !isStr(s.reason, 0, 128)) return false;
  if (s.data !== undefined && !isStr(s.data, 0, 1024 * 1024)) return false;
  if (s.agent_id !== undefined && !isId(s.agent_id)) return false;
  if (s.executor_id !== undefined && !isId(s.executor_id)) return false;
  if (s.timestamp !== undefined && !(typeof s.timestamp === 'number' && Number.isFinite(s.timestamp))) return false;
  if (s.uuid !== undefined && !isStr(s.uuid, 0, 256)) return false;
  if (s.healthy !== undefined && typeof s.healthy !== 'boolean') return false;
  return true;
}

const UPDATE_CALL_KEYS = new Set(['type', 'agent_id', 'update']);
const UPDATE_KEYS = new Set(['updates']);
const GROUPED_UPDATE_KEYS = new Set(['frameworks']);
const UPDATE_ENTRY_KEYS = new Set(['framework_id', 'status']);
const UPDATE_GROUP_KEYS = new Set(['framework_id', 'statuses']);

const isUpdateEntry = (u: unknown): boolean => isObj(u) && keysWithin(u, UPDATE_ENTRY_KEYS) && isId(u.framework_id) && isStatus(u.status);

function isUpdateGroups(groups: unknown): boolean {
  if (!isArr(groups, 1, MAX_STATUS_UPDATES)) return false;
  let total = 0;
  for (const g of groups) {
    if (!isObj(g) || !keysWithin(g, UPDATE_GROUP_KEYS) || !isId(g.framework_id) || !isArr(g.statuses, 1, MAX_STATUS_UPDATES) || !g.statuses.every(isStatus)) return false;
    total += g.statuses.length;
  }
  return total <= MAX_STATUS_UPDATES;
}

function isAgentUpdate(c: Obj): boolean {
  if (!keysWithin(c, UPDATE_CALL_KEYS) || !isId(c.agent_id)) return false;
  const u = c.update;
  if (!isObj(u)) return false;
  if (keysWithin(u, GROUPED_UPDATE_KEYS)) return isUpdateGroups(u.frameworks);
  return keysWithin(u, UPDATE_KEYS) && isArr(u.updates, 1, MAX_STATUS_UPDATES) && u.updates.every(isUpdateEntry);
}

/**
 * True when `body` (a parsed JSON object whose `type` is `type`) is certainly
 * a valid scheduler call that zod would return unchanged; false means "ask zod".
 */
export function isQuickSchedulerCall(type: string, body: Obj): boolean {
  checkedList = undefined;
  const quick = type === 'ACCEPT' ? isAccept(body) : type === 'ACCEPT_BATCH' ? isAcceptBatch(body) : type === 'ACKNOWLEDGE_BATCH' && isAckBatch(body);
  checkedList = undefined;
  return quick;
}

const TASK_DEFAULTS_KEYS = new Set(['resources', 'command']);

/** The same for an ACCEPT_BATCH's task_defaults (see task-defaults.ts). */
export function isQuickTaskDefaults(d: unknown): boolean {
  checkedList = undefined;
  const quick = isObj(d) && keysWithin(d, TASK_DEFAULTS_KEYS) && (d.resources === undefined || isResourceList(d.resources)) && (d.command === undefined || isCommand(d.command));
  checkedList = undefined;
  return quick;
}

/** The same for agent calls: only UPDATE has a quick form. */
export function isQuickAgentCall(type: string, body: Obj): boolean {
  return type === 'UPDATE' && isAgentUpdate(body);
}
