/**
 * CNI network configurations, found the way libcni's LoadNetworkConf finds
 * them: in a configuration directory, `*.conflist` files first, in sorted
 * file-name order, the first whose `name` matches wins; then the older
 * single-plugin `*.conf` / `*.json` files (sorted), upgraded to a list of
 * one plugin. Sub-directories are not configurations.
 *
 * One deliberate difference: libcni stops at the first file it cannot
 * parse, so one broken file hides every network after it. Here a broken
 * file only loses its own network, and asking for a network that is not
 * found names the broken files and why they were rejected.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { formatIssues, z } from '../validate.js';

const pluginConf = z.looseObject({
  type: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a plugin type is a file name (letters, digits, _ . -)'),
  capabilities: z.record(z.string(), z.boolean()).optional(),
});
const boolish = z.union([z.boolean(), z.enum(['true', 'false', 'True', 'False', 'TRUE', 'FALSE'])]).transform((v) => v === true || String(v).toLowerCase() === 'true');
const conflistSchema = z.looseObject({
  cniVersion: z.string().default('0.1.0'),
  name: z.string().min(1),
  disableCheck: boolish.optional(),
  disableGC: boolish.optional(),
  plugins: z.array(pluginConf).min(1, 'a configuration list needs at least one plugin'),
});
const singleConfSchema = z.looseObject({ cniVersion: z.string().default('0.1.0'), name: z.string().min(1), type: pluginConf.shape.type });

export type PluginConf = z.output<typeof pluginConf>;

export interface NetworkConfList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  /** CHECK is a no-op for this network (libcni's `disableCheck`). */
  disableCheck?: boolean;
  /** GC is a no-op for this network (libcni's `disableGC`). */
  disableGC?: boolean;
}

function parse<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (!r.success) throw new CorralError('INVALID_ARGUMENT', `invalid ${what}: ${formatIssues(r.error)}`);
  return r.data;
}

/** A conflist object, or a single-plugin conf upgraded to a list of one (as libcni's ConfListFromConf). */
export function toConfList(raw: unknown, what: string): NetworkConfList {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CorralError('INVALID_ARGUMENT', `invalid ${what}: not a JSON object`);
  if ('plugins' in raw) {
    const l = parse(conflistSchema, raw, what);
    return {
      cniVersion: l.cniVersion,
      name: l.name,
      plugins: l.plugins,
      ...(l.disableCheck !== undefined ? { disableCheck: l.disableCheck } : {}),
      ...(l.disableGC !== undefined ? { disableGC: l.disableGC } : {}),
    };
  }
  const single = parse(singleConfSchema, raw, what);
  // name and cniVersion move up to the list; each plugin gets them back when it is run.
  const { cniVersion, name, ...plugin } = single;
  return { cniVersion, name, plugins: [plugin as PluginConf] };
}

/** Reads and validates one configuration file (.conflist, .conf or .json). */
export function loadConfFile(file: string): NetworkConfList {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CorralError('NOT_FOUND', `CNI configuration ${file} cannot be read: ${errorMessage(err)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `CNI configuration ${file} is not valid JSON: ${errorMessage(err)}`);
  }
  const list = toConfList(raw, `CNI configuration ${file}`);
  if (file.endsWith('.conflist') && !('plugins' in (raw as object))) {
    throw new CorralError('INVALID_ARGUMENT', `invalid CNI configuration ${file}: a .conflist needs a "plugins" list`);
  }
  return list;
}

/** Configuration files of `dir` in the order libcni reads them: sorted .conflist, then sorted .conf and .json. */
export function confFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CorralError('FAILED_PRECONDITION', `CNI configuration directory ${dir} cannot be read: ${errorMessage(err)}`);
  }
  const files = entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name);
  const lists = files.filter((f) => f.endsWith('.conflist')).sort();
  const singles = files.filter((f) => f.endsWith('.conf') || f.endsWith('.json')).sort();
  return [...lists, ...singles].map((f) => join(dir, f));
}

interface ConfDir {
  /** Networks by name; where two files name the same network, the one libcni would pick. */
  networks: Record<string, NetworkConfList>;
  /** Files that are not valid configurations, with the reason. */
  broken: Array<{ file: string; error: string }>;
}

/** Every network of a configuration directory (a missing directory has none). */
export function loadConfDir(dir: string): ConfDir {
  const out: ConfDir = { networks: {}, broken: [] };
  for (const file of confFiles(dir)) {
    try {
      const list = loadConfFile(file);
      out.networks[list.name] ??= list;
    } catch (err) {
      out.broken.push({ file, error: errorMessage(err) });
    }
  }
  return out;
}

/** The network `name` from `dir`, as libcni's LoadNetworkConf picks it; INVALID_ARGUMENT naming the known networks (and broken files) when absent. */
export function loadNetwork(dir: string, name: string): NetworkConfList {
  const all = loadConfDir(dir);
  const list = all.networks[name];
  if (list) return list;
  throw unknownNetwork(name, Object.keys(all.networks), `in ${dir}`, all.broken);
}

export function unknownNetwork(name: string, known: string[], where = '', broken: ConfDir['broken'] = []): CorralError {
  const brokenText = broken.length ? `; not loaded: ${broken.map((b) => b.error).join('; ')}` : '';
  return new CorralError('INVALID_ARGUMENT', `unknown CNI network "${name}"${where ? ` ${where}` : ''} (known: ${known.join(', ') || 'none'})${brokenText}`);
}
