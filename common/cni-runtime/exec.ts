/** Execing one CNI plugin the way a runtime (libcni's invoke package) does. */
import { run } from '../sys/exec.js';
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
export async function execPlugin(binary: string, call: CniCall, config: unknown, o: { hostNetns?: string; timeoutMs?: number } = {}): Promise<PluginRun> {
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
  const r = await run(argv[0]!, argv.slice(1), { env, input, timeoutMs: o.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 });
  let json: unknown;
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    json = undefined;
  }
  // A plugin that did not exit by itself (killed at the timeout, or could not start) ends with a failure code.
  const code = r.code === 0 && r.timedOut ? 1 : r.code;
  return { code, stdout: r.stdout, stderr: r.stderr || (r.timedOut ? `plugin did not finish within ${o.timeoutMs ?? 60_000} ms` : (r.error ?? '')), ms: r.ms, json };
}
