/**
 * POST /api/v1/scheduler — the Mesos v1 scheduler HTTP API (JSON).
 * SUBSCRIBE answers 200 with a RecordIO event stream and a Mesos-Stream-Id
 * header; every other call must echo that header and is answered 202.
 */
import { CorralError, isCorralError } from '../../../../contracts/errors.js';
import { sendJson, type HttpServer, type RequestContext } from '../../../../common/http/server.js';
import type { Master } from '../master.js';
import type { MasterShell } from '../shell.js';
import { randomUUID } from 'node:crypto';
import type { FrameworkRecord } from '../records.js';
import { schedulerCallSchema, SCHEDULER_CALL_TYPES, type V1AcceptResult, type V1SchedulerCall } from '../../../../contracts/v1/v1-schema.js';
import type { AgentEvent, SchedulerEvent } from '../../../../contracts/v1/v1.js';
import { readCall, openStream, streamIdOf, accepted } from './calls.js';
import { SubscriptionCaps } from './subscription-caps.js';
import { isQuickSchedulerCall } from '../../../../contracts/v1/v1-fast.js';
import { applyAcceptBatchDefaults } from './accept-batch-defaults.js';
import { batchUpdateEvents, UPDATE_BATCHES_HEADER } from '../../../../contracts/v1/update-batch.js';

/** A call's shorthand, completed before it is validated. */
const expandCall = (type: string, body: Record<string, unknown>): void => {
  if (type === 'ACCEPT_BATCH') applyAcceptBatchDefaults(body);
};

export function mountSchedulerApi(server: HttpServer, shell: MasterShell): void {
  const m = shell.core;
  const calls = m.metrics.counter('scheduler_calls_total', 'Scheduler API calls', ['type']);
  const caps = new SubscriptionCaps('scheduler', m.config.limits.maxSchedulerSubscriptionsPerPrincipal, m.metrics);
  server.route('POST', '/api/v1/scheduler', async (ctx) => {
    const principal = await m.auth.authenticate(ctx.req);
    const call = await readCall(ctx, schedulerCallSchema, SCHEDULER_CALL_TYPES, 'scheduler API', { quick: isQuickSchedulerCall, nullIsUnset: true, expand: expandCall });
    calls.inc({ type: call.type });
    if (call.type === 'SUBSCRIBE') return subscribe(ctx, shell, call, principal, caps);
    const f = framework(ctx, m, call.framework_id.value, principal);
    await handle(ctx, shell, f, call, principal);
  });
}

async function subscribe(ctx: RequestContext, shell: MasterShell, call: Extract<V1SchedulerCall, { type: 'SUBSCRIBE' }>, principal: string | undefined, caps: SubscriptionCaps): Promise<void> {
  // Counted per principal before the framework is registered: over the cap, nothing changes.
  const id = call.framework_id?.value;
  const current = id === undefined ? undefined : shell.core.frameworks.get(id);
  const release = caps.admit(ctx.req, ctx.res, principal, current?.connected === true && current.principal === principal);
  let f: FrameworkRecord;
  try {
    f = await shell.run((m) => m.frameworkManager.subscribe(call.subscribe.framework_info, call.framework_id?.value, call.subscribe.suppressed_roles, principal));
  } catch (err) {
    release();
    throw err;
  }
  const streamId = randomUUID();
  const conn = shell.open(
    openStream<SchedulerEvent>(
      ctx,
      { 'Mesos-Stream-Id': streamId },
      (o) => {
        shell.closed(o.id);
        shell.fire((m) => m.frameworkManager.disconnected(f, o.id));
      },
      asksForUpdateBatches(ctx) ? batchUpdateEvents : undefined,
    ),
  );
  shell.fire((m) => m.frameworkManager.attach(f, conn, streamId));
}

/** The SUBSCRIBE request asked for update batches (see update-batch.ts); any other value of the header is plain UPDATEs. */
function asksForUpdateBatches(ctx: RequestContext): boolean {
  const h = ctx.req.headers[UPDATE_BATCHES_HEADER];
  return (Array.isArray(h) ? h[0] : h)?.trim() === '1';
}

function framework(ctx: RequestContext, m: Master, id: string, principal: string | undefined): FrameworkRecord {
  const f = m.frameworks.get(id);
  if (!f || !f.connected) throw new CorralError('FORBIDDEN', `framework ${id} is not subscribed`);
  if (m.auth.enabled && f.principal !== undefined && principal !== f.principal) throw new CorralError('FORBIDDEN', `framework ${id} belongs to another principal`);
  const streamId = streamIdOf(ctx);
  if (!streamId) throw new CorralError('INVALID_ARGUMENT', "all calls but SUBSCRIBE must carry the 'Mesos-Stream-Id' header from the SUBSCRIBE response");
  if (streamId !== f.streamId) throw new CorralError('INVALID_ARGUMENT', `Mesos-Stream-Id ${streamId.slice(0, 64)} does not match the framework's current stream`);
  return f;
}

function rolesOf(f: FrameworkRecord, roles: string[] | undefined): string[] | undefined {
  for (const r of roles ?? []) if (!f.roles.includes(r)) throw new CorralError('INVALID_ARGUMENT', `role "${r}" is not one of the framework's roles (${f.roles.join(', ')})`);
  return roles && roles.length ? roles : undefined;
}

async function handle(ctx: RequestContext, shell: MasterShell, f: FrameworkRecord, call: Exclude<V1SchedulerCall, { type: 'SUBSCRIBE' }>, principal: string | undefined): Promise<void> {
  const m = shell.core;
  switch (call.type) {
    case 'TEARDOWN':
      await shell.run((m) => m.frameworkManager.remove(f, 'framework asked for TEARDOWN'));
      break;
    case 'ACCEPT':
      await shell.run((m) => m.offerManager.accept(f, call.accept));
      break;
    case 'ACCEPT_BATCH': {
      // Each ACCEPT stands alone, as if sent in its own call: one that is refused changes nothing and
      // the others still apply. The answer says, in order, which were refused and why.
      const results: V1AcceptResult[] = [];
      for (const accept of call.accept_batch.accepts) {
        try {
          await shell.run((m) => m.offerManager.accept(f, accept));
          results.push({ accepted: true });
        } catch (err) {
          if (!isCorralError(err) || err.httpStatus >= 500) throw err;
          results.push({ error: { code: err.code, message: err.message } });
        }
      }
      sendJson(ctx.res, 200, { accept_batch: { results } });
      return;
    }
    case 'DECLINE':
      await shell.run((m) => m.offerManager.decline(f, call.decline.offer_ids, call.decline.filters?.refuse_seconds));
      break;
    case 'REVIVE': {
      const roles = rolesOf(f, call.revive?.roles ?? (call.revive?.role ? [call.revive.role] : undefined));
      await shell.run((m) => {
        m.allocator.revive(f.id, roles);
        m.offerManager.requestAllocation();
      });
      break;
    }
    case 'SUPPRESS':
      m.allocator.suppress(f.id, rolesOf(f, call.suppress?.roles));
      break;
    case 'KILL':
      await shell.run((m) => m.taskManager.kill(f, call.kill.task_id.value, call.kill.agent_id?.value, call.kill.kill_policy));
      break;
    case 'ACKNOWLEDGE':
      await shell.run((m) => m.taskManager.acknowledge(f, [call.acknowledge]));
      break;
    case 'ACKNOWLEDGE_BATCH':
      await shell.run((m) => m.taskManager.acknowledge(f, call.acknowledge_batch.acknowledgements ?? [], call.acknowledge_batch.agents));
      break;
    case 'RECONCILE':
      await shell.run((m) => m.taskManager.reconcile(f, call.reconcile?.tasks ?? []));
      break;
    case 'MESSAGE': {
      const a = m.agents.get(call.message.agent_id.value);
      if (!a || a.status !== 'connected') throw new CorralError('INVALID_ARGUMENT', `agent ${call.message.agent_id.value} is not connected`);
      await shell.run((m) => m.send(a.conn, { type: 'MESSAGE', message: { framework_id: { value: f.id }, executor_id: call.message.executor_id, data: call.message.data } } satisfies AgentEvent));
      break;
    }
    case 'SHUTDOWN':
      throw new CorralError('INVALID_ARGUMENT', 'SHUTDOWN of custom executors is not supported: corral runs tasks with its own executor; use KILL');
    case 'REQUEST':
      break; // Mesos ignores resource requests too.
    case 'ACCEPT_INVERSE_OFFERS':
    case 'DECLINE_INVERSE_OFFERS':
      break; // no inverse offers are made here, so none is outstanding; Mesos ignores unknown ids too
    case 'UPDATE_FRAMEWORK': {
      const u = call.update_framework;
      if (u.framework_info.id?.value !== f.id) throw new CorralError('INVALID_ARGUMENT', "'framework_id' differs from 'update_framework.framework_info.id'");
      await shell.run((m) => m.frameworkManager.update(f, u.framework_info, u.suppressed_roles, principal));
      // Mesos answers 200 once the update is applied.
      ctx.res.statusCode = 200;
      ctx.res.setHeader('Content-Length', 0);
      ctx.res.end();
      return;
    }
  }
  accepted(ctx);
}
