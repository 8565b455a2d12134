/**
 * The HTTP server's limits over TLS: connection caps answer over the
 * encrypted connection (a client can read why), the headers timeout still
 * cuts a silent connection, and a connection that never finishes its
 * handshake is closed at the same timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import net from 'node:net';
import { HttpServer } from '../../common/http/server.js';
import { HTTP_LIMIT_DEFAULTS, type HttpLimits } from '../../common/http/limits.js';
import { createClusterCa, issueCertificate, type TlsPair } from '../../common/tls/index.js';

let ca: TlsPair;
/** Caps: timeouts long enough that held connections stay; timeouts: short ones. */
let caps: HttpServer;
let timeouts: HttpServer;

beforeAll(async () => {
  ca = await createClusterCa({ commonName: 'limits CA', validDays: 5 });
  const pair = await issueCertificate(ca, { commonName: 'server', ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 2 });
  const make = async (limits: Partial<HttpLimits>): Promise<HttpServer> => {
    const s = new HttpServer({ name: 'tls-limits', limits: { ...HTTP_LIMIT_DEFAULTS, ...limits }, tls: { material: { ca: ca.certPem, cert: pair.certPem, key: pair.keyPem } } });
    s.route('GET', '/ok', () => ({ ok: true }));
    await s.listen({ host: '127.0.0.1', port: 0 });
    return s;
  };
  caps = await make({ maxConnectionsPerClient: 2 });
  timeouts = await make({ headersTimeoutMs: 600, requestTimeoutMs: 1_000 });
});
afterAll(async () => {
  await caps?.close();
  await timeouts?.close();
});

/** A TLS connection; resolves once the handshake is done. */
const connect = (port = caps.port): Promise<tls.TLSSocket> =>
  new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem }, () => resolve(s));
    s.on('error', reject);
  });

/** Everything the server sends until it closes. */
const readAll = (s: net.Socket): Promise<string> =>
  new Promise((resolve) => {
    let data = '';
    s.on('data', (d) => (data += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => resolve(data));
  });

describe('server limits over TLS', () => {
  it('over the per-client cap, the connection is answered 429 over TLS, naming the limit; the others are served', async () => {
    const held = [await connect(), await connect()];
    try {
      const third = await connect();
      const answer = await readAll(third);
      expect(answer).toMatch(/^HTTP\/1\.1 429 Too Many Requests/);
      expect(answer).toContain('maxConnectionsPerClient');
      const first = held[0]!;
      const reply = new Promise<string>((resolve) => first.once('data', (d) => resolve(d.toString())));
      first.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await reply).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*\{"ok":true\}/);
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('a TLS connection that sends no request is answered 408 at the headers timeout and closed', async () => {
    const s = await connect(timeouts.port);
    const answer = await readAll(s);
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout/);
    expect(answer).toContain('headersTimeoutMs');
  });

  it('a connection that never starts its TLS handshake is closed at the headers timeout', async () => {
    const raw = net.connect(timeouts.port, '127.0.0.1');
    // Closed by the server (handshakeTimeout = headersTimeoutMs), without a byte of answer: there is no TLS to answer in.
    expect(await readAll(raw)).toBe('');
    expect(raw.destroyed).toBe(true);
  });
});
