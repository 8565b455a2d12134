/**
 * Running host programs: an argument array (never a shell string) and a
 * timeout, so a wedged program surfaces as an error instead of a hung request.
 * `run` reports how a program ended without throwing (for callers that judge
 * the exit themselves: health checks, CNI plugins); `exec` is `run` that
 * rejects with a CorralError carrying the program's stderr.
 */
import { execFile } from 'node:child_process';
import { CorralError } from '../../contracts/errors.js';

interface ExecOptions {
  /** Killed (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
  /** The whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Written to the program's stdin, which is then closed. */
  input?: string;
  /** Output kept per stream (default 8 MiB); more fails the run. */
  maxBuffer?: number;
  cwd?: string;
}

interface RunResult {
  /** Exit code; 1 when the program could not start, was killed or overflowed maxBuffer. */
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Why the run failed when it has no exit code of its own (spawn error, buffer overflow). */
  error?: string;
  ms: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** Runs a program to its end; never rejects. */
export function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const child = execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: opts.maxBuffer ?? 8 * 1024 * 1024,
        ...(opts.env ? { env: opts.env } : {}),
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
      },
      (err, stdout, stderr) => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (!err) return resolve({ code: 0, stdout, stderr, timedOut: false, ms });
        const e = err as { code?: unknown; killed?: boolean };
        const code = typeof e.code === 'number' ? e.code : 1;
        resolve({ code, stdout: String(stdout), stderr: String(stderr), timedOut: e.killed === true, ...(typeof e.code === 'number' ? {} : { error: err.message }), ms });
      },
    );
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => undefined); // a program may exit without reading its input
      child.stdin?.end(opts.input);
    }
  });
}

/** Run a program; resolves with its stdout, rejects with a CorralError carrying its stderr. */
export async function exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code === 0 && !r.timedOut) return r.stdout;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (r.timedOut) throw new CorralError('TIMEOUT', `${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms`, { cmd });
  const detail = String(r.stderr.trim() || r.error || `exit ${r.code}`)
    .trim()
    .split('\n')
    .slice(-3)
    .join('; ');
  throw new CorralError('INTERNAL', `${cmd} ${args.join(' ')} failed: ${detail}`, { cmd });
}
