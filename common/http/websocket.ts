/**
 * The server side of a WebSocket (RFC 6455) on the kit's HTTP server, with
 * the `ws` library: a route runs its checks on the upgrade request as on any
 * request, then takes the connection (RequestContext.webSocket()).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { CorralError } from '../../contracts/errors.js';
import type { Logger } from '../log.js';
import { writeRaw } from './limits.js';

export type { WebSocket } from 'ws';

/**
 * Handshakes only: the server tracks no clients and compresses nothing (the
 * messages are small JSON, and per-message deflate costs CPU and memory for
 * each connection).
 */
const handshakers = new Map<number, WebSocketServer>();

function handshaker(maxPayload: number): WebSocketServer {
  let wss = handshakers.get(maxPayload);
  if (!wss) handshakers.set(maxPayload, (wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload })));
  return wss;
}

/**
 * Complete the handshake of `req` and hand back the WebSocket. Throws, while
 * the connection is still answered over HTTP, when the request is not a
 * WebSocket handshake this server can complete.
 */
export function acceptWebSocket(req: IncomingMessage, res: ServerResponse, head: Buffer | undefined, opts: { maxPayload: number; log: Logger }): WebSocket {
  const what = `${req.method ?? 'GET'} ${req.url ?? '/'}`;
  if (head === undefined || req.headers.upgrade?.toLowerCase() !== 'websocket') {
    res.setHeader('Upgrade', 'websocket');
    res.setHeader('Connection', 'Upgrade');
    throw new CorralError('UPGRADE_REQUIRED', `${what} opens a WebSocket: send it with "Connection: Upgrade" and "Upgrade: websocket"`);
  }
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) {
    throw new CorralError('MALFORMED_REQUEST', `${what}: the WebSocket handshake needs a Sec-WebSocket-Key of 16 bytes in base64 (RFC 6455, 4.1)`);
  }
  if (req.headers['sec-websocket-version'] !== '13') {
    res.setHeader('Sec-WebSocket-Version', '13');
    throw new CorralError('MALFORMED_REQUEST', `${what}: only WebSocket version 13 (RFC 6455) is spoken; the request asked for "${String(req.headers['sec-websocket-version'] ?? '')}"`);
  }
  const socket = req.socket;
  // The request's answer is the 101 written by `ws`: the socket is no longer the response's.
  res.statusCode = 101;
  res.removeAllListeners('finish');
  res.detachSocket(socket);
  let accepted: WebSocket | undefined;
  // With the checks above and no verifyClient, `ws` completes the handshake before returning.
  handshaker(opts.maxPayload).handleUpgrade(req, socket, head, (ws) => (accepted = ws));
  if (!accepted) throw new CorralError('INTERNAL', `${what}: the WebSocket handshake did not complete`);
  const ws: WebSocket = accepted;
  // An error without a listener would end the process (a message over maxPayload, a bad frame).
  ws.on('error', (err) => opts.log.debug({ err: err.message, remote: socket.remoteAddress }, 'WebSocket closed on an error'));
  return ws;
}

/**
 * A request to switch protocols that carries a body (node's parser left it
 * unread) is answered 400 at once; true when it was.
 */
export function refuseUpgradeWithBody(req: IncomingMessage, socket: Socket): boolean {
  const length = req.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) return false;
  writeRaw(socket, 400, 'Bad Request', {
    code: 'MALFORMED_REQUEST',
    message: `this server does not switch to "${String(req.headers.upgrade)}" for a request with a body; send it without the Upgrade header`,
  });
  return true;
}
