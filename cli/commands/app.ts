/**
 * corral app deploy FILE | ls | show APP | scale APP N | restart APP | rm APP
 * — manage long-running apps through the service framework's API.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CorralError } from '../../contracts/errors.js';
import { parseAppSpec, readAppText, MAX_APP_FILE_BYTES } from '../../core-scheduler/src/index.js';
import { DEFAULT_SERVICES_URL, ServicesClient } from '../../core-scheduler/src/index.js';
import type { AppView, InstanceView } from '../../core-scheduler/src/index.js';
import { defaultScheme, globals, identity } from '../context.js';
import { clientTls } from '../tls-options.js';
import { output, progress, renderKeyValue } from '../output.js';
import { intOption, parseArgument } from '../parse.js';

function client(cmd: Command): ServicesClient {
  const o = cmd.optsWithGlobals() as { services?: string };
  const url = o.services ?? process.env.CORRAL_SERVICES ?? DEFAULT_SERVICES_URL.replace(/^http:/, `${defaultScheme()}:`);
  return new ServicesClient({ url, ...identity(globals(cmd)), tls: clientTls(cmd) });
}

function readFile(file: string): string {
  try {
    const text = readFileSync(file === '-' ? 0 : file, 'utf8');
    if (Buffer.byteLength(text) > MAX_APP_FILE_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `${file} is larger than ${MAX_APP_FILE_BYTES} bytes`);
    return text;
  } catch (err) {
    if (err instanceof CorralError) throw err;
    throw new CorralError('INVALID_ARGUMENT', `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The INFO column of `corral app show`: why an instance is not running, or what it last reported. */
export function instanceDetail(t: InstanceView): string {
  if (t.phase === 'backoff') return `retry at ${t.retryAt}: ${t.lastError?.message ?? ''}`;
  const lastError = t.lastError ? `last error: ${t.lastError.state} ${t.lastError.message}` : '';
  // An instance waiting again after a failure keeps its last error in view: the wait alone does not say why it is not running.
  if (t.waiting) return lastError ? `${t.waiting}; ${lastError}` : t.waiting;
  return lastError || (t.message ?? '');
}

function printView(json: boolean, v: AppView): void {
  if (json) {
    process.stdout.write(JSON.stringify(v, null, 2) + '\n');
    return;
  }
  const head: Array<[string, string]> = [
    ['app', v.id],
    ['status', `${v.status}: ${v.message}`],
    ['instances', `${v.running} running of ${v.instances}${v.app.healthCheck ? `, ${v.healthy} healthy` : ''}`],
    ['run', v.app.image ? `image ${v.app.image}${v.app.cmd ? ` (${v.app.cmd})` : ''}` : (v.app.cmd ?? v.app.args?.join(' ') ?? '')],
    ['resources', `cpus ${v.app.cpus}, mem ${v.app.mem} MB, disk ${v.app.disk} MB, role ${v.role}`],
    ['version', `${v.version} (${v.strategy} restarts; updated ${v.updatedAt})`],
  ];
  // Long values (a command line, a message) wrap to the terminal's width; --json has them whole.
  process.stdout.write(renderKeyValue(head) + '\n\n');
  output({}, v.tasks, [
    { header: 'INDEX', value: (t) => t.index },
    { header: 'PHASE', value: (t) => t.phase },
    { header: 'TASK', value: (t) => t.taskId },
    { header: 'HOST', value: (t) => t.host },
    { header: 'IPS', value: (t) => t.ips.join(',') },
    { header: 'PORTS', value: (t) => t.ports.join(',') },
    { header: 'HEALTHY', value: (t) => (t.healthy === undefined ? '' : t.healthy) },
    { header: 'VOLUMES', value: (t) => t.volumes.join(',') },
    { header: 'INFO', value: instanceDetail },
  ]);
}

async function waitRunning(c: ServicesClient, id: string, seconds: number): Promise<AppView> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await c.get(id);
    if (v.status === 'running' || v.status === 'suspended') return v;
    if (Date.now() > end) throw new CorralError('TIMEOUT', `app ${id} is not running after ${seconds} s: ${v.status}: ${v.message}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function registerApp(program: Command): void {
  const app = program
    .command('app')
    .description('long-running apps kept running by the service framework (corral services)')
    .option('--services <urls>', `service framework API; several daemons separated by commas (the leader among them is used) (env CORRAL_SERVICES, default ${DEFAULT_SERVICES_URL})`);

  app
    .command('deploy <file>')
    .description('create or update an app from a YAML or JSON file ("-" reads stdin)')
    .option('--wait [seconds]', 'wait until every instance runs (default 60 s)')
    .action(async (file: string, o: { wait?: string | boolean }, cmd: Command) => {
      const raw = readAppText(readFile(file), file) as Record<string, unknown>;
      // Checked here first, so a bad file fails with the file's name before anything is sent.
      const spec = parseAppSpec(raw, file);
      const c = client(cmd);
      let v = await c.deploy({ ...raw, id: spec.id });
      if (o.wait) {
        progress(`waiting for ${spec.instances} instance(s) of ${spec.id}…`);
        v = await waitRunning(c, spec.id, o.wait === true ? 60 : parseArgument(intOption('--wait', 1, 86_400), o.wait));
      }
      if (globals(cmd).json) printView(true, v);
      else process.stdout.write(`app ${v.id} deployed (version ${v.version}): ${v.status}: ${v.message}\n`);
    });

  app
    .command('ls')
    .description('list apps')
    .action(async (_o, cmd: Command) => {
      const list = await client(cmd).list();
      output(globals(cmd), list, [
        { header: 'ID', value: (a) => a.id },
        { header: 'STATUS', value: (a) => a.status },
        { header: 'RUNNING', value: (a) => `${a.running}/${a.instances}` },
        { header: 'HEALTHY', value: (a) => a.healthy },
        { header: 'ROLE', value: (a) => a.role },
        { header: 'VERSION', value: (a) => a.version },
        { header: 'MESSAGE', value: (a) => a.message },
      ]);
    });

  app
    .command('show <app>')
    .description('an app with each instance: task, host, IPs, ports, volumes, health, errors')
    .action(async (id: string, _o, cmd: Command) => printView(globals(cmd).json, await client(cmd).get(id)));

  app
    .command('scale <app> <instances>')
    .description('set the number of instances (extra ones are killed, the others untouched)')
    .action(async (id: string, n: string, _o, cmd: Command) => {
      const v = await client(cmd).scale(id, parseArgument(intOption('instances', 0, 10_000), n));
      if (globals(cmd).json) printView(true, v);
      else process.stdout.write(`app ${id} scaled to ${v.instances}: ${v.message}\n`);
    });

  app
    .command('restart <app>')
    .description('replace every instance, one at a time (--all: all at once)')
    .option('--all', 'kill and relaunch every instance at once')
    .action(async (id: string, o: { all?: boolean }, cmd: Command) => {
      const v = await client(cmd).restart(id, o.all ? 'all' : 'rolling');
      if (globals(cmd).json) printView(true, v);
      else process.stdout.write(`app ${id} restarting (version ${v.version}, ${v.strategy})\n`);
    });

  app
    .command('rm <app>')
    .description('kill every instance and forget the app')
    .action(async (id: string, _o, cmd: Command) => {
      const v = await client(cmd).remove(id);
      if (globals(cmd).json) printView(true, v);
      else process.stdout.write(`app ${id} removing: ${v.message}\n`);
    });
}
