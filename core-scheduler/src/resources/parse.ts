/**
 * The Mesos text form of resources, as given to agents with `--resources`:
 *   cpus:8; mem:16384; disk:100000; ports:[31000-32000]; gpus:0; cpus(ads):4
 * A `(role)` suffix makes a static reservation. A JSON array of v1 Resource
 * objects is accepted as well.
 */
import { CorralError } from '../../../contracts/errors.js';
import { parseInput } from '../../../common/validate.js';
import { Resources, type Entry } from './resources.js';
import { v1ResourceListSchema, validateRoleName } from '../../../contracts/v1/v1-schema.js';

const ITEM = /^([A-Za-z_][A-Za-z0-9_.-]*)(?:\(([^)]*)\))?\s*:\s*(.+)$/;

function bad(text: string, why: string): CorralError {
  return new CorralError('INVALID_ARGUMENT', `invalid resource "${text}": ${why}`);
}

export function parseResources(text: string, defaultRole?: string): Resources {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (err) {
      throw new CorralError('INVALID_ARGUMENT', `invalid resources JSON: ${(err as Error).message}`);
    }
    return Resources.fromV1(parseInput(v1ResourceListSchema, json, 'resources'));
  }
  const out = new Resources();
  for (const raw of trimmed.split(';')) {
    const item = raw.trim();
    if (!item) continue;
    const m = ITEM.exec(item);
    if (!m) throw bad(item, 'expected name[(role)]:value');
    const [, name, roleText, valueText] = m as unknown as [string, string, string | undefined, string];
    const role = roleText?.trim() || defaultRole;
    if (role && role !== '*') {
      const why = validateRoleName(role);
      if (why) throw bad(item, why);
    }
    const reservations = role && role !== '*' ? [{ type: 'STATIC' as const, role }] : [];
    let entry: Entry;
    const value = valueText.trim();
    if (value.startsWith('[')) {
      if (!value.endsWith(']')) throw bad(item, 'ranges must be closed with ]');
      const ranges: [number, number][] = [];
      for (const part of value.slice(1, -1).split(',')) {
        const p = part.trim();
        if (!p) continue;
        const rm = /^(\d+)\s*-\s*(\d+)$/.exec(p);
        if (!rm) throw bad(item, `bad range "${p}"`);
        const b = Number(rm[1]);
        const e = Number(rm[2]);
        if (e < b || e > 0xffffffff) throw bad(item, `bad range "${p}"`);
        ranges.push([b, e]);
      }
      entry = Resources.rangesEntry(name, ranges, { reservations });
    } else if (value.startsWith('{')) {
      if (!value.endsWith('}')) throw bad(item, 'sets must be closed with }');
      const items = value
        .slice(1, -1)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      entry = Resources.setEntry(name, items, { reservations });
    } else {
      const v = Number(value);
      if (!Number.isFinite(v) || v < 0 || value === '') throw bad(item, 'scalar must be a non-negative number');
      if (v > 1e15) throw bad(item, 'scalar is too large');
      entry = Resources.scalarEntry(name, v, { reservations });
    }
    out.addEntry(entry);
  }
  return out;
}
