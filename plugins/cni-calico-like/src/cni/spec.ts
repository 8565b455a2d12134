/**
 * CNI protocol facts: versions, commands, the spec's error codes and how
 * corral's typed errors map onto them. Codes 1–99 are the spec's; 100+ are
 * corral's own (documented in the README), 999 is the conventional "internal".
 */
import { CorralError, errorMessage } from '../../../../contracts/errors.js';

const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const CURRENT_VERSION: CniVersion = '1.1.0';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof COMMANDS)[number];

export const CniCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  // corral's own
  POOL_EXHAUSTED: 100,
  CHECK_FAILED: 101,
  INTERFACE_CONFLICT: 102,
  INTERNAL: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly details?: string,
  ) {
    super(details ? `${msg}: ${details}` : msg);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.msg, ...(this.details ? { details: this.details } : {}) };
  }

  /** HTTP status between daemon and shim (the shim only needs "not 2xx"). */
  get httpStatus(): number {
    if (this.code === CniCode.TRY_AGAIN_LATER || this.code === CniCode.NOT_AVAILABLE || this.code === CniCode.LIMITED_CONNECTIVITY) return 503;
    if (this.code < 11 || this.code === CniCode.POOL_EXHAUSTED) return 400;
    return 500;
  }
}

/** Any error thrown while serving a CNI call, as the CNI error the runtime should see. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof CorralError) {
    const reason = err.details?.reason;
    switch (err.code) {
      case 'INVALID_ARGUMENT':
      case 'MALFORMED_REQUEST':
        return new CniError(CniCode.INVALID_CONFIG, reason === 'unknown-pool' ? 'unknown IP pool' : 'invalid network configuration', err.message);
      case 'RESOURCE_EXHAUSTED':
        return new CniError(CniCode.POOL_EXHAUSTED, 'IP pool exhausted', err.message);
      case 'CONFLICT':
        return new CniError(CniCode.INTERFACE_CONFLICT, 'interface conflict', err.message);
      case 'UNAVAILABLE':
      case 'TIMEOUT':
      case 'STORE_CLOSED':
      case 'STORE_CONFLICT':
        return new CniError(CniCode.TRY_AGAIN_LATER, 'try again later', err.message);
      default:
        return new CniError(CniCode.INTERNAL, 'internal error', err.message);
    }
  }
  return new CniError(CniCode.INTERNAL, 'internal error', errorMessage(err));
}

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

export function versionAtLeast(v: string, min: CniVersion): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}
