/**
 * POST /api/v1 — the Mesos v1 operator API for what corral has, plus
 * GET /health. Every operator call but GET_HEALTH and GET_VERSION needs a
 * principal allowed its action (auth.ts: view, reserve_resources, …, or
 * `operators` for all); a refusal is a 403 naming the action.
 */
import { CorralError } from '../../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../../common/http/server.js';
import { Resources } from '../../resources/resources.js';
import type { Master } from '../master.js';
import type { MasterShell } from '../shell.js';
import { operatorCallSchema, OPERATOR_CALL_TYPES, type V1OperatorCall } from '../../../../contracts/v1/v1-schema.js';
import { VERSION } from '../master.js';
import { getAgents, getFrameworks, getRoles, getState, getTasks } from '../views.js';
import { conversionFor, volumeIdsOf, type ConversionKind } from '../conversions.js';
import type { OperatorEvent } from '../../../../contracts/v1/operator-events.js';
import { readCall, openStream, accepted } from './calls.js';
import { SubscriptionCaps } from './subscription-caps.js';

export function mountOperatorApi(server: HttpServer, shell: MasterShell): void {
  const m = shell.core;
  server.route('GET', '/health', () => ({ healthy: true, master: m.info.id, uptime_seconds: Math.round((m.clock.now() - m.startedAt) / 1000) }));
  const caps = new SubscriptionCaps('operator', m.config.limits.maxOperatorSubscriptionsPerPrincipal, m.metrics);
  server.route('POST', '/api/v1', async (ctx) => {
    const principal = await m.auth.authenticate(ctx.req);
    const call = await readCall(ctx, operatorCallSchema, OPERATOR_CALL_TYPES, 'operator API', { nullIsUnset: true });
    // Health and version are harmless; every other call needs its action's ACL (auth.ts CALL_ACTIONS) or `operators`.
    m.auth.authorizeOperatorCall(principal, call.type);
    return handle(ctx, shell, call, principal, caps);
  });
}

const reply = (type: string, field: string, value: unknown): Record<string, unknown> => ({ type, [field]: value });

async function handle(ctx: RequestContext, shell: MasterShell, call: V1OperatorCall, principal: string | undefined, caps: SubscriptionCaps): Promise<unknown> {
  const m = shell.core;
  switch (call.type) {
    case 'GET_HEALTH':
      return reply(call.type, 'get_health', { healthy: true });
    case 'GET_VERSION':
      return reply(call.type, 'get_version', { version_info: { version: VERSION } });
    case 'GET_MASTER':
      // One master, elected when it started.
      return reply(call.type, 'get_master', { master_info: m.info, start_time: m.startedAt / 1000, elected_time: m.startedAt / 1000 });
    case 'GET_EXECUTORS':
      // Tasks run under the agents' own executor, which Mesos does not list either (command executors).
      return reply(call.type, 'get_executors', { executors: [], orphan_executors: [] });
    case 'GET_OPERATIONS':
      // No operation is tracked by id (offer operations apply at once, without feedback).
      return reply(call.type, 'get_operations', { operations: [] });
    case 'GET_STATE':
      return reply(call.type, 'get_state', getState(m));
    case 'GET_AGENTS':
      return reply(call.type, 'get_agents', getAgents(m));
    case 'GET_FRAMEWORKS':
      return reply(call.type, 'get_frameworks', getFrameworks(m));
    case 'GET_TASKS':
      return reply(call.type, 'get_tasks', getTasks(m));
    case 'GET_ROLES':
      return reply(call.type, 'get_roles', getRoles(m));
    case 'GET_WEIGHTS':
      return reply(call.type, 'get_weights', { weight_infos: [...m.weights].map(([role, weight]) => ({ role, weight })) });
    case 'GET_QUOTA':
      return reply(call.type, 'get_quota', { status: { infos: [...m.quota].map(([role, q]) => ({ role, ...q })) } });
    case 'SUBSCRIBE': {
      caps.admit(ctx.req, ctx.res, principal);
      const conn = shell.open(
        openStream<OperatorEvent>(ctx, {}, (o) => {
          shell.closed(o.id);
          shell.fire((m) => m.events.unsubscribe(o.id));
        }),
      );
      shell.fire((m) => m.events.subscribe(conn));
      return undefined;
    }
    case 'RESERVE_RESOURCES':
      await convert(shell, 'RESERVE', call.reserve_resources.agent_id.value, call.reserve_resources.resources, principal);
      break;
    case 'UNRESERVE_RESOURCES':
      await convert(shell, 'UNRESERVE', call.unreserve_resources.agent_id.value, call.unreserve_resources.resources, principal);
      break;
    case 'CREATE_VOLUMES':
      await convert(shell, 'CREATE', call.create_volumes.agent_id.value, call.create_volumes.volumes, principal);
      break;
    case 'DESTROY_VOLUMES':
      await convert(shell, 'DESTROY', call.destroy_volumes.agent_id.value, call.destroy_volumes.volumes, principal);
      break;
    case 'UPDATE_WEIGHTS': {
      const infos = call.update_weights.weight_infos;
      if (infos.some((w) => w.role === '*')) throw new CorralError('INVALID_ARGUMENT', 'the weight of the "*" role cannot be changed');
      await shell.run((m) => {
        m.persist({ type: 'set-weights', weights: infos });
        for (const w of infos) {
          m.weights.set(w.role, w.weight);
          m.allocator.setWeight(w.role, w.weight);
        }
        m.offerManager.requestAllocation();
      });
      break;
    }
    case 'UPDATE_QUOTA': {
      const configs = call.update_quota.quota_configs;
      for (const q of configs) {
        for (const [name, g] of Object.entries(q.guarantees ?? {})) {
          const lim = q.limits?.[name];
          if (lim && g.value > lim.value) throw new CorralError('INVALID_ARGUMENT', `quota of role ${q.role}: guarantee of ${name} (${g.value}) is above its limit (${lim.value})`);
        }
      }
      if (!call.update_quota.force) checkSatisfiable(m, configs);
      await shell.run((m) => {
        m.persist({ type: 'set-quota', configs });
        for (const q of configs) m.applyQuota(q.role, q);
        m.offerManager.requestAllocation();
      });
      break;
    }
    case 'MARK_AGENT_GONE': {
      const a = m.agents.get(call.mark_agent_gone.agent_id.value);
      if (!a) throw new CorralError('NOT_FOUND', `unknown agent ${call.mark_agent_gone.agent_id.value}`);
      await shell.run((m) => m.agentManager.remove(a, true));
      break;
    }
    case 'TEARDOWN': {
      const f = m.frameworks.get(call.teardown.framework_id.value);
      if (!f) throw new CorralError('NOT_FOUND', `unknown framework ${call.teardown.framework_id.value}`);
      await shell.run((m) => m.frameworkManager.remove(f, 'torn down by an operator'));
      break;
    }
  }
  accepted(ctx);
  return undefined;
}

/** Guarantees must fit in the cluster as it is, unless forced. */
function checkSatisfiable(m: Master, configs: Array<{ role: string; guarantees?: Record<string, { value: number }> | undefined }>): void {
  const total = new Resources();
  for (const a of m.agents.values()) if (a.status === 'connected') total.add(a.total);
  const want = new Map<string, number>();
  for (const [role, q] of m.quota) if (!configs.some((c) => c.role === role)) for (const [n, v] of Object.entries(q.guarantees ?? {})) want.set(n, (want.get(n) ?? 0) + v.value);
  for (const c of configs) for (const [n, v] of Object.entries(c.guarantees ?? {})) want.set(n, (want.get(n) ?? 0) + v.value);
  for (const [name, v] of want) {
    const have = total.scalar(name);
    if (v > have) throw new CorralError('INVALID_ARGUMENT', `quota guarantees ask for ${v} ${name} but the cluster has ${have}; set force (corral quota set --force) to set it anyway`);
  }
}

/** Operator RESERVE/UNRESERVE/CREATE/DESTROY on resources nobody holds (outstanding offers are rescinded to make room). */
async function convert(shell: MasterShell, kind: ConversionKind, agentId: string, list: Parameters<typeof Resources.fromV1>[0], principal: string | undefined): Promise<void> {
  await shell.run((m) => {
    const a = m.agents.get(agentId);
    if (!a || a.status === 'unreachable') throw new CorralError('NOT_FOUND', `unknown agent ${agentId}`);
    if (!m.allocator.hasAgent(agentId)) throw new CorralError('CONFLICT', `agent ${agentId} has not re-registered yet; try again when it is back`);
    const { consumed, converted } = conversionFor(kind, Resources.fromV1(list), { role: undefined, principal, volumeIds: volumeIdsOf(a.total), where: kind });
    let free = m.allocator.agentView(agentId)!.available;
    if (!free.contains(consumed)) {
      m.offerManager.rescindAgentOffers(agentId);
      free = m.allocator.agentView(agentId)!.available;
      if (!free.contains(consumed)) throw new CorralError('CONFLICT', `${consumed} is not free on agent ${agentId} (free: ${free}); resources used by tasks cannot be converted`);
    }
    m.allocator.convertAvailable(agentId, consumed, converted);
    m.agentManager.applyConversion(a, consumed, converted);
    m.offerManager.requestAllocation([agentId]);
  });
}
