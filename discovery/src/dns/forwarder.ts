/**
 * Forwarding of names outside our zone to configured upstream resolvers.
 * Each query gets a fresh random ID; a reply is accepted only from the
 * upstream it was sent to, with that ID and the same question, so forwarding
 * cannot be used to plant answers. Upstreams are tried in order on timeout.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { RCODE, errorAnswer, type Query } from './wire.js';
import type { Transport } from './responder.js';

export interface Upstream {
  host: string;
  port: number;
}

interface Pending {
  upstream: Upstream;
  question: Buffer;
  resolve(reply: Buffer | undefined): void;
  timer: NodeJS.Timeout;
}

/** "10.0.0.2", "10.0.0.2:5353", "[::1]:53" → host and port. */
export function parseUpstream(text: string): Upstream {
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(text);
  if (v6 && net.isIPv6(v6[1]!)) return { host: v6[1]!, port: v6[2] ? Number(v6[2]) : 53 };
  const v4 = /^([0-9.]+)(?::(\d+))?$/.exec(text);
  if (v4 && net.isIPv4(v4[1]!) && (!v4[2] || Number(v4[2]) <= 65535)) return { host: v4[1]!, port: v4[2] ? Number(v4[2]) : 53 };
  if (net.isIPv6(text)) return { host: text, port: 53 };
  throw new Error(`upstream "${text}" must be an IP address with an optional port (e.g. 10.0.0.2:53 or [fd00::1]:53)`);
}

export class Forwarder {
  private readonly pending = new Map<number, Pending>();
  private sockets: { udp4?: dgram.Socket; udp6?: dgram.Socket } = {};
  private closed = false;

  constructor(
    private readonly upstreams: Upstream[],
    private readonly timeoutMs: number,
  ) {}

  get enabled(): boolean {
    return this.upstreams.length > 0;
  }

  /** The upstream's answer with the client's ID, or SERVFAIL when no upstream answered. */
  async forward(msg: Buffer, q: Query, transport: Transport): Promise<Buffer> {
    const question = msg.subarray(12, q.questionEnd);
    for (const upstream of this.upstreams) {
      if (this.closed) break;
      let reply = await this.udp(msg, question, upstream).catch(() => undefined);
      // A truncated answer is only worth fetching in full for a client that can take it.
      if (reply && transport === 'tcp' && reply[2]! & 0x02) reply = await this.tcp(msg, upstream).catch(() => undefined);
      if (reply) {
        reply[0] = msg[0]!;
        reply[1] = msg[1]!;
        return reply;
      }
    }
    return errorAnswer(q.id, q.flags, RCODE.SERVFAIL, true);
  }

  private socket(host: string): dgram.Socket {
    const type = net.isIPv6(host) ? 'udp6' : 'udp4';
    let s = this.sockets[type];
    if (!s) {
      s = dgram.createSocket(type);
      s.on('message', (m, rinfo) => this.onReply(m, rinfo));
      s.on('error', () => undefined);
      s.unref();
      this.sockets[type] = s;
    }
    return s;
  }

  private onReply(m: Buffer, rinfo: dgram.RemoteInfo): void {
    if (m.length < 12) return;
    const id = m.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p || rinfo.address !== p.upstream.host || rinfo.port !== p.upstream.port) return;
    const replyQuestion = m.subarray(12, 12 + p.question.length);
    if (!replyQuestion.equals(p.question)) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(Buffer.from(m));
  }

  private udp(msg: Buffer, question: Buffer, upstream: Upstream): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      let id = randomInt(0x10000);
      for (let tries = 0; this.pending.has(id) && tries < 16; tries++) id = randomInt(0x10000);
      if (this.pending.has(id)) return resolve(undefined);
      const out = Buffer.from(msg);
      out.writeUInt16BE(id, 0);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, this.timeoutMs);
      this.pending.set(id, { upstream, question: Buffer.from(question), resolve, timer });
      this.socket(upstream.host).send(out, upstream.port, upstream.host, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(undefined);
      });
    });
  }

  private tcp(msg: Buffer, upstream: Upstream): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: upstream.host, port: upstream.port });
      let buf = Buffer.alloc(0);
      const done = (reply: Buffer | undefined): void => {
        clearTimeout(timer);
        sock.destroy();
        resolve(reply);
      };
      const timer = setTimeout(() => done(undefined), this.timeoutMs);
      sock.on('error', () => done(undefined));
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(msg.length);
        sock.end(Buffer.concat([len, msg]));
      });
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
      sock.on('end', () => done(undefined));
    });
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
    this.pending.clear();
    this.sockets.udp4?.close();
    this.sockets.udp6?.close();
    this.sockets = {};
  }
}
