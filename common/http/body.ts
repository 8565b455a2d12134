/**
 * Reading request bodies, bounded by the server's limit: as bytes, or as
 * text (what the JSON routes parse).
 */
import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { CorralError } from '../../contracts/errors.js';

/** Read a body as its chunks arrive, refusing it once it passes `limit` bytes; `take` keeps each chunk as the reader wants it. */
function readChunks<T>(req: IncomingMessage, limit: number, take: (chunk: Buffer) => void, done: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? -1);
    if (declared > limit) {
      reject(new CorralError('PAYLOAD_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
      return;
    }
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > limit) return; // refused already; the answer closes the connection
      size += chunk.length;
      if (size > limit) {
        // Answered 413 and closed (see dispatch), not cut without a word: the client learns why.
        req.pause();
        reject(new CorralError('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      take(chunk);
    });
    req.on('end', () => resolve(done()));
    req.on('error', reject);
  });
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return readChunks(
    req,
    limit,
    (chunk) => chunks.push(chunk),
    () => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
  );
}

/**
 * Buffers that bodies arriving in pieces are gathered into, reused from one
 * body to the next. Node hands every body chunk over in an ArrayBuffer of its
 * own, memory V8 counts as external. A large body arrives over several turns
 * of a busy daemon; its chunks, kept until the end (and then joined into one
 * more buffer), outlive two young collections and are promoted, to be freed
 * only by a full collection, which 64 MB of them start ("external memory
 * pressure"). Copied into a reused buffer at once, a chunk dies young, and
 * the body is decoded once, at its end. Bounded: a few buffers are kept, a
 * body larger than one is decoded piece by piece instead.
 */
const GATHER_BYTES = 256 * 1024;
const GATHER_KEPT = 8;
const gatherPool: Buffer[] = [];

/** A body as text: a body in one piece is decoded from it, a larger one gathered (or, past a gather buffer's size or of unknown length, decoded piece by piece). */
export function readText(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? -1);
  let whole: Buffer | undefined;
  let gather: Buffer | undefined;
  let used = 0;
  let decoder: StringDecoder | undefined;
  let text = '';
  return readChunks(
    req,
    limit,
    (chunk) => {
      if (decoder) {
        text += decoder.write(chunk);
      } else if (used === 0 && chunk.length === declared) {
        whole = chunk;
      } else if (declared > 0 && declared <= GATHER_BYTES) {
        gather ??= gatherPool.pop() ?? Buffer.allocUnsafeSlow(GATHER_BYTES);
        used += chunk.copy(gather, used);
      } else {
        decoder = new StringDecoder('utf8');
        text = decoder.write(chunk);
      }
    },
    () => {
      if (decoder) return text + decoder.end();
      // Let go of the bytes: the request (a stream's, say) may live long after its body.
      const [one, many] = [whole, gather];
      whole = gather = undefined;
      if (one) return one.toString('utf8');
      if (!many) return '';
      const out = many.toString('utf8', 0, used);
      if (gatherPool.length < GATHER_KEPT) gatherPool.push(many);
      return out;
    },
  );
}
