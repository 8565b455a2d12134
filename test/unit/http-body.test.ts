/**
 * Request bodies as the router reads them: as text (what ctx.json() parses;
 * a body in pieces is gathered into a reused buffer, or decoded piece by
 * piece when it is chunked or larger than that buffer), or as bytes. A body
 * that arrives in many pieces, with UTF-8 characters cut between them, reads
 * whole every way; one over the limit is refused whether or not it declares
 * its length.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { HttpServer } from '../../common/http/server.js';

let server: HttpServer;

beforeAll(async () => {
  server = new HttpServer({ name: 'http-body', maxBodyBytes: 1024 * 1024 });
  server.route('POST', '/json', async (ctx) => ({ got: ((await ctx.json()) as { s: string }).s }));
  // Both readings of one body: text first, then bytes.
  server.route('POST', '/both', async (ctx) => {
    const text = await ctx.text();
    const bytes = await ctx.body();
    return { text, hex: bytes.toString('hex') };
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await server?.close();
});

/** Send one request in pieces of `piece` bytes, each in a write of its own after the last was flushed; resolve with the raw answer. */
async function sendInPieces(path: string, body: Buffer, piece: number, chunked = false): Promise<{ status: number; body: string }> {
  const socket = net.connect({ host: '127.0.0.1', port: server.port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  // Bytes, decoded once whole: a character may be cut between two reads.
  let bytes = Buffer.alloc(0);
  const answered = new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      bytes = Buffer.concat([bytes, d]);
      const head = bytes.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(bytes.toString('latin1', 0, head === -1 ? bytes.length : head))?.[1];
      if (head !== -1 && length !== undefined && bytes.length - head - 4 >= Number(length)) resolve();
    });
    socket.on('close', () => resolve());
  });
  const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`;
  socket.write(`POST ${path} HTTP/1.1\r\nHost: corral\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`);
  for (let at = 0; at < body.length && !socket.destroyed; at += piece) {
    const part = body.subarray(at, at + piece);
    const data = chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part;
    await new Promise<void>((resolve) => socket.write(data, () => resolve()));
  }
  if (chunked && !socket.destroyed) socket.write('0\r\n\r\n');
  await answered;
  socket.destroy();
  const received = bytes.toString('utf8');
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(received)?.[1]);
  return { status, body: received.slice(received.indexOf('\r\n\r\n') + 4) };
}

describe('request bodies', () => {
  // Two-, three- and four-byte characters: pieces of 1, 2 and 5 bytes cut through every one of them.
  const s = 'Zürich · 東京 · 🐄 '.repeat(40);

  it('a JSON body sent a few bytes at a time, characters cut between pieces, is parsed whole', async () => {
    for (const piece of [1, 2, 5]) {
      const answer = await sendInPieces('/json', Buffer.from(JSON.stringify({ s })), piece);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toEqual({ got: s });
    }
  });

  it('a body larger than a gather buffer (256 KiB), in pieces, is parsed whole', async () => {
    const large = s.repeat(300); // ~312 KB of UTF-8
    const answer = await sendInPieces('/json', Buffer.from(JSON.stringify({ s: large })), 16 * 1024 + 3);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ got: large });
  });

  it('ten bodies arriving at once, each in pieces, share the gather buffers and stay apart', async () => {
    const answers = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((c) => sendInPieces('/json', Buffer.from(JSON.stringify({ s: c.repeat(5000) + s })), 4096)));
    expect(answers.map((a) => (JSON.parse(a.body) as { got: string }).got[0])).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
    expect(answers.every((a, i) => (JSON.parse(a.body) as { got: string }).got === 'abcdefghij'[i]!.repeat(5000) + s)).toBe(true);
  });

  it('the same with a chunked body', async () => {
    const answer = await sendInPieces('/json', Buffer.from(JSON.stringify({ s })), 3, true);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ got: s });
  });

  it('a route may read a body as text and then as bytes: both are the body', async () => {
    const raw = Buffer.from(JSON.stringify({ s }));
    const answer = await sendInPieces('/both', raw, 7);
    expect(answer.status).toBe(200);
    const { text, hex } = JSON.parse(answer.body) as { text: string; hex: string };
    expect(text).toBe(raw.toString('utf8'));
    expect(hex).toBe(raw.toString('hex'));
  });

  it('a body over the limit is refused with 413, declared or not', async () => {
    const big = Buffer.from(JSON.stringify({ s: 'x'.repeat(1100 * 1024) }));
    for (const chunked of [false, true]) {
      const answer = await sendInPieces('/json', big, 64 * 1024, chunked);
      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    }
  });

  it('an empty body is a clear error, not a crash', async () => {
    const answer = await sendInPieces('/json', Buffer.alloc(0), 1);
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('request body is empty');
  });
});
