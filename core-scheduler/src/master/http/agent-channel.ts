/**
 * An agent's channel: one WebSocket per agent (GET /api/v1/agent with an
 * upgrade) carrying its calls one way, each a text message with the JSON a
 * POST would have as its body, and the master's events the other, each a
 * text message with the JSON of a RecordIO record.
 *
 * Calls are one-way, as Mesos agents send their messages (libprocess): no
 * answer per call, no HTTP request to parse, nothing written back. An agent
 * resends a status update until it is acknowledged, so a call lost with a
 * broken connection is sent again after re-registering. A call that fails is
 * answered with an ERROR event and the channel stays up; a call the
 * connection may not make (before REGISTER, for another agent) also closes it.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { CorralError, isCorralError, errorMessage } from '../../../../contracts/errors.js';
import { corkForThisTurn } from '../../../../common/http/cork.js';
import { logger } from '../../../../common/log.js';
import { agentCallSchema, AGENT_CALL_TYPES, type V1AgentCall } from '../../../../contracts/v1/agent-schema.js';
import { isQuickAgentCall } from '../../../../contracts/v1/v1-fast.js';
import type { AgentEvent } from '../../../../contracts/v1/v1.js';
import type { AgentRecord } from '../records.js';
import type { MasterShell, Outbox } from '../shell.js';
import { parseCall } from './calls.js';
import { handleAgentCall, speakerFor } from './agent-calls.js';

/** What may wait unsent for an agent that does not read (as an event stream's bound). */
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** RFC 6455 close code for a message the connection may not send. */
const POLICY_VIOLATION = 1008;
/** Calls held while REGISTER is made durable (an agent sends a few: its heartbeat, its pending updates). */
const MAX_BACKLOG = 1000;

const log = logger('agent-channel');
let channels = 0;

/** Serve an agent's channel on `ws`; `count` is told the type of each call it carries. */
export function serveAgentChannel(ws: WebSocket, socket: Socket, shell: MasterShell, principal: string | undefined, count: (type: string) => void): void {
  const id = `channel-${++channels}`;
  let agent: AgentRecord | undefined;
  /** Calls that arrive while REGISTER is being made durable wait for it, in order. */
  let registering = false;
  const backlog: string[] = [];

  const write = (events: readonly AgentEvent[]): boolean => {
    if (ws.readyState !== WebSocket.OPEN) return false;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      log.warn({ agent: agent?.id, buffered: ws.bufferedAmount }, 'agent does not read its channel; closing it');
      ws.terminate();
      return false;
    }
    // One write for what the turn sends (see cork.ts).
    corkForThisTurn(socket);
    for (const e of events) ws.send(JSON.stringify(e));
    return true;
  };
  const outbox: Outbox<AgentEvent> = {
    id,
    send: (e) => write([e]),
    sendAll: (es) => write(es),
    close: (last) => {
      if (last !== undefined) write([last]);
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    },
    get isOpen() {
      return ws.readyState === WebSocket.OPEN;
    },
  };

  const refuse = (err: unknown, close: boolean): void => {
    const e = isCorralError(err) ? err : new CorralError('INTERNAL', 'internal error', undefined, { cause: err });
    if (e.code === 'INTERNAL') log.error({ err, agent: agent?.id }, 'agent call failed: %s', errorMessage(err));
    else log.debug({ agent: agent?.id, code: e.code }, 'agent call refused: %s', e.message);
    write([{ type: 'ERROR', error: { code: e.code, message: e.message } }]);
    if (close && ws.readyState === WebSocket.OPEN) ws.close(POLICY_VIOLATION, e.code);
  };

  const register = (call: Extract<V1AgentCall, { type: 'REGISTER' }>): void => {
    if (agent) return refuse(new CorralError('CONFLICT', `this channel is agent ${agent.id}'s; REGISTER again on a new channel`), false);
    registering = true;
    shell
      .run((m) => m.agentManager.register(call.register, principal, socket.remoteAddress))
      .then(
        (a) => {
          agent = a;
          shell.open(outbox);
          shell.fire((m) => m.agentManager.attach(a, id));
          registering = false;
          if (ws.readyState !== WebSocket.OPEN) {
            closed();
            backlog.length = 0;
          }
          while (backlog.length > 0 && !registering) onCall(backlog.shift()!);
        },
        (err: unknown) => {
          registering = false;
          backlog.length = 0;
          refuse(err, true);
        },
      );
  };

  const onCall = (text: string): void => {
    let call: V1AgentCall;
    try {
      call = parseCall(text, agentCallSchema, AGENT_CALL_TYPES, 'agent API', { quick: isQuickAgentCall, nullIsUnset: true, what: 'agent call' });
    } catch (err) {
      return refuse(err, false);
    }
    count(call.type);
    if (call.type === 'REGISTER') return register(call);
    if (!agent) return refuse(new CorralError('FAILED_PRECONDITION', `a ${call.type} call before REGISTER: an agent channel's first call registers the agent`), true);
    let a: AgentRecord;
    try {
      a = speakerFor(shell, call.agent_id.value, principal);
      if (a !== agent) throw new CorralError('FORBIDDEN', `this channel is agent ${agent.id}'s; it may not speak for agent ${a.id}`);
    } catch (err) {
      return refuse(err, true);
    }
    // A channel the agent has since replaced (it registered again elsewhere) speaks for it no more.
    if (a.conn !== id) return refuse(new CorralError('FAILED_PRECONDITION', `agent ${a.id} has a newer connection; this channel is closed`), true);
    handleAgentCall(shell, a, call).catch((err: unknown) => refuse(err, false));
  };

  ws.on('message', (data) => {
    // Binary messages are taken as UTF-8 text too; with ws's default binaryType every message is one Buffer.
    const text = (data as Buffer).toString('utf8');
    if (!registering) return onCall(text);
    if (backlog.length >= MAX_BACKLOG) return refuse(new CorralError('RESOURCE_EXHAUSTED', `more than ${MAX_BACKLOG} calls sent before REGISTER was answered`), true);
    backlog.push(text);
  });

  let ended = false;
  const closed = (): void => {
    if (ended || !agent) return;
    ended = true;
    const a = agent;
    shell.closed(id);
    shell.fire((m) => m.agentManager.disconnected(a, id, 'channel closed'));
  };
  ws.on('close', closed);
}
