/**
 * What Mesos compatibility costs the master's hot path, measured apart from
 * the rest of the placement run:
 *
 * 1. Stream framing. Mesos sends every event as an HTTP chunk of its own, and
 *    clients written against it read one record per chunk. Three ways to
 *    write a burst of status updates (the master writes bursts of hundreds):
 *    EventStream as it is (one chunk per record, framed by the stream, one
 *    write per burst); a res.write() per record (node frames each as a
 *    chunk); and one res.write() of the joined records (the former framing,
 *    several records in one chunk, which such clients drop). Server CPU only:
 *    the reader is another process.
 * 2. JSON null as an unset field. The master searches each v1 body's bytes
 *    for "null" and walks the parsed body only when found; compared with
 *    JSON.parse and with the walk, on an ACCEPT_BATCH of 640 tasks.
 *
 * Usage: node dist/bench/event-stream.js [--events 200000] [--burst 500] [--rounds 5] [--json]
 */
import http, { type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { EventStream } from '../common/http/stream.js';
import { encodeRecord } from '../contracts/recordio.js';
import { mayHoldNull, stripNulls } from '../contracts/v1/v1-json.js';
import { flag, median, printFigures, type Figure } from './volume-common.js';

const EVENTS = flag('--events', 200_000, { whole: true, min: 1 });
const BURST = flag('--burst', 500, { whole: true, min: 1 });
const ROUNDS = flag('--rounds', 5, { whole: true, min: 1 });
const JSON_OUT = process.argv.includes('--json');

/** A status update as the master relays it. */
const update = (i: number): unknown => ({
  type: 'UPDATE',
  update: {
    status: { task_id: { value: `task-${i}` }, state: 'TASK_RUNNING', source: 'SOURCE_EXECUTOR', uuid: 'AAAAAAAAAAAAAAAAAAAAAA==', agent_id: { value: '3f9c2a1b-S1234' }, timestamp: 1700000000.25 },
  },
});

type Writer = (res: ServerResponse, stream: EventStream | undefined, events: unknown[]) => void;

const writers: Record<string, { stream: boolean; write: Writer }> = {
  'EventStream: a chunk per record, one write per burst': { stream: true, write: (_res, s, es) => s!.sendAll(es) },
  'res.write() per record (node frames each)': { stream: false, write: (res, _s, es) => es.forEach((e) => res.write(encodeRecord(e))) },
  'one res.write() per burst (records share a chunk; not Mesos-compatible)': { stream: false, write: (res, _s, es) => res.write(es.map(encodeRecord).join('')) },
};

/** A reader in another process: POSTs, drains the stream, exits at its end. */
const READER = `
const http = require('node:http');
const req = http.request({ port: Number(process.argv[1]), method: 'POST', path: '/' }, (res) => { res.on('data', () => {}); res.on('end', () => process.exit(0)); });
req.end();
`;

/** Server CPU (µs) to write EVENTS records in bursts of BURST with `w`, read by another process. */
async function serverCpu(w: { stream: boolean; write: Writer }): Promise<number> {
  const events = Array.from({ length: BURST }, (_, i) => update(i));
  let cpu = 0;
  const srv = http.createServer((_req, res) => {
    const s = w.stream ? new EventStream(res) : undefined;
    if (!s) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
    }
    let sent = 0;
    const c0 = process.cpuUsage();
    const next = (): void => {
      // A burst per turn, the socket corked for the turn (EventStream corks; the others get the same).
      res.socket?.cork();
      w.write(res, s, events);
      process.nextTick(() => res.socket?.uncork());
      sent += BURST;
      if (sent < EVENTS) {
        if (res.writableNeedDrain) res.once('drain', () => setImmediate(next));
        else setImmediate(next);
        return;
      }
      if (s) s.end();
      else res.end();
      const c = process.cpuUsage(c0);
      cpu = c.user + c.system;
    };
    next();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const child = spawn(process.execPath, ['-e', READER, String((srv.address() as AddressInfo).port)], { stdio: 'inherit' });
  await new Promise((r) => child.on('exit', r));
  await new Promise<void>((r) => srv.close(() => r()));
  return cpu;
}

/** Median µs per call of `fn` over `n` calls (after a warm-up). */
function time(fn: () => void, n: number): number {
  for (let i = 0; i < Math.min(n, 20); i++) fn();
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    fn();
    xs.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return median(xs);
}

async function main(): Promise<void> {
  const figures: Figure[] = [];
  const perRecord: Record<string, number[]> = {};
  // Rounds interleave the writers, so a busy moment of the machine falls on all of them.
  for (let r = 0; r < ROUNDS; r++) for (const [name, w] of Object.entries(writers)) (perRecord[name] ??= []).push((await serverCpu(w)) / EVENTS);
  for (const [name, xs] of Object.entries(perRecord))
    figures.push({ what: `stream: ${name}`, corral: `${median(xs).toFixed(2)} µs CPU/record`, peer: 'Mesos: a chunk per event', goal: '—', verdict: '—' });

  const task = (i: number): unknown => ({
    name: `t${i}`,
    task_id: { value: `task-${i}` },
    agent_id: { value: '3f9c2a1b-S17' },
    resources: [
      { name: 'cpus', type: 'SCALAR', scalar: { value: 1 }, role: '*', allocation_info: { role: '*' } },
      { name: 'mem', type: 'SCALAR', scalar: { value: 256 } },
    ],
    command: { value: 'sleep 3600' },
  });
  const body = {
    type: 'ACCEPT_BATCH',
    framework_id: { value: 'fw-1' },
    accept_batch: {
      accepts: Array.from({ length: 64 }, (_, a) => ({
        offer_ids: [{ value: `o${a}` }],
        operations: [{ type: 'LAUNCH', launch: { task_infos: Array.from({ length: 10 }, (_, i) => task(a * 10 + i)) } }],
      })),
    },
  };
  const raw = Buffer.from(JSON.stringify(body));
  const text = raw.toString('utf8');
  const tasks = 640;
  const parse = time(() => JSON.parse(text), 200);
  const search = time(() => mayHoldNull(text), 200);
  const parsed = Array.from({ length: 220 }, () => JSON.parse(text) as unknown);
  let k = 0;
  const walk = time(() => stripNulls(parsed[k++]), 200);
  const ns = (us: number): string => `${((us * 1000) / tasks).toFixed(0)} ns/task`;
  figures.push({ what: `nulls: JSON.parse of an ACCEPT_BATCH (${tasks} tasks, ${raw.length} bytes), for scale`, corral: ns(parse), peer: '—', goal: '—', verdict: '—' });
  figures.push({ what: 'nulls: search of the raw text for "null" (every v1 call)', corral: ns(search), peer: '—', goal: '—', verdict: '—' });
  figures.push({ what: 'nulls: walk of the parsed body (only calls holding "null")', corral: ns(walk), peer: '—', goal: '—', verdict: '—' });
  printFigures('Mesos-compatible framing and null fields: cost on the hot path', figures, JSON_OUT);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
