/**
 * /api/v1/agent — corral's agent protocol, shaped like the v1 APIs, over
 * either of two transports:
 * - POST: REGISTER answers with a RecordIO stream of master→agent events
 *   (LAUNCH, KILL, ACKNOWLEDGE, …); UPDATE, HEARTBEAT and the rest are POSTs
 *   of their own that answer 202.
 * - GET with a WebSocket upgrade (agent-channel.ts): one connection carries
 *   the same calls one way and the same events the other.
 */
import { CorralError } from '../../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../../common/http/server.js';
import type { Authority } from '../auth.js';
import type { MasterShell } from '../shell.js';
import { randomUUID } from 'node:crypto';
import { agentCallSchema, AGENT_CALL_TYPES } from '../../../../contracts/v1/agent-schema.js';
import type { AgentEvent } from '../../../../contracts/v1/v1.js';
import { serveAgentChannel } from './agent-channel.js';
import { handleAgentCall, speakerFor } from './agent-calls.js';
import { readCall, openStream, streamIdOf, accepted } from './calls.js';
import { isQuickAgentCall } from '../../../../contracts/v1/v1-fast.js';

export function mountAgentApi(server: HttpServer, shell: MasterShell, opts: { webSocket: boolean }): void {
  const m = shell.core;
  const streamIds = new Map<string, string>();
  const calls = m.metrics.counter('agent_calls_total', 'Agent protocol calls, by type and transport', ['type', 'transport']);
  const counted = (transport: 'channel' | 'http') => (type: string) => calls.inc({ type, transport });
  const countHttp = counted('http');
  if (opts.webSocket) {
    let channels = 0;
    m.metrics.gauge('agent_channels', 'Open agent channels (WebSockets)', [], (g) => g.set(channels));
    server.serveUpgrades();
    server.route('GET', '/api/v1/agent', async (ctx) => {
      // A browser sends Origin, and may send cached credentials with it: no page may speak for an agent.
      if (ctx.req.headers.origin !== undefined) throw new CorralError('FORBIDDEN', 'the agent channel is not for browsers: the request has an Origin header');
      const principal = await agentPrincipal(server, ctx, m.auth);
      const ws = ctx.webSocket();
      channels++;
      ws.once('close', () => channels--);
      serveAgentChannel(ws, ctx.req.socket, shell, principal, counted('channel'));
    });
  }
  server.route('POST', '/api/v1/agent', async (ctx) => {
    const principal = await agentPrincipal(server, ctx, m.auth);
    const call = await readCall(ctx, agentCallSchema, AGENT_CALL_TYPES, 'agent API', { quick: isQuickAgentCall, nullIsUnset: true });
    countHttp(call.type);
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
    const a = speakerFor(shell, call.agent_id.value, principal);
    if (streamIdOf(ctx) !== streamIds.get(a.id)) throw new CorralError('INVALID_ARGUMENT', "the 'Mesos-Stream-Id' header does not match the agent's current stream");
    await handleAgentCall(shell, a, call);
    if (call.type === 'UNREGISTER') streamIds.delete(a.id);
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
export async function agentPrincipal(server: HttpServer, ctx: RequestContext, auth: Authority): Promise<string | undefined> {
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
