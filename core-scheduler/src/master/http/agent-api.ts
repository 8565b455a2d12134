/**
 * POST /api/v1/agent — corral's agent protocol, shaped like the v1 APIs:
 * REGISTER answers with a RecordIO stream of master→agent events (LAUNCH,
 * KILL, ACKNOWLEDGE, …); UPDATE, HEARTBEAT and the rest answer 202.
 */
import { CorralError } from '../../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../../common/http/server.js';
import type { Authority } from '../auth.js';
import { Resources } from '../../resources/resources.js';
import type { MasterShell } from '../shell.js';
import { randomUUID } from 'node:crypto';
import { agentCallSchema, AGENT_CALL_TYPES } from '../../../../contracts/v1/agent-schema.js';
import type { AgentEvent, SchedulerEvent } from '../../../../contracts/v1/v1.js';
import { readCall, openStream, streamIdOf, accepted } from './calls.js';
import { isQuickAgentCall } from '../../../../contracts/v1/v1-fast.js';

export function mountAgentApi(server: HttpServer, shell: MasterShell): void {
  const m = shell.core;
  const streamIds = new Map<string, string>();
  server.route('POST', '/api/v1/agent', async (ctx) => {
    const principal = await agentPrincipal(server, ctx, m.auth);
    const call = await readCall(ctx, agentCallSchema, AGENT_CALL_TYPES, 'agent API', { quick: isQuickAgentCall, nullIsUnset: true });
    if (call.type === 'REGISTER') {
      const a = await shell.run((m) => m.agentManager.register(call.register, principal, ctx.req.socket.remoteAddress));
      const streamId = randomUUID();
      streamIds.set(a.id, streamId);
      const conn = shell.open(
        openStream<AgentEvent>(ctx, { 'Mesos-Stream-Id': streamId }, (o) => {
          shell.closed(o.id);
          shell.fire((m) => m.agentManager.disconnected(a, o.id, 'stream closed'));
        }),
      );
      shell.fire((m) => m.agentManager.attach(a, conn));
      return;
    }
    m.auth.authorizeAgent(principal);
    const a = m.agents.get(call.agent_id.value);
    if (!a || a.status !== 'connected') throw new CorralError('FORBIDDEN', `agent ${call.agent_id.value} is not registered; REGISTER first`);
    if (a.principal !== undefined && a.principal !== principal)
      throw new CorralError('FORBIDDEN', `agent ${a.id} registered with principal "${a.principal}"; principal "${principal}" may not speak for it`);
    if (streamIdOf(ctx) !== streamIds.get(a.id)) throw new CorralError('INVALID_ARGUMENT', "the 'Mesos-Stream-Id' header does not match the agent's current stream");
    shell.fire((m) => m.agentManager.seen(a));
    switch (call.type) {
      case 'UPDATE':
        // The per-status form becomes groups of one: the master handles one shape.
        await shell.run((m) => m.taskManager.fromAgent(a, call.update.frameworks ?? call.update.updates!.map((u) => ({ framework_id: u.framework_id, statuses: [u.status] }))));
        break;
      case 'HEARTBEAT':
        break;
      case 'UPDATE_OVERSUBSCRIBED':
        {
          const rev = Resources.fromV1(call.update_oversubscribed.resources);
          for (const e of rev) if (!e.revocable) throw new CorralError('INVALID_ARGUMENT', `oversubscribed resource ${e.name} must be marked revocable`);
          await shell.run((m) => m.agentManager.updateOversubscribed(a, rev));
        }
        break;
      case 'UNREGISTER':
        await shell.run((m) => m.agentManager.remove(a, false));
        streamIds.delete(a.id);
        break;
      case 'MESSAGE': {
        const f = m.frameworks.get(call.message.framework_id.value);
        await shell.run((m) => m.send(f?.conn, { type: 'MESSAGE', message: { agent_id: { value: a.id }, executor_id: call.message.executor_id, data: call.message.data } } satisfies SchedulerEvent));
        break;
      }
    }
    accepted(ctx);
  });
}

/**
 * Who an agent call comes from. Over TLS the agent API is mutual TLS: the
 * agent presents a certificate of the cluster CA, and its CN is the agent's
 * principal. With HTTP Basic credentials too, both must name the same
 * principal (a stolen certificate cannot speak as another agent, nor stolen
 * credentials without the certificate). Plain HTTP (--insecure) keeps Basic
 * authentication alone.
 */
async function agentPrincipal(server: HttpServer, ctx: RequestContext, auth: Authority): Promise<string | undefined> {
  if (!server.tls) return auth.authenticate(ctx.req);
  const peer = ctx.peer();
  if (!peer?.authorized || !peer.commonName) {
    throw new CorralError('UNAUTHENTICATED', "the agent API requires mutual TLS: the agent must present a client certificate issued by the cluster's CA (the agent's tls.cert and tls.key)");
  }
  if (!ctx.req.headers.authorization) {
    if (auth.enabled) auth.authorizeAgent(peer.commonName);
    return peer.commonName;
  }
  const principal = await auth.authenticate(ctx.req);
  if (principal !== undefined && principal !== peer.commonName) {
    throw new CorralError('FORBIDDEN', `the client certificate is for "${peer.commonName}" but the credentials are for principal "${principal}"; an agent's certificate CN must be its principal`);
  }
  return principal ?? peer.commonName;
}
