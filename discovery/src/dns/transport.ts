/**
 * DNS over UDP and TCP around a Responder. UDP answers that do not fit the
 * client's limit go out truncated (TC=1) and the client retries over TCP,
 * where messages carry a two-byte length prefix (RFC 1035 §4.2.2, RFC 7766).
 */
import type dgram from 'node:dgram';
import net from 'node:net';
import type { DnsStats, Responder } from './responder.js';
import { loadDnsAddon, tableKey, type DnsAddon, type NativeUdpServer } from './fastpath.js';
import type { Forwarder } from './forwarder.js';

/** Who reads the UDP socket, and the answers it made that the responder did not count. */
export interface UdpServing {
  readonly kind: 'native' | 'dgram';
  /** Why the native path is not serving (kind 'dgram' only). */
  readonly reason?: string;
  stats(): Partial<DnsStats>;
  /** Stop reading (before the socket closes). */
  stop(): void;
}

interface UdpOptions {
  /** Try the native recvmmsg/sendmmsg path first (see fastpath.ts). */
  fastPath: boolean;
  maxUdpPayload: number;
}

/** Attach query handling to a bound UDP socket: the native fast path when it loads, else node:dgram. */
export function serveUdp(socket: dgram.Socket, responder: Responder, forwarder: Forwarder | undefined, opts: UdpOptions): UdpServing {
  let reason = 'switched off (dns fastPath: false or CORRAL_DNS_FAST_PATH=0)';
  if (opts.fastPath) {
    const loaded = loadDnsAddon();
    if ('addon' in loaded) {
      const handle = udpHandle(socket);
      if (handle) return serveNative(loaded.addon, handle, socket, responder, forwarder, opts);
      reason = 'the UDP socket has no descriptor to hand over';
    } else {
      reason = loaded.reason;
    }
  }
  serveDgram(socket, responder, forwarder);
  return { kind: 'dgram', reason, stats: () => ({}), stop: () => undefined };
}

function serveDgram(socket: dgram.Socket, responder: Responder, forwarder: Forwarder | undefined): void {
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

interface UvUdpHandle {
  fd: number;
  recvStop(): number;
}

/** The libuv handle under a dgram socket (Node keeps it behind its state symbol). */
function udpHandle(socket: dgram.Socket): UvUdpHandle | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = sym ? (socket as unknown as Record<symbol, { handle?: UvUdpHandle } | undefined>)[sym] : undefined;
  const h = state?.handle;
  return h && typeof h.fd === 'number' && h.fd >= 0 && typeof h.recvStop === 'function' ? h : undefined;
}

/**
 * The native path: its thread answers every query whose template the
 * responder has built (the table mirrors the responder's cache: filled as
 * templates are built, emptied when names change), and passes the rest up
 * here in batches; their answers leave in one sendmmsg per batch.
 */
function serveNative(addon: DnsAddon, handle: UvUdpHandle, socket: dgram.Socket, responder: Responder, forwarder: Forwarder | undefined, opts: UdpOptions): UdpServing {
  let stopped = false;
  const server: NativeUdpServer = new addon.UdpServer(handle.fd, opts.maxUdpPayload, (msgs, addrs) => {
    if (stopped) return;
    const outs: Buffer[] = [];
    const to: Buffer[] = [];
    for (let i = 0; i < msgs.length; i++) {
      const msg = msgs[i]!;
      const out = responder.answer(msg, 'udp');
      if (out === undefined) continue;
      if (Buffer.isBuffer(out)) {
        outs.push(out);
        to.push(addrs[i]!);
        continue;
      }
      if (!forwarder) continue;
      const addr = addrs[i]!;
      void forwarder.forward(msg, out.forward, 'udp').then((reply) => {
        if (!stopped) server.send([reply], [addr]);
      });
    }
    if (outs.length) server.send(outs, to);
  });
  responder.listener = {
    built: (nameKey, slot, t) => server.install(tableKey(nameKey, slot), t.rcode, t.variants, t.truncated, t.rot),
    reset: () => server.clear(),
  };
  // libuv stops reading; the socket stays open (and bound) for the thread and for close().
  handle.recvStop();
  socket.on('error', () => undefined);
  server.start();
  return {
    kind: 'native',
    stats: () => server.stats(),
    stop: () => {
      if (stopped) return;
      stopped = true;
      responder.listener = undefined;
      server.stop();
    },
  };
}

/** Adds the counters of `from` to `into`. */
export function addStats(into: DnsStats, from: Partial<DnsStats>): DnsStats {
  for (const [k, v] of Object.entries(from) as Array<[keyof DnsStats, number]>) into[k] += v;
  return into;
}

export interface TcpOptions {
  /** Close a connection idle for this long (RFC 7766 suggests seconds, not minutes). */
  idleMs: number;
  /** Connections served at once by this process; more are refused so a flood cannot exhaust descriptors. */
  maxConnections: number;
}

/** A TCP DNS server: length-prefixed messages, several per connection, answered in order. */
export function createTcpServer(responder: Responder, forwarder: Forwarder | undefined, opts: TcpOptions): net.Server {
  return serveTcp(net.createServer(), responder, forwarder, opts);
}

/**
 * Serve DNS over TCP on a server (a fresh one, or the primary's listening
 * socket handed to a worker: the kernel gives each connection to one
 * process). Every query that a read brought in is answered, and all those
 * answers leave in one write: a client pipelining queries (RFC 7766 §6.2.1)
 * costs one syscall per read, not one per answer.
 */
export function serveTcp(server: net.Server, responder: Responder, forwarder: Forwarder | undefined, opts: TcpOptions): net.Server {
  const open = new Set<net.Socket>();
  server.on('connection', (sock: net.Socket) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    sock.setNoDelay(true);
    sock.setTimeout(opts.idleMs, () => sock.destroy());
    sock.on('error', () => undefined);
    let buf: Buffer = EMPTY;
    // Set while a forwarded answer is outstanding: later answers wait behind it, so order holds.
    let chain: Promise<void> | undefined;
    const after = (step: () => void | Promise<void>): void => {
      const mine: Promise<void> = (chain ?? Promise.resolve()).then(step);
      chain = mine;
      void mine.then(() => {
        if (chain === mine) chain = undefined;
      });
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const ready: Buffer[] = [];
      let bytes = 0;
      let off = 0;
      while (buf.length - off >= 2) {
        const len = buf.readUInt16BE(off);
        if (buf.length - off < 2 + len) break;
        const msg = buf.subarray(off + 2, off + 2 + len);
        off += 2 + len;
        const out = responder.answer(msg, 'tcp');
        if (out === undefined) {
          // Not a query we answer (too short, or a response): a TCP peer sending that is broken.
          sock.destroy();
          return;
        }
        if (Buffer.isBuffer(out)) {
          if (chain) after(() => write(sock, [out], out.length));
          else {
            ready.push(out);
            bytes += out.length;
          }
          continue;
        }
        if (!forwarder) continue;
        // Answers already made go out first, then this one when the upstream replies.
        if (ready.length) {
          write(sock, ready.splice(0), bytes);
          bytes = 0;
        }
        const copy = Buffer.from(msg);
        after(() => forwarder.forward(copy, out.forward, 'tcp').then((reply) => write(sock, [reply], reply.length)));
      }
      // Keep only the unread tail (copied, so the chunk it came in can be freed).
      buf = off === buf.length ? EMPTY : off === 0 ? buf : Buffer.from(buf.subarray(off));
      if (ready.length) write(sock, ready, bytes);
    });
  });
  server.maxConnections = opts.maxConnections;
  // close() waits for open connections; the owner asks for them to be cut with this event.
  server.on('corral:close-connections', () => {
    for (const s of open) s.destroy();
  });
  return server;
}

const EMPTY = Buffer.alloc(0);

/** One write of several answers, each behind its two-byte length (RFC 1035 §4.2.2). */
function write(sock: net.Socket, answers: Buffer[], bytes: number): void {
  if (sock.destroyed) return;
  const out = Buffer.allocUnsafe(bytes + 2 * answers.length);
  let at = 0;
  for (const a of answers) {
    out.writeUInt16BE(a.length, at);
    a.copy(out, at + 2);
    at += 2 + a.length;
  }
  sock.write(out);
}
