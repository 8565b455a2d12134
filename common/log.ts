/**
 * The one logger of corral: structured JSON lines (pino). Every component asks
 * for a child with its name so a log line always says where it came from.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

let root: Logger | undefined;

interface LogOptions {
  level?: LevelWithSilent;
  /** File to append to; default stderr so a CLI's stdout stays clean for tables and JSON. */
  file?: string;
}

export function configureLogging(opts: LogOptions = {}): Logger {
  const level = opts.level ?? (process.env.CORRAL_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info';
  const dest = opts.file ? pino.destination({ dest: opts.file, append: true, mkdir: true, sync: false }) : pino.destination(2);
  root = pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  return root;
}

export function logger(component: string): Logger {
  if (!root) configureLogging();
  return root!.child({ component });
}
