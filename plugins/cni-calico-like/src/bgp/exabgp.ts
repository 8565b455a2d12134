/**
 * Talking to exabgp 4.2: its configuration file, the environment that keeps
 * it in our hands (root, no privilege drop, no CLI pipes, our pid file, bound
 * to the underlay address), the bridge its API process runs, and the JSON
 * events it writes (`encoder json`, `receive { parsed; update; }`,
 * `neighbor-changes`). Text in, typed values out; no I/O here.
 */
import { z } from '../../../../common/validate.js';

export interface Neighbor {
  address: string;
  peerAs: number;
  /** Wait for the peer to connect instead of connecting out. */
  passive?: boolean;
}

interface ExabgpConfigInput {
  localAddress: string;
  routerId: string;
  localAs: number;
  holdTime: number;
  neighbors: Neighbor[];
  /** Command line of the API process (the bridge). */
  processCommand: string[];
}

export function renderExabgpConfig(c: ExabgpConfigInput): string {
  const quote = (s: string): string => (/^[A-Za-z0-9_./:=-]+$/.test(s) ? s : `"${s.replace(/["\\]/g, '')}"`);
  const lines = ['process corral {', `  run ${c.processCommand.map(quote).join(' ')};`, '  encoder json;', '}'];
  for (const n of [...c.neighbors].sort((a, b) => a.address.localeCompare(b.address))) {
    lines.push(
      `neighbor ${n.address} {`,
      `  router-id ${c.routerId};`,
      `  local-address ${c.localAddress};`,
      `  local-as ${c.localAs};`,
      `  peer-as ${n.peerAs};`,
      `  hold-time ${c.holdTime};`,
      ...(n.passive ? ['  passive true;'] : []),
      '  api {',
      '    processes [ corral ];',
      '    receive { parsed; update; }',
      '    neighbor-changes;',
      '  }',
      '  family { ipv4 unicast; }',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

export function exabgpEnv(o: { pidFile: string; bind: string }): Record<string, string> {
  return {
    'exabgp.daemon.user': 'root',
    'exabgp.daemon.drop': 'false',
    'exabgp.daemon.daemonize': 'false',
    'exabgp.daemon.pid': o.pidFile,
    'exabgp.api.ack': 'false',
    'exabgp.api.cli': 'false',
    'exabgp.api.respawn': 'true',
    'exabgp.tcp.bind': o.bind,
    'exabgp.log.destination': 'stdout',
    'exabgp.log.level': 'INFO',
  };
}

/**
 * The API process: relays exabgp's stdin/stdout to the daemon's unix socket
 * byte for byte, and exits when either side closes (exabgp restarts it; a
 * daemon restart restarts exabgp). Python because exabgp brings it anyway.
 */
export const BRIDGE_SOURCE = `import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def down():
    while True:
        data = s.recv(65536)
        if not data:
            os._exit(0)
        os.write(1, data)
threading.Thread(target=down, daemon=True).start()
while True:
    data = os.read(0, 65536)
    if not data:
        os._exit(0)
    s.sendall(data)
`;

export const announceCommand = (prefix: string, neighbor?: string): string => `${neighbor ? `neighbor ${neighbor} ` : ''}announce route ${prefix} next-hop self`;
export const withdrawCommand = (prefix: string): string => `withdraw route ${prefix} next-hop self`;

export type ExabgpEvent =
  | { kind: 'state'; peer: string; state: string; reason?: string }
  | { kind: 'update'; peer: string; announce: Array<{ prefix: string; nexthop: string }>; withdraw: string[] }
  /** End-of-RIB: the peer has sent its whole table. */
  | { kind: 'eor'; peer: string }
  | { kind: 'other' };

const neighborSchema = z.object({ address: z.object({ peer: z.string() }) }).passthrough();
const nlriList = z.array(z.object({ nlri: z.string() }).passthrough());
const eventSchema = z
  .object({
    type: z.string(),
    neighbor: neighborSchema
      .extend({
        state: z.string().optional(),
        reason: z.string().optional(),
        message: z
          .object({
            update: z
              .object({
                announce: z
                  .object({ 'ipv4 unicast': z.record(z.string(), nlriList).optional() })
                  .passthrough()
                  .optional(),
                withdraw: z.object({ 'ipv4 unicast': nlriList.optional() }).passthrough().optional(),
              })
              .passthrough()
              .optional(),
            eor: z.object({ afi: z.string() }).passthrough().optional(),
          })
          .passthrough()
          .optional(),
      })
      .optional(),
  })
  .passthrough();

/** One line from exabgp; undefined for lines that are not JSON events (acks, noise). */
export function parseExabgpLine(line: string): ExabgpEvent | undefined {
  const t = line.trim();
  if (!t.startsWith('{')) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(t);
  } catch {
    return undefined;
  }
  const parsed = eventSchema.safeParse(raw);
  if (!parsed.success || !parsed.data.neighbor) return { kind: 'other' };
  const e = parsed.data;
  const peer = e.neighbor!.address.peer;
  if (e.type === 'state' && e.neighbor!.state) {
    return { kind: 'state', peer, state: e.neighbor!.state, ...(e.neighbor!.reason ? { reason: e.neighbor!.reason } : {}) };
  }
  if (e.type === 'update' && e.neighbor!.message?.eor) return { kind: 'eor', peer };
  const update = e.neighbor!.message?.update;
  if (e.type === 'update' && update) {
    const announce: Array<{ prefix: string; nexthop: string }> = [];
    for (const [nexthop, list] of Object.entries(update.announce?.['ipv4 unicast'] ?? {})) {
      for (const n of list) announce.push({ prefix: n.nlri, nexthop });
    }
    const withdraw = (update.withdraw?.['ipv4 unicast'] ?? []).map((n) => n.nlri);
    return { kind: 'update', peer, announce, withdraw };
  }
  return { kind: 'other' };
}
