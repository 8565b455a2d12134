/**
 * Pipelined calls over TLS: a client that sends many calls on one connection
 * before reading the answers gets every answer, in order, on that connection.
 * Node's own HTTPS server cuts such a connection with HPE_PAUSED once about
 * 16 KB of answers wait (the parser is fed data while it is paused); the
 * corral server must not. Checked with a raw TLS client (every call in one
 * write, so the server always has to pause) and with undici's pool, as the
 * scheduler client and the simulated agents pipeline their calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import { Pool } from 'undici';
import { HttpServer } from '../../common/http/server.js';
import { createClusterCa, issueCertificate, type TlsPair } from '../../common/tls/index.js';

let ca: TlsPair;
let server: HttpServer;
/** An answer of a few KB: a handful of them fill node's 16 KB write high-water mark. */
const FILLER = 'a'.repeat(4000);

beforeAll(async () => {
  ca = await createClusterCa({ commonName: 'pipelining CA', validDays: 5 });
  const pair = await issueCertificate(ca, { commonName: 'server', ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 2 });
  server = new HttpServer({ name: 'tls-pipelining', tls: { material: { ca: ca.certPem, cert: pair.certPem, key: pair.keyPem } } });
  server.route('POST', '/call', async (ctx) => {
    const { n } = (await ctx.json()) as { n: number };
    return { n, filler: FILLER };
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await server?.close();
});

const CALLS = 300;
const callBody = (n: number): string => JSON.stringify({ n, pad: 'p'.repeat(6000) });

describe('pipelined calls over TLS', () => {
  it('a client that writes 300 calls at once on one connection gets 300 answers, in order, and the connection stays open', async () => {
    let wire = '';
    for (let n = 0; n < CALLS; n++) {
      const b = callBody(n);
      wire += `POST /call HTTP/1.1\r\nHost: corral\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
    }
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: ca.certPem });
    let received = '';
    const answers = (): number[] => [...received.matchAll(/"n":(\d+)/g)].map((m) => Number(m[1]));
    const outcome = await new Promise<string>((resolve) => {
      const deadline = setTimeout(() => resolve(`timed out with ${answers().length} answers`), 60_000);
      socket.on('secureConnect', () => socket.write(wire));
      socket.on('data', (d: Buffer) => {
        received += d.toString('latin1');
        if (answers().length === CALLS) {
          clearTimeout(deadline);
          resolve('all answered');
        }
      });
      socket.on('error', (err) => resolve(`error ${err.message}`));
      socket.on('close', () => {
        clearTimeout(deadline);
        resolve(`closed by the server after ${answers().length} answers`);
      });
    });
    try {
      expect(outcome).toBe('all answered');
      expect(answers()).toEqual(Array.from({ length: CALLS }, (_, n) => n));
      expect(received.match(/HTTP\/1\.1 200 OK\r\n/g)).toHaveLength(CALLS);
      expect(socket.destroyed).toBe(false);
    } finally {
      socket.destroy();
    }
  });

  it("undici's pool, 32 calls in flight on each of 2 connections: every call answered, no connection reset", async () => {
    const pool = new Pool(`https://127.0.0.1:${server.port}`, { connections: 2, pipelining: 32, connect: { ca: ca.certPem } });
    let connects = 0;
    pool.on('connect', () => connects++);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: CALLS }, async (_, n) => {
          // Idempotent and not blocking: undici pipelines only such calls (as the scheduler client marks its calls).
          const res = await pool.request({ path: '/call', method: 'POST', headers: { 'content-type': 'application/json' }, body: callBody(n), idempotent: true, blocking: false });
          return ((await res.body.json()) as { n: number }).n;
        }),
      );
      const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
      expect(failed).toEqual([]);
      expect(results.map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual(Array.from({ length: CALLS }, (_, n) => n));
      // A connection cut and made again would show as a third connect.
      expect(connects).toBeLessThanOrEqual(2);
    } finally {
      await pool.close();
    }
  });
});
