/**
 * DNS over UDP and TCP around a Responder. UDP answers that do not fit the
 * client's limit go out truncated (TC=1) and the client retries over TCP,
 * where messages carry a two-byte length prefix (RFC 1035 §4.2.2, RFC 7766).
 */
import type dgram from 'node:dgram';
import net from 'node:net';
import type { Responder } from './responder.js';
import type { Forwarder } from './forwarder.js';

/** Attach query handling to a bound UDP socket. */
export function serveUdp(socket: dgram.Socket, responder: Responder, forwarder: Forwarder | undefined): void {
  socket.on('message', (msg, rinfo) => {
    const out = responder.answer(msg, 'udp');
    if (out === undefined) return;
    if (Buffer.isBuffer(out)) {
      socket.send(out, rinfo.port, rinfo.address);
      return;
    }
    if (!forwarder) return;
    void forwarder.forward(msg, out.forward, 'udp').then((reply) => {
      try {
        socket.send(reply, rinfo.port, rinfo.address);
      } catch {
        // socket closed while the upstream answered
      }
    });
  });
  // ICMP errors from clients that went away surface here; they are not ours to act on.
  socket.on('error', () => undefined);
}

export interface TcpOptions {
  /** Close a connection idle for this long (RFC 7766 suggests seconds, not minutes). */
  idleMs: number;
  /** Connections served at once; more are refused so a flood cannot exhaust descriptors. */
  maxConnections: number;
}

/** A TCP DNS server: length-prefixed messages, several per connection, answered in order. */
export function createTcpServer(responder: Responder, forwarder: Forwarder | undefined, opts: TcpOptions): net.Server {
  const open = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    sock.setNoDelay(true);
    sock.setTimeout(opts.idleMs, () => sock.destroy());
    sock.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    // Answers leave in query order even when a forwarded one takes longer.
    let chain: Promise<void> = Promise.resolve();
    const send = (reply: Buffer): void => {
      if (sock.destroyed) return;
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(reply.length);
      sock.write(Buffer.concat([len, reply]));
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        const out = responder.answer(msg, 'tcp');
        if (out === undefined) {
          // Not a query we answer (too short, or a response): a TCP peer sending that is broken.
          sock.destroy();
          return;
        }
        if (Buffer.isBuffer(out)) chain = chain.then(() => send(out));
        else if (forwarder) chain = chain.then(() => forwarder.forward(msg, out.forward, 'tcp').then(send));
      }
    });
  });
  server.maxConnections = opts.maxConnections;
  // close() waits for open connections; the owner asks for them to be cut with this event.
  server.on('corral:close-connections', () => {
    for (const s of open) s.destroy();
  });
  return server;
}
