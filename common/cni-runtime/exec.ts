/** Execing a CNI plugin the way a runtime (libcni) does. */
import { execFile } from 'node:child_process';
import { inNamespace } from '../sys/process.js';

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** stdout parsed as JSON when it is JSON. */
  json: unknown;
}

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Extra environment (e.g. CORRAL_CNI_TIMEOUT); undefined values are removed. */
  env?: Record<string, string | undefined>;
}

/** Execs a CNI plugin as a runtime would: CNI_* in the environment, the config on stdin. */
export function execPlugin(binary: string, call: CniCall, config: unknown, o: { hostNetns?: string; timeoutMs?: number } = {}): Promise<PluginRun> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: call.command, CNI_PATH: call.path ?? '/usr/lib/cni' };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  for (const [k, v] of Object.entries(call.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const argv = inNamespace(o.hostNetns, [binary]);
  const input = typeof config === 'string' ? config : JSON.stringify(config);
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const child = execFile(argv[0]!, argv.slice(1), { env, timeout: o.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr, ms, json });
    });
    child.stdin?.on('error', () => undefined); // a plugin may exit without reading stdin (VERSION)
    child.stdin?.end(input);
  });
}
