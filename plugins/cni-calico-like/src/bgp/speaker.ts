/**
 * The host's BGP speaker: one supervised exabgp, driven through its API
 * process (a bridge to a unix socket this daemon serves). It announces this
 * host's prefixes with next-hop self, reads peers' updates and programs them
 * into the kernel (RouteProgrammer, own protocol number), drops a peer's
 * routes when its session goes down, and follows peer-set changes (master's
 * agent list, static peers, reflectors, external peers) by reloading exabgp
 * (its `reload` API command: sessions of unchanged peers stay up).
 */
import type { ClientTls } from '../../../../contracts/client/tls.js';
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../../../common/log.js';
import type { Cidr } from '../../../../common/netkit/ipv4.js';
import type { BgpConfig } from '../daemon/config.js';
import type { RouteProgrammer } from '../dataplane/routes.js';
import { BRIDGE_SOURCE, announceCommand, exabgpEnv, parseExabgpLine, renderExabgpConfig, withdrawCommand, type ExabgpEvent, type Neighbor } from './exabgp.js';
import { desiredNeighbors, MasterMesh } from './peers.js';
import { Rib, type RouteChanges } from './rib.js';
import { Supervisor } from './supervisor.js';

interface SpeakerOptions {
  config: BgpConfig;
  /** CA (and client certificate) for an https master the mesh is learned from. */
  masterTls?: ClientTls | undefined;
  dir: string;
  pools: Cidr[];
  routes: RouteProgrammer;
  log: Logger;
  /** Prefixes this host originates (owned blocks, borrowed /32s). */
  own(): ReadonlySet<string>;
  /** How long a restarted session has to re-announce before its old routes are dropped. */
  staleGraceMs?: number;
}

export interface SessionInfo {
  peer: string;
  state: string;
  since: number;
  reason?: string;
}

export class BgpSpeaker {
  readonly rib: Rib;
  private readonly supervisor: Supervisor;
  private readonly server: Server;
  private readonly paths;
  private conn: Socket | undefined;
  private neighbors: Neighbor[] = [];
  private mesh: MasterMesh | undefined;
  private readonly sessionsByPeer = new Map<string, SessionInfo>();
  private announced = new Set<string>();
  private applying: Promise<void> = Promise.resolve();
  private readonly staleTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private bootSweep: ReturnType<typeof setTimeout> | undefined;
  private reloadPending = false;

  private constructor(private readonly o: SpeakerOptions) {
    const c = o.config;
    this.paths = {
      config: join(o.dir, 'exabgp.conf'),
      pid: join(o.dir, 'exabgp.pid'),
      log: join(o.dir, 'exabgp.log'),
      bridge: join(o.dir, 'bridge.py'),
      socket: join(o.dir, 'api.sock'),
    };
    this.rib = new Rib({ pools: o.pools, own: o.own, localAddress: c.localAddress! });
    this.server = createServer((sock) => this.onBridge(sock));
    this.supervisor = new Supervisor({
      name: 'exabgp',
      command: c.exabgp,
      args: [this.paths.config],
      env: exabgpEnv({ pidFile: this.paths.pid, bind: c.localAddress! }),
      pidFile: this.paths.pid,
      logFile: this.paths.log,
      marker: this.paths.config,
      initialBackoffMs: c.restart.initialMs,
      maxBackoffMs: c.restart.maxMs,
      log: o.log,
      onExit: () => {
        for (const s of this.sessionsByPeer.values()) s.state = 'down';
      },
    });
  }

  static async start(o: SpeakerOptions): Promise<BgpSpeaker> {
    const s = new BgpSpeaker(o);
    await s.boot();
    return s;
  }

  private async boot(): Promise<void> {
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    writeFileSync(this.paths.bridge, BRIDGE_SOURCE, { mode: 0o600 });
    rmSync(this.paths.socket, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.paths.socket, () => resolve());
    });
    chmodSync(this.paths.socket, 0o600);
    // Routes a previous run left in the kernel stay until the sessions had time to confirm them.
    const grace = this.o.staleGraceMs ?? (this.o.config.holdTime + 3) * 1000;
    this.bootSweep = setTimeout(() => {
      void this.o.routes.sweepLearned(new Set(this.rib.routes().keys())).then((removed) => {
        if (removed.length) this.o.log.info({ removed }, 'removed learned routes nobody announces any more');
      });
    }, grace);
    this.bootSweep.unref();
    this.neighbors = desiredNeighbors(this.o.config, []);
    if (this.o.config.master) {
      this.mesh = new MasterMesh(this.o.config.master, this.o.log, (hosts) => this.setNeighbors(desiredNeighbors(this.o.config, hosts)), this.o.masterTls);
      // Start exabgp with the mesh already known when the master answers quickly: no reload while sessions come up.
      const first = await this.mesh.initial(2000);
      if (first) this.neighbors = desiredNeighbors(this.o.config, first);
    }
    this.writeConfig();
    this.supervisor.start();
    this.mesh?.start();
  }

  private writeConfig(): void {
    const c = this.o.config;
    writeFileSync(
      this.paths.config,
      renderExabgpConfig({
        localAddress: c.localAddress!,
        routerId: c.routerId ?? c.localAddress!,
        localAs: c.asn,
        holdTime: c.holdTime,
        neighbors: this.neighbors,
        processCommand: [c.python, this.paths.bridge, this.paths.socket],
      }),
      { mode: 0o600 },
    );
  }

  /** Replaces the peer set; exabgp reloads its configuration (sessions of unchanged peers stay up). */
  setNeighbors(next: Neighbor[]): void {
    const key = (l: Neighbor[]): string => l.map((n) => `${n.address}:${n.peerAs}`).join(',');
    if (key(next) === key(this.neighbors)) return;
    const gone = this.neighbors.filter((n) => !next.some((m) => m.address === n.address));
    this.neighbors = next;
    this.writeConfig();
    this.o.log.info({ neighbors: next.map((n) => n.address) }, 'BGP peers changed; reloading exabgp');
    // Through the API, not SIGUSR1: a signal that arrives while exabgp is still starting kills it.
    // Without a connection the reload waits; exabgp may already have read the old file.
    if (this.conn) this.send('reload');
    else this.reloadPending = true;
    for (const n of gone) {
      this.sessionsByPeer.delete(n.address);
      this.apply(this.rib.peerDown(n.address));
    }
  }

  /** Makes the announced set exactly `prefixes`. */
  setAnnouncements(prefixes: Iterable<string>): void {
    const want = new Set(prefixes);
    for (const p of want) if (!this.announced.has(p)) this.send(announceCommand(p));
    for (const p of this.announced) if (!want.has(p)) this.send(withdrawCommand(p));
    this.announced = want;
    this.apply(this.rib.refilter());
  }

  private send(line: string): void {
    this.conn?.write(`${line}\n`);
  }

  private onBridge(sock: Socket): void {
    this.conn?.destroy();
    this.conn = sock;
    this.o.log.info('exabgp API process connected');
    if (this.reloadPending) {
      this.reloadPending = false;
      this.send('reload');
    }
    for (const p of this.announced) this.send(announceCommand(p));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 16 * 1024 * 1024) {
        this.o.log.error('exabgp sent an oversized line; dropping the connection');
        sock.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const ev = parseExabgpLine(line);
        if (ev) this.onEvent(ev);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (this.conn === sock) this.conn = undefined;
    });
  }

  private onEvent(ev: ExabgpEvent): void {
    if (ev.kind === 'state') {
      this.sessionsByPeer.set(ev.peer, { peer: ev.peer, state: ev.state, since: Date.now(), ...(ev.reason ? { reason: ev.reason } : {}) });
      if (ev.state === 'down') {
        this.clearStaleTimer(ev.peer);
        const changes = this.rib.peerDown(ev.peer);
        if (changes.size) this.o.log.info({ peer: ev.peer, routes: changes.size }, 'peer down: dropping its routes');
        this.apply(changes);
      } else if (ev.state === 'up') {
        this.rib.markStale(ev.peer);
        this.clearStaleTimer(ev.peer);
        const t = setTimeout(() => this.apply(this.rib.sweepStale(ev.peer)), (this.o.config.holdTime + 3) * 1000);
        t.unref();
        this.staleTimers.set(ev.peer, t);
        for (const p of this.announced) this.send(announceCommand(p, ev.peer));
      }
    } else if (ev.kind === 'update') {
      const changes: RouteChanges = new Map();
      for (const w of ev.withdraw) for (const [k, v] of this.rib.withdraw(ev.peer, w)) changes.set(k, v);
      for (const a of ev.announce) for (const [k, v] of this.rib.announce(ev.peer, a.prefix, a.nexthop)) changes.set(k, v);
      this.apply(changes);
    } else if (ev.kind === 'eor') {
      this.clearStaleTimer(ev.peer);
      this.apply(this.rib.sweepStale(ev.peer));
    }
  }

  private clearStaleTimer(peer: string): void {
    const t = this.staleTimers.get(peer);
    if (t) clearTimeout(t);
    this.staleTimers.delete(peer);
  }

  /** Applies route changes to the kernel in order. */
  private apply(changes: RouteChanges): void {
    if (!changes.size) return;
    const list = [...changes];
    this.applying = this.applying.then(async () => {
      for (const [prefix, nexthop] of list) await this.o.routes.setLearned(prefix, nexthop);
    });
  }

  /** Resolves once every route change so far is in the kernel. */
  settled(): Promise<void> {
    return this.applying;
  }

  sessions(): SessionInfo[] {
    return this.neighbors.map((n) => this.sessionsByPeer.get(n.address) ?? { peer: n.address, state: 'idle', since: 0 });
  }

  established(): number {
    return this.sessions().filter((s) => s.state === 'up').length;
  }

  get peerCount(): number {
    return this.neighbors.length;
  }

  get exabgpPid(): number | undefined {
    return this.supervisor.pid;
  }

  get exabgpRestarts(): number {
    return this.supervisor.restarts;
  }

  async stop(): Promise<void> {
    if (this.bootSweep) clearTimeout(this.bootSweep);
    for (const t of this.staleTimers.values()) clearTimeout(t);
    await this.mesh?.stop();
    await this.supervisor.stop();
    this.conn?.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.paths.socket, { force: true });
    await this.applying.catch(() => undefined);
  }
}
