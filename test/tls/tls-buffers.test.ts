/**
 * Open TLS connections' buffers, against the real node TLS stack and the real
 * addon (native/memory): node counts each connection's buffers in V8's
 * external memory; a corral HTTPS server takes them out of that count while
 * the connections are open and gives them back once they close.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import { HttpServer } from '../../common/http/server.js';
import { clientTlsBufferDiscount, discountTlsBuffers, PER_CONNECTION, tlsBufferDiscount } from '../../common/http/tls-buffers.js';
import { createClusterCa, issueCertificate, type TlsPair } from '../../common/tls/index.js';
import { externalMemory, type ExternalMemory } from '../../native/lib/external-memory.js';

const CONNECTIONS = 200;
const KB = 1024;

let ca: TlsPair;
let server: HttpServer;
let memory: ExternalMemory;

beforeAll(async () => {
  const addon = externalMemory();
  if (!('memory' in addon)) throw new Error(addon.reason);
  memory = addon.memory;
  ca = await createClusterCa({ commonName: 'tls-buffers CA', validDays: 5 });
  const pair = await issueCertificate(ca, { commonName: 'server', ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 2 });
  server = new HttpServer({ name: 'tls-buffers', tls: { material: { ca: ca.certPem, cert: pair.certPem, key: pair.keyPem } } });
  // An answer of 20 KB, as an agent's batch of launches: the connection's write buffers grow.
  server.route('GET', '/burst', async () => ({ filler: 'b'.repeat(20_000) }));
  await server.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await server?.close();
});

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A connection that made one call and read its answer, left open. */
function connectAndCall(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: ca.certPem });
    let got = '';
    socket.on('error', reject);
    socket.on('secureConnect', () => socket.write('GET /burst HTTP/1.1\r\nHost: corral\r\n\r\n'));
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.endsWith('"}')) resolve(socket);
    });
  });
}

describe("open TLS connections' buffers", () => {
  it("are taken out of V8's external-memory count while open and given back when closed", async () => {
    // V8's count as node reports it (what we took out added back), before the connections.
    const before = memory.adjust(0) + tlsBufferDiscount().discounted;
    const sockets: tls.TLSSocket[] = [];
    for (let i = 0; i < CONNECTIONS; i++) sockets.push(await connectAndCall());
    // Server and clients share this process: node counts both ends' buffers, at least a 64 KB read buffer each.
    const reported = (): number => memory.adjust(0) + tlsBufferDiscount().discounted - before;
    expect(reported()).toBeGreaterThan(CONNECTIONS * 64 * KB);
    await until('the server to take its connections out of the count', () => tlsBufferDiscount().discounted >= CONNECTIONS * 64 * KB);
    const { discounted, open } = tlsBufferDiscount();
    expect(open).toBeGreaterThanOrEqual(CONNECTIONS);
    // Never more than the bound per open connection.
    expect(discounted).toBeLessThanOrEqual(open * PER_CONNECTION);
    // What V8 sees grew by less than what node reported: the server's side is out of it.
    expect(memory.adjust(0) - before).toBeLessThan(reported() - CONNECTIONS * 64 * KB);

    for (const s of sockets) s.destroy();
    await until('every connection to close and what was taken to be given back', () => tlsBufferDiscount().open === 0 && tlsBufferDiscount().discounted === 0);
    // Node freed the buffers at close, with no collection needed: the count is back near where it was.
    expect(Math.abs(memory.adjust(0) - before)).toBeLessThan(CONNECTIONS * 64 * KB);
  });

  it("takes a client's connections out of the count when it counts each one, and gives them back when they close", async () => {
    // A server that does not discount its side: only the clients' connections are counted here.
    const plain = tls.createServer({ cert: ca.certPem, key: ca.keyPem }, (socket) => socket.write('x'.repeat(20_000)));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const port = (plain.address() as { port: number }).port;
    try {
      const count = clientTlsBufferDiscount();
      if (typeof count === 'string') throw new Error(count);
      const before = tlsBufferDiscount();
      const sockets: tls.TLSSocket[] = [];
      for (let i = 0; i < CONNECTIONS; i++)
        sockets.push(
          await new Promise<tls.TLSSocket>((resolve, reject) => {
            const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, checkServerIdentity: () => undefined });
            socket.on('error', reject);
            socket.on('secureConnect', () => count(socket));
            let got = 0;
            socket.on('data', (d: Buffer) => {
              got += d.length;
              if (got === 20_000) resolve(socket);
            });
          }),
        );
      expect(tlsBufferDiscount().open).toBe(before.open + CONNECTIONS);
      await until("the clients' connections to be taken out of the count", () => tlsBufferDiscount().discounted >= before.discounted + CONNECTIONS * 64 * KB);
      expect(tlsBufferDiscount().discounted).toBeLessThanOrEqual(tlsBufferDiscount().open * PER_CONNECTION);
      for (const s of sockets) s.destroy();
      await until('the closed connections to be given back', () => tlsBufferDiscount().open === before.open && tlsBufferDiscount().discounted <= before.discounted);
    } finally {
      await new Promise((resolve) => plain.close(resolve));
    }
  });

  it('is off with CORRAL_TLS_BUFFER_DISCOUNT=0, and on otherwise', () => {
    const other = tls.createServer();
    const saved = process.env.CORRAL_TLS_BUFFER_DISCOUNT;
    try {
      process.env.CORRAL_TLS_BUFFER_DISCOUNT = '0';
      expect(discountTlsBuffers(other)).toBe('CORRAL_TLS_BUFFER_DISCOUNT=0');
      expect(clientTlsBufferDiscount()).toBe('CORRAL_TLS_BUFFER_DISCOUNT=0');
      expect(other.listenerCount('secureConnection')).toBe(0);
      delete process.env.CORRAL_TLS_BUFFER_DISCOUNT;
      expect(discountTlsBuffers(other)).toBeUndefined();
      expect(other.listenerCount('secureConnection')).toBe(1);
    } finally {
      if (saved === undefined) delete process.env.CORRAL_TLS_BUFFER_DISCOUNT;
      else process.env.CORRAL_TLS_BUFFER_DISCOUNT = saved;
    }
  });
});
