/**
 * Shared pieces of the master's HTTP APIs: parsing a JSON call with a clear
 * error for unknown types, content negotiation, and stream outboxes.
 */
import type { z } from 'zod';
import { CorralError } from '../../../../contracts/errors.js';
import { parseInput, parseJson } from '../../../../common/validate.js';
import type { RequestContext } from '../../../../common/http/server.js';
import { EventStream } from '../../../../common/http/stream.js';
import type { Outbox } from '../shell.js';
import { mayHoldNull, stripNulls } from '../../../../contracts/v1/v1-json.js';

interface ReadCallOptions {
  /** May vouch for a body in a common shape (see protocol/v1-fast.ts); everything else, and every error message, is zod's. */
  quick?: (type: string, body: Record<string, unknown>) => boolean;
  /**
   * JSON null means "not set", as in Mesos (see protocol/v1-json.ts): the v1
   * APIs' bodies lose their nulls before either validator sees them.
   */
  nullIsUnset?: boolean;
  /** Completes a call's shorthand (e.g. ACCEPT_BATCH's task_defaults) before it is validated. */
  expand?: (type: string, body: Record<string, unknown>) => void;
}

/** Read and validate a call. */
export async function readCall<S extends z.ZodType>(ctx: RequestContext, schema: S, types: readonly string[], api: string, opts: ReadCallOptions = {}): Promise<z.output<S>> {
  const contentType = ctx.req.headers['content-type'] ?? '';
  if (contentType.includes('protobuf')) throw new CorralError('UNSUPPORTED_MEDIA_TYPE', `${api}: only JSON (application/json) is supported`);
  const accept = ctx.req.headers.accept ?? '';
  if (accept.includes('protobuf') && !accept.includes('json') && !accept.includes('*/*')) {
    throw new CorralError('NOT_ACCEPTABLE', `${api}: responses are JSON; send Accept: application/json`);
  }
  const text = await ctx.text();
  if (text.length === 0) throw new CorralError('MALFORMED_REQUEST', 'request body is empty; expected JSON');
  return parseCall(text, schema, types, api, opts);
}

/** Parse and validate a call's JSON text (a request body, or a message of an agent's channel). */
export function parseCall<S extends z.ZodType>(text: string, schema: S, types: readonly string[], api: string, opts: ReadCallOptions & { what?: string } = {}): z.output<S> {
  const body = parseJson(text, opts.what);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new CorralError('INVALID_ARGUMENT', `${api}: the call must be a JSON object`);
  // A search of the raw text keeps the walk off bodies without a null (all of corral's own clients' calls).
  if (opts.nullIsUnset && mayHoldNull(text)) stripNulls(body);
  const type = (body as { type?: unknown }).type;
  if (typeof type !== 'string') throw new CorralError('INVALID_ARGUMENT', `${api}: the call needs a "type" field`);
  if (!types.includes(type)) throw new CorralError('INVALID_ARGUMENT', `${api}: unknown call type "${type.slice(0, 64)}"; expected one of ${types.join(', ')}`);
  opts.expand?.(type, body as Record<string, unknown>);
  if (opts.quick?.(type, body as Record<string, unknown>)) return body as z.output<S>;
  return parseInput(schema, body, `${type} call`);
}

let streams = 0;

/**
 * Open a RecordIO response stream and wrap it as an outbox; `encodeAll`, if
 * given, turns each burst of events into the records sent (e.g. update batches).
 */
export function openStream<E>(ctx: RequestContext, headers: Record<string, string>, onClose: (outbox: Outbox<E>) => void, encodeAll?: (events: E[]) => unknown[]): Outbox<E> {
  let outbox: Outbox<E> | undefined;
  const stream = new EventStream(ctx.res, { headers, onClose: () => outbox && onClose(outbox) });
  outbox = {
    id: `stream-${++streams}`,
    send: (e) => stream.send(e),
    sendAll: encodeAll ? (es) => stream.sendAll(encodeAll(es)) : (es) => stream.sendAll(es),
    close: (last) => stream.end(last),
    get isOpen() {
      return stream.isOpen;
    },
  };
  return outbox;
}

export function streamIdOf(ctx: RequestContext): string | undefined {
  const h = ctx.req.headers['mesos-stream-id'];
  return Array.isArray(h) ? h[0] : h;
}

/** 202 Accepted with no body, as the v1 APIs answer non-streaming calls. */
export function accepted(ctx: RequestContext): void {
  ctx.res.statusCode = 202;
  ctx.res.setHeader('Content-Length', 0);
  ctx.res.end();
}
