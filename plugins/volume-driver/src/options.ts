/**
 * Boundary validation of everything a caller names: volume and snapshot
 * names by Docker's rules (so nothing can escape its directory), and Docker's
 * string option map, whitelisted and typed into a VolumeSpec.
 */
import { CorralError, invalid } from '../../../contracts/errors.js';
import type { BackendName, FsType, VolumeSpec } from './types.js';

/** Docker's own rule for volume names (RestrictedNamePattern), with a length cap. */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const MAX_NAME_LENGTH = 96;
export const MIN_SIZE_BYTES = 16 * 1024 * 1024;
/** mkfs.xfs refuses filesystems under 300 MB. */
const MIN_XFS_BYTES = 300 * 1024 * 1024;
export const MAX_SIZE_BYTES = 64 * 1024 ** 4;

export function checkName(name: unknown, what = 'volume name'): string {
  if (typeof name !== 'string' || name.length === 0) throw invalid(`${what} is required`);
  if (name.length > MAX_NAME_LENGTH) throw invalid(`${what} "${name.slice(0, 40)}…" is longer than ${MAX_NAME_LENGTH} characters`);
  if (!NAME_RE.test(name)) {
    throw invalid(`${what} "${name}" is invalid: use at least 2 characters from [a-zA-Z0-9_.-], starting with a letter or digit`);
  }
  return name;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5, e: 1024 ** 6 };

/** "512M", "1G", "1.5GiB", "1073741824" → bytes (binary units: Docker users write 1G for a gibibyte). */
export function parseSize(raw: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgtpe]?)(?:i?b)?\s*$/i.exec(raw);
  if (!m) throw invalid(`${what} "${raw}" is not a size: use a number with an optional unit (K, M, G, T), e.g. 10G`);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes > MAX_SIZE_BYTES) throw invalid(`${what} "${raw}" is larger than the maximum of 64T`);
  if (bytes < MIN_SIZE_BYTES) throw invalid(`${what} "${raw}" is smaller than the minimum of 16M`);
  return bytes;
}

export function formatSize(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v}${units[i]}`;
}

export const RBD_FEATURE_NAMES = ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'] as const;
const POOL_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

interface OptionRule {
  backends: BackendName[];
  apply(spec: VolumeSpec, value: string): void;
}

function intOpt(name: string, max: number): (v: string) => number {
  return (v) => {
    if (!/^\d{1,10}$/.test(v) || Number(v) > max) throw invalid(`option ${name}="${v}" must be an integer from 0 to ${max}`);
    return Number(v);
  };
}

const RULES: Record<string, OptionRule> = {
  size: { backends: ['local', 'rbd'], apply: (s, v) => (s.sizeBytes = parseSize(v, 'option size')) },
  fs: {
    backends: ['local', 'rbd'],
    apply: (s, v) => {
      if (v !== 'ext4' && v !== 'xfs') throw invalid(`option fs="${v}" is not supported: use ext4 or xfs`);
      s.fsType = v as FsType;
    },
  },
  pool: {
    backends: ['rbd'],
    apply: (s, v) => {
      if (!POOL_RE.test(v)) throw invalid(`option pool="${v}" is not a valid pool name`);
      s.pool = v;
    },
  },
  features: {
    backends: ['rbd'],
    apply: (s, v) => {
      const list = v
        .split(',')
        .map((f) => f.trim())
        .filter(Boolean);
      for (const f of list) {
        if (!(RBD_FEATURE_NAMES as readonly string[]).includes(f)) {
          throw invalid(`option features: unknown rbd feature "${f}" (known: ${RBD_FEATURE_NAMES.join(', ')})`);
        }
      }
      s.features = [...new Set(list)];
    },
  },
  uid: { backends: ['local', 'rbd'], apply: (s, v) => (s.uid = intOpt('uid', 2 ** 31 - 1)(v)) },
  gid: { backends: ['local', 'rbd'], apply: (s, v) => (s.gid = intOpt('gid', 2 ** 31 - 1)(v)) },
  mode: {
    backends: ['local', 'rbd'],
    apply: (s, v) => {
      if (!/^0?[0-7]{3}$/.test(v)) throw invalid(`option mode="${v}" must be octal permissions such as 0755`);
      s.mode = parseInt(v, 8);
    },
  },
};

const OPTION_NAMES = ['backend', ...Object.keys(RULES)];

/**
 * Docker's `Opts` (null when `docker volume create` had no -o) → a spec.
 * Unknown options, options of another backend and malformed values are
 * refused with a message naming the option.
 */
export function parseOptions(name: string, opts: Record<string, unknown> | null | undefined, defaultBackend: BackendName): VolumeSpec {
  checkName(name);
  const raw = opts ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid('volume options must be a map of strings');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw invalid(`option ${k} must be a string`);
    if (k !== 'backend' && !(k in RULES)) throw invalid(`unknown option "${k}" (allowed: ${OPTION_NAMES.join(', ')})`);
  }
  const values = raw as Record<string, string>;
  const backend = values.backend ?? defaultBackend;
  if (backend !== 'local' && backend !== 'rbd') throw invalid(`option backend="${backend}" is not supported: use local or rbd`);
  const spec: VolumeSpec = { name, backend, fsType: 'ext4' };
  for (const [k, v] of Object.entries(values)) {
    if (k === 'backend') continue;
    const rule = RULES[k]!;
    if (!rule.backends.includes(backend)) throw invalid(`option ${k} applies only to backend ${rule.backends.join('/')}, not ${backend}`);
    rule.apply(spec, v);
  }
  if (values.fs && backend === 'local' && spec.sizeBytes === undefined) {
    throw invalid('option fs needs option size: a local volume without a size is a plain directory');
  }
  if (spec.fsType === 'xfs' && spec.sizeBytes !== undefined && spec.sizeBytes < MIN_XFS_BYTES) {
    throw invalid(`option fs=xfs needs a size of at least 300M (mkfs.xfs makes no smaller filesystem), not ${formatSize(spec.sizeBytes)}`);
  }
  return spec;
}

/** Parse a size given to resize (same units and bounds as create). */
export function parseResize(raw: string | number): number {
  if (typeof raw === 'number') {
    if (!Number.isSafeInteger(raw) || raw < MIN_SIZE_BYTES || raw > MAX_SIZE_BYTES) throw new CorralError('INVALID_ARGUMENT', `size ${raw} is out of range (16M–64T)`);
    return raw;
  }
  return parseSize(raw);
}
