/**
 * corral — the command line. Daemons (master, later agent and plugins) and
 * client commands live here as subcommands; each group registers itself.
 */
import { Command, CommanderError } from 'commander';
import { isCorralError, errorMessage } from '../contracts/errors.js';
import { VERSION } from '../core-scheduler/src/index.js';
import { registerMaster } from './commands/master.js';
import { registerCluster } from './commands/cluster.js';
import { registerUp } from './commands/up.js';
import { registerDiscovery } from './commands/discovery.js';
import { registerCni } from './commands/cni.js';
import { registerLab } from './commands/lab.js';
import { registerVolume } from './commands/volume.js';
import { registerLogs } from './commands/logs.js';
import { registerServices } from './commands/services.js';
import { registerApp } from './commands/app.js';
import { registerAgent } from './commands/agent.js';
import { registerNode } from './commands/node.js';
import { registerSecurity } from './commands/security.js';
import { addTlsOptions } from './tls-options.js';

function buildProgram(): Command {
  const program = new Command();
  program
    .name('corral')
    .description('corral: a set of Linux machines as one datacenter computer')
    .version(VERSION)
    .option('--master <url>', 'master URL (env CORRAL_MASTER)', undefined)
    .option('--principal <name>', 'principal to authenticate as (env CORRAL_PRINCIPAL)')
    .option('--secret-file <file>', "file holding the principal's secret (env CORRAL_SECRET_FILE, or the secret itself in CORRAL_SECRET; never on the command line)")
    .option('--credentials <file>', 'security file to take an operator credential from (env CORRAL_CREDENTIALS)')
    .option('--json', 'print JSON instead of tables');
  addTlsOptions(program).showHelpAfterError().exitOverride();
  registerMaster(program);
  registerCluster(program);
  registerUp(program);
  registerDiscovery(program);
  registerCni(program);
  registerLab(program);
  registerVolume(program);
  registerLogs(program);
  registerAgent(program);
  registerServices(program);
  registerApp(program);
  registerNode(program);
  registerSecurity(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`error: ${isCorralError(err) ? err.message : errorMessage(err)}\n`);
    process.exitCode = 1;
  }
}
