import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeRecord } from '../../contracts/recordio.js';
import { CallError, V1Connection } from '../../contracts/client/connection.js';

let server: Server | undefined;
const connections: V1Connection[] = [];

/** A real HTTP server answering each request with `answer`; returns a connection to it. */
async function connect(answer: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<V1Connection> {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => answer(req, res, body));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const conn = new V1Connection({ master: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, path: '/api/v1/scheduler', pipelining: 4 });
  connections.push(conn);
  return conn;
}

afterEach(async () => {
  for (const c of connections.splice(0)) await c.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = undefined;
});

describe('V1Connection', () => {
  it('sends the call as JSON with the stream id, and resolves with the JSON answer or nothing', async () => {
    const seen: Array<{ body: unknown; streamId: unknown }> = [];
    const conn = await connect((req, res, body) => {
      seen.push({ body: JSON.parse(body), streamId: req.headers['mesos-stream-id'] });
      if ((JSON.parse(body) as { type: string }).type === 'GET') res.writeHead(200, { 'content-type': 'application/json' }).end('{"answer":42}');
      else res.writeHead(202).end();
    });
    conn.streamId = 'stream-1';
    await expect(conn.call({ type: 'GET' })).resolves.toEqual({ answer: 42 });
    await expect(conn.call({ type: 'ACKNOWLEDGE' }, 'acknowledgements')).resolves.toBeUndefined();
    expect(seen).toEqual([
      { body: { type: 'GET' }, streamId: 'stream-1' },
      { body: { type: 'ACKNOWLEDGE' }, streamId: 'stream-1' },
    ]);
  });

  it("turns an error status into a CallError carrying the server's message and a code", async () => {
    const conn = await connect((_req, res) => res.writeHead(400, { 'content-type': 'application/json' }).end('{"code":"INVALID_ARGUMENT","message":"offer O1 does not exist"}'));
    const err = await conn.call({ type: 'ACCEPT' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallError);
    expect(err).toMatchObject({ status: 400, code: 'INVALID_ARGUMENT', message: 'offer O1 does not exist' });
  });

  it('rejects a 2xx answer that is not JSON, and one too large to read, without crashing', async () => {
    const conn = await connect((_req, res, body) => {
      if (body.includes('big')) {
        res.writeHead(200);
        const chunk = Buffer.alloc(1024 * 1024, 0x20);
        for (let i = 0; i < 17; i++) res.write(chunk);
        res.end();
      } else res.writeHead(200).end('<html>proxy error</html>');
    });
    await expect(conn.call({ type: 'X' })).rejects.toThrow(/not JSON: <html>proxy error/);
    await expect(conn.call({ type: 'big' })).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('reads the event stream record by record however it is chunked, and ends quietly on disconnect', async () => {
    const events = Array.from({ length: 50 }, (_, i) => ({ type: 'UPDATE', i, pad: 'é'.repeat(i * 40) }));
    const conn = await connect((_req, res) => {
      res.writeHead(200, { 'mesos-stream-id': 'sid-7' });
      const bytes = Buffer.from(events.map(encodeRecord).join(''));
      // Odd-sized writes split records and multi-byte characters across chunks.
      for (let pos = 0; pos < bytes.length; pos += 333) res.write(bytes.subarray(pos, pos + 333));
    });
    const got: unknown[] = [];
    const { streamId, done } = await conn.subscribe({ type: 'SUBSCRIBE' }, (e) => got.push(e));
    expect(streamId).toBe('sid-7');
    await expect.poll(() => got.length).toBe(events.length);
    expect(got).toEqual(events);
    conn.disconnect();
    await expect(done).resolves.toBeUndefined();
  });

  it('an event that arrives with the headers can already make calls with the stream id', async () => {
    const streamIds: unknown[] = [];
    const conn = await connect((req, res, body) => {
      if ((JSON.parse(body) as { type: string }).type !== 'SUBSCRIBE') {
        streamIds.push(req.headers['mesos-stream-id']);
        return res.writeHead(202).end();
      }
      // Headers and the first events leave in one write, as from a master that already has offers.
      res.socket!.cork();
      res.writeHead(200, { 'mesos-stream-id': 'sid-9' });
      res.write(encodeRecord({ type: 'SUBSCRIBED' }) + encodeRecord({ type: 'OFFERS' }));
      process.nextTick(() => res.socket!.uncork());
    });
    const calls: Array<Promise<unknown>> = [];
    await conn.subscribe({ type: 'SUBSCRIBE' }, (e) => {
      if (e.type === 'OFFERS') calls.push(conn.call({ type: 'DECLINE' }));
    });
    await expect.poll(() => calls.length).toBe(1);
    await Promise.all(calls);
    expect(streamIds).toEqual(['sid-9']);
  });

  it('a disconnect before the stream is open still closes it', async () => {
    let opened = 0;
    const conn = await connect((_req, res) => {
      opened++;
      res.writeHead(200, { 'mesos-stream-id': 's' });
      res.write(encodeRecord({ type: 'SUBSCRIBED' }));
    });
    const subscribing = conn.subscribe({ type: 'SUBSCRIBE' }, () => undefined);
    conn.disconnect();
    await expect(subscribing).rejects.toThrow(/closed by the client/);
    expect(opened).toBe(0);
  });

  it('refuses a stream the server answers with an error, and fails the stream on a malformed record', async () => {
    let status = 403;
    const conn = await connect((_req, res) => {
      if (status === 403) return res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"framework f1 belongs to another principal"}');
      res.writeHead(200, { 'mesos-stream-id': 's' });
      res.write(encodeRecord({ type: 'SUBSCRIBED' }) + 'x2\n{}');
    });
    await expect(conn.subscribe({ type: 'SUBSCRIBE' }, () => undefined)).rejects.toMatchObject({ status: 403, message: 'framework f1 belongs to another principal' });
    status = 200;
    const got: unknown[] = [];
    const { done } = await conn.subscribe({ type: 'SUBSCRIBE' }, (e) => got.push(e));
    await expect(done).rejects.toThrow(/bad RecordIO length prefix/);
    expect(got).toEqual([{ type: 'SUBSCRIBED' }]);
  });
  it('pipelines calls on one connection up to `pipelining`, POSTs included', async () => {
    // The server holds every answer until four calls are in (or a generous deadline passes, so a client
    // that sends one call at a time fails the assertion instead of hanging).
    const held: ServerResponse[] = [];
    let mostInFlight = 0;
    const release = (): void => void held.splice(0).forEach((r) => r.writeHead(202).end());
    let deadline: NodeJS.Timeout | undefined;
    const conn = await connect((_req, res) => {
      held.push(res);
      mostInFlight = Math.max(mostInFlight, held.length);
      deadline ??= setTimeout(release, 10_000);
      if (held.length === 4) release();
    });
    const single = new V1Connection({ master: (conn as unknown as { opts: { master: string } }).opts.master, path: '/api/v1/scheduler', connections: 1, pipelining: 4 });
    connections.push(single);
    await Promise.all([1, 2, 3, 4].map((i) => single.call({ type: 'ACKNOWLEDGE', i })));
    clearTimeout(deadline);
    expect(mostInFlight).toBe(4);
  });
});
