/**
 * Attacks on a daemon's HTTP server, for the server-limit tests: slow-loris
 * connections (a request's headers sent a byte at a time, never finished),
 * connection floods (connections opened and left silent), and the plain
 * request of a well-behaved client, on TCP or a unix socket.
 *
 * On loopback every address of 127.0.0.0/8 is local, so an attacker binds
 * one (e.g. 127.0.0.2) and the well-behaved client another (127.0.0.1):
 * per-client caps then tell them apart as they would two hosts.
 */
import net from 'node:net';
import http from 'node:http';

export type Target = { host: string; port: number; from?: string } | { socketPath: string };

/** One attacking connection: what the server sent it, and when the server closed it. */
export interface AttackConnection {
  socket: net.Socket;
  /** Everything the server has written on it. */
  received(): string;
  /** Resolves once the connection is closed (by the server, or at the end of the test). */
  closed: Promise<void>;
  isClosed(): boolean;
}

export function targetOf(url: string, from?: string): Target {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port), ...(from && { from }) };
}

export function connect(target: Target): AttackConnection {
  const socket = 'socketPath' in target ? net.connect(target.socketPath) : net.connect({ host: target.host, port: target.port, ...(target.from && { localAddress: target.from }) });
  let data = '';
  let done = false;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (data += d));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      done = true;
      resolve();
    }),
  );
  return { socket, received: () => data, closed, isClosed: () => done };
}

/** Resolves once the connection is established (or has failed). */
export function connected(c: AttackConnection): Promise<void> {
  if (!c.socket.connecting) return Promise.resolve();
  return new Promise((resolve) => {
    c.socket.once('connect', () => resolve());
    c.socket.once('close', () => resolve());
  });
}

export interface SlowLoris {
  connections: AttackConnection[];
  stop(): void;
}

/**
 * `count` connections each trickling a request's headers, one byte every
 * `byteEveryMs`, and never ending them. The trickle stops once a connection
 * is closed (or at `stop`).
 */
export async function slowLoris(target: Target, count: number, byteEveryMs = 100): Promise<SlowLoris> {
  const text = `GET /health HTTP/1.1\r\nHost: attacker\r\nX-Padding: ${'a'.repeat(10_000)}`;
  const connections: AttackConnection[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < count; i++) {
    const c = connect(target);
    connections.push(c);
    await connected(c);
    let at = 0;
    const timer = setInterval(() => {
      if (c.isClosed() || c.socket.destroyed || at >= text.length) {
        clearInterval(timer);
        return;
      }
      c.socket.write(text[at++]!);
    }, byteEveryMs);
    timers.push(timer);
  }
  return {
    connections,
    stop() {
      for (const t of timers) clearInterval(t);
      for (const c of connections) c.socket.destroy();
    },
  };
}

/** `count` connections opened and left silent. */
export async function flood(target: Target, count: number): Promise<{ connections: AttackConnection[]; stop(): void }> {
  const connections: AttackConnection[] = [];
  for (let i = 0; i < count; i++) {
    const c = connect(target);
    connections.push(c);
    await connected(c);
  }
  return {
    connections,
    stop() {
      for (const c of connections) c.socket.destroy();
    },
  };
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** Where and how to send a request with a JSON body (if any), on a connection of its own. */
function requestOptions(target: Target, path: string, method = 'GET', body?: string, headers?: Record<string, string>): http.RequestOptions {
  return {
    ...('socketPath' in target ? { socketPath: target.socketPath } : { host: target.host, port: target.port, ...(target.from && { localAddress: target.from }) }),
    path,
    method,
    agent: false,
    headers: { ...(body !== undefined && { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) }), ...headers },
  };
}

/** A well-behaved client's request on a fresh connection. */
export function request(target: Target, path: string, opts: { method?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Reply> {
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request({ ...requestOptions(target, path, opts.method, body, opts.headers), timeout: opts.timeoutMs ?? 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A long-lived request (event stream, watch, blocking query) held open: resolves
 * with the status and headers once they arrive; the body keeps flowing into `body()`.
 */
export function hold(target: Target, path: string, opts: { method?: string; body?: unknown } = {}): Promise<{ status: number; body(): string; close(): void; closed: Promise<void> }> {
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request(requestOptions(target, path, opts.method, body), (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', () => undefined);
      const closed = new Promise<void>((r) => res.once('close', () => r()));
      resolve({ status: res.statusCode ?? 0, body: () => text, close: () => req.destroy(), closed });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The JSON error body of an over-limit answer (raw, as read off an attacking connection, or a reply's body). */
export function errorBody(raw: string): { code: string; message: string; details?: Record<string, unknown> } {
  const at = raw.indexOf('\r\n\r\n');
  return JSON.parse(at >= 0 ? raw.slice(at + 4) : raw) as { code: string; message: string; details?: Record<string, unknown> };
}

/** The status code of a raw HTTP response. */
export const statusOf = (raw: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);

/** A request whose answer may be long in coming (a blocking query): its reply, and a way to abandon it. */
export function pending(target: Target, path: string): { reply: Promise<Reply>; abort(): void } {
  const ac = new AbortController();
  const reply = new Promise<Reply>((resolve, reject) => {
    const req = http.request(
      {
        ...('socketPath' in target ? { socketPath: target.socketPath } : { host: target.host, port: target.port, ...(target.from && { localAddress: target.from }) }),
        path,
        agent: false,
        signal: ac.signal,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
  reply.catch(() => undefined);
  return { reply, abort: () => ac.abort() };
}
