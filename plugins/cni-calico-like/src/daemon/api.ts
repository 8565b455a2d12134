/**
 * The node daemon's HTTP API on its root-only unix socket:
 *   POST /v1/cni        one CNI call from the shim (CNI_* as X-Cni-* headers,
 *                       percent-encoded; the network config as the body)
 *   GET  /v1/status     readiness, BGP sessions
 *   GET  /v1/ipam       allocations, owned blocks, pool usage
 *   GET  /v1/routes     routes learned over BGP
 *   POST /v1/reconcile  run a leak-reclaim pass now
 *   GET  /metrics       Prometheus
 * CNI errors leave as the spec's error JSON so the shim can print them as is.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HttpServer, RequestContext } from '../../../../common/http/server.js';
import { sendJson } from '../../../../common/http/server.js';
import type { Logger } from '../../../../common/log.js';
import type { Counter, Histogram } from 'prom-client';
import type { CniService } from '../cni/service.js';
import { parseEnv, parseNetConf, requireVersionFor, versionReply } from '../cni/request.js';
import { CniError, CniCode, CURRENT_VERSION, toCniError } from '../cni/spec.js';

const ENV_HEADERS: Record<string, string> = {
  CNI_COMMAND: 'x-cni-command',
  CNI_CONTAINERID: 'x-cni-containerid',
  CNI_NETNS: 'x-cni-netns',
  CNI_IFNAME: 'x-cni-ifname',
  CNI_ARGS: 'x-cni-args',
  CNI_PATH: 'x-cni-path',
};

/** Undoes the shim's percent-encoding (bytes, then UTF-8); a malformed escape is a bad environment. */
export function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '%') {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new CniError(CniCode.INVALID_ENV, 'invalid environment variables', 'malformed percent-encoding from the shim');
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(text.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export function envFromHeaders(headers: IncomingHttpHeaders): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [name, header] of Object.entries(ENV_HEADERS)) {
    const v = headers[header];
    if (typeof v === 'string') env[name] = percentDecode(v);
  }
  return env;
}

interface ApiDeps {
  service: CniService;
  log: Logger;
  status(): unknown;
  ipam(): unknown;
  routes(): unknown;
  reconcile(): Promise<unknown>;
  metrics: { calls: Counter<string>; latency: Histogram<string> };
}

export function mountApi(server: HttpServer, d: ApiDeps): void {
  server.route('POST', '/v1/cni', (ctx) => handleCni(ctx, d));
  server.route('GET', '/v1/status', () => d.status());
  server.route('GET', '/v1/ipam', () => d.ipam());
  server.route('GET', '/v1/routes', () => d.routes());
  server.route('POST', '/v1/reconcile', () => d.reconcile());
}

async function handleCni(ctx: RequestContext, d: ApiDeps): Promise<void> {
  const started = process.hrtime.bigint();
  let command = 'unknown';
  let result = 'ok';
  let version: string = CURRENT_VERSION;
  try {
    // Read the whole request first: answering early would close the connection under a shim still sending.
    const body = await ctx.body();
    const env = parseEnv(envFromHeaders(ctx.req.headers));
    command = env.command;
    if (env.command === 'VERSION') return reply(ctx, 200, versionReply());
    const conf = parseNetConf(body);
    version = conf.cniVersion;
    requireVersionFor(env.command, conf);
    switch (env.command) {
      case 'ADD':
        return reply(ctx, 200, await d.service.add(env, conf));
      case 'DEL':
        await d.service.del(env);
        return reply(ctx, 204);
      case 'CHECK':
        await d.service.check(env, conf);
        return reply(ctx, 204);
      case 'GC':
        await d.service.gc(conf);
        return reply(ctx, 204);
      case 'STATUS':
        d.service.status();
        return reply(ctx, 204);
    }
  } catch (err) {
    const cni = toCniError(err);
    if (cni.code === CniCode.INTERNAL) d.log.error({ err, command }, 'CNI %s failed', command);
    else d.log.info({ command, code: cni.code, msg: cni.message }, 'CNI %s refused', command);
    result = String(cni.code);
    return reply(ctx, cni.httpStatus, cni.toJSON(version));
  } finally {
    d.metrics.calls.inc({ command, result });
    d.metrics.latency.observe({ command }, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

function reply(ctx: RequestContext, status: number, body?: unknown): void {
  if (body === undefined) {
    ctx.res.statusCode = status;
    ctx.res.setHeader('Content-Length', 0);
    ctx.res.end();
    return;
  }
  sendJson(ctx.res, status, body);
}
