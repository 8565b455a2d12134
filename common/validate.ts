/**
 * Boundary validation: every external input (HTTP bodies, config, CLI flags,
 * plugin env) is parsed with a zod schema here, and failures become one
 * INVALID_ARGUMENT error whose message names the offending field.
 */
import { z } from 'zod';
import { CorralError } from '../contracts/errors.js';
import { masterSpecProblem } from '../contracts/client/masters.js';

export { z };

export function formatIssues(error: z.ZodError, maxIssues = 3): string {
  const parts = error.issues.slice(0, maxIssues).map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join('.') : '(root)';
    return `${path}: ${issue.message}`;
  });
  if (error.issues.length > maxIssues) parts.push(`and ${error.issues.length - maxIssues} more`);
  return parts.join('; ');
}

/** Parse `input` or throw INVALID_ARGUMENT with a readable message prefixed by `what`. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new CorralError('INVALID_ARGUMENT', `invalid ${what}: ${formatIssues(result.error)}`);
  }
  return result.data;
}

/** JSON.parse that reports malformed input as a client error instead of a crash. */
export function parseJson(text: string, what = 'JSON body'): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CorralError('MALFORMED_REQUEST', `malformed ${what}: ${(err as Error).message}`);
  }
}

/** A master URL, or several separated by commas (a client follows the leader among them), as daemons' configs take it. */
export const masterUrlsSchema = z.string().superRefine((m, ctx) => {
  const problem = masterSpecProblem(m);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
