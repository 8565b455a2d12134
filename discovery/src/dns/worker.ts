/**
 * A DNS worker process: shares the primary's UDP socket (the kernel hands
 * each datagram to one reader) and its TCP listener (each connection goes to
 * one process), and answers from its own copy of the names,
 * kept current by the deltas the primary sends. It exits when the primary
 * goes away, so a killed daemon never leaves workers behind.
 */
import type dgram from 'node:dgram';
import type net from 'node:net';
import { Responder, type ResponderOptions } from './responder.js';
import { Forwarder, type Upstream } from './forwarder.js';
import { addStats, serveTcp, serveUdp, type TcpOptions, type UdpServing } from './transport.js';
import type { NameDelta } from './zone.js';

export type ToWorker =
  | { type: 'init'; fastPath: boolean; domain: string; datacenter: string; options: ResponderOptions; upstreams: Upstream[]; forwardTimeoutMs: number; names: NameDelta[] }
  | { type: 'delta'; deltas: NameDelta[]; seq: number }
  | { type: 'socket' }
  | { type: 'tcp'; options: TcpOptions }
  | { type: 'stats' };

export type FromWorker = { type: 'ready' } | { type: 'applied'; seq: number } | { type: 'stats'; stats: Responder['stats'] };

let responder: Responder | undefined;
let forwarder: Forwarder | undefined;
let fastPath = true;
let maxUdpPayload = 1232;
let udp: UdpServing | undefined;
const send = (m: FromWorker): void => {
  process.send?.(m);
};

process.on('message', (m: ToWorker, handle?: dgram.Socket | net.Server) => {
  switch (m.type) {
    case 'init':
      responder = new Responder(m.domain, m.datacenter, m.options);
      fastPath = m.fastPath;
      maxUdpPayload = m.options.maxUdpPayload;
      forwarder = m.upstreams.length ? new Forwarder(m.upstreams, m.forwardTimeoutMs) : undefined;
      responder.apply(m.names);
      break;
    case 'socket':
      if (handle && responder) udp = serveUdp(handle as dgram.Socket, responder, forwarder, { fastPath, maxUdpPayload });
      break;
    case 'tcp':
      // The listener comes after the UDP socket: with both served, the worker is ready.
      if (handle && responder) {
        const server = handle as net.Server;
        server.on('error', () => undefined);
        serveTcp(server, responder, forwarder, m.options);
        send({ type: 'ready' });
      }
      break;
    case 'delta':
      responder?.apply(m.deltas);
      send({ type: 'applied', seq: m.seq });
      break;
    case 'stats':
      if (responder) send({ type: 'stats', stats: addStats({ ...responder.stats }, udp?.stats() ?? {}) });
      break;
  }
});
process.on('disconnect', () => process.exit(0));
