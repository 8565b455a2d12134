/**
 * The agent's end of the resident task launcher (`corral-task-shim serve`,
 * native/task-shim). One launcher per containerizer: requests are written to
 * its stdin as NUL-separated `key=value` fields (an empty field ends one),
 * replies come back as lines "REQ ok …" / "REQ err MESSAGE", possibly out of
 * order (each supervisor answers its own launch). Forking a supervisor from
 * this small C process instead of spawning from Node is what keeps a launch
 * near a millisecond. The launcher exits when our end of its stdin closes —
 * including when the agent dies — and the supervisors carry on without it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { CorralError } from '../../../../contracts/errors.js';
import type { Logger } from '../../../../common/log.js';

export type Field = readonly [key: string, value: string];

/** The wire form of one request. Keys are words; values may hold anything but NUL. */
export function encodeRequest(fields: readonly Field[]): Buffer {
  const parts: string[] = [];
  for (const [k, v] of fields) {
    if (!/^[a-z_-]+$/.test(k)) throw new CorralError('INTERNAL', `bad launcher field name "${k}"`);
    if (v.includes('\0')) throw new CorralError('INVALID_ARGUMENT', `${k} must not contain NUL characters`);
    parts.push(`${k}=${v}\0`);
  }
  parts.push('\0');
  return Buffer.from(parts.join(''));
}

interface Reply {
  ok: boolean;
  /** Words after "ok", or the message after "err". */
  words: string[];
  message: string;
}

export function parseReply(line: string): { req: string; reply: Reply } | undefined {
  const m = /^(\S+) (ok|err)(?: (.*))?$/.exec(line);
  if (!m) return undefined;
  const rest = m[3] ?? '';
  return { req: m[1]!, reply: { ok: m[2] === 'ok', words: rest ? rest.split(' ') : [], message: rest } };
}

interface Pending {
  resolve(words: string[]): void;
  reject(err: Error): void;
}

export class TaskLauncher {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private stderr = '';

  constructor(
    private readonly shimPath: string,
    private readonly log: Logger,
  ) {}

  private ensure(): ChildProcess {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return this.child;
    if (!existsSync(this.shimPath)) throw new CorralError('FAILED_PRECONDITION', `the task shim ${this.shimPath} is missing: build it with \`make -C native/task-shim\``);
    const child = spawn(this.shimPath, ['serve'], { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
    this.child = child;
    child.stdin!.on('error', () => undefined); // reported through 'exit'
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr = (this.stderr + c).slice(-4000)));
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const err = new CorralError('UNAVAILABLE', `the task launcher exited (${signal ?? code}): ${this.stderr.trim() || 'no message'}`);
      if (this.pending.size) this.log.error({ code, signal }, 'task launcher exited with requests pending');
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    child.on('error', (e) => this.log.error({ err: e }, 'task launcher failed'));
    return child;
  }

  private onLine(line: string): void {
    const parsed = parseReply(line);
    if (!parsed) return void this.log.warn({ line }, 'unparseable task launcher reply');
    const p = this.pending.get(parsed.req);
    if (!p) return;
    this.pending.delete(parsed.req);
    if (parsed.reply.ok) p.resolve(parsed.reply.words);
    else p.reject(new CorralError('INVALID_ARGUMENT', parsed.reply.message));
  }

  /** Sends one request; resolves with the words after "ok", rejects with the launcher's message. */
  request(op: string, fields: readonly Field[]): Promise<string[]> {
    const req = String(this.nextId++);
    const payload = encodeRequest([['op', op], ['req', req], ...fields]);
    const child = this.ensure();
    return new Promise((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      child.stdin!.write(payload);
    });
  }

  /** Closes the launcher's stdin; it exits, leaving running tasks alone. */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin!.end();
    });
  }
}
