/**
 * Follows a Docker container's stdout/stderr into the sandbox's rotated log
 * files, so `corral logs` works the same for Docker and native tasks. Logs
 * are requested with timestamps; the last one written per stream is saved
 * after every chunk copied (a tiny file on the run directory's tmpfs), so
 * that after an agent restart following resumes where it stopped: nothing
 * the task wrote meanwhile is lost, and at most the chunk being copied when
 * the agent died is written twice.
 * The stream is Docker's multiplexed format (8-byte frame headers: stream,
 * 0, 0, 0, big-endian length), parsed here frame by frame.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type Dockerode from 'dockerode';
import { RotatingFile } from '../common/rotating-file.js';

/** RFC 3339 with up to 9 fractional digits → nanoseconds since the epoch (Docker trims trailing zeros). */
export function timestampNs(ts: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(ts);
  if (!m) return undefined;
  const secs = Date.parse(`${m[1]}Z`);
  if (Number.isNaN(secs)) return undefined;
  return BigInt(secs) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** Splits a multiplexed log stream into frames (stream 1 = stdout, 2 = stderr). */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + len) break;
      this.onFrame(this.buf[0]!, this.buf.subarray(8, 8 + len));
      this.buf = this.buf.subarray(8 + len);
    }
  }
}

interface LogTarget {
  stdout: string;
  stderr: string;
  maxBytes: number;
  maxFiles: number;
  /** Where the position is saved. */
  positionFile: string;
}

type Stream = 'stdout' | 'stderr';

export class LogFollower {
  private stream: NodeJS.ReadableStream | undefined;
  /** Per stream: Docker copies stdout and stderr separately, so only within one stream are timestamps in order. */
  private last: Record<Stream, { ns: bigint; ts: string } | undefined> = { stdout: undefined, stderr: undefined };
  readonly done: Promise<void>;

  constructor(
    container: Dockerode.Container,
    private readonly target: LogTarget,
  ) {
    try {
      const saved = JSON.parse(readFileSync(target.positionFile, 'utf8')) as Partial<Record<Stream, string>>;
      for (const k of ['stdout', 'stderr'] as const) {
        const ns = saved[k] ? timestampNs(saved[k]!) : undefined;
        if (ns !== undefined) this.last[k] = { ns, ts: saved[k]! };
      }
    } catch {
      // first follower of this container
    }
    this.done = this.follow(container);
  }

  private async follow(container: Dockerode.Container): Promise<void> {
    const files: Record<Stream, RotatingFile> = {
      stdout: new RotatingFile(this.target.stdout, this.target.maxBytes, this.target.maxFiles),
      stderr: new RotatingFile(this.target.stderr, this.target.maxBytes, this.target.maxFiles),
    };
    try {
      // `since` has second resolution (inclusive) and both streams restart from the older position;
      // frames at or before a stream's own saved timestamp are skipped below.
      const positions = [this.last.stdout?.ns, this.last.stderr?.ns];
      const since = positions.some((p) => p === undefined) ? 0 : Number((positions[0]! < positions[1]! ? positions[0]! : positions[1]!) / 1_000_000_000n);
      const stream = (await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since })) as unknown as NodeJS.ReadableStream;
      this.stream = stream;
      const parser = new FrameParser((kind, payload) => this.frame(kind === 2 ? 'stderr' : 'stdout', files, payload));
      await new Promise<void>((resolve) => {
        stream.on('data', (c: Buffer) => {
          parser.push(c);
          this.save();
        });
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', () => resolve());
      });
    } catch {
      // The container is gone: nothing more to copy.
    } finally {
      files.stdout.close();
      files.stderr.close();
      this.save();
    }
  }

  private frame(kind: Stream, files: Record<Stream, RotatingFile>, payload: Buffer): void {
    const space = payload.indexOf(0x20);
    const ts = space > 0 ? payload.subarray(0, space).toString('latin1') : '';
    const ns = timestampNs(ts);
    const last = this.last[kind];
    if (ns !== undefined && last !== undefined && ns <= last.ns) return;
    files[kind].write(ns !== undefined ? payload.subarray(space + 1) : payload);
    if (ns !== undefined) this.last[kind] = { ns, ts };
  }

  private save(): void {
    if (!this.last.stdout && !this.last.stderr) return;
    try {
      writeFileSync(this.target.positionFile, JSON.stringify({ stdout: this.last.stdout?.ts, stderr: this.last.stderr?.ts }));
    } catch {
      // the state directory is gone (container destroyed)
    }
  }

  /** Stops following (the agent is closing); the saved position lets a later follower resume. */
  stop(): void {
    (this.stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
  }
}
