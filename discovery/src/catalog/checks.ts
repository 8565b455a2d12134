/**
 * Health checks this daemon runs for services registered through its agent
 * API, as Consul's agent does: HTTP (2xx passing, 429 warning, anything else
 * critical), TCP (a connection within the timeout is passing) and TTL (the
 * service reports pass/warn/fail itself; silence for longer than the TTL is
 * critical). Results go straight into the catalog, and so into DNS.
 */
import net from 'node:net';
import { CorralError, errorMessage } from '../../../contracts/errors.js';
import type { Catalog, CheckStatus } from './catalog.js';

export interface CheckDef {
  CheckID: string;
  Name: string;
  ServiceID?: string | undefined;
  Notes?: string | undefined;
  kind: 'http' | 'tcp' | 'ttl';
  /** URL for HTTP, host:port for TCP. */
  target?: string | undefined;
  method?: string | undefined;
  intervalMs: number;
  timeoutMs: number;
  ttlMs?: number | undefined;
  /** Status before the first result (Consul starts checks critical). */
  initial: CheckStatus;
}

interface Running {
  def: CheckDef;
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
}

export class CheckRunner {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly catalog: Catalog,
    private readonly node: string,
  ) {}

  /** Register (or replace) a check and start running it. */
  add(def: CheckDef): void {
    this.remove(def.CheckID, false);
    const r: Running = { def, timer: undefined, stopped: false };
    this.running.set(def.CheckID, r);
    this.catalog.upsertCheck(this.node, { CheckID: def.CheckID, Name: def.Name, Status: def.initial, Notes: def.Notes ?? '', Output: '', ServiceID: def.ServiceID, Type: def.kind }, 'agent');
    if (def.kind === 'ttl') this.armTtl(r);
    else void this.probe(r);
  }

  has(checkId: string): boolean {
    return this.running.has(checkId);
  }

  definitions(): CheckDef[] {
    return [...this.running.values()].map((r) => r.def);
  }

  remove(checkId: string, fromCatalog = true): void {
    const r = this.running.get(checkId);
    if (!r) return;
    r.stopped = true;
    clearTimeout(r.timer);
    this.running.delete(checkId);
    if (fromCatalog) this.catalog.removeCheck(this.node, checkId);
  }

  /** pass/warn/fail/update from the service itself; only TTL checks take them. */
  report(checkId: string, status: CheckStatus, output: string): void {
    const r = this.running.get(checkId);
    if (!r) throw new CorralError('NOT_FOUND', `unknown check "${checkId}"`);
    if (r.def.kind !== 'ttl') throw new CorralError('INVALID_ARGUMENT', `check "${checkId}" is not a TTL check`);
    this.catalog.setCheckStatus(this.node, checkId, status, output);
    this.armTtl(r);
  }

  stopAll(): void {
    for (const id of [...this.running.keys()]) this.remove(id, false);
  }

  private armTtl(r: Running): void {
    clearTimeout(r.timer);
    r.timer = setTimeout(() => {
      if (!r.stopped) this.catalog.setCheckStatus(this.node, r.def.CheckID, 'critical', `TTL expired (no update within ${r.def.ttlMs} ms)`);
    }, r.def.ttlMs ?? 0);
    r.timer.unref();
  }

  private async probe(r: Running): Promise<void> {
    if (r.stopped) return;
    const { status, output } = r.def.kind === 'http' ? await httpCheck(r.def) : await tcpCheck(r.def);
    if (r.stopped) return;
    this.catalog.setCheckStatus(this.node, r.def.CheckID, status, output);
    r.timer = setTimeout(() => void this.probe(r), r.def.intervalMs);
    r.timer.unref();
  }
}

async function httpCheck(def: CheckDef): Promise<{ status: CheckStatus; output: string }> {
  const url = def.target ?? '';
  try {
    const res = await fetch(url, { method: def.method ?? 'GET', signal: AbortSignal.timeout(def.timeoutMs), redirect: 'manual' });
    const body = (await res.text()).slice(0, 4096);
    const status: CheckStatus = res.status >= 200 && res.status < 300 ? 'passing' : res.status === 429 ? 'warning' : 'critical';
    return { status, output: `HTTP ${def.method ?? 'GET'} ${url}: ${res.status} ${res.statusText} Output: ${body}` };
  } catch (err) {
    return { status: 'critical', output: `HTTP ${def.method ?? 'GET'} ${url}: ${errorMessage(err)}` };
  }
}

function tcpCheck(def: CheckDef): Promise<{ status: CheckStatus; output: string }> {
  const target = def.target ?? '';
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target);
  if (!m) return Promise.resolve({ status: 'critical', output: `TCP target "${target}" is not host:port` });
  return new Promise((resolve) => {
    const sock = net.connect({ host: m[1]!, port: Number(m[2]) });
    const done = (status: CheckStatus, output: string): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ status, output });
    };
    const timer = setTimeout(() => done('critical', `TCP connect ${target}: timeout`), def.timeoutMs);
    sock.once('connect', () => done('passing', `TCP connect ${target}: Success`));
    sock.once('error', (err) => done('critical', `TCP connect ${target}: ${err.message}`));
  });
}
