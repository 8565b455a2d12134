/**
 * RecordIO framing used by the Mesos v1 streaming APIs: each record is its
 * byte length in decimal, a newline, then the record itself.
 */
import { CorralError } from '../errors.js';

export function encodeRecord(value: unknown): string {
  const json = JSON.stringify(value);
  return `${Buffer.byteLength(json)}\n${json}`;
}

/** Incremental decoder: feed chunks, get complete records back. */
export class RecordIODecoder {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxRecordBytes = 64 * 1024 * 1024) {}

  push(chunk: Buffer): string[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: string[] = [];
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf(10, pos);
      if (nl === -1) {
        if (this.buf.length - pos > 20) throw new CorralError('MALFORMED_REQUEST', 'RecordIO length prefix is too long');
        break;
      }
      const lenText = this.buf.toString('latin1', pos, nl);
      if (!/^\d+$/.test(lenText)) throw new CorralError('MALFORMED_REQUEST', `bad RecordIO length prefix ${JSON.stringify(lenText.slice(0, 20))}`);
      const len = Number(lenText);
      if (len > this.maxRecordBytes) throw new CorralError('PAYLOAD_TOO_LARGE', `RecordIO record of ${len} bytes is too large`);
      if (this.buf.length < nl + 1 + len) break;
      out.push(this.buf.toString('utf8', nl + 1, nl + 1 + len));
      pos = nl + 1 + len;
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
    return out;
  }
}
