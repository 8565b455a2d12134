/**
 * Open TLS connections' buffers are not garbage: take them out of V8's count
 * of external memory.
 *
 * Node reports each TLS connection's buffers to V8 as external memory: a
 * 64 KB read buffer from its first read, and write buffers that keep the size
 * of the largest burst written — 114 KB per connection after the handshake,
 * ~140 KB once events have flowed (node 20). V8 starts a full collection each
 * time that count has grown by 64 MB, to free what JS objects hold. No
 * collection can free these: they are released when the connection closes
 * (2,000 connections: 276 MB → 10 MB at close, with no collection between).
 * A master holding one connection per agent ran 23 full collections while
 * 10,000 agents connected and four more during a placement, their marking
 * threads taking ~1.3 s of CPU.
 *
 * So a server (and a client that holds thousands: clientTlsBufferDiscount) takes out of V8's
 * count, every few milliseconds, what it has grown by since the first connection, up to
 * PER_CONNECTION bytes per open TLS connection. The bound is above the buffers' size, so other
 * growth within what is left of it (Buffers kept past two scavenges) is taken out too; beyond the
 * bound, growth stays in the count and is collected as before.
 * The count is read and adjusted through native/memory; without that addon,
 * or with CORRAL_TLS_BUFFER_DISCOUNT=0 in the environment, nothing changes.
 */
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { externalMemory, type ExternalMemory } from '../../native/lib/external-memory.js';
import type { Metrics } from '../metrics.js';

/** The most taken out of the count per open connection: above the ~140 KB measured, below what bursts of MBs grow to. */
export const PER_CONNECTION = 160 * 1024;
/**
 * How often the count is looked at. V8 starts a collection after 64 MB of growth; a busy master's
 * connections grew by up to 35 MB between two looks meant to be 100 ms apart (10,000 agents being
 * handed 100,000 tasks, the event loop busy), so while the count moves it is looked at every 20 ms,
 * and every 200 ms once it is still.
 */
export const DISCOUNT_INTERVAL_MS = { moving: 20, still: 200 };
/** A look that changed the count by more than this (bytes) makes the next come sooner. */
const MOVING = 1024 * 1024;

/** The pure core: how far to adjust V8's count, given what it reads and how many connections are open. */
export class TlsBufferDiscount {
  /** Bytes taken out of V8's count now. */
  private taken = 0;

  /** @param baseline V8's count when the first connection opened. */
  constructor(
    private readonly baseline: number,
    private readonly perConnection = PER_CONNECTION,
  ) {}

  get discounted(): number {
    return this.taken;
  }

  /** The adjustment to make (negative takes out, positive gives back), given V8's count now and the open connections. */
  next(reported: number, openConnections: number): number {
    const grown = reported + this.taken - this.baseline;
    const target = Math.max(0, Math.min(grown, openConnections * this.perConnection));
    const delta = this.taken - target;
    this.taken = target;
    return delta;
  }
}

interface State {
  memory: ExternalMemory;
  discount: TlsBufferDiscount;
  open: number;
  timer?: NodeJS.Timeout;
}

/** The registries that have the gauge already (a daemon may serve on several sockets). */
const gauged = new WeakSet<Metrics>();

// One per process: V8's count is the isolate's, shared by every server in it.
let state: State | undefined;

function look(s: State): void {
  s.timer = undefined;
  const delta = s.discount.next(s.memory.adjust(0), s.open);
  if (delta !== 0) s.memory.adjust(delta);
  if (s.open > 0 || s.discount.discounted > 0) schedule(s, Math.abs(delta) > MOVING ? DISCOUNT_INTERVAL_MS.moving : DISCOUNT_INTERVAL_MS.still);
}

function schedule(s: State, ms: number): void {
  s.timer = setTimeout(() => look(s), ms);
  s.timer.unref();
}

/** The addon when the discount is on; otherwise why it is off (not built, did not load, or CORRAL_TLS_BUFFER_DISCOUNT=0). */
function discountMemory(): { memory: ExternalMemory } | { reason: string } {
  if (process.env.CORRAL_TLS_BUFFER_DISCOUNT === '0') return { reason: 'CORRAL_TLS_BUFFER_DISCOUNT=0' };
  return externalMemory();
}

/** Count one open TLS connection until it closes. */
function track(memory: ExternalMemory, socket: TLSSocket): void {
  const s = (state ??= { memory, discount: new TlsBufferDiscount(memory.adjust(0)), open: 0 });
  s.open++;
  socket.once('close', () => s.open--);
  if (!s.timer) schedule(s, DISCOUNT_INTERVAL_MS.moving);
}

/**
 * Discount the buffers of this server's open TLS connections. Undefined when it does; otherwise why
 * not (the addon is not built or did not load, or CORRAL_TLS_BUFFER_DISCOUNT=0), and nothing is done.
 */
export function discountTlsBuffers(server: TlsServer, metrics?: Metrics): string | undefined {
  const on = discountMemory();
  if (!('memory' in on)) return on.reason;
  if (metrics && !gauged.has(metrics)) {
    gauged.add(metrics);
    metrics.gauge('tls_buffer_bytes_discounted', "Bytes of open TLS connections' buffers taken out of V8's external memory count", [], (g) => g.set(tlsBufferDiscount().discounted));
  }
  server.on('secureConnection', (socket: TLSSocket) => track(on.memory, socket));
  return undefined;
}

/**
 * The same for a client's connections, in a process that holds thousands of them (the placement
 * bench's simulated agents): the function to call with each connected TLS socket, or why the
 * discount is off.
 */
export function clientTlsBufferDiscount(): ((socket: TLSSocket) => void) | string {
  const on = discountMemory();
  if (!('memory' in on)) return on.reason;
  return (socket) => track(on.memory, socket);
}

/** What is discounted now, and over how many open connections. */
export function tlsBufferDiscount(): { discounted: number; open: number } {
  return { discounted: state?.discount.discounted ?? 0, open: state?.open ?? 0 };
}
