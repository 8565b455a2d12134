/**
 * Why the daemons' HTTP APIs run on corral's own small router over node:http
 * (common/http/server.ts) and not on Express: the same JSON call — parse a
 * small body, validate a field, answer 202 with a JSON body, as a scheduler
 * ACKNOWLEDGE does — served by each, loaded alternately by one undici client
 * with 64 requests in flight over 16 keep-alive connections, 3 rounds of 3 s.
 * Usage: npx tsx bench/http-servers.ts [--seconds 3] [--rounds 3] [--json]
 */
import express from 'express';
import { Pool } from 'undici';
import type { AddressInfo } from 'node:net';
import { HttpServer } from '../common/http/server.js';
import { CorralError } from '../contracts/errors.js';
import { configureLogging } from '../common/log.js';
import { flag, fmt, jsonOutput, printFigures } from './volume-common.js';

configureLogging({ level: 'error' });
const seconds = flag('--seconds', 3);
const rounds = flag('--rounds', 3);
const BODY = JSON.stringify({ type: 'ACKNOWLEDGE', framework_id: { value: 'f1' }, acknowledge: { agent_id: { value: 'a1' }, task_id: { value: 't1' }, uuid: 'AAECAwQFBgcICQoLDA0ODw==' } });

function check(body: unknown): { accepted: boolean } {
  const b = body as { type?: unknown };
  if (typeof b?.type !== 'string') throw new CorralError('INVALID_ARGUMENT', 'type is required');
  return { accepted: true };
}

async function corral(): Promise<{ url: string; close(): Promise<void> }> {
  const s = new HttpServer({ name: 'bench' });
  s.route('POST', '/api/v1/scheduler', async (ctx) => {
    ctx.res.statusCode = 202;
    return check(await ctx.json());
  });
  const url = await s.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => s.close() };
}

async function viaExpress(): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  app.use(express.json({ limit: '4mb' }));
  app.post('/api/v1/scheduler', (req, res) => {
    try {
      res.status(202).json(check(req.body));
    } catch (e) {
      res.status(400).json({ code: 'INVALID_ARGUMENT', message: String(e) });
    }
  });
  const server = await new Promise<ReturnType<typeof app.listen>>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

async function load(url: string): Promise<number> {
  const pool = new Pool(url, { connections: 16, pipelining: 1 });
  let done = 0;
  const end = Date.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
      const r = await pool.request({ method: 'POST', path: '/api/v1/scheduler', body: BODY, headers: { 'content-type': 'application/json' } });
      await r.body.text();
      if (r.statusCode !== 202) throw new Error(`HTTP ${r.statusCode}`);
      done++;
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  await pool.close();
  return done / seconds;
}

const servers = { corral: await corral(), express: await viaExpress() };
const rates: Record<keyof typeof servers, number[]> = { corral: [], express: [] };
try {
  await load(servers.corral.url); // warm-up
  await load(servers.express.url);
  for (let i = 0; i < rounds; i++) for (const k of ['corral', 'express'] as const) rates[k].push(await load(servers[k].url));
} finally {
  await servers.corral.close();
  await servers.express.close();
}
const best = (xs: number[]): number => Math.max(...xs);
printFigures(
  `JSON POST like ACKNOWLEDGE, 64 in flight over 16 connections, ${rounds}×${seconds} s each, client in the same process`,
  [
    {
      what: 'requests/s (best; all rounds)',
      corral: `${fmt(best(rates.corral), 0)} (${rates.corral.map((r) => fmt(r, 0)).join(' / ')})`,
      peer: `Express 5: ${fmt(best(rates.express), 0)} (${rates.express.map((r) => fmt(r, 0)).join(' / ')})`,
      goal: '-',
      verdict: `${fmt(best(rates.corral) / best(rates.express), 2)}×`,
    },
  ],
  jsonOutput(),
);
