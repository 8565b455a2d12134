/**
 * A fleet of simulated agents in one process (sharing HTTP dispatchers),
 * for the placement benchmark. Prints "ready N" once all have registered.
 * Usage: placement-fleet <master-url> <count> <resources> [channel|http]
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { Agent, Pool, buildConnector } from 'undici';
import { SimAgent } from '../core-scheduler/src/sim/sim-agent.js';
import { clientTlsBufferDiscount } from '../common/http/tls-buffers.js';

const [master, countText, resources, transportText] = process.argv.slice(2);
const count = Number(countText);
const transport = transportText === 'http' ? 'http' : 'channel';

/**
 * With BENCH_TLS_* (placement --tls): HTTPS, each connection presenting the fleet's client certificate.
 * One secure context for them all: given ca/cert/key, node's tls.connect parses the CA, the certificate
 * and the key into a new context for every connection (10,000 agent streams, each a handshake).
 * A real agent holds one connection; this process holds 10,000, and node counts each one's buffers
 * (~114 KB) in V8's external memory, so V8 ran a full collection of the whole fleet for every 64 MB of
 * them: 17 in one run, some during the placement. The fleet takes them out of the count as corral's
 * servers do (common/http/tls-buffers.ts).
 */
const tlsFiles = process.env.BENCH_TLS_CA
  ? { ca: readFileSync(process.env.BENCH_TLS_CA, 'utf8'), cert: readFileSync(process.env.BENCH_TLS_CERT!, 'utf8'), key: readFileSync(process.env.BENCH_TLS_KEY!, 'utf8') }
  : undefined;
const discount = tlsFiles ? clientTlsBufferDiscount() : undefined;
if (typeof discount === 'string') process.stderr.write(`fleet: TLS buffers stay in V8's count: ${discount}\n`);
const discountSocket = typeof discount === 'function' ? (socket: Socket): void => discount(socket as TLSSocket) : undefined;

function connector(): { connect?: buildConnector.connector } {
  if (!tlsFiles) return {};
  const connect = buildConnector({ secureContext: createSecureContext(tlsFiles) });
  if (!discountSocket) return { connect };
  return {
    connect: (options, callback) =>
      connect(options, (...result) => {
        if (result[1]) discountSocket(result[1] as TLSSocket);
        callback(...result);
      }),
  };
}

// Over HTTP (transport http) each agent's event stream holds a connection of its own; the calls (status updates) share a few.
const tls = connector();
const streamDispatcher = new Agent({ connections: null, pipelining: 1, keepAliveTimeout: 600_000, ...tls });
const dispatcher = new Pool(master!, { connections: 32, pipelining: 8, keepAliveTimeout: 600_000, ...tls });
const agents: SimAgent[] = [];

async function main(): Promise<void> {
  const batch = 250;
  for (let i = 0; i < count; i += batch) {
    const group: Promise<string>[] = [];
    for (let j = i; j < Math.min(count, i + batch); j++) {
      const a = new SimAgent({
        master: master!,
        hostname: `fleet-${j}`,
        resources: resources!,
        dispatcher,
        streamDispatcher,
        keepEvents: false,
        transport,
        // The channels' connections: one secure context for all (the agent channel shares one per ClientTls) and the same discount.
        ...(tlsFiles ? { tls: tlsFiles } : {}),
        ...(discountSocket ? { onChannelSocket: discountSocket } : {}),
      });
      agents.push(a);
      group.push(a.start());
    }
    await Promise.all(group);
  }
  process.stdout.write(`ready ${agents.length}\n`);
}

process.on('SIGTERM', () => process.exit(0));
// The agents' sockets and timers do not hold the process open; this does, until SIGTERM.
setInterval(() => undefined, 1 << 30);
main().catch((err) => {
  process.stderr.write(`fleet failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
