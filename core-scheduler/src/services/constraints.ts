/**
 * Placement constraints (Marathon's operators): where an app's instances may
 * run, judged against the agent an offer comes from and the agents the app's
 * other instances already occupy. Pure functions: the planner calls them for
 * every (instance, offer) pair and turns a refusal into the reason shown in
 * `corral app show`.
 *
 *   hostname UNIQUE        one instance per host (any attribute works too)
 *   rack CLUSTER a         only where rack = a (no value: where the others are)
 *   zone GROUP_BY [3]      spread evenly over the values (3 expected)
 *   hostname LIKE re       value fully matches the regex
 *   hostname UNLIKE re     value does not fully match it (or is absent)
 */
import { z } from '../../../common/validate.js';
import type { V1Attribute } from '../../../contracts/v1/v1.js';

const OPERATORS = ['UNIQUE', 'CLUSTER', 'GROUP_BY', 'LIKE', 'UNLIKE'] as const;
type Operator = (typeof OPERATORS)[number];

interface Constraint {
  field: string;
  operator: Operator;
  value?: string | undefined;
}

/** Where an instance runs or could run: the agent's host name and attributes as text. */
export interface Placement {
  hostname: string;
  attributes: Record<string, string>;
}

const MAX_REGEX = 512;

/** Accepts ["hostname", "UNIQUE"], "rack GROUP_BY 3" or { field, operator, value }. */
export const constraintSchema = z
  .union([
    z
      .string()
      .max(1024)
      .transform((s) => s.trim().split(/\s+/)),
    z
      .array(z.union([z.string().max(1024), z.number()]).transform(String))
      .min(2)
      .max(3),
    z
      .strictObject({
        field: z.string(),
        operator: z.string(),
        value: z
          .union([z.string().max(1024), z.number()])
          .transform(String)
          .optional(),
      })
      .transform((o) => [o.field, o.operator, ...(o.value === undefined ? [] : [o.value])]),
  ])
  .transform((parts, ctx): Constraint => {
    const fail = (message: string): Constraint => {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    };
    const [field = '', rawOp = '', ...rest] = parts;
    const operator = rawOp.toUpperCase() as Operator;
    const value = rest.length ? rest.join(' ') : undefined;
    const shown = parts.join(' ');
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(field)) return fail(`constraint "${shown}": field must be "hostname" or an agent attribute name`);
    if (!OPERATORS.includes(operator)) return fail(`constraint "${shown}": operator must be one of ${OPERATORS.join(', ')}`);
    if (operator === 'UNIQUE' && value !== undefined) return fail(`constraint "${shown}": UNIQUE takes no value`);
    if (operator === 'GROUP_BY' && value !== undefined && !/^[1-9]\d{0,3}$/.test(value)) return fail(`constraint "${shown}": GROUP_BY takes an optional number of groups (1-9999)`);
    if ((operator === 'LIKE' || operator === 'UNLIKE') && value === undefined) return fail(`constraint "${shown}": ${operator} needs a regular expression`);
    if (operator === 'LIKE' || operator === 'UNLIKE') {
      if (value!.length > MAX_REGEX) return fail(`constraint "${shown.slice(0, 80)}…": the regular expression is longer than ${MAX_REGEX} characters`);
      try {
        new RegExp(value!);
      } catch (err) {
        return fail(`constraint "${shown}": ${(err as Error).message}`);
      }
    }
    return { field, operator, ...(value !== undefined ? { value } : {}) };
  });

export function describeConstraint(c: Constraint): string {
  return [c.field, c.operator, ...(c.value !== undefined ? [c.value] : [])].join(' ');
}

/** Agent attributes as the text constraints compare against. */
export function attributeText(attributes: readonly V1Attribute[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of attributes) {
    if (a.type === 'TEXT') out[a.name] = a.text?.value ?? '';
    else if (a.type === 'SCALAR') out[a.name] = String(a.scalar?.value ?? '');
    else if (a.type === 'SET') out[a.name] = (a.set?.item ?? []).join(',');
    else out[a.name] = `[${(a.ranges?.range ?? []).map((r) => `${r.begin}-${r.end}`).join(',')}]`;
  }
  return out;
}

function fieldValue(p: Placement, field: string): string | undefined {
  return field === 'hostname' ? p.hostname : p.attributes[field];
}

const compiled = new Map<string, RegExp>();
function fullMatch(pattern: string, value: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`);
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re.test(value);
}

/**
 * Why `candidate` breaks constraint `c` given where the app's other instances
 * are, or undefined when it satisfies it.
 */
function violation(c: Constraint, candidate: Placement, others: readonly Placement[]): string | undefined {
  const v = fieldValue(candidate, c.field);
  const name = describeConstraint(c);
  if (v === undefined) return c.operator === 'UNLIKE' ? undefined : `${name}: agent has no attribute "${c.field}"`;
  switch (c.operator) {
    case 'UNIQUE':
      return others.some((o) => fieldValue(o, c.field) === v) ? `${name}: ${c.field} "${v}" already has an instance` : undefined;
    case 'CLUSTER': {
      const want = c.value ?? others.map((o) => fieldValue(o, c.field)).find((x) => x !== undefined);
      return want === undefined || want === v ? undefined : `${name}: ${c.field} is "${v}", not "${want}"`;
    }
    case 'GROUP_BY': {
      const counts = new Map<string, number>();
      for (const o of others) {
        const ov = fieldValue(o, c.field);
        if (ov !== undefined) counts.set(ov, (counts.get(ov) ?? 0) + 1);
      }
      const expected = c.value === undefined ? 0 : Number(c.value);
      const least = counts.size < expected ? 0 : Math.min(...counts.values());
      const mine = counts.get(v) ?? 0;
      return mine <= least ? undefined : `${name}: ${c.field} "${v}" has ${mine} instance(s), another value has ${least}`;
    }
    case 'LIKE':
      return fullMatch(c.value!, v) ? undefined : `${name}: ${c.field} "${v}" does not match`;
    case 'UNLIKE':
      return fullMatch(c.value!, v) ? `${name}: ${c.field} "${v}" matches` : undefined;
  }
}

/** The first constraint the candidate breaks (with its reason), if any. */
export function firstViolation(constraints: readonly Constraint[], candidate: Placement, others: readonly Placement[]): { constraint: Constraint; reason: string } | undefined {
  for (const c of constraints) {
    const reason = violation(c, candidate, others);
    if (reason) return { constraint: c, reason };
  }
  return undefined;
}
