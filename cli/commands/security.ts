/**
 * corral security — helpers for the master's security file and the cluster CA
 * (docs/security.md): `hash-secret` prints the `secret_hash` form of a secret,
 * for adding a principal or rotating a secret without keeping it in plain text
 * where only verification is needed; `revoke` puts certificates on the CA's
 * revocation list, which the daemons given it refuse.
 */
import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { hashSecret } from '../../core-scheduler/src/index.js';
import { CorralError } from '../../contracts/errors.js';
import { revokeCertificates, REVOCATION_LIST } from '../../provision/src/index.js';
import type { RevocationReason } from '../../common/tls/index.js';
import { globals } from '../context.js';
import { intOption } from '../parse.js';
import { output } from '../output.js';

const REASONS: RevocationReason[] = ['keyCompromise', 'superseded', 'affiliationChanged', 'cessationOfOperation', 'unspecified'];

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
  security
    .command('revoke')
    .description(
      `revoke certificates of the cluster CA: add them to its revocation list (CADIR/${REVOCATION_LIST}, signed by the CA). ` +
        `Copy the list to every node's tls directory (node up and node bundle do from a CA directory) and restart the daemons: they then refuse those certificates`,
    )
    .requiredOption('--ca-dir <dir>', 'the cluster CA directory (ca.crt and ca.key)')
    .option('--cert <file...>', 'certificate files to revoke')
    .option('--serial <hex...>', 'serial numbers to revoke (as openssl x509 -serial prints them)')
    .addOption(new Option('--reason <reason>', 'why').choices(REASONS).default('keyCompromise'))
    .option('--valid-days <n>', 'days the list is valid (a daemon refuses to start with an expired list)', intOption('--valid-days', 1, 3650), 730)
    .action(async (o: { caDir: string; cert?: string[]; serial?: string[]; reason: RevocationReason; validDays: number }, cmd: Command) => {
      const entries = await revokeCertificates(o.caDir, { certs: o.cert ?? [], serials: o.serial ?? [], reason: o.reason, validDays: o.validDays });
      output(globals(cmd), entries, [
        { header: 'SERIAL', value: (e) => e.serial },
        { header: 'REVOKED', value: (e) => e.revokedAt.toISOString() },
        { header: 'REASON', value: (e) => e.reason },
      ]);
    });
}
