/**
 * Flag parsers that reject bad values with a clear message at the boundary.
 */
import { InvalidArgumentError } from 'commander';
import { CorralError } from '../contracts/errors.js';
import { HTTP_LIMIT_KEYS, type HttpLimits } from '../common/http/limits.js';

export function intOption(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

/** "cpus=4,mem=1024" → { cpus: { value: 4 }, mem: { value: 1024 } } */
export function scalarMap(name: string): (v: string) => Record<string, { value: number }> {
  return (v) => {
    const out: Record<string, { value: number }> = {};
    for (const part of v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const m = /^([A-Za-z_][A-Za-z0-9_.-]*)=(\d+(\.\d+)?)$/.exec(part);
      if (!m) throw new InvalidArgumentError(`${name}: expected name=number[,name=number…], got "${part}"`);
      out[m[1]!] = { value: Number(m[2]) };
    }
    return out;
  };
}

/**
 * Runs a flag parser on a value inside an action (e.g. a positional argument).
 * Commander prints the InvalidArgumentErrors it raises while parsing, but not
 * those thrown from actions: this makes them ordinary errors that are printed.
 */
export function parseArgument<T>(parse: (v: string) => T, v: string): T {
  try {
    return parse(v);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new CorralError('INVALID_ARGUMENT', err.message);
    throw err;
  }
}

/**
 * `--limit name=value`, repeatable: one of the daemon's limits — the HTTP
 * server's (common/http/limits.ts; docs/security.md, "Server limits") and any
 * of its own (`keys`, e.g. the master's subscription caps) — gathered into the
 * daemon's `limits` config section.
 */
export function limitOptionFor(keys: readonly string[]) {
  return (v: string, previous: Partial<HttpLimits> | undefined): Partial<HttpLimits> => {
    const m = /^([A-Za-z]+)=(\d+)$/.exec(v.trim());
    if (!m) throw new InvalidArgumentError(`--limit: expected name=integer (e.g. maxConnections=2048), got "${v}"`);
    if (!keys.includes(m[1]!)) throw new InvalidArgumentError(`--limit: unknown limit "${m[1]}"; one of ${keys.join(', ')}`);
    return { ...previous, [m[1]!]: Number(m[2]) };
  };
}

/** `--limit` of a daemon whose limits are the HTTP server's only. */
export const limitOption = limitOptionFor(HTTP_LIMIT_KEYS);

export const LIMIT_FLAG_HELP = 'HTTP server limit, repeatable, e.g. --limit maxConnections=2048 (names and defaults: docs/security.md)';
