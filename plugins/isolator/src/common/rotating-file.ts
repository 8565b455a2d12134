/**
 * Size-rotated log files for the Docker containerizer, with the same rules
 * as the native task shim's (native/task-shim/logs.c), so `corral logs`
 * reads both alike: the live file is PATH; when a write would take it past
 * maxBytes it becomes PATH.1 (PATH.1 → PATH.2 …), keeping at most maxFiles
 * files in all; with maxFiles 1 the live file is truncated. Chunks are split
 * at the boundary, never dropped.
 */
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export class RotatingFile {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly maxFiles: number,
  ) {
    // A task may keep its logs in a directory of its sandbox (logs/out): made here, as the native shim makes it.
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a', 0o644);
    this.size = fstatSync(this.fd).size;
  }

  write(data: Buffer): void {
    let offset = 0;
    while (offset < data.length) {
      let room = this.maxBytes - this.size;
      if (room <= 0) {
        this.rotate();
        room = this.maxBytes;
      }
      const n = Math.min(room, data.length - offset);
      writeSync(this.fd, data, offset, n);
      this.size += n;
      offset += n;
    }
  }

  private rotate(): void {
    if (this.maxFiles <= 1) {
      ftruncateSync(this.fd, 0);
      this.size = 0;
      return;
    }
    rmSync(`${this.path}.${this.maxFiles - 1}`, { force: true });
    for (let i = this.maxFiles - 2; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        // that generation does not exist yet
      }
    }
    renameSync(this.path, `${this.path}.1`);
    closeSync(this.fd);
    this.fd = openSync(this.path, 'w', 0o644);
    this.size = 0;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
