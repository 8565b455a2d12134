/**
 * What the DNS benchmarks share: dnsperf as the load, and a server under test
 * in a process of its own that says on stdout which port it serves.
 */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { forgetPid, recordPid } from '../test/harness/resources.js';

/** Runs dnsperf with `args`; its run must end within `seconds` plus 30 s. */
export function dnsperf(args: string[], seconds: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dnsperf', args, { maxBuffer: 512 * 1024 * 1024, timeout: (seconds + 30) * 1000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

export interface ServingChild {
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts `node --import tsx <args>` from the repository root and resolves with
 * the port captured by `portPattern` from its stdout; a child that exits or
 * says nothing in time is stopped and the error names it.
 */
export async function startServingChild(name: string, args: string[], portPattern: RegExp, timeoutMs: number): Promise<ServingChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
  recordPid(name, child.pid!);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    forgetPid(name, child.pid!);
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs / 1000} s: ${out}`)), timeoutMs);
      child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${out}`)));
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = portPattern.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    return { port, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
