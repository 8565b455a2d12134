/**
 * Running host programs: an argument array (never a shell string) and a
 * timeout, so a wedged program surfaces as an error instead of a hung request.
 */
import { execFile } from 'node:child_process';
import { CorralError } from '../../contracts/errors.js';

export interface ExecOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Run a program; rejects with a CorralError carrying its stderr. */
export function exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, killSignal: 'SIGKILL', maxBuffer: 8 * 1024 * 1024, ...(opts.env ? { env: opts.env } : {}) },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const timedOut = (err as { killed?: boolean }).killed === true;
        const detail = String(stderr || err.message).trim().split('\n').slice(-3).join('; ');
        reject(
          new CorralError(timedOut ? 'TIMEOUT' : 'INTERNAL', timedOut ? `${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 30_000} ms` : `${cmd} ${args.join(' ')} failed: ${detail}`, {
            cmd,
          }),
        );
      },
    );
  });
}
