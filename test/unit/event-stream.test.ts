import { describe, expect, it } from 'vitest';
import http from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { EventStream } from '../../common/http/stream.js';

/** A server whose one route opens an EventStream and hands it to `use`. */
async function server(use: (s: EventStream) => void): Promise<{ port: number; close(): Promise<void> }> {
  const srv = http.createServer((_req, res) => use(new EventStream(res)));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/**
 * Everything the server sent over a raw socket, the bytes as they were on the
 * wire, until it closed or sent the last chunk of a chunked body (the
 * connection itself is kept alive).
 */
function rawExchange(port: number, request: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(request));
    const parts: Buffer[] = [];
    const done = (): void => {
      sock.destroy();
      resolve(Buffer.concat(parts));
    };
    sock.on('data', (d: Buffer) => {
      parts.push(d);
      if (Buffer.concat(parts).toString('latin1').endsWith('\r\n0\r\n\r\n')) done();
    });
    sock.on('end', done);
    sock.on('error', reject);
  });
}

/** The HTTP/1.1 chunks of a chunked body, each as sent (sizes checked against the data). */
function chunksOf(body: Buffer): string[] {
  const chunks: string[] = [];
  let pos = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', pos);
    if (eol < 0) throw new Error(`no chunk size line at ${pos}`);
    const size = parseInt(body.toString('latin1', pos, eol), 16);
    if (size === 0) {
      expect(body.toString('latin1', eol, eol + 4)).toBe('\r\n\r\n');
      return chunks;
    }
    const data = body.subarray(eol + 2, eol + 2 + size);
    expect(body.toString('latin1', eol + 2 + size, eol + 4 + size)).toBe('\r\n');
    chunks.push(data.toString('utf8'));
    pos = eol + 4 + size;
  }
}

/** One RecordIO record: the decimal byte length, a newline, exactly that many bytes of JSON. */
function asRecord(chunk: string): unknown {
  const nl = chunk.indexOf('\n');
  const json = chunk.slice(nl + 1);
  expect(Number(chunk.slice(0, nl))).toBe(Buffer.byteLength(json));
  return JSON.parse(json);
}

describe('EventStream framing', () => {
  it('sends every record as an HTTP chunk of its own, also when several are written at once', async () => {
    const events = [{ type: 'SUBSCRIBED' }, { type: 'UPDATE', n: 1, text: 'é ünïcode' }, { type: 'UPDATE', n: 2 }, { type: 'UPDATE', n: 3 }, { type: 'HEARTBEAT' }];
    const s = await server((stream) => {
      stream.send(events[0]);
      // One burst, as the master writes a batch of status updates.
      stream.sendAll(events.slice(1, 4));
      setImmediate(() => stream.end(events[4]));
    });
    try {
      const raw = await rawExchange(s.port, 'POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n');
      const head = raw.subarray(0, raw.indexOf('\r\n\r\n')).toString('latin1');
      expect(head).toMatch(/^HTTP\/1\.1 200/);
      expect(head.toLowerCase()).toContain('transfer-encoding: chunked');
      const chunks = chunksOf(raw.subarray(raw.indexOf('\r\n\r\n') + 4));
      expect(chunks).toHaveLength(events.length);
      expect(chunks.map(asRecord)).toEqual(events);
    } finally {
      await s.close();
    }
  });

  it('writes plain records to an HTTP/1.0 client, which has no chunks', async () => {
    const s = await server((stream) => {
      stream.sendAll([{ n: 1 }, { n: 2 }]);
      stream.end({ n: 3 });
    });
    try {
      const raw = await rawExchange(s.port, 'POST /x HTTP/1.0\r\nContent-Length: 0\r\n\r\n');
      const head = raw.subarray(0, raw.indexOf('\r\n\r\n')).toString('latin1');
      expect(head.toLowerCase()).not.toContain('transfer-encoding');
      expect(raw.subarray(raw.indexOf('\r\n\r\n') + 4).toString()).toBe('7\n{"n":1}7\n{"n":2}7\n{"n":3}');
    } finally {
      await s.close();
    }
  });
});
