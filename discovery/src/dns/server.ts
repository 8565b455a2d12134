/**
 * The DNS server of a discovery daemon: one UDP socket and one TCP listener
 * in this process, plus optional worker processes that serve the same UDP
 * socket and TCP listener so queries use every core. Names change here first, then in every
 * worker (one IPC message per batch of changes).
 */
import dgram from 'node:dgram';
import net, { type AddressInfo } from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CorralError, errorMessage } from '../../../contracts/errors.js';
import type { Logger } from '../../../common/log.js';
import { Responder, emptyStats, type DnsStats, type ResponderOptions } from './responder.js';
import { Forwarder, type Upstream } from './forwarder.js';
import { addStats, createTcpServer, serveUdp, type UdpServing } from './transport.js';
import { fastPathWanted } from './fastpath.js';
import type { NameDelta } from './zone.js';
import type { FromWorker, ToWorker } from './worker.js';

export interface DnsServerOptions extends ResponderOptions {
  host: string;
  port: number;
  domain: string;
  datacenter: string;
  upstreams: Upstream[];
  forwardTimeoutMs: number;
  /** Extra processes reading the UDP socket. */
  workers: number;
  tcpIdleMs: number;
  tcpMaxConnections: number;
  /** The native recvmmsg/sendmmsg UDP path when its addon is built (default); false (or CORRAL_DNS_FAST_PATH=0) keeps node:dgram. */
  fastPath?: boolean;
  log: Logger;
}

interface WorkerHandle {
  child: ChildProcess;
  stats: DnsStats;
  ready: Promise<void>;
}

const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** How to start a worker: its module, through tsx when we run from TypeScript sources. */
function workerEntry(): { path: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const path = fileURLToPath(new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url));
  const execArgv = fromSource ? ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href] : [];
  return { path, execArgv };
}

export class DnsServer {
  readonly responder: Responder;
  private readonly forwarder: Forwarder | undefined;
  private readonly workers: WorkerHandle[] = [];
  private udp!: dgram.Socket;
  private udpServing: UdpServing | undefined;
  private tcp!: net.Server;
  private seq = 0;
  private closing = false;

  private constructor(private readonly opts: DnsServerOptions) {
    this.responder = new Responder(opts.domain, opts.datacenter, opts);
    this.forwarder = opts.upstreams.length ? new Forwarder(opts.upstreams, opts.forwardTimeoutMs) : undefined;
  }

  static async start(opts: DnsServerOptions, names: NameDelta[] = []): Promise<DnsServer> {
    const s = new DnsServer(opts);
    s.responder.apply(names);
    await s.listen();
    try {
      for (let i = 0; i < opts.workers; i++) s.spawn();
      await Promise.all(s.workers.map((w) => w.ready));
    } catch (err) {
      await s.close();
      throw err;
    }
    return s;
  }

  /**
   * UDP and TCP on one port. With port 0 the kernel picks a UDP port whose
   * number may already be taken for TCP: then both are tried again on a
   * new port.
   */
  private async listen(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.listenOnce();
        return;
      } catch (err) {
        const inUse = (err as CorralError).details?.errno === 'EADDRINUSE';
        if (this.opts.port !== 0 || !inUse || attempt >= 10) throw err;
      }
    }
  }

  private async listenOnce(): Promise<void> {
    const type = net.isIPv6(this.opts.host) ? 'udp6' : 'udp4';
    this.udp = dgram.createSocket({ type, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
    await new Promise<void>((resolve, reject) => {
      this.udp.once('error', reject);
      this.udp.bind(this.opts.port, this.opts.host, () => {
        this.udp.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new CorralError('UNAVAILABLE', `cannot bind DNS UDP ${this.opts.host}:${this.opts.port}: ${errorMessage(err)}`);
    });
    this.udpServing = serveUdp(this.udp, this.responder, this.forwarder, { fastPath: fastPathWanted(this.opts.fastPath), maxUdpPayload: this.opts.maxUdpPayload });
    this.tcp = createTcpServer(this.responder, this.forwarder, { idleMs: this.opts.tcpIdleMs, maxConnections: this.opts.tcpMaxConnections });
    // TCP takes the port UDP got (which may have been chosen by the kernel).
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen(this.port, this.opts.host, () => {
        this.tcp.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      const port = this.port;
      this.udpServing?.stop();
      this.udp.close();
      throw new CorralError('UNAVAILABLE', `cannot listen for DNS on TCP ${this.opts.host}:${port}: ${errorMessage(err)}`, { errno: (err as NodeJS.ErrnoException).code });
    });
    const serving = this.udpServing!;
    if (serving.kind === 'native') this.opts.log.info({ port: this.port }, 'DNS over UDP served by the native recvmmsg/sendmmsg path (corral_dns.node)');
    else this.opts.log.info({ port: this.port, reason: serving.reason }, 'DNS over UDP served by node:dgram');
  }

  get port(): number {
    return (this.udp.address() as AddressInfo).port;
  }

  /** Which path reads this process's UDP socket. */
  get udpPath(): 'native' | 'dgram' {
    return this.udpServing?.kind ?? 'dgram';
  }

  get workerPids(): number[] {
    return this.workers.map((w) => w.child.pid).filter((p): p is number => p !== undefined);
  }

  private spawn(): WorkerHandle {
    const entry = workerEntry();
    const child = fork(entry.path, [], { execArgv: entry.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const handle: WorkerHandle = { child, stats: emptyStats(), ready: Promise.resolve() };
    handle.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new CorralError('UNAVAILABLE', 'DNS worker did not start within 20 s')), 20_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new CorralError('UNAVAILABLE', `DNS worker failed: ${errorMessage(err)}`));
      });
      child.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (m.type === 'stats') {
          handle.stats = m.stats;
        }
      });
    });
    handle.ready.catch(() => undefined);
    const init: ToWorker = {
      type: 'init',
      domain: this.opts.domain,
      datacenter: this.opts.datacenter,
      fastPath: fastPathWanted(this.opts.fastPath),
      options: { ttl: this.opts.ttl, maxUdpPayload: this.opts.maxUdpPayload, recursionAvailable: this.opts.recursionAvailable, maxRotations: this.opts.maxRotations, forwarding: this.opts.forwarding },
      upstreams: this.opts.upstreams,
      forwardTimeoutMs: this.opts.forwardTimeoutMs,
      names: this.responder.zone.entries(),
    };
    child.send(init);
    child.send({ type: 'socket' } satisfies ToWorker, this.udp);
    child.send({ type: 'tcp', options: { idleMs: this.opts.tcpIdleMs, maxConnections: this.opts.tcpMaxConnections } } satisfies ToWorker, this.tcp);
    child.once('exit', (code, signal) => {
      const i = this.workers.indexOf(handle);
      if (i >= 0) this.workers.splice(i, 1);
      if (this.closing) return;
      // The socket is still served here; a replacement restores the lost capacity.
      this.opts.log.error({ pid: child.pid, code, signal }, 'DNS worker exited; starting another');
      this.spawn();
    });
    this.workers.push(handle);
    return handle;
  }

  /** New or changed names: served here at once, by workers one IPC hop later. */
  apply(deltas: NameDelta[]): void {
    if (deltas.length === 0) return;
    this.responder.apply(deltas);
    const msg: ToWorker = { type: 'delta', deltas, seq: ++this.seq };
    for (const w of this.workers) if (w.child.connected) w.child.send(msg);
  }

  /** Counters summed over this process and the workers (a worker's figures are as of the previous call: each call asks for fresh ones). */
  stats(): DnsStats {
    const total = addStats({ ...this.responder.stats }, this.udpServing?.stats() ?? {});
    for (const w of this.workers) {
      if (w.child.connected) w.child.send({ type: 'stats' } satisfies ToWorker);
      for (const k of Object.keys(total) as Array<keyof DnsStats>) total[k] += w.stats[k];
    }
    return total;
  }

  async close(): Promise<void> {
    this.closing = true;
    const workers = [...this.workers];
    for (const w of workers) {
      w.child.kill('SIGTERM');
      if (w.child.connected) w.child.disconnect();
    }
    await Promise.all(workers.map((w) => (w.child.exitCode !== null || w.child.signalCode !== null ? undefined : new Promise((r) => w.child.once('exit', r)))));
    this.forwarder?.close();
    this.udpServing?.stop();
    await new Promise<void>((resolve) => {
      this.tcp.close(() => resolve());
      this.tcp.emit('corral:close-connections');
    });
    await new Promise<void>((resolve) => {
      try {
        this.udp.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
