/**
 * Why discovery has its own DNS wire code: the same records served over UDP
 * by three servers, each alone in its own process, measured with dnsperf one
 * after the other on the same query file:
 *
 * - `dns2` 3.0 — its UDP server (`dns2.createServer`), answers built as
 *   dns2 Packet objects from a Map of the records;
 * - `node:dgram` + `dns-packet` — decode each query, look the name up,
 *   encode the answer;
 * - corral — discovery's DnsServer (discovery/src/dns), one process, no workers.
 *
 * Records: 20 services of 10 instances — `svcN.fw.corral` (10 A records),
 * `_svcN._tcp.fw.corral` (10 SRV records with their A glue) and each
 * instance's own A name; the query file asks for every A and SRV name.
 *
 * Usage: npx tsx bench/dns-servers.ts [--seconds 10] [--runs 1] [--json]
 */
import dgram from 'node:dgram';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDir } from '../test/harness/resources.js';
import { flag } from './volume-common.js';
import { dnsperf as runDnsperf, startServingChild, type ServingChild } from './dns-common.js';

const SECONDS = flag('--seconds', 10);
const RUNS = flag('--runs', 1);
const JSON_OUT = process.argv.includes('--json');
const SERVERS = ['dns2', 'dgram+dns-packet', 'corral'] as const;
type ServerKind = (typeof SERVERS)[number];

type Rec = { type: 'A'; ip: string } | { type: 'SRV'; priority: number; weight: number; port: number; target: string };

/** The served names: name → records (A or SRV). */
function records(): Map<string, Rec[]> {
  const names = new Map<string, Rec[]>();
  for (let s = 0; s < 20; s++) {
    const a: Rec[] = [];
    const srv: Rec[] = [];
    for (let i = 0; i < 10; i++) {
      const ip = `100.96.${s}.${i + 1}`;
      const target = `svc${s}-${i}.fw.corral`;
      names.set(target, [{ type: 'A', ip }]);
      a.push({ type: 'A', ip });
      srv.push({ type: 'SRV', priority: 0, weight: 0, port: 8000 + s, target });
    }
    names.set(`svc${s}.fw.corral`, a);
    names.set(`_svc${s}._tcp.fw.corral`, srv);
  }
  return names;
}

/** Glue: the A records of SRV targets. */
function glue(names: Map<string, Rec[]>, rrs: Rec[]): Array<{ name: string; ip: string }> {
  const out: Array<{ name: string; ip: string }> = [];
  for (const r of rrs) if (r.type === 'SRV') for (const t of names.get(r.target) ?? []) if (t.type === 'A') out.push({ name: r.target, ip: t.ip });
  return out;
}

// ---- the servers, each run as `--serve <kind>` in a child process --------------------------------

async function serveDns2(names: Map<string, Rec[]>): Promise<number> {
  const { default: dns2 } = await import('dns2');
  const { Packet } = dns2;
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const q = request.questions[0];
      const rrs = q ? (names.get(q.name.toLowerCase()) ?? []) : [];
      for (const r of rrs) {
        if (r.type === 'A' && q!.type === Packet.TYPE.A) response.answers.push({ name: q!.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 0, address: r.ip } as never);
        if (r.type === 'SRV' && q!.type === Packet.TYPE.SRV)
          response.answers.push({ name: q!.name, type: Packet.TYPE.SRV, class: Packet.CLASS.IN, ttl: 0, priority: r.priority, weight: r.weight, port: r.port, target: r.target } as never);
      }
      for (const g of q?.type === Packet.TYPE.SRV ? glue(names, rrs) : []) response.additionals.push({ name: g.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 0, address: g.ip } as never);
      void send(response);
    },
  });
  const addresses = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  return (addresses as unknown as { udp: { port: number } }).udp.port;
}

async function serveDnsPacket(names: Map<string, Rec[]>): Promise<number> {
  const { default: packet } = await import('dns-packet');
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  socket.on('message', (msg, rinfo) => {
    let query;
    try {
      query = packet.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    const rrs = q ? (names.get(q.name.toLowerCase()) ?? []) : [];
    const answers = [];
    for (const r of rrs) {
      if (r.type === 'A' && q!.type === 'A') answers.push({ name: q!.name, type: 'A' as const, ttl: 0, data: r.ip });
      if (r.type === 'SRV' && q!.type === 'SRV') answers.push({ name: q!.name, type: 'SRV' as const, ttl: 0, data: { priority: r.priority, weight: r.weight, port: r.port, target: r.target } });
    }
    const additionals = (q?.type === 'SRV' ? glue(names, rrs) : []).map((g) => ({ name: g.name, type: 'A' as const, ttl: 0, data: g.ip }));
    const out = packet.encode({ type: 'response', id: query.id, flags: packet.AUTHORITATIVE_ANSWER, questions: query.questions, answers, additionals });
    socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return socket.address().port;
}

async function serveCorral(names: Map<string, Rec[]>): Promise<number> {
  const { DnsServer } = await import('../discovery/src/dns/server.js');
  const { logger } = await import('../common/log.js');
  const deltas: Array<[string, Rec[]]> = [...names];
  // The zone apex and the empty non-terminal, as the record table publishes them.
  deltas.push(['corral', [{ type: 'SOA', mname: 'ns1.corral', rname: 'hostmaster.corral', serial: 1, refresh: 60, retry: 60, expire: 86400, minimum: 1 } as never]], ['fw.corral', []]);
  const s = await DnsServer.start(
    {
      host: '127.0.0.1',
      port: 0,
      domain: 'corral',
      datacenter: 'dc1',
      upstreams: [],
      forwardTimeoutMs: 2000,
      workers: 0,
      tcpIdleMs: 10_000,
      tcpMaxConnections: 1000,
      log: logger('dns-bench'),
      ttl: 0,
      maxUdpPayload: 1232,
      recursionAvailable: false,
      maxRotations: 16,
      forwarding: false,
    },
    deltas,
  );
  return s.port;
}

async function serve(kind: ServerKind): Promise<void> {
  const names = records();
  const port = kind === 'dns2' ? await serveDns2(names) : kind === 'dgram+dns-packet' ? await serveDnsPacket(names) : await serveCorral(names);
  process.stdout.write(`port ${port}\n`);
  process.on('SIGTERM', () => process.exit(0));
}

// ---- the driver ----------------------------------------------------------------------------------

function startServer(kind: ServerKind): Promise<ServingChild> {
  return startServingChild('dns-servers-bench', [join(import.meta.dirname, 'dns-servers.ts'), '--serve', kind], /port (\d+)/, 30_000);
}

const dnsperf = (args: string[]): Promise<string> => runDnsperf(args, SECONDS);

interface Result {
  server: ServerKind;
  qps: number;
  avgMs: number;
  lost: number;
  noerror: number;
}

async function measure(kind: ServerKind, queries: string): Promise<Result> {
  const s = await startServer(kind);
  try {
    const out = await dnsperf(['-s', '127.0.0.1', '-p', String(s.port), '-d', queries, '-c', '8', '-T', '2', '-q', '200', '-Q', '1000000', '-l', String(SECONDS)]);
    return {
      server: kind,
      qps: Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]),
      avgMs: Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1]) * 1000,
      lost: Number(/Queries lost:\s+(\d+)/.exec(out)?.[1]),
      noerror: Number(/NOERROR (\d+)/.exec(out)?.[1] ?? 0),
    };
  } finally {
    await s.stop();
  }
}

async function main(): Promise<void> {
  const dir = testDir('bench-dns-servers');
  const results: Result[] = [];
  try {
    const names = records();
    const queries = join(dir, 'queries.txt');
    writeFileSync(queries, [...names].map(([n, rrs]) => `${n} ${rrs[0]!.type}`).join('\n') + '\n');
    for (let run = 0; run < RUNS; run++) for (const kind of SERVERS) results.push(await measure(kind, queries));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ seconds: SECONDS, results }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`dnsperf, UDP, ${SECONDS} s a run, ${records().size} names (A/SRV), 8 clients × 2 threads; each server one process\n`);
  process.stdout.write('server                   qps   avg ms  NOERROR answers  lost\n');
  for (const r of results) process.stdout.write(`${r.server.padEnd(20)} ${r.qps.toFixed(0).padStart(7)}  ${r.avgMs.toFixed(3).padStart(6)}  ${String(r.noerror).padStart(15)}  ${r.lost}\n`);
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt >= 0) {
  const kind = process.argv[serveAt + 1] as ServerKind;
  if (!SERVERS.includes(kind)) {
    process.stderr.write(`--serve needs one of ${SERVERS.join(', ')}\n`);
    process.exit(2);
  }
  void serve(kind).catch((err: unknown) => {
    process.stderr.write(`server failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
} else {
  void main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
