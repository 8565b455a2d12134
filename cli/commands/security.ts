/**
 * corral security — helpers for the master's security file (docs/security.md,
 * "Credentials and ACLs"): `hash-secret` prints the `secret_hash` form of a
 * secret, for adding a principal or rotating a secret without keeping it in
 * plain text where only verification is needed.
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { hashSecret } from '../../core-scheduler/src/index.js';
import { CorralError } from '../../contracts/errors.js';
import { globals } from '../context.js';

export function registerSecurity(program: Command): void {
  const security = program.command('security').description("the master's security file: hashed secrets");
  security
    .command('hash-secret')
    .description(
      'print the secret_hash (scrypt) of the secret given by --secret-file, CORRAL_SECRET_FILE or CORRAL_SECRET; with --generate, make a random secret, write it to --secret-file (0600) and print its hash',
    )
    .option('--generate', 'generate a random secret into the --secret-file (which must not exist yet)')
    .action(async (o: { generate?: boolean }, cmd: Command) => {
      if (o.generate) {
        const file = (cmd.optsWithGlobals() as { secretFile?: string }).secretFile ?? process.env.CORRAL_SECRET_FILE;
        if (!file) throw new CorralError('INVALID_ARGUMENT', '--generate needs --secret-file FILE (or CORRAL_SECRET_FILE) to write the secret to');
        const { writeFileSync } = await import('node:fs');
        const secret = randomBytes(18).toString('base64url');
        try {
          writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
        } catch (err) {
          throw new CorralError('INVALID_ARGUMENT', `--secret-file ${file}: cannot create it (${(err as NodeJS.ErrnoException).code ?? String(err)}); it must not exist yet`);
        }
        process.stdout.write(`${hashSecret(secret)}\n`);
        return;
      }
      const { secret } = globals(cmd);
      if (!secret) throw new CorralError('INVALID_ARGUMENT', 'no secret given: pass --secret-file FILE (or set CORRAL_SECRET_FILE or CORRAL_SECRET); it is never taken from the command line');
      process.stdout.write(`${hashSecret(secret)}\n`);
    });
}
