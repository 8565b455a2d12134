/**
 * Typed errors shared by every corral component. Each carries a stable `code`
 * that callers branch on and that maps to one HTTP status at the API edge, so a
 * handler never has to decide between 400 and 500 by hand.
 */

export const ErrorCodes = {
  INVALID_ARGUMENT: 400,
  MALFORMED_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UPGRADE_REQUIRED: 426,
  FAILED_PRECONDITION: 412,
  RESOURCE_EXHAUSTED: 429,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  INTERNAL: 500,
  // Store-specific codes: distinct so callers can retry a conflict or resync after compaction.
  STORE_CONFLICT: 409,
  STORE_COMPACTED: 410,
  STORE_CLOSED: 503,
  LEASE_NOT_FOUND: 404,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class CorralError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CorralError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return ErrorCodes[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isCorralError(err: unknown, code?: ErrorCode): err is CorralError {
  return err instanceof CorralError && (code === undefined || err.code === code);
}

export const invalid = (message: string, details?: Record<string, unknown>): CorralError => new CorralError('INVALID_ARGUMENT', message, details);
export const notFound = (message: string, details?: Record<string, unknown>): CorralError => new CorralError('NOT_FOUND', message, details);
export const conflict = (message: string, details?: Record<string, unknown>): CorralError => new CorralError('CONFLICT', message, details);
export const forbidden = (message: string): CorralError => new CorralError('FORBIDDEN', message);
export const unavailable = (message: string, details?: Record<string, unknown>): CorralError => new CorralError('UNAVAILABLE', message, details);

/** Message of any thrown value, for logs and wrapped errors. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
