/**
 * Configuration from, in rising precedence: schema defaults, a YAML/JSON file,
 * the environment (CORRAL_*), and command-line flags. One zod schema per daemon
 * describes the result; everything is validated once, at start-up.
 *
 * Environment names are the daemon's prefix plus the key path in
 * SCREAMING_SNAKE_CASE with `__` between nesting levels: for the master
 * (prefix CORRAL_MASTER_), `store.etcdEndpoints` is CORRAL_MASTER_STORE__ETCD_ENDPOINTS.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CorralError } from '../contracts/errors.js';
import { formatIssues } from './validate.js';

interface ConfigSources {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Prefix of this daemon's environment variables, e.g. "CORRAL_MASTER_" (default "CORRAL_"). */
  envPrefix?: string;
  /** Already nested like the schema; undefined values are ignored. */
  flags?: Record<string, unknown>;
}

type Plain = Record<string, unknown>;

const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlain(v) && isPlain(out[k]) ? merge(out[k] as Plain, v) : v;
  }
  return out;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  // Defaults, optionals and nullables wrap the shape we need to walk.
  for (;;) {
    const def = (s as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def;
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) {
      s = def.innerType;
    } else {
      return s;
    }
  }
}

/** Leaf key paths of an object schema, for mapping environment variables. */
function leafPaths(schema: z.ZodType, prefix: string[] = []): string[][] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
  }
  return [prefix];
}

const snake = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

function envName(path: string[], prefix = 'CORRAL_'): string {
  return prefix + path.map(snake).join('__');
}

function envValue(raw: string): unknown {
  const t = raw.trim();
  if (/^(true|false|null|-?\d+(\.\d+)?|\[.*\]|\{.*\})$/s.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}

function setPath(target: Plain, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isPlain(node[key])) node[key] = {};
    node = node[key] as Plain;
  }
  node[path[path.length - 1]!] = value;
}

export function readConfigFile(file: string): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `config file ${file} is not valid YAML/JSON: ${(err as Error).message}`);
  }
  if (parsed == null) return {};
  if (!isPlain(parsed)) throw new CorralError('INVALID_ARGUMENT', `config file ${file} must hold a mapping at the top level`);
  return parsed;
}

export function loadConfig<S extends z.ZodType>(schema: S, sources: ConfigSources = {}): z.output<S> {
  let merged: Plain = {};
  if (sources.file) merged = merge(merged, readConfigFile(sources.file));
  const env = sources.env ?? process.env;
  const fromEnv: Plain = {};
  for (const path of leafPaths(schema)) {
    const raw = env[envName(path, sources.envPrefix)];
    if (raw !== undefined && raw !== '') setPath(fromEnv, path, envValue(raw));
  }
  merged = merge(merged, fromEnv);
  if (sources.flags) merged = merge(merged, sources.flags);
  const result = schema.safeParse(merged);
  if (!result.success) throw new CorralError('INVALID_ARGUMENT', `invalid configuration: ${formatIssues(result.error, 5)}`);
  return result.data;
}
