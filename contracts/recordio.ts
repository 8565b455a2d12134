/**
 * RecordIO framing used by the Mesos v1 streaming APIs: each record is its
 * byte length in decimal, a newline, then the record itself.
 */
import { CorralError } from './errors.js';

export function encodeRecord(value: unknown): string {
  const json = JSON.stringify(value);
  return `${Buffer.byteLength(json)}\n${json}`;
}

/**
 * One record as one HTTP/1.1 chunk (`<hex size>\r\n<record>\r\n`). Mesos
 * writes each event in a chunk of its own, and clients written against it
 * (the mesos-framework npm package, for one) read one record per chunk and
 * drop the rest of a chunk that holds several. Framed here rather than by
 * node's res.write() so a burst of records still costs one write call (see
 * EventStream); the JSON's length is measured once for both prefixes.
 */
export function encodeChunkedRecord(value: unknown): string {
  const json = JSON.stringify(value);
  const length = Buffer.byteLength(json);
  const prefix = `${length}\n`;
  const size = prefix.length + length;
  return `${size.toString(16)}\r\n${prefix}${json}\r\n`;
}

/**
 * Incremental decoder: feed chunks; each complete record goes to `onRecord`
 * as soon as it is found, so the good records before a corrupt one are
 * delivered before push() throws. A large record (an OFFERS event for 10,000
 * agents is megabytes) arrives in many chunks; they are held as a list and
 * joined once the record is complete, not re-copied on every chunk.
 */
export class RecordIODecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes that must be buffered before the next record can be complete. */
  private needed = 0;

  constructor(private readonly maxRecordBytes = 64 * 1024 * 1024) {}

  push(chunk: Buffer, onRecord: (record: string) => void): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.needed) return;
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    let pos = 0;
    this.needed = 0;
    for (;;) {
      const nl = buf.indexOf(10, pos);
      if (nl === -1) {
        if (buf.length - pos > 20) this.fail(buf, pos, new CorralError('MALFORMED_REQUEST', 'RecordIO length prefix is too long'));
        break;
      }
      const lenText = buf.toString('latin1', pos, nl);
      if (!/^\d+$/.test(lenText)) this.fail(buf, pos, new CorralError('MALFORMED_REQUEST', `bad RecordIO length prefix ${JSON.stringify(lenText.slice(0, 20))}`));
      const len = Number(lenText);
      if (len > this.maxRecordBytes) this.fail(buf, pos, new CorralError('PAYLOAD_TOO_LARGE', `RecordIO record of ${len} bytes is too large`));
      if (buf.length < nl + 1 + len) {
        this.needed = nl + 1 + len - pos;
        break;
      }
      const record = buf.toString('utf8', nl + 1, nl + 1 + len);
      pos = nl + 1 + len;
      try {
        onRecord(record);
      } catch (err) {
        this.fail(buf, pos, err as Error);
      }
    }
    this.keep(buf, pos);
  }

  /** Throw `err`, keeping only what follows `pos`: the records already handed on are not handed on again. */
  private fail(buf: Buffer, pos: number, err: Error): never {
    this.keep(buf, pos);
    throw err;
  }

  /** Hold only the bytes of `buf` from `pos` on. */
  private keep(buf: Buffer, pos: number): void {
    const rest = pos === buf.length ? undefined : buf.subarray(pos);
    this.chunks = rest ? [rest] : [];
    this.buffered = rest ? rest.length : 0;
  }
}
