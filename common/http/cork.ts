/**
 * Coalesce socket writes within one event-loop turn: the first write corks
 * the socket, and every corked socket is uncorked once at the end of the
 * turn. A burst of pipelined responses or stream events then leaves in one
 * writev instead of one write syscall each — on this kind of VM a small
 * write costs tens of microseconds, more than the rest of a request.
 *
 * Node's ServerResponse.end() forces a full uncork of its socket
 * ("corked = 1; uncork()"), which would send each response on its own. While
 * a socket is held for the turn, that forced uncork is deferred to the end of
 * the turn; the socket's own uncork is restored then, so nothing is ever held
 * longer than one turn, and nothing changes for sockets not held.
 */
import type { Socket } from 'node:net';

interface Held {
  socket: Socket;
  uncork: Socket['uncork'];
}

const held = new Map<Socket, Held>();
let scheduled = false;

function flush(): void {
  scheduled = false;
  const all = [...held.values()];
  held.clear();
  for (const h of all) {
    // Drop the instance override: the prototype's uncork is back.
    delete (h.socket as { uncork?: unknown }).uncork;
    if (h.socket.destroyed) continue;
    // Undo our own cork and any end() deferred while held.
    while (h.socket.writableCorked > 0) h.socket.uncork();
  }
}

export function corkForThisTurn(socket: Socket | null | undefined): void {
  if (!socket || held.has(socket) || socket.destroyed) return;
  socket.cork();
  const uncork = socket.uncork;
  held.set(socket, { socket, uncork });
  // Keep the socket corked by us until the end of the turn; inner cork/uncork pairs still balance.
  socket.uncork = function heldUncork(this: Socket): void {
    if (this.writableCorked > 1) uncork.call(this);
  };
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
